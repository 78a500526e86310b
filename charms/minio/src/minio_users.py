"""Scoped MinIO users: one per s3 relation and one per profile namespace.

Each user has a policy of the same name that reaches only its scope: a
relation's bucket (or the path in it that the requirer asked for), or a
profile's own prefixes in the pipelines bucket. The policies are IAM JSON
documents as MinIO reads them (actions `s3:*`, resources `arn:aws:s3:::`,
prefix-scoped listing through the `s3:prefix` condition key).

The admin calls go through the `minio` SDK's `MinioAdmin`, imported only by
:func:`connect`, so hooks with no user to change never load it. Nothing here
sets status or reads config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from kubeflow_interfaces import s3

logger = logging.getLogger(__name__)

POLICY_VERSION = "2012-10-17"
RELATION_USER_PREFIX = "kf-s3-"
PROFILE_USER_PREFIX = "kf-profile-"
# Kubeflow Pipelines' bucket, and the prefixes of one profile in it: the
# pipeline root and Argo's archived logs (private-artifacts/<ns>/), the
# profile's own files (private/<ns>/), and what every profile may read
# (shared/). Read from kubeflow/manifests v1.10.2
# experimental/seaweedfs/base/pipeline-profile-controller/sync.py and
# kubeflow/pipelines 2.15.0's multi-user profile controller.
PROFILE_BUCKET = "mlpipeline"
PROFILE_PREFIXES = ("private-artifacts/{namespace}/", "private/{namespace}/")
SHARED_READ_PREFIXES = ("shared/",)

_READ = ["s3:GetObject"]
_WRITE = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
_SECRET_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits


class AdminError(Exception):
    """MinIO's admin API could not be reached or refused; the message holds no key."""


class Admin(Protocol):
    """The part of `minio.MinioAdmin` the charm uses."""

    def user_add(self, access_key: str, secret_key: str) -> str: ...  # noqa: D102
    def user_remove(self, access_key: str) -> str: ...  # noqa: D102
    def policy_add(self, policy_name: str, policy_file: Any = None, policy: Any = None) -> str: ...  # noqa: D102
    def policy_remove(self, policy_name: str) -> str: ...  # noqa: D102
    def policy_set(self, policy_name: str, user: Any = None, group: Any = None) -> str: ...  # noqa: D102


def relation_user(relation_id: int) -> str:
    """The MinIO user (and policy) name of an s3 relation."""
    return f"{RELATION_USER_PREFIX}{relation_id}"


def profile_user(namespace: str) -> str:
    """The MinIO user (and policy) name of a profile namespace."""
    return f"{PROFILE_USER_PREFIX}{namespace}"


def generate_secret_key() -> str:
    """A random secret key (letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))


def _objects(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def _listing(bucket: str, prefixes: Iterable[str]) -> dict[str, Any]:
    """Listing the bucket only under these prefixes (one statement, as IAM ORs its values)."""
    return {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}"],
        "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    }


def _location(bucket: str) -> dict[str, Any]:
    # Clients (the minio SDK among them) ask a bucket's region before using it.
    return {
        "Effect": "Allow",
        "Action": ["s3:GetBucketLocation"],
        "Resource": [f"arn:aws:s3:::{bucket}"],
    }


def relation_policy(bucket: str, path: str | None) -> dict[str, Any]:
    """Read and write the bucket, or only under `path` in it when one was asked for."""
    prefix = (path or "").strip("/")
    if not prefix:
        return {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "s3:ListBucket",
                        "s3:GetBucketLocation",
                        "s3:ListBucketMultipartUploads",
                    ],
                    "Resource": [f"arn:aws:s3:::{bucket}"],
                },
                {
                    "Effect": "Allow",
                    "Action": _READ + _WRITE,
                    "Resource": [_objects(bucket, "")],
                },
            ],
        }
    prefix += "/"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _location(bucket),
            _listing(bucket, [prefix]),
            {"Effect": "Allow", "Action": _READ + _WRITE, "Resource": [_objects(bucket, prefix)]},
        ],
    }


class ReadGrant(NamedTuple):
    """A bucket, or a path in it, that every profile may read (list and get, nothing else)."""

    bucket: str
    path: str = ""

    @property
    def prefix(self) -> str:
        """The object-key prefix the grant reaches: `path/`, or "" for the whole bucket."""
        path = self.path.strip("/")
        return f"{path}/" if path else ""


def read_grants(grants: Iterable[ReadGrant]) -> list[ReadGrant]:
    """The grants in one order, without duplicates (so a policy's digest is stable)."""
    return sorted({ReadGrant(g.bucket, g.prefix) for g in grants})


def _read_only(grant: ReadGrant) -> list[dict[str, Any]]:
    """List and get objects under the grant's prefix (the whole bucket when it has none)."""
    if grant.prefix:
        listing = _listing(grant.bucket, [grant.prefix])
    else:
        listing = {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{grant.bucket}"],
        }
    return [
        _location(grant.bucket),
        listing,
        {"Effect": "Allow", "Action": _READ, "Resource": [_objects(grant.bucket, grant.prefix)]},
    ]


def profile_prefixes(namespace: str) -> list[str]:
    """The prefixes a profile reads and writes in the pipelines bucket."""
    return [p.format(namespace=namespace) for p in PROFILE_PREFIXES]


def profile_policy(namespace: str, grants: Iterable[ReadGrant] = ()) -> dict[str, Any]:
    """Read and write the profile's own prefixes, read the shared one; nothing else.

    `grants`: buckets or paths of s3 relations whose requirer asked that
    profiles may read them (`profiles-read`); each is read-only, through
    statements of its own.
    """
    own = profile_prefixes(namespace)
    extra = [statement for grant in read_grants(grants) for statement in _read_only(grant)]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _location(PROFILE_BUCKET),
            _listing(PROFILE_BUCKET, [*own, *SHARED_READ_PREFIXES]),
            {
                "Effect": "Allow",
                "Action": _READ + _WRITE,
                "Resource": [_objects(PROFILE_BUCKET, p) for p in own],
            },
            {
                "Effect": "Allow",
                "Action": _READ,
                "Resource": [_objects(PROFILE_BUCKET, p) for p in SHARED_READ_PREFIXES],
            },
            *extra,
        ],
    }


def policy_digest(policy: Mapping[str, Any]) -> str:
    """A short fingerprint of a policy, to tell whether MinIO holds this one."""
    text = json.dumps(policy, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def connect(root: s3.S3Credentials, endpoint: str) -> Admin:
    """A MinioAdmin client for the local MinIO, as root; imports the SDK."""
    import urllib3
    from minio import MinioAdmin
    from minio.credentials.providers import StaticProvider

    parts = urlsplit(endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=30),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[502, 503, 504]),
    )
    return MinioAdmin(
        endpoint=parts.netloc,
        credentials=StaticProvider(root.access_key, root.secret_key),
        secure=parts.scheme == "https",
        http_client=http,
    )


def _call(what: str, call: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> None:
    """Run one admin call; AdminError with the status and MinIO's code, never a key."""
    from minio.error import MinioAdminException
    from urllib3.exceptions import HTTPError

    try:
        call(*args, **kwargs)
    except MinioAdminException as e:
        code = str(getattr(e, "_code", ""))
        if missing_ok and code == "404":
            return
        try:
            detail = json.loads(getattr(e, "_body", "") or "{}").get("Code", "")
        except (ValueError, AttributeError):
            detail = ""
        raise AdminError(f"MinIO refused to {what} (HTTP {code} {detail})".strip()) from None
    except HTTPError as e:
        raise AdminError(f"cannot reach MinIO to {what}: {type(e).__name__}") from None


def ensure_user(admin: Admin, name: str, secret_key: str, policy: Mapping[str, Any]) -> None:
    """Make (or update) the policy, then the user with this key, then attach one to the other."""
    _call(f"write policy {name}", admin.policy_add, name, policy=dict(policy))
    _call(f"write user {name}", admin.user_add, name, secret_key)
    _call(f"attach policy {name}", admin.policy_set, name, user=name)
    logger.info("MinIO user %s holds its policy", name)


def set_key(admin: Admin, name: str, secret_key: str) -> None:
    """Give an existing user a new secret key (MinIO's add-user replaces it)."""
    _call(f"rotate the key of {name}", admin.user_add, name, secret_key)
    logger.info("rotated the key of MinIO user %s", name)


def remove_user(admin: Admin, name: str) -> None:
    """Remove the user, then its policy (MinIO refuses to remove an attached policy)."""
    _call(f"remove user {name}", admin.user_remove, name, missing_ok=True)
    _call(f"remove policy {name}", admin.policy_remove, name, missing_ok=True)
    logger.info("removed MinIO user %s and its policy", name)
