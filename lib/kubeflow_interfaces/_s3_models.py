"""The pydantic models of the `s3` interface (see `kubeflow_interfaces.s3`).

Apart from `s3` so that a settled hook does not import pydantic: the
requirer checks the relation and the provider reads requests and publishes
with plain classes in `s3`, which loads this module on first use of a model
(the connection info with its S3 client, the test helpers).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kubeflow_interfaces import _databag
from kubeflow_interfaces.s3 import (
    _quiet_s3_client_loggers,  # pyright: ignore[reportPrivateUsage]
    is_valid_bucket_name,
)


class S3RequirerData(_databag.Databag):
    """What a requirer writes: the bucket and path it would like."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    path: str | None = None
    requested_secrets: list[str] | None = None
    version: str | None = None
    lib_version: str | None = None
    # Our addition: every profile may read the bucket/path (see `s3.PROFILES_READ_KEY`).
    profiles_read: Literal["true", "false"] | None = None

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
