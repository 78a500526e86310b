"""The `s3` interface: object-store credentials from a provider to its requirers.

Wire format (application databags, every value a string):

- requirer: `bucket`, `path` (both optional: what it asks for),
  `requested-secrets` (JSON list, `["access-key", "secret-key"]`),
  `version` (`1`) and `lib-version`; and, our addition, `profiles-read`
  (`"true"`, or absent): the requirer asks that every Kubeflow profile may
  read (not write) its bucket or path with the profile's own keys. Ecosystem
  providers ignore the key; ours (minio) grants it. Any other value is a
  malformed request.
- provider: `bucket`, `path`, `endpoint`, `region`, `s3-uri-style`
  (`path`/`host`), `storage-class`, `s3-api-version`, `tls-ca-chain` (JSON
  list, one PEM certificate each), `attributes` (JSON list), `version`
  (`1`), `lib-version`, and `secret-extra`: the URI of a Juju secret,
  granted to the relation, holding `access-key` and `secret-key`.

That is the ecosystem's `s3` v1 format, so the s3-integrator charm and other
object-store charms interoperate. The keys that say which format a side
speaks:

- a v1 requirer lists `requested-secrets`; object-storage-charmlib (the
  library of s3-integrator 2 and of Kubeflow's kfp-api charm) also writes
  `version`, and the interface's specification names `lib-version`.
- a v0 requirer (data_platform_libs' `v0.s3` library) writes `bucket` alone
  and reads `access-key` and `secret-key` in clear from the provider's
  databag. Our provider never writes them, so it cannot serve such a
  requirer: `S3Provider.requirer_format` tells the charm, which says so.
- object-storage-charmlib takes a provider that has written data without
  `version` for a v0 provider and then asks for a bucket of its own
  (`relation-<id>`), so our provider writes `version`.

`tls-ca-chain` entries are written as PEM text, as s3-integrator 2 writes
them and as kfp's charm reads them (it joins the entries into a PEM file).
The specification's text asks for base64 of each certificate instead, so
the requirer reads both: PEM entries and base64-encoded PEM entries.

The requirer also accepts the older v0 provider format, where `access-key`
and `secret-key` travel in the databag itself (s3-integrator 1).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import ops

from kubeflow_interfaces import _bags

if TYPE_CHECKING:
    from ops import testing

    from kubeflow_interfaces._s3_models import S3ConnectionInfo, S3ProviderData

logger = logging.getLogger(__name__)

LIB_VERSION = "1.0"
# object-storage-charmlib's protocol key and its value for the v1 format.
SCHEMA_VERSION = "1"
REQUESTED_SECRETS_KEY = "requested-secrets"
# Our addition to the requirer's databag: profiles may read the bucket/path.
PROFILES_READ_KEY = "profiles-read"
_BOOLEANS = {"true": True, "false": False}
SECRET_FIELDS = ("access-key", "secret-key")
_SECRET_LABEL = "{endpoint}-{relation_id}"  # noqa: S105 - a label, not a secret


_MODELS = ("S3RequirerData", "S3ProviderData", "S3ConnectionInfo")


def __getattr__(name: str) -> Any:
    """The pydantic models, imported on first use (a settled hook needs none).

    A settled provider reads and compares with the plain classes below
    (`S3Request`, `S3ProviderInfo`, `S3Credentials`) instead.
    """
    if name in _MODELS:
        from kubeflow_interfaces import _s3_models

        return getattr(_s3_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class InvalidS3DataError(Exception):
    """The other side's databag does not parse; `keys` names the keys that do not."""

    def __init__(self, message: str, *, keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.keys = keys


_S3_CLIENT_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


def _quiet_s3_client_loggers() -> None:
    """Keep the S3 client's request-level DEBUG logging out of the charm's log."""
    for name in _S3_CLIENT_LOGGERS:
        client_logger = logging.getLogger(name)
        if client_logger.getEffectiveLevel() < logging.WARNING:
            client_logger.setLevel(logging.WARNING)


def _cert_to_wire(cert: str) -> str:
    """One certificate as the databag carries it: its PEM text (base64 input is decoded)."""
    return _cert_from_wire(cert)


def _cert_from_wire(value: str) -> str:
    """A PEM certificate from the databag, sent as PEM text or as base64 of it."""
    if "-----BEGIN" in value:
        return value.strip()
    try:
        pem = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError):
        raise InvalidS3DataError("invalid s3 relation data (tls-ca-chain)") from None
    if "-----BEGIN" not in pem:
        raise InvalidS3DataError("invalid s3 relation data (tls-ca-chain)")
    return pem.strip()


def is_valid_bucket_name(name: str) -> bool:
    """S3 bucket naming rules (lower case, digits, dots, hyphens; 3-63 characters)."""
    if not 3 <= len(name) <= 63 or ".." in name:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    return set(name) <= allowed and name[0].isalnum() and name[-1].isalnum()


def _bare_secret_id(uri: str) -> str:
    """`secret://<model>/<id>`, `secret:<id>` and `<id>` all to `<id>`."""
    return uri.rsplit("/", 1)[-1].removeprefix("secret:")


RequirerFormat = Literal["none", "v0", "v1"]

# What the requirer reads of the provider's databag. Every value is a string
# but the lists (JSON text, a bare string being one element); an unknown
# `s3-uri-style` reads as None. Read without the models, so that checking the
# relation (every hook's status) does not import pydantic.
_PROVIDER_LISTS = ("tls-ca-chain", "attributes")


def _json_list(value: str) -> Any:
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return [value] if value else []
    return decoded if isinstance(decoded, list) else [value]


def _read_provider_data(data: ops.RelationDataContent) -> dict[str, Any]:
    """The provider's databag, lists decoded; InvalidS3DataError names what does not parse."""
    read: dict[str, Any] = dict(data)
    bad = []
    for key in _PROVIDER_LISTS:
        if key in read:
            read[key] = _json_list(read[key])
            if not all(isinstance(item, str) for item in read[key]):
                bad.append(key)
    if bad:
        raise InvalidS3DataError(f"invalid s3 relation data ({', '.join(sorted(bad))})")
    if read.get("s3-uri-style") not in ("path", "host"):
        read["s3-uri-style"] = None
    return read


# The keys a provider writes: the credentials in clear (v0) are read, never written.
PROVIDER_KEYS = frozenset(
    {
        "bucket",
        "path",
        "endpoint",
        "region",
        "s3-uri-style",
        "storage-class",
        "s3-api-version",
        "tls-ca-chain",
        "attributes",
        "secret-extra",
        "version",
        "lib-version",
    }
)
_URI_STYLES = ("path", "host")


@dataclasses.dataclass(frozen=True, kw_only=True)
class S3Credentials:
    """Content of the secret named by `secret-extra`: `access-key` and `secret-key`."""

    access_key: str = dataclasses.field(repr=False)
    secret_key: str = dataclasses.field(repr=False)

    def __post_init__(self):
        bad = [key for key, value in self.dump().items() if not _non_empty(value)]
        if bad:
            raise ValueError(f"invalid s3 credentials ({', '.join(bad)})")

    @classmethod
    def from_content(cls, content: Mapping[str, str]) -> S3Credentials:
        """Read a secret's content; ValueError when a key is missing or empty."""
        return cls(
            access_key=content.get("access-key", ""), secret_key=content.get("secret-key", "")
        )

    def dump(self) -> dict[str, str]:
        """The secret's content."""
        return {"access-key": self.access_key, "secret-key": self.secret_key}


def _non_empty(value: object) -> bool:
    return isinstance(value, str) and bool(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class S3Request:
    """What a requirer asked for, as read from its databag."""

    bucket: str | None = None
    path: str | None = None
    requested_secrets: tuple[str, ...] | None = None
    version: str | None = None
    lib_version: str | None = None
    # `profiles-read: "true"`: every profile may read this bucket/path (absent: False).
    profiles_read: bool = False


def _read_request(data: Mapping[str, str]) -> S3Request:
    """The requirer's databag; InvalidS3DataError names the keys that do not parse."""
    bad: list[str] = []
    bucket = data.get("bucket")
    if bucket is not None and not is_valid_bucket_name(bucket):
        bad.append("bucket")
    requested = None
    if REQUESTED_SECRETS_KEY in data:
        decoded = _json_list(data[REQUESTED_SECRETS_KEY])
        if all(isinstance(item, str) for item in decoded):
            requested = tuple(decoded)
        else:
            bad.append(REQUESTED_SECRETS_KEY)
    profiles_read = _BOOLEANS.get(data.get(PROFILES_READ_KEY, "false"))
    if profiles_read is None:
        bad.append(PROFILES_READ_KEY)
    if bad:
        keys = tuple(sorted(bad))
        raise InvalidS3DataError(f"invalid s3 relation data ({', '.join(keys)})", keys=keys)
    return S3Request(
        bucket=bucket,
        path=data.get("path"),
        requested_secrets=requested,
        version=data.get("version"),
        lib_version=data.get("lib-version"),
        profiles_read=bool(profiles_read),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class S3ProviderInfo:
    """What a provider publishes on a relation, but the credentials (they go in a secret)."""

    bucket: str | None = None
    path: str | None = None
    endpoint: str | None = None
    region: str | None = None
    s3_uri_style: Literal["path", "host"] | None = None
    storage_class: str | None = None
    s3_api_version: str | None = None
    tls_ca_chain: tuple[str, ...] | None = None
    attributes: tuple[str, ...] | None = None

    def dump(self) -> dict[str, str]:
        """Databag strings, dashed keys; unset fields and an unknown uri style left out."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or (field.name == "s3_uri_style" and value not in _URI_STYLES):
                continue
            key = field.name.replace("_", "-")
            out[key] = json.dumps(list(value)) if isinstance(value, tuple) else str(value)
        return out


def _request_databag(
    bucket: str | None, path: str | None, *, profiles_read: bool = False
) -> dict[str, str]:
    """What a v1 requirer writes; ValueError for an invalid bucket name."""
    if bucket is not None and not is_valid_bucket_name(bucket):
        raise ValueError(f"invalid bucket name {bucket!r}")
    wanted = {"bucket": bucket, "path": path}
    request = {
        **{key: value for key, value in wanted.items() if value is not None},
        REQUESTED_SECRETS_KEY: json.dumps(list(SECRET_FIELDS)),
        "version": SCHEMA_VERSION,
        "lib-version": LIB_VERSION,
    }
    if profiles_read:
        request[PROFILES_READ_KEY] = "true"
    return request


class S3Provider:
    """Provider side: read each requirer's request, publish connection data."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "s3-credentials"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def request(self, relation: ops.Relation) -> S3Request:
        """The requirer's wishes; raises InvalidS3DataError when they do not parse."""
        if relation.app is None:
            return S3Request()
        return _read_request(relation.data[relation.app])

    def requirer_format(self, relation: ops.Relation) -> RequirerFormat:
        """Which format the requirer speaks, from what it has written.

        `none` while its databag is empty; `v1` when it lists
        `requested-secrets`; `v0` when it wrote anything without it (the v0
        library writes `bucket` alone and expects keys in clear, which this
        provider never writes).
        """
        if relation.app is None:
            return "none"
        data = relation.data[relation.app]
        if REQUESTED_SECRETS_KEY in data:
            return "v1"
        return "v0" if len(data) else "none"

    def publish(
        self,
        relation: ops.Relation,
        data: S3ProviderInfo | S3ProviderData,
        credentials: S3Credentials,
    ) -> bool:
        """Write connection data and the credentials secret; leader only.

        Returns whether anything was written (a reconcile with nothing to
        change writes nothing).
        """
        secret, changed = self._ensure_secret(relation, credentials.dump())
        databag = relation.data[self._charm.app]
        wanted = data.dump()
        wanted.pop("tls-ca-chain", None)
        if data.tls_ca_chain:
            wanted["tls-ca-chain"] = json.dumps([_cert_to_wire(c) for c in data.tls_ca_chain])
        wanted.update(
            {
                "secret-extra": self._secret_uri(secret, databag),
                "version": SCHEMA_VERSION,
                "lib-version": LIB_VERSION,
            }
        )
        before = dict(databag)
        _bags.write(databag, wanted, PROVIDER_KEYS)
        return changed or dict(databag) != before

    def update_credentials(self, credentials: S3Credentials) -> None:
        """Replace the credentials in every relation's secret (e.g. on rotation)."""
        for relation in self.relations:
            label = _SECRET_LABEL.format(endpoint=self._endpoint, relation_id=relation.id)
            try:
                secret = self._charm.model.get_secret(label=label)
            except ops.SecretNotFoundError:
                continue
            secret.set_content(credentials.dump())

    def revoke(self, relation: ops.Relation) -> None:
        """Remove the credentials secret of a relation that is going away."""
        label = _SECRET_LABEL.format(endpoint=self._endpoint, relation_id=relation.id)
        try:
            self._charm.model.get_secret(label=label).remove_all_revisions()
        except ops.SecretNotFoundError:
            pass

    def _secret_uri(self, secret: ops.Secret, databag: ops.RelationDataContent) -> str:
        """Return the URI to publish for `secret`, keeping the published form when it matches.

        A secret found by label has no id in ops, and Juju names a secret in
        different forms (`secret:<id>`, `secret://<model>/<id>`, bare `<id>`),
        so compare the bare ids: rewriting the same secret in another form
        would be a change for the requirer.
        """
        known = secret.id or secret.get_info().id
        published = databag.get("secret-extra")
        if published and _bare_secret_id(published) == _bare_secret_id(known):
            return published
        if secret.id is not None:
            return secret.id
        # Let ops put the id Juju gave into its canonical URI form.
        return self._charm.model.get_secret(id=known).id or known

    def _ensure_secret(
        self, relation: ops.Relation, content: dict[str, str]
    ) -> tuple[ops.Secret, bool]:
        label = _SECRET_LABEL.format(endpoint=self._endpoint, relation_id=relation.id)
        try:
            secret = self._charm.model.get_secret(label=label)
        except ops.SecretNotFoundError:
            secret = self._charm.app.add_secret(
                content, label=label, description=f"S3 credentials for relation {relation.id}"
            )
            secret.grant(relation)
            return secret, True
        if secret.get_content(refresh=True) != content:
            secret.set_content(content)
            return secret, True
        return secret, False


@dataclasses.dataclass(frozen=True, kw_only=True)
class S3ConnectionFields:
    """The provider's connection data as plain fields, with no pydantic model built.

    The same fields as `S3ConnectionInfo`, for a charm that reads them on
    every hook and needs no S3 client.
    """

    endpoint: str | None
    bucket: str
    access_key: str = dataclasses.field(repr=False)
    secret_key: str = dataclasses.field(repr=False)
    path: str = ""
    region: str | None = None
    uri_style: Literal["path", "host"] | None = None
    tls_ca_chain: tuple[str, ...] = ()
    storage_class: str | None = None


class S3Requirer:
    """Requirer side: ask for a bucket, read the connection info back.

    With `profiles_read`, the request also asks that every Kubeflow profile
    may read (list and get, never write) the bucket or path with its own
    keys (`profiles-read: "true"`); providers that do not know the key
    ignore it.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        endpoint: str = "s3-parameters",
        *,
        bucket: str | None = None,
        path: str | None = None,
        profiles_read: bool = False,
    ):
        self._charm = charm
        self._endpoint = endpoint
        self._request = _request_databag(bucket, path, profiles_read=profiles_read)

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one (the endpoint takes a single provider)."""
        return self._charm.model.get_relation(self._endpoint)

    def publish_request(self) -> None:
        """Write the request into our app databag (leader only; only what changed)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        databag = relation.data[self._charm.app]
        for key, value in self._request.items():
            if databag.get(key) != value:
                databag[key] = value
        if PROFILES_READ_KEY not in self._request and PROFILES_READ_KEY in databag:
            del databag[PROFILES_READ_KEY]  # no longer asked for

    def connection_info(self) -> S3ConnectionInfo | None:
        """The provider's connection data, or None while it is incomplete.

        Raises InvalidS3DataError when the provider's data does not parse or
        its credentials secret cannot be read.
        """
        fields = self._connection_fields()
        if fields is None:
            return None
        from kubeflow_interfaces._s3_models import S3ConnectionInfo

        return S3ConnectionInfo(**fields)

    def connection_fields(self) -> S3ConnectionFields | None:
        """What `connection_info` gives, as a plain dataclass: pydantic is not imported.

        None while the data is incomplete; raises InvalidS3DataError where
        `connection_info` would.
        """
        fields = self._connection_fields()
        return None if fields is None else S3ConnectionFields(**fields)

    def check(self) -> None:
        """Raise InvalidS3DataError where `connection_info` would, without building it.

        As cheap as reading the databag and the secret: for a status check on
        every hook.
        """
        self._connection_fields()

    def _connection_fields(self) -> dict[str, Any] | None:
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        data = _read_provider_data(relation.data[relation.app])
        if not data.get("bucket"):
            return None
        if data.get("secret-extra"):
            access_key, secret_key = self._read_secret(data["secret-extra"])
        elif data.get("access-key") and data.get("secret-key"):
            access_key, secret_key = data["access-key"], data["secret-key"]
        else:
            return None
        return {
            "endpoint": data.get("endpoint"),
            "bucket": data["bucket"],
            "path": (data.get("path") or "").strip("/"),
            "region": data.get("region"),
            "uri_style": data["s3-uri-style"],
            "tls_ca_chain": tuple(_cert_from_wire(c) for c in data.get("tls-ca-chain") or ()),
            "storage_class": data.get("storage-class"),
            "access_key": access_key,
            "secret_key": secret_key,
        }

    def _read_secret(self, uri: str) -> tuple[str, str]:
        """The access key and secret key in the credentials secret."""
        try:
            content = self._charm.model.get_secret(id=uri).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as e:
            raise InvalidS3DataError("the s3 credentials secret cannot be read") from e
        access_key, secret_key = (content.get(key) for key in SECRET_FIELDS)
        if not access_key or not secret_key:
            raise InvalidS3DataError("the s3 credentials secret lacks access-key/secret-key")
        return access_key, secret_key


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    endpoint: str = "s3-credentials",
    *,
    bucket: str | None = "bucket",
    path: str | None = None,
    remote_app_name: str = "requirer",
    format_version: Literal["v1", "v0"] = "v1",
    profiles_read: bool = False,
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the provider sees it: the requirer's request in the remote databag.

    With `format_version="v0"` the request is what the v0 library writes:
    `bucket` alone. With `profiles_read`, a v1 request asks that profiles
    may read the bucket/path.
    """
    from ops import testing

    from kubeflow_interfaces._s3_models import S3RequirerData

    if format_version == "v0":
        request = S3RequirerData(bucket=bucket or "relation-1")
    else:
        request = S3RequirerData(
            bucket=bucket,
            path=path,
            requested_secrets=list(SECRET_FIELDS),
            version=SCHEMA_VERSION,
            lib_version=LIB_VERSION,
            profiles_read="true" if profiles_read else None,
        )
    return testing.Relation(
        endpoint,
        interface="s3",
        remote_app_name=remote_app_name,
        remote_app_data=request.dump(),
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = "s3-parameters",
    *,
    endpoint_url: str = "http://minio.example:9000",
    bucket: str = "bucket",
    path: str = "",
    access_key: str = "access",
    secret_key: str = "secret-value",  # noqa: S107 - test data
    region: str | None = "us-east-1",
    uri_style: Literal["path", "host"] = "path",
    remote_app_name: str = "minio",
    format_version: Literal["v1", "v0"] = "v1",
    **kwargs: Any,
) -> tuple[testing.Relation, testing.Secret | None]:
    """A relation as the requirer sees it, and the credentials secret it refers to.

    With `format_version="v0"` the credentials are in the databag (the
    s3-integrator 1.x format) and no secret is returned. Put the secret in
    `State(secrets=...)`.
    """
    from ops import testing

    from kubeflow_interfaces._s3_models import S3ProviderData

    credentials = S3Credentials(access_key=access_key, secret_key=secret_key)
    data = S3ProviderData(
        bucket=bucket,
        path=path or None,
        endpoint=endpoint_url,
        region=region,
        s3_uri_style=uri_style,
        version=SCHEMA_VERSION if format_version == "v1" else None,
        lib_version=LIB_VERSION if format_version == "v1" else None,
    ).dump()
    secret = None
    if format_version == "v1":
        secret = testing.Secret(tracked_content=credentials.dump(), owner=None)
        data["secret-extra"] = secret.id
    else:
        data.update(credentials.dump())
    relation = testing.Relation(
        endpoint,
        interface="s3",
        remote_app_name=remote_app_name,
        remote_app_data=data,
        **kwargs,
    )
    return relation, secret
