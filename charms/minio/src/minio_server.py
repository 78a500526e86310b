"""The MinIO workload: its Pebble layer, root credential files, buckets.

Nothing here sets status or reads config: the charm decides, this module
does. boto3 is imported only by :func:`ensure_bucket`, so hooks that have no
bucket to make never load it.
"""

from __future__ import annotations

import logging
import secrets
import string
import unicodedata
from typing import Any

import ops

from kubeflow_charms.pebble import plan_has
from kubeflow_interfaces import s3

logger = logging.getLogger(__name__)

SERVICE = "minio"
API_PORT = 9000
CONSOLE_PORT = 9001
DATA_DIR = "/data"
ALIVE_CHECK = "minio-alive"
READY_CHECK = "minio-ready"
# MinIO answers any region; clients sign for this one.
REGION = "us-east-1"
# MinIO serves buckets by path; host-style would need wildcard DNS.
URI_STYLE = "path"
# How the charm reaches its own MinIO: the charm container shares the pod's
# network namespace with the workload. Read at call time, so tests can point
# it at another S3 server.
LOCAL_ENDPOINT = f"http://localhost:{API_PORT}"

# The root keys go in files that MinIO reads at start (MINIO_ROOT_USER_FILE and
# MINIO_ROOT_PASSWORD_FILE hold their absolute paths), so the Pebble plan holds
# no key. They live in the container's own filesystem, outside the data
# directory, readable by MinIO's user only.
KEYS_DIR = "/etc/minio/root"
ROOT_USER_FILE = f"{KEYS_DIR}/access-key"
ROOT_PASSWORD_FILE = f"{KEYS_DIR}/secret-key"
ROOT_USER_FILE_ENV = "MINIO_ROOT_USER_FILE"
ROOT_PASSWORD_FILE_ENV = "MINIO_ROOT_PASSWORD_FILE"  # noqa: S105 - a variable name
# MinIO runs as root: the user Pebble runs as in this container (charmcraft.yaml
# sets no uid). The layer says so, and the key files belong to that user.
RUN_AS_UID = 0
RUN_AS_GID = 0

ACCESS_KEY_LENGTH = 20
SECRET_KEY_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
# MinIO refuses root access keys containing these.
_RESERVED = frozenset("=,")


class BucketError(Exception):
    """A bucket could not be checked or created (MinIO down, refused, ...)."""


def generate_credentials() -> s3.S3Credentials:
    """Generate random root credentials (letters and digits: nothing to quote)."""
    access_key = "".join(secrets.choice(_ALPHABET) for _ in range(ACCESS_KEY_LENGTH))
    secret_key = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_KEY_LENGTH))
    return s3.S3Credentials(access_key=access_key, secret_key=secret_key)


def root_credentials_problem(credentials: s3.S3Credentials) -> str | None:
    """Why MinIO would refuse these as root credentials, or None when it would not.

    Besides MinIO's own limits: MinIO trims whitespace around the keys it reads
    from files, and a line break or other control character has no place in a
    key, so neither may appear.
    """
    for name, key in (
        ("access-key", credentials.access_key),
        ("secret-key", credentials.secret_key),
    ):
        if any(unicodedata.category(c) == "Cc" for c in key):
            return f"{name} must not contain line breaks or other control characters"
        if key != key.strip():
            return f"{name} must not start or end with whitespace"
    if len(credentials.access_key) < 3:
        return "access-key must be at least 3 characters"
    if _RESERVED & set(credentials.access_key):
        return "access-key must not contain '=' or ','"
    if len(credentials.secret_key) < 8:
        return "secret-key must be at least 8 characters"
    return None


def _checks(startup: str | None = None) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for name, level, path in (
        (ALIVE_CHECK, "alive", "/minio/health/live"),
        (READY_CHECK, "ready", "/minio/health/ready"),
    ):
        check: dict[str, Any] = {
            "override": "replace",
            "level": level,
            "period": "10s",
            "threshold": 3,
            "http": {"url": f"http://localhost:{API_PORT}{path}"},
        }
        if startup:
            check["startup"] = startup
        checks[name] = check
    return checks


def _command() -> str:
    return f"minio server {DATA_DIR} --address :{API_PORT} --console-address :{CONSOLE_PORT}"


def pebble_layer() -> ops.pebble.Layer:
    """MinIO serving /data, told where its root keys are (the keys are not in the layer)."""
    return ops.pebble.Layer(
        {
            "summary": "MinIO object storage",
            "services": {
                SERVICE: {
                    "override": "replace",
                    "summary": "MinIO S3 server",
                    "command": _command(),
                    "startup": "enabled",
                    "user-id": RUN_AS_UID,
                    "group-id": RUN_AS_GID,
                    "environment": {
                        ROOT_USER_FILE_ENV: ROOT_USER_FILE,
                        ROOT_PASSWORD_FILE_ENV: ROOT_PASSWORD_FILE,
                    },
                    "on-check-failure": {ALIVE_CHECK: "restart"},
                }
            },
            "checks": _checks(),
        }
    )


def disabled_layer() -> ops.pebble.Layer:
    """MinIO switched off: not started, no credential files named, checks off."""
    return ops.pebble.Layer(
        {
            "summary": "MinIO object storage (disabled: external mode)",
            "services": {
                SERVICE: {
                    "override": "replace",
                    "summary": "MinIO S3 server (disabled)",
                    "command": _command(),
                    "startup": "disabled",
                }
            },
            "checks": _checks(startup="disabled"),
        }
    )


class MinioServer:
    """MinIO under Pebble in the workload container."""

    def __init__(self, container: ops.Container):
        self._container = container
        # Set when `configure` found MinIO running as wanted: for the rest of the
        # hook, the charm reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, credentials: s3.S3Credentials) -> bool:
        """Run MinIO with these root credentials; restart it only when they or the plan change.

        The keys are written to their files before MinIO starts: without them
        MinIO would start with its default credentials. Returns whether
        anything changed. The container must be reachable.
        """
        self._settled = False
        keys_changed = self._write_keys(credentials)
        layer = pebble_layer()
        plan_changed = not plan_has(self._container.get_plan(), layer)
        running = self.is_running()
        if not (keys_changed or plan_changed or not running):
            self._settled = True
            return False
        if plan_changed:
            self._container.add_layer(SERVICE, layer, combine=True)
        if plan_changed or not running:
            self._container.replan()
        else:
            # Same plan, new keys: only a restart makes MinIO read them.
            self._container.restart(SERVICE)
        logger.info("MinIO (re)started with its current configuration")
        return True

    def _write_keys(self, credentials: s3.S3Credentials) -> bool:
        """Make the key files hold these keys (0600, MinIO's user); return whether any changed."""
        wanted = {
            ROOT_USER_FILE: credentials.access_key,
            ROOT_PASSWORD_FILE: credentials.secret_key,
        }
        stale = [path for path, key in wanted.items() if self._read(path) != key]
        if not stale:
            return False
        if not self._container.exists(KEYS_DIR):
            self._container.make_dir(
                KEYS_DIR,
                make_parents=True,
                permissions=0o700,
                user_id=RUN_AS_UID,
                group_id=RUN_AS_GID,
            )
        for path in stale:
            self._container.push(
                path, wanted[path], permissions=0o600, user_id=RUN_AS_UID, group_id=RUN_AS_GID
            )
        logger.info("wrote the MinIO root key files")
        return True

    def _read(self, path: str) -> str | None:
        try:
            return self._container.pull(path).read()
        except ops.pebble.PathError:
            return None

    def _remove_keys(self) -> bool:
        present = [p for p in (ROOT_USER_FILE, ROOT_PASSWORD_FILE) if self._container.exists(p)]
        for path in present:
            self._container.remove_path(path)
        if present:
            logger.info("removed the MinIO root key files")
        return bool(present)

    def disable(self) -> bool:
        """Stop MinIO and its checks, if it was ever planned; returns whether anything changed."""
        plan = self._container.get_plan()
        if SERVICE not in plan.services:
            return False
        layer = disabled_layer()
        changed = False
        if not plan_has(plan, layer):
            self._container.add_layer(SERVICE, layer, combine=True)
            changed = True
        if self.is_running():
            self._container.stop(SERVICE)
            changed = True
        running_checks = [
            name
            for name, info in self._container.get_checks(ALIVE_CHECK, READY_CHECK).items()
            if info.status != ops.pebble.CheckStatus.INACTIVE
        ]
        if running_checks:
            self._container.stop_checks(*running_checks)
            changed = True
        if self._remove_keys():
            changed = True
        if changed:
            logger.info("MinIO stopped (external mode)")
        return changed

    def can_connect(self) -> bool:
        """Whether the container's Pebble answers (known once `configure` found MinIO settled)."""
        return self._settled or self._container.can_connect()

    def is_running(self) -> bool:
        """Whether the MinIO service is up (known once `configure` found MinIO settled)."""
        if self._settled:
            return True
        services = self._container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def is_ready(self) -> bool:
        """Whether MinIO's readiness check passes (Pebble asks /minio/health/ready)."""
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP


def ensure_bucket(credentials: s3.S3Credentials, bucket: str) -> bool:
    """Make sure `bucket` exists on the local MinIO; returns whether it was created.

    Raises BucketError when MinIO cannot be reached or refuses. Errors carry
    the S3 error code, never the credentials.
    """
    # Imported here, not at the top: only hooks with a bucket to make pay for botocore.
    from botocore.exceptions import BotoCoreError, ClientError

    connection = s3.S3ConnectionInfo(
        endpoint=LOCAL_ENDPOINT,
        bucket=bucket,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=REGION,
        uri_style=URI_STYLE,
    )
    client = connection.client()
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise BucketError(f"cannot check bucket {bucket!r}: {code or e}") from None
    except BotoCoreError as e:
        raise BucketError(f"cannot reach MinIO to check bucket {bucket!r}: {e}") from None
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code == "BucketAlreadyOwnedByYou":
            return False
        raise BucketError(f"cannot create bucket {bucket!r}: {code or e}") from None
    except BotoCoreError as e:
        raise BucketError(f"cannot reach MinIO to create bucket {bucket!r}: {e}") from None
    logger.info("created bucket %r", bucket)
    return True
