"""The `s3` interface: object-store credentials from a provider to its requirers.

Wire format (application databags, every value a string):

- requirer: `bucket`, `path` (both optional: what it asks for),
  `requested-secrets` (JSON list, `["access-key", "secret-key"]`),
  `version` (`1`) and `lib-version`.
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
import logging
from typing import TYPE_CHECKING, Any, Literal

import ops
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubeflow_interfaces import _databag

if TYPE_CHECKING:
    from ops import testing

logger = logging.getLogger(__name__)

LIB_VERSION = "1.0"
# object-storage-charmlib's protocol key and its value for the v1 format.
SCHEMA_VERSION = "1"
REQUESTED_SECRETS_KEY = "requested-secrets"
SECRET_FIELDS = ("access-key", "secret-key")
_SECRET_LABEL = "{endpoint}-{relation_id}"  # noqa: S105 - a label, not a secret


class InvalidS3DataError(Exception):
    """The other side's databag does not parse."""


class S3RequirerData(_databag.Databag):
    """What a requirer writes: the bucket and path it would like."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    path: str | None = None
    requested_secrets: list[str] | None = None
    version: str | None = None
    lib_version: str | None = None

    _list = field_validator("requested_secrets", mode="before")(_databag.json_list)

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_bucket_name(value):
            raise ValueError(f"invalid bucket name {value!r}")
        return value


class S3ProviderData(_databag.Databag):
    """What a provider writes; credentials only by secret reference (v1)."""

    bucket: str | None = None
    path: str | None = None
    endpoint: str | None = None
    region: str | None = None
    s3_uri_style: Literal["path", "host"] | None = None
    storage_class: str | None = None
    s3_api_version: str | None = None
    tls_ca_chain: list[str] | None = None
    attributes: list[str] | None = None
    secret_extra: str | None = None
    version: str | None = None
    lib_version: str | None = None
    # v0 only: credentials in clear. Read, never written by our provider.
    access_key: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)

    _lists = field_validator("tls_ca_chain", "attributes", mode="before")(_databag.json_list)

    @field_validator("s3_uri_style", mode="before")
    @classmethod
    def _unknown_style(cls, value: Any) -> Any:
        return value if value in ("path", "host") else None


class S3Credentials(_databag.Databag):
    """Content of the secret named by `secret-extra`."""

    access_key: str = Field(min_length=1, repr=False)
    secret_key: str = Field(min_length=1, repr=False)


class S3ConnectionInfo(BaseModel):
    """Everything a client needs to reach the bucket; what requirers consume."""

    model_config = ConfigDict(frozen=True)

    endpoint: str | None
    bucket: str
    access_key: str = Field(repr=False)
    secret_key: str = Field(repr=False)
    path: str = ""
    region: str | None = None
    uri_style: Literal["path", "host"] | None = None
    tls_ca_chain: tuple[str, ...] = ()
    storage_class: str | None = None

    def client(self, *, ca_bundle_path: str | None = None) -> Any:
        """A boto3 S3 client for this connection (boto3 imported only here).

        `ca_bundle_path` is a file holding `tls_ca_chain`, when there is one.
        """
        import boto3
        from botocore.config import Config

        # ops sends every DEBUG record to juju-log, and botocore's DEBUG records
        # carry signed request headers (the access key id among them).
        _quiet_s3_client_loggers()
        config = Config(
            s3={"addressing_style": self.uri_style or "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        return boto3.Session().client(
            "s3",
            endpoint_url=self.endpoint or None,
            region_name=self.region or "us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=config,
            verify=ca_bundle_path if ca_bundle_path else None,
        )


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


def _load(model: type[_databag.T], data: ops.RelationDataContent) -> _databag.T:
    return _databag.load(model, data, InvalidS3DataError, "s3")


def _bare_secret_id(uri: str) -> str:
    """`secret://<model>/<id>`, `secret:<id>` and `<id>` all to `<id>`."""
    return uri.rsplit("/", 1)[-1].removeprefix("secret:")


RequirerFormat = Literal["none", "v0", "v1"]

_PROVIDER_KEYS = {
    field.alias or name
    for name, field in S3ProviderData.model_fields.items()
    if name not in ("access_key", "secret_key")
}


class S3Provider:
    """Provider side: read each requirer's request, publish connection data."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "s3-credentials"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def request(self, relation: ops.Relation) -> S3RequirerData:
        """The requirer's wishes; raises InvalidS3DataError when they do not parse."""
        if relation.app is None:
            return S3RequirerData()
        return _load(S3RequirerData, relation.data[relation.app])

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
        data: S3ProviderData,
        credentials: S3Credentials,
    ) -> bool:
        """Write connection data and the credentials secret; leader only.

        Returns whether anything was written (a reconcile with nothing to
        change writes nothing).
        """
        secret, changed = self._ensure_secret(relation, credentials.dump())
        databag = relation.data[self._charm.app]
        wanted = data.model_copy(
            update={
                "secret_extra": self._secret_uri(secret, databag),
                "version": SCHEMA_VERSION,
                "lib_version": LIB_VERSION,
                "tls_ca_chain": [_cert_to_wire(c) for c in data.tls_ca_chain]
                if data.tls_ca_chain
                else None,
            }
        ).dump()
        before = dict(databag)
        _databag.write(databag, wanted, _PROVIDER_KEYS)
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


class S3Requirer:
    """Requirer side: ask for a bucket, read the connection info back."""

    def __init__(
        self,
        charm: ops.CharmBase,
        endpoint: str = "s3-parameters",
        *,
        bucket: str | None = None,
        path: str | None = None,
    ):
        self._charm = charm
        self._endpoint = endpoint
        self._request = S3RequirerData(
            bucket=bucket,
            path=path,
            requested_secrets=list(SECRET_FIELDS),
            version=SCHEMA_VERSION,
            lib_version=LIB_VERSION,
        )

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one (the endpoint takes a single provider)."""
        return self._charm.model.get_relation(self._endpoint)

    def publish_request(self) -> None:
        """Write the request into our app databag (leader only; only what changed)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        wanted = self._request.dump()
        _databag.write(relation.data[self._charm.app], wanted, set(wanted))

    def connection_info(self) -> S3ConnectionInfo | None:
        """The provider's connection data, or None while it is incomplete.

        Raises InvalidS3DataError when the provider's data does not parse or
        its credentials secret cannot be read.
        """
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        data: S3ProviderData = _load(S3ProviderData, relation.data[relation.app])
        if not data.bucket:
            return None
        if data.secret_extra:
            credentials = self._read_secret(data.secret_extra)
        elif data.access_key and data.secret_key:
            credentials = S3Credentials(access_key=data.access_key, secret_key=data.secret_key)
        else:
            return None
        return S3ConnectionInfo(
            endpoint=data.endpoint,
            bucket=data.bucket,
            path=(data.path or "").strip("/"),
            region=data.region,
            uri_style=data.s3_uri_style,
            tls_ca_chain=tuple(_cert_from_wire(c) for c in data.tls_ca_chain or ()),
            storage_class=data.storage_class,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
        )

    def _read_secret(self, uri: str) -> S3Credentials:
        try:
            content = self._charm.model.get_secret(id=uri).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as e:
            raise InvalidS3DataError("the s3 credentials secret cannot be read") from e
        try:
            return S3Credentials.model_validate(content)
        except ValidationError as e:
            raise InvalidS3DataError(
                "the s3 credentials secret lacks access-key/secret-key"
            ) from e


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    endpoint: str = "s3-credentials",
    *,
    bucket: str | None = "bucket",
    path: str | None = None,
    remote_app_name: str = "requirer",
    format_version: Literal["v1", "v0"] = "v1",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the provider sees it: the requirer's request in the remote databag.

    With `format_version="v0"` the request is what the v0 library writes:
    `bucket` alone.
    """
    from ops import testing

    if format_version == "v0":
        request = S3RequirerData(bucket=bucket or "relation-1")
    else:
        request = S3RequirerData(
            bucket=bucket,
            path=path,
            requested_secrets=list(SECRET_FIELDS),
            version=SCHEMA_VERSION,
            lib_version=LIB_VERSION,
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
