"""The s3 interface library: provider and requirer agree on the wire, old formats parse."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import ops
import pytest
from ops import testing

from kubeflow_interfaces import s3

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"
PROVIDER_CREDENTIALS = s3.S3Credentials(access_key="provider-access", secret_key="provider-secret")


class ProviderCharm(ops.CharmBase):
    """A minimal provider: answers each request on a fixed store."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = s3.S3Provider(self, "s3-credentials")
        framework.observe(self.on["s3-credentials"].relation_changed, self._on_changed)
        framework.observe(self.on["s3-credentials"].relation_broken, self._on_broken)
        framework.observe(self.on.rotate_action, self._on_rotate)

    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        try:
            request = self.provider.request(event.relation)
        except s3.InvalidS3DataError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        data = s3.S3ProviderData(
            bucket=request.bucket or "default-bucket",
            path=request.path,
            endpoint="http://s3.example:9000",
            region="eu-west-1",
            s3_uri_style="path",
            tls_ca_chain=[CA_PEM],
        )
        changed = self.provider.publish(event.relation, data, PROVIDER_CREDENTIALS)
        self.unit.status = ops.ActiveStatus("published" if changed else "unchanged")

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        self.provider.revoke(event.relation)

    def _on_rotate(self, event: ops.ActionEvent) -> None:
        self.provider.update_credentials(
            s3.S3Credentials(access_key="rotated-access", secret_key=event.params["secret-key"])
        )


class RequirerCharm(ops.CharmBase):
    """A minimal requirer: asks for a bucket, shows what it got."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.s3 = s3.S3Requirer(self, "s3-parameters", bucket="mlpipeline", path="artifacts/")
        framework.observe(self.on["s3-parameters"].relation_joined, self._on_relation)
        framework.observe(self.on["s3-parameters"].relation_changed, self._on_relation)
        framework.observe(self.on.show_action, self._on_show)

    def _on_relation(self, _: ops.EventBase) -> None:
        self.s3.publish_request()

    def _on_show(self, event: ops.ActionEvent) -> None:
        try:
            info = self.s3.connection_info()
        except s3.InvalidS3DataError as e:
            event.fail(str(e))
            return
        if info is None:
            event.set_results({"ready": "false"})
            return
        event.set_results(
            {
                "ready": "true",
                "endpoint": str(info.endpoint),
                "bucket": info.bucket,
                "path": info.path,
                "region": str(info.region),
                "uri-style": str(info.uri_style),
                "access-key": info.access_key,
                "secret-key": info.secret_key,
                "ca-chain": json.dumps(list(info.tls_ca_chain)),
                "storage-class": str(info.storage_class),
            }
        )


PROVIDER_META = {
    "name": "provider",
    "provides": {"s3-credentials": {"interface": "s3"}},
}
PROVIDER_ACTIONS = {"rotate": {"params": {"secret-key": {"type": "string"}}}}
REQUIRER_META = {
    "name": "requirer",
    "requires": {"s3-parameters": {"interface": "s3", "limit": 1}},
}
REQUIRER_ACTIONS = {"show": {}}


@pytest.fixture
def provider_ctx() -> testing.Context:
    return testing.Context(ProviderCharm, meta=PROVIDER_META, actions=PROVIDER_ACTIONS)


@pytest.fixture
def requirer_ctx() -> testing.Context:
    return testing.Context(RequirerCharm, meta=REQUIRER_META, actions=REQUIRER_ACTIONS)


def show(ctx: testing.Context, relation: testing.Relation, *secrets: testing.Secret) -> dict:
    ctx.run(
        ctx.on.action("show"),
        testing.State(leader=True, relations={relation}, secrets=set(secrets)),
    )
    return dict(ctx.action_results or {})


def show_failure(
    ctx: testing.Context, relation: testing.Relation, *secrets: testing.Secret
) -> str:
    with pytest.raises(testing.ActionFailed) as failure:
        show(ctx, relation, *secrets)
    return failure.value.message


def as_seen_by_requirer(secret: testing.Secret) -> testing.Secret:
    """Show the provider's secret from the other side: same id and content, not owned."""
    return testing.Secret(tracked_content=dict(secret.latest_content or {}), id=secret.id)


# --- provider and requirer on the wire -------------------------------------------------


def test_requirer_request_is_what_the_provider_reads(
    requirer_ctx: testing.Context, provider_ctx: testing.Context
):
    requirer_side = testing.Relation("s3-parameters", interface="s3", remote_app_name="provider")
    asked = requirer_ctx.run(
        requirer_ctx.on.relation_joined(requirer_side),
        testing.State(leader=True, relations={requirer_side}),
    )
    request = asked.get_relation(requirer_side.id).local_app_data
    assert request == {
        "bucket": "mlpipeline",
        "path": "artifacts/",
        "requested-secrets": '["access-key", "secret-key"]',
        "version": "1",
        "lib-version": s3.LIB_VERSION,
    }

    provider_side = testing.Relation(
        "s3-credentials", interface="s3", remote_app_name="requirer", remote_app_data=request
    )
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(provider_side),
        testing.State(leader=True, relations={provider_side}),
    )

    data = answered.get_relation(provider_side.id).local_app_data
    assert data["bucket"] == "mlpipeline"
    assert data["path"] == "artifacts/"


def test_round_trip_provider_output_to_requirer(
    provider_ctx: testing.Context, requirer_ctx: testing.Context
):
    provider_side = s3.relation_for_provider(bucket="mlpipeline", path="runs")
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(provider_side),
        testing.State(leader=True, relations={provider_side}),
    )
    published = answered.get_relation(provider_side.id).local_app_data
    assert "access-key" not in published and "secret-key" not in published
    secret = answered.get_secret(id=published["secret-extra"])
    assert secret.remote_grants == {provider_side.id: {"requirer"}}

    requirer_side = testing.Relation(
        "s3-parameters", interface="s3", remote_app_name="provider", remote_app_data=published
    )
    results = show(requirer_ctx, requirer_side, as_seen_by_requirer(secret))

    assert results == {
        "ready": "true",
        "endpoint": "http://s3.example:9000",
        "bucket": "mlpipeline",
        "path": "runs",
        "region": "eu-west-1",
        "uri-style": "path",
        "access-key": "provider-access",
        "secret-key": "provider-secret",
        "ca-chain": json.dumps([CA_PEM]),
        "storage-class": "None",
    }


def test_publish_twice_writes_once(provider_ctx: testing.Context):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    first = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )
    assert first.unit_status == testing.ActiveStatus("published")

    second = provider_ctx.run(
        provider_ctx.on.relation_changed(first.get_relation(relation.id)), first
    )

    assert second.unit_status == testing.ActiveStatus("unchanged")
    assert second.get_relation(relation.id).local_app_data == (
        first.get_relation(relation.id).local_app_data
    )
    assert [s._latest_revision for s in second.secrets] == [
        s._latest_revision for s in first.secrets
    ]


def test_update_credentials_reaches_the_requirer(
    provider_ctx: testing.Context, requirer_ctx: testing.Context
):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )

    rotated = provider_ctx.run(
        provider_ctx.on.action("rotate", params={"secret-key": "new-secret-value"}), answered
    )

    published = rotated.get_relation(relation.id).local_app_data
    secret = rotated.get_secret(id=published["secret-extra"])
    requirer_side = testing.Relation(
        "s3-parameters", interface="s3", remote_app_name="provider", remote_app_data=published
    )
    results = show(requirer_ctx, requirer_side, as_seen_by_requirer(secret))
    assert (results["access-key"], results["secret-key"]) == ("rotated-access", "new-secret-value")


def test_revoke_removes_the_relation_secret(provider_ctx: testing.Context):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )
    assert answered.secrets

    broken = provider_ctx.run(
        provider_ctx.on.relation_broken(answered.get_relation(relation.id)), answered
    )

    assert not broken.secrets


def test_requirer_non_leader_writes_no_request(requirer_ctx: testing.Context):
    relation = testing.Relation("s3-parameters", interface="s3", remote_app_name="provider")

    state_out = requirer_ctx.run(
        requirer_ctx.on.relation_joined(relation),
        testing.State(leader=False, relations={relation}),
    )

    assert state_out.get_relation(relation.id).local_app_data == {}


# --- profiles-read: our addition to the request ---------------------------------------


class ProfilesReadRequirer(ops.CharmBase):
    """A requirer asking that profiles may read its bucket, as mlflow does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.s3 = s3.S3Requirer(self, "s3-parameters", bucket="mlflow", profiles_read=True)
        framework.observe(self.on["s3-parameters"].relation_joined, self._on_relation)

    def _on_relation(self, _: ops.EventBase) -> None:
        self.s3.publish_request()


def _provider_reads(provider_ctx: testing.Context, request: dict[str, str]) -> s3.S3Request:
    relation = testing.Relation(
        "s3-credentials", interface="s3", remote_app_name="requirer", remote_app_data=request
    )
    with provider_ctx(
        provider_ctx.on.update_status(), testing.State(leader=True, relations={relation})
    ) as manager:
        return manager.charm.provider.request(manager.charm.model.get_relation("s3-credentials"))


def test_a_requirer_asks_that_profiles_may_read(provider_ctx: testing.Context):
    ctx = testing.Context(ProfilesReadRequirer, meta=REQUIRER_META)
    relation = testing.Relation("s3-parameters", interface="s3", remote_app_name="provider")
    out = ctx.run(
        ctx.on.relation_joined(relation), testing.State(leader=True, relations={relation})
    )
    request = dict(out.get_relation(relation.id).local_app_data)

    assert request["profiles-read"] == "true"
    assert request["bucket"] == "mlflow"
    read = _provider_reads(provider_ctx, request)
    assert read.profiles_read is True
    assert read.bucket == "mlflow"


def test_a_request_without_the_key_asks_nothing_for_profiles(
    requirer_ctx: testing.Context, provider_ctx: testing.Context
):
    relation = testing.Relation("s3-parameters", interface="s3", remote_app_name="provider")
    out = requirer_ctx.run(
        requirer_ctx.on.relation_joined(relation), testing.State(leader=True, relations={relation})
    )
    request = dict(out.get_relation(relation.id).local_app_data)

    assert "profiles-read" not in request
    assert _provider_reads(provider_ctx, request).profiles_read is False
    assert _provider_reads(provider_ctx, {**request, "profiles-read": "false"}).profiles_read is (
        False
    )


def test_a_requirer_that_stops_asking_removes_the_key(requirer_ctx: testing.Context):
    relation = testing.Relation(
        "s3-parameters",
        interface="s3",
        remote_app_name="provider",
        local_app_data={"profiles-read": "true"},
    )
    out = requirer_ctx.run(
        requirer_ctx.on.relation_joined(relation), testing.State(leader=True, relations={relation})
    )

    assert "profiles-read" not in out.get_relation(relation.id).local_app_data


def test_a_malformed_profiles_read_names_the_key():
    with pytest.raises(s3.InvalidS3DataError, match=r"\(profiles-read\)") as raised:
        s3._read_request({"profiles-read": "1"})  # pyright: ignore[reportPrivateUsage]
    assert raised.value.keys == ("profiles-read",)
    with pytest.raises(s3.InvalidS3DataError) as both:
        s3._read_request({"bucket": "B", "profiles-read": "1"})  # pyright: ignore[reportPrivateUsage]
    assert both.value.keys == ("bucket", "profiles-read")


def test_the_provider_helper_asks_for_profiles_read():
    relation = s3.relation_for_provider(bucket="mlflow", profiles_read=True)
    assert relation.remote_app_data["profiles-read"] == "true"
    assert "profiles-read" not in s3.relation_for_provider().remote_app_data


# --- formats the requirer accepts ----------------------------------------------------


def test_requirer_reads_v1_format(requirer_ctx: testing.Context):
    relation, secret = s3.relation_for_requirer(
        bucket="models", path="/v1/", access_key="AKIA1", secret_key="secret-1", uri_style="host"
    )
    assert secret is not None
    assert "access-key" not in relation.remote_app_data

    results = show(requirer_ctx, relation, secret)

    assert results["bucket"] == "models"
    assert results["path"] == "v1"
    assert results["uri-style"] == "host"
    assert (results["access-key"], results["secret-key"]) == ("AKIA1", "secret-1")


def test_requirer_reads_v0_format_from_helper(requirer_ctx: testing.Context):
    relation, secret = s3.relation_for_requirer(
        format_version="v0", access_key="AKIA0", secret_key="secret-0"
    )
    assert secret is None

    results = show(requirer_ctx, relation)

    assert (results["access-key"], results["secret-key"]) == ("AKIA0", "secret-0")


def test_requirer_reads_s3_integrator_v1_databag(requirer_ctx: testing.Context):
    # What s3-integrator 1.x writes: credentials in clear, lists as JSON, extra keys.
    databag = {
        "access-key": "AKIAINTEGRATOR",
        "secret-key": "integrator-secret",
        "bucket": "backups",
        "endpoint": "https://s3.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
        "path": "mysql",
        "s3-uri-style": "virtual",
        "s3-api-version": "4",
        "storage-class": "STANDARD_IA",
        "tls-ca-chain": json.dumps([CA_PEM]),
        "attributes": json.dumps(["x-amz-server-side-encryption=AES256"]),
        "data": json.dumps({"bucket": "backups"}),
    }
    relation = testing.Relation(
        "s3-parameters", interface="s3", remote_app_name="s3-integrator", remote_app_data=databag
    )

    results = show(requirer_ctx, relation)

    assert results["bucket"] == "backups"
    assert results["endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert results["storage-class"] == "STANDARD_IA"
    assert results["uri-style"] == "None"  # an unknown style maps to None
    assert json.loads(results["ca-chain"]) == [CA_PEM]
    assert (results["access-key"], results["secret-key"]) == (
        "AKIAINTEGRATOR",
        "integrator-secret",
    )


def test_requirer_prefers_the_secret_over_clear_credentials(requirer_ctx: testing.Context):
    relation, secret = s3.relation_for_requirer(access_key="from-secret", secret_key="secret-v1")
    assert secret is not None
    mixed = dataclasses.replace(
        relation,
        remote_app_data={
            **relation.remote_app_data,
            "access-key": "in-clear",
            "secret-key": "clear-v0",
        },
    )

    results = show(requirer_ctx, mixed, secret)

    assert results["access-key"] == "from-secret"


@pytest.mark.parametrize(
    "databag",
    [
        {},
        {"endpoint": "http://s3.example:9000"},
        {"bucket": "mlpipeline"},  # no credentials yet
    ],
)
def test_incomplete_provider_data_is_not_ready(
    requirer_ctx: testing.Context, databag: dict[str, str]
):
    relation = testing.Relation(
        "s3-parameters", interface="s3", remote_app_name="provider", remote_app_data=databag
    )

    assert show(requirer_ctx, relation) == {"ready": "false"}


def test_no_relation_is_not_ready(requirer_ctx: testing.Context):
    requirer_ctx.run(requirer_ctx.on.action("show"), testing.State(leader=True))

    assert requirer_ctx.action_results == {"ready": "false"}


# --- malformed data ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("databag", "field"),
    [
        ({"bucket": "b", "tls-ca-chain": "[1, 2]", "access-key": "a", "secret-key": "s"}, "tls"),
        (
            {"bucket": "b", "attributes": '[{"k": "v"}]', "access-key": "a", "secret-key": "s"},
            "attr",
        ),
    ],
)
def test_malformed_provider_data_raises(
    requirer_ctx: testing.Context, databag: dict[str, str], field: str
):
    relation = testing.Relation(
        "s3-parameters", interface="s3", remote_app_name="provider", remote_app_data=databag
    )

    message = show_failure(requirer_ctx, relation)

    assert message.startswith("invalid s3 relation data (")
    assert field in message


def test_unreadable_credentials_secret_raises(requirer_ctx: testing.Context):
    relation, _ = s3.relation_for_requirer()  # the secret is not given to the requirer

    assert show_failure(requirer_ctx, relation) == "the s3 credentials secret cannot be read"


def test_credentials_secret_without_keys_raises(requirer_ctx: testing.Context):
    relation, secret = s3.relation_for_requirer()
    assert secret is not None
    wrong = testing.Secret(tracked_content={"username": "x", "password": "y"}, id=secret.id)

    assert show_failure(requirer_ctx, relation, wrong) == (
        "the s3 credentials secret lacks access-key/secret-key"
    )


@pytest.mark.parametrize(
    "request_data",
    [
        {"bucket": "Not_Valid"},
        {"bucket": "ab"},
        {"bucket": "-leading-hyphen"},
        {"bucket": "two..dots"},
        {"requested-secrets": "[1, 2]"},
        {"bucket": "fine-bucket", "profiles-read": "yes"},
        {"bucket": "fine-bucket", "profiles-read": "True"},
        {"bucket": "fine-bucket", "profiles-read": ""},
    ],
)
def test_malformed_request_raises_on_the_provider(
    provider_ctx: testing.Context, request_data: dict[str, str]
):
    relation = testing.Relation(
        "s3-credentials", interface="s3", remote_app_name="requirer", remote_app_data=request_data
    )

    state_out = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith("invalid s3 relation data (")
    assert state_out.get_relation(relation.id).local_app_data == {}


def test_empty_request_databag_parses(provider_ctx: testing.Context):
    relation = testing.Relation("s3-credentials", interface="s3", remote_app_name="requirer")

    state_out = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )

    assert state_out.get_relation(relation.id).local_app_data["bucket"] == "default-bucket"


def test_empty_databags_parse_to_nothing():
    assert s3.S3RequirerData.model_validate({}) == s3.S3RequirerData()
    assert s3.S3RequirerData().dump() == {}
    provider_data = s3.S3ProviderData.model_validate({})
    assert provider_data.model_dump() == dict.fromkeys(s3.S3ProviderData.model_fields)
    assert provider_data.dump() == {}


# --- models and helpers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("abc", True),
        ("my-bucket.v2", True),
        ("a" * 63, True),
        ("ab", False),
        ("a" * 64, False),
        ("UPPER", False),
        ("under_score", False),
        ("-start", False),
        ("end-", False),
        ("a..b", False),
    ],
)
def test_bucket_names(name: str, valid: bool):
    assert s3.is_valid_bucket_name(name) is valid


def requirer_reads(
    ctx: testing.Context, relation: testing.Relation, *secrets: testing.Secret
) -> tuple[Any, Any]:
    """What the requirer's two accessors give on one hook: (connection_fields, connection_info)."""
    state = testing.State(leader=True, relations={relation}, secrets=set(secrets))
    with ctx(ctx.on.update_status(), state) as manager:
        requirer = manager.charm.s3
        return requirer.connection_fields(), requirer.connection_info()


@pytest.mark.parametrize("format_version", ["v1", "v0"])
def test_connection_fields_are_the_connection_info_without_the_model(
    requirer_ctx: testing.Context, format_version: str
):
    relation, secret = s3.relation_for_requirer(
        format_version=format_version,
        bucket="models",
        path="/v1/",
        access_key="AKIA1",
        secret_key="secret-1",
        uri_style="host",
    )
    ca_chain = {"tls-ca-chain": json.dumps([CA_PEM])}
    relation = dataclasses.replace(
        relation, remote_app_data={**relation.remote_app_data, **ca_chain}
    )

    fields, info = requirer_reads(requirer_ctx, relation, *([secret] if secret else []))

    assert isinstance(fields, s3.S3ConnectionFields)
    assert dataclasses.asdict(fields) == info.model_dump()
    assert (fields.bucket, fields.path, fields.uri_style) == ("models", "v1", "host")
    assert fields.tls_ca_chain == (CA_PEM,)
    assert "AKIA1" not in repr(fields)
    assert "secret-1" not in repr(fields)


def test_connection_fields_wait_and_fail_as_connection_info(requirer_ctx: testing.Context):
    incomplete = testing.Relation(
        "s3-parameters",
        interface="s3",
        remote_app_name="provider",
        remote_app_data={"bucket": "mlpipeline"},
    )
    assert requirer_reads(requirer_ctx, incomplete) == (None, None)

    unreadable, _ = s3.relation_for_requirer()  # the secret is not given to the requirer
    state = testing.State(leader=True, relations={unreadable})
    with requirer_ctx(requirer_ctx.on.update_status(), state) as manager:
        with pytest.raises(s3.InvalidS3DataError, match="secret cannot be read"):
            manager.charm.s3.connection_fields()


def test_credentials_are_not_in_reprs():
    credentials = s3.S3Credentials(access_key="AKIASECRETID", secret_key="very-secret")
    info = s3.S3ConnectionInfo(
        endpoint=None, bucket="b", access_key="AKIASECRETID", secret_key="very-secret"
    )
    for text in (repr(credentials), repr(info)):
        assert "AKIASECRETID" not in text
        assert "very-secret" not in text


def test_client_keeps_request_logging_out_of_the_charm_log(monkeypatch: pytest.MonkeyPatch):
    for name in ("boto3", "botocore", "urllib3"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.DEBUG)
    info = s3.S3ConnectionInfo(
        endpoint="http://127.0.0.1:9", bucket="b", access_key="AKIA", secret_key="secret"
    )

    info.client()

    for name in ("boto3", "botocore", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


def test_test_helpers_build_consistent_relations():
    provider_side = s3.relation_for_provider(bucket=None, remote_app_name="kfp")
    assert "bucket" not in provider_side.remote_app_data
    assert provider_side.remote_app_name == "kfp"

    requirer_side, secret = s3.relation_for_requirer(region=None)
    assert secret is not None
    data: dict[str, Any] = dict(requirer_side.remote_app_data)
    assert data["secret-extra"] == secret.id
    assert "region" not in data


def test_ca_chain_travels_as_pem_and_base64_entries_read_back_as_pem():
    import base64

    from kubeflow_interfaces.s3 import _cert_from_wire, _cert_to_wire

    encoded = base64.b64encode(CA_PEM.encode()).decode()
    assert _cert_to_wire(CA_PEM + "\n") == CA_PEM
    assert _cert_to_wire(encoded) == CA_PEM  # base64 in, PEM out
    assert _cert_from_wire(CA_PEM) == CA_PEM
    assert _cert_from_wire(encoded) == CA_PEM  # the spec's wording: base64 of the PEM
    with pytest.raises(s3.InvalidS3DataError, match="tls-ca-chain"):
        _cert_from_wire("bm90IGEgY2VydA==")  # base64, but not a certificate
    with pytest.raises(s3.InvalidS3DataError, match="tls-ca-chain"):
        _cert_from_wire("not base64 at all!")


def test_provider_publishes_pem_entries(provider_ctx: testing.Context):
    relation = s3.relation_for_provider()
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(relation),
        testing.State(leader=True, relations={relation}),
    )
    published = answered.get_relation(relation.id).local_app_data
    assert json.loads(published["tls-ca-chain"]) == [CA_PEM]
    assert published["version"] == s3.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("remote_app_data", "expected"),
    [
        ({}, "none"),
        ({"bucket": "relation-4"}, "v0"),
        # object-storage-charmlib writes requested-secrets on relation-created,
        # before it asks for anything else.
        ({"requested-secrets": '["access-key", "secret-key"]'}, "v1"),
        (s3.relation_for_provider(bucket=None).remote_app_data, "v1"),
        (s3.relation_for_provider(format_version="v0").remote_app_data, "v0"),
    ],
)
def test_requirer_format_from_its_databag(remote_app_data: dict[str, str], expected: str):
    class Charm(ops.CharmBase):
        pass

    ctx = testing.Context(Charm, meta=PROVIDER_META)
    relation = testing.Relation(
        "s3-credentials", interface="s3", remote_app_data=dict(remote_app_data)
    )
    with ctx(ctx.on.update_status(), testing.State(relations={relation})) as manager:
        provider = s3.S3Provider(manager.charm)
        assert provider.requirer_format(manager.charm.model.get_relation("s3-credentials")) == (
            expected
        )
