"""The s3 provider's plain readers, which minio's settled hooks use, agree with the s3 models.

The provider reads requests, dumps what it publishes and reads credentials
without pydantic; the models stay the reference for the wire format.
"""

from __future__ import annotations

import json

import pytest

from kubeflow_interfaces import s3

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"


def test_provider_keys_are_the_models_keys_but_the_v0_credentials():
    assert s3.PROVIDER_KEYS == s3.S3ProviderData.keys() - {"access-key", "secret-key"}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"bucket": "b", "endpoint": "http://s3:9000", "region": "r", "s3_uri_style": "path"},
        {"bucket": "b", "path": "p/", "s3_uri_style": "host", "storage_class": "GLACIER"},
        {"bucket": "b", "s3_api_version": "4", "tls_ca_chain": [CA_PEM], "attributes": []},
    ],
)
def test_provider_info_dumps_as_the_model(fields: dict[str, object]):
    plain = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}

    assert s3.S3ProviderInfo(**plain).dump() == s3.S3ProviderData(**fields).dump()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "databag",
    [
        {},
        {"bucket": "mlpipeline"},
        {"bucket": "a" * 63, "path": "x/y", "version": "1", "lib-version": "1.0"},
        {"requested-secrets": json.dumps(["access-key", "secret-key"])},
        {"requested-secrets": ""},
        {"requested-secrets": "access-key"},
        {"requested-secrets": "[1]", "bucket": "ok-bucket"},
        {"bucket": "ab"},
        {"bucket": "a" * 64},
        {"bucket": "Bad_Name", "requested-secrets": '[{"a": 1}]'},
        {"bucket": ""},
        {"bucket": "mlflow", "profiles-read": "true"},
        {"bucket": "mlflow", "profiles-read": "false"},
        {"bucket": "mlflow", "profiles-read": "yes"},
        {"bucket": "Bad_Name", "profiles-read": "TRUE"},
    ],
)
def test_request_reads_as_the_model(databag: dict[str, str]):
    read = s3._read_request  # pyright: ignore[reportPrivateUsage] - what request() reads with
    try:
        model = s3.S3RequirerData.model_validate(databag)
    except ValueError as e:
        expected = {str(err["loc"][0]) for err in e.errors()}  # type: ignore[attr-defined]
        with pytest.raises(s3.InvalidS3DataError) as raised:
            read(databag)
        assert str(raised.value) == f"invalid s3 relation data ({', '.join(sorted(expected))})"
        return
    plain = read(databag)
    assert plain.bucket == model.bucket
    assert plain.path == model.path
    assert plain.version == model.version
    assert plain.lib_version == model.lib_version
    assert plain.requested_secrets == (
        None if model.requested_secrets is None else tuple(model.requested_secrets)
    )
    assert plain.profiles_read == (model.profiles_read == "true")


@pytest.mark.parametrize(
    ("content", "valid"),
    [
        ({"access-key": "a", "secret-key": "s"}, True),
        ({"access-key": "a", "secret-key": "s", "other": "x"}, True),
        ({"access-key": "a"}, False),
        ({"access-key": "", "secret-key": "s"}, False),
        ({}, False),
    ],
)
def test_credentials_from_secret_content(content: dict[str, str], valid: bool):
    if valid:
        credentials = s3.S3Credentials.from_content(content)
        assert credentials.dump() == {k: content[k] for k in s3.SECRET_FIELDS}
    else:
        with pytest.raises(ValueError, match="invalid s3 credentials"):
            s3.S3Credentials.from_content(content)
