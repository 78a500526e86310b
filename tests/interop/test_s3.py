"""`s3`: the ecosystem's s3 libraries on the other side of our minio and mysql charms.

- object-storage-charmlib (PyPI; module `object_storage`) is the s3 v1
  library of s3-integrator 2 and of Kubeflow's kfp-api charm. Its requirer,
  in a tiny charm, asks our real minio charm for a bucket and reaches its
  ready event with endpoint, bucket and keys; its provider, fed
  what s3-integrator 2 gives it, answers our real mysql charm, which then
  backs up to that store.
- s3-integrator 1 (the v0 format, keys in clear) still reaches mysql.
- A requirer on data_platform_libs' v0 s3 library is named in minio's status.
- Our requirer's `profiles-read` (our addition to the request) leaves
  object-storage-charmlib's provider answering as before.

Facts read from, where not from the installed library itself:
- canonical/object-storage-integrator @ 54e63ec0d524b9f52644e2beeb3db0494c3749fd:
  s3/src/core/context.py (`Context.s3`: every S3Info key, "" when unset, the
  config's values, access-key and secret-key), s3/src/core/domain.py
  (`tls-ca-chain` config: base64 of a PEM file, split into PEM certificates),
  s3/src/events/provider.py (`set_storage_connection_info` with that dict,
  `path` resolved, `bucket` the requirer's when the config names none).
- canonical/kfp-operators @ bbc97a3475fcd1295c59d1fd9b88567956e96492:
  charms/kfp-api/src/charm.py (`object_storage.S3Requirer` on
  `s3-credentials`), charms/kfp-api/src/services/s3.py (the `tls-ca-chain`
  entries joined into a PEM file).
- canonical/s3-integrator @ 051ef46bbb4ffe5df6aec37831b6b149193957bc
  (1.x, v0): src/charm.py (lists as JSON, `tls-ca-chain` PEM certificates,
  `access-key`/`secret-key` set in the databag).
- canonical/data-platform-libs @ 4bf12d1a8b98d667d18f22da142c6242bcbad645:
  lib/charms/data_platform_libs/v0/s3.py, LIBPATCH 6 (`S3Requirer` writes
  `bucket`, `relation-<id>` when its charm names none, on relation-joined,
  and nothing else in its application databag; it waits for `access-key`
  and `secret-key` in the provider's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import ops
import pytest
from charm_loader import load_charm
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from object_storage import S3Provider, S3Requirer
from ops import testing
from unit.minio.helpers import FakeMinioAdmin, fake_minio_admin
from unit.mysql.helpers import credentials_secret, mysql_container, storage

from kubeflow_interfaces.s3 import S3Requirer as OurS3Requirer

MINIO = load_charm("minio")
import minio_server  # noqa: E402 - minio's workload module, as the charm imported it

MYSQL = load_charm("mysql")

MODEL = "kubeflow"
# What mysqldump prints for a small database (the charm checks the end marker).
DUMP = "-- MySQL dump 10.13\nCREATE DATABASE `kfp`;\n-- Dump completed on 2026-11-28  1:02:03\n"
MINIO_URL = f"http://minio.{MODEL}.svc.cluster.local:9000"


# --- shared pieces ---------------------------------------------------------------------


def _ca_pem(name: str) -> str:
    """A real self-signed CA certificate, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _seen_by_other_side(secret: testing.Secret) -> testing.Secret:
    """The owner's secret as the app it was granted to sees it: same id and content."""
    return testing.Secret(tracked_content=dict(secret.latest_content or {}), id=secret.id)


@pytest.fixture
def minio_admin(monkeypatch: pytest.MonkeyPatch) -> FakeMinioAdmin:
    """MinIO's admin API, for the users the minio charm makes (moto has none)."""
    return fake_minio_admin(monkeypatch)


@pytest.fixture
def local_minio(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, minio_admin: FakeMinioAdmin
) -> str:
    """Point the minio charm's "local MinIO" at the test S3 server, emptied for this test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(minio_server, "LOCAL_ENDPOINT", s3_endpoint)
    reset = urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - local test server
        pass
    return s3_endpoint


def _buckets(endpoint: str) -> set[str]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any-secret",
    )
    return {b["Name"] for b in client.list_buckets().get("Buckets", [])}


def _minio_settled(ctx: testing.Context) -> testing.State:
    """Start the minio charm in server mode: root credentials made, MinIO running."""
    state = testing.State(
        leader=True,
        containers={testing.Container("minio", can_connect=True)},
        storages={testing.Storage("data")},
        model=testing.Model(name=MODEL),
    )
    return ctx.run(ctx.on.pebble_ready(testing.Container("minio", can_connect=True)), state)


# --- object-storage-charmlib's requirer against minio -----------------------------------


class KfpLikeRequirer(ops.CharmBase):
    """A requirer as kfp-api builds one: object_storage.S3Requirer on `s3-credentials`."""

    bucket: ClassVar[str] = ""
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.s3 = S3Requirer(self, "s3-credentials", bucket=self.bucket)
        framework.observe(self.s3.on.storage_connection_info_changed, self._on_ready)

    def _on_ready(self, event: ops.EventBase) -> None:
        info = self.s3.get_storage_connection_info()
        type(self).seen.append(dict(info))
        self.unit.status = ops.ActiveStatus(f"{info.get('endpoint')}/{info.get('bucket')}")


REQUIRER_META = {
    "name": "kfp-api",
    "requires": {"s3-credentials": {"interface": "s3", "limit": 1}},
}


@pytest.fixture
def requirer() -> Iterator[type[KfpLikeRequirer]]:
    KfpLikeRequirer.seen = []
    yield KfpLikeRequirer
    KfpLikeRequirer.bucket = ""
    KfpLikeRequirer.seen = []


def _requirer_asks(relation: testing.Relation) -> testing.Relation:
    """Run the library through relation-created and -joined: what it writes, both databags."""
    ctx = testing.Context(KfpLikeRequirer, meta=REQUIRER_META)
    state = testing.State(leader=True, relations={relation})
    state = ctx.run(ctx.on.relation_created(relation), state)
    state = ctx.run(ctx.on.relation_joined(state.get_relation(relation.id), remote_unit=0), state)
    out = state.get_relation(relation.id)
    assert isinstance(out, testing.Relation)
    return out


@pytest.mark.parametrize(
    ("asked", "served"),
    [("mlpipeline", "mlpipeline"), ("", "kubeflow")],  # no bucket asked: minio's default
)
def test_object_storage_requirer_gets_its_bucket_from_minio(
    requirer: type[KfpLikeRequirer],
    local_minio: str,
    minio_admin: FakeMinioAdmin,
    asked: str,
    served: str,
):
    requirer.bucket = asked
    theirs = _requirer_asks(testing.Relation("s3-credentials", remote_app_name="minio"))
    request = dict(theirs.local_app_data)
    assert "requested-secrets" in request and request["version"] == "1"

    # Our minio reads that request and answers it.
    minio_ctx = testing.Context(MINIO.MinioCharm)
    settled = _minio_settled(minio_ctx)
    ours = testing.Relation(
        "s3-credentials", interface="s3", remote_app_name="kfp-api", remote_app_data=request
    )
    answered = minio_ctx.run(
        minio_ctx.on.relation_changed(ours, remote_unit=0),
        dataclasses.replace(settled, relations={ours}),
    )
    answer = dict(answered.get_relation(ours.id).local_app_data)
    assert _buckets(local_minio) == {served}
    assert answered.app_status == testing.ActiveStatus("1 bucket request(s) served")
    shared = answered.get_secret(id=answer["secret-extra"])
    root = answered.get_secret(label="root-credentials").latest_content

    # The library reads minio's answer and the secret granted to it: ready.
    ctx = testing.Context(KfpLikeRequirer, meta=REQUIRER_META)
    theirs = dataclasses.replace(theirs, remote_app_data=answer)
    out = ctx.run(
        ctx.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}, secrets={_seen_by_other_side(shared)}),
    )

    assert out.unit_status == testing.ActiveStatus(f"{MINIO_URL}/{served}")
    (info,) = requirer.seen
    # The relation's own MinIO user, not the root keys.
    user = f"kf-s3-{ours.id}"
    assert (info["access-key"], info["secret-key"]) == (user, minio_admin.users[user])
    assert root is not None and info["secret-key"] != root["secret-key"]
    assert info["endpoint"] == MINIO_URL
    assert info["bucket"] == served
    assert info["region"] == "us-east-1"
    assert info["s3-uri-style"] == "path"
    # minio's `version` tells the library it speaks v1: it does not fall back to asking
    # for a `relation-<id>` bucket of its own, as it does with a v0 provider.
    assert out.get_relation(theirs.id).local_app_data.get("bucket", "") == asked


def test_object_storage_requirer_reads_minio_pem_ca_chain(
    requirer: type[KfpLikeRequirer], local_minio: str
):
    ca = _ca_pem("external store CA")
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    theirs = _requirer_asks(testing.Relation("s3-credentials", remote_app_name="minio"))
    minio_ctx = testing.Context(MINIO.MinioCharm)
    ours = testing.Relation(
        "s3-credentials",
        interface="s3",
        remote_app_name="kfp-api",
        remote_app_data=dict(theirs.local_app_data),
    )
    config = {
        "mode": "external",
        "external-endpoint": "https://s3.example.com",
        "external-secret-id": keys.id,
        "external-ca-chain": ca,
    }
    answered = minio_ctx.run(
        minio_ctx.on.relation_changed(ours, remote_unit=0),
        testing.State(
            leader=True,
            config=config,
            secrets={keys},
            relations={ours},
            containers={testing.Container("minio", can_connect=True)},
            model=testing.Model(name=MODEL),
        ),
    )
    answer = dict(answered.get_relation(ours.id).local_app_data)
    shared = answered.get_secret(id=answer["secret-extra"])

    ctx = testing.Context(KfpLikeRequirer, meta=REQUIRER_META)
    theirs = dataclasses.replace(theirs, remote_app_data=answer)
    ctx.run(
        ctx.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}, secrets={_seen_by_other_side(shared)}),
    )

    (info,) = requirer.seen
    # kfp-api joins these entries into a PEM file: each must be a PEM certificate.
    bundle = "\n".join(info["tls-ca-chain"])
    (loaded,) = x509.load_pem_x509_certificates(bundle.encode())
    assert loaded == x509.load_pem_x509_certificate(ca.encode())
    assert info["access-key"] == "AKIAEXT"


# --- a v0 requirer against minio ---------------------------------------------------------


def test_v0_requirer_is_named_in_minio_status(local_minio: str):
    # What the v0 library writes into its application databag, and all it writes.
    v0_request = {"bucket": "relation-7"}
    minio_ctx = testing.Context(MINIO.MinioCharm)
    settled = _minio_settled(minio_ctx)
    ours = testing.Relation(
        "s3-credentials", interface="s3", remote_app_name="mlflow", remote_app_data=v0_request
    )

    out = minio_ctx.run(
        minio_ctx.on.relation_changed(ours, remote_unit=0),
        dataclasses.replace(settled, relations={ours}),
    )

    assert out.app_status == testing.BlockedStatus(
        "s3-credentials: mlflow uses the s3 v0 interface, which needs keys in clear in "
        "the databag; use an s3 v1 requirer"
    )
    data = out.get_relation(ours.id).local_app_data
    # Nothing published: no keys in clear, no secret, no bucket.
    assert "access-key" not in data and "secret-key" not in data
    assert data == {}
    assert not any(s.label and s.label.startswith("s3-credentials-") for s in out.secrets)
    assert _buckets(local_minio) == set()


# --- s3-integrator's data against mysql --------------------------------------------------


class S3IntegratorLikeProvider(ops.CharmBase):
    """object_storage.S3Provider, answering as s3-integrator 2 does from its config."""

    answer: ClassVar[dict[str, Any]] = {}

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.s3 = S3Provider(self, "s3-credentials")
        framework.observe(self.s3.on.storage_connection_info_requested, self._on_requested)

    def _on_requested(self, event: Any) -> None:
        self.s3.set_storage_connection_info(event.relation.id, dict(self.answer))


PROVIDER_META = {"name": "s3-integrator", "provides": {"s3-credentials": {"interface": "s3"}}}


def _integrator_answer(endpoint: str, bucket: str, chain: list[str]) -> dict[str, Any]:
    """What s3-integrator 2 hands the library for one relation (its config, keys, bucket)."""
    answer: dict[str, Any] = dict.fromkeys(
        (
            "access-key",
            "secret-key",
            "region",
            "storage-class",
            "attributes",
            "bucket",
            "endpoint",
            "path",
            "s3-api-version",
            "s3-uri-style",
            "tls-ca-chain",
            "delete-older-than-days",
        ),
        "",
    )
    answer.update(
        {
            "endpoint": endpoint,
            "bucket": bucket,
            "region": "us-east-1",
            "path": "team-b",
            "s3-uri-style": "path",
            "s3-api-version": "4",
            "tls-ca-chain": chain,
            "access-key": "AKIAINTEGRATOR",
            "secret-key": "integrator-secret-key",
        }
    )
    return answer


def _mysql_state(tmp_path: Path, **kwargs: Any) -> testing.State:
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": {mysql_container(tmp_path, mysql_stdout="kfp\n", dump_stdout=DUMP)},
        "storages": {storage()},
        "secrets": {credentials_secret()},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def _backup_keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAINTEGRATOR",
        aws_secret_access_key="integrator-secret-key",
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_s3_integrator_2_answer_reaches_mysql_with_its_pem_chain(s3_endpoint: str, tmp_path):
    bucket = f"backups-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAINTEGRATOR",
        aws_secret_access_key="integrator-secret-key",
    ).create_bucket(Bucket=bucket)
    chain = [_ca_pem("root CA").strip(), _ca_pem("intermediate CA").strip()]

    # mysql asks, as our s3 requirer does.
    mysql_ctx = testing.Context(MYSQL.MySQLCharm)
    ours = testing.Relation("s3-parameters", remote_app_name="s3-integrator")
    asked = mysql_ctx.run(
        mysql_ctx.on.relation_created(ours), _mysql_state(tmp_path, relations={ours})
    )
    request = dict(asked.get_relation(ours.id).local_app_data)

    # The library of s3-integrator 2 answers it.
    S3IntegratorLikeProvider.answer = _integrator_answer(s3_endpoint, bucket, chain)
    provider_ctx = testing.Context(S3IntegratorLikeProvider, meta=PROVIDER_META)
    theirs = testing.Relation("s3-credentials", remote_app_name="mysql", remote_app_data=request)
    state = provider_ctx.run(
        provider_ctx.on.relation_created(theirs), testing.State(leader=True, relations={theirs})
    )
    state = provider_ctx.run(
        provider_ctx.on.relation_changed(state.get_relation(theirs.id), remote_unit=0), state
    )
    answer = dict(state.get_relation(theirs.id).local_app_data)
    assert "access-key" not in answer  # the library put the keys in a secret
    shared = state.get_secret(id=answer["secret-extra"])

    # mysql reads it, and backs up to that store.
    ours = dataclasses.replace(
        asked.get_relation(ours.id), remote_app_data=answer, remote_app_name="s3-integrator"
    )
    state = dataclasses.replace(
        asked, relations={ours}, secrets=set(asked.secrets) | {_seen_by_other_side(shared)}
    )
    with mysql_ctx(mysql_ctx.on.update_status(), state) as manager:
        info = manager.charm._s3.connection_info()
        out = manager.run()
    assert info is not None
    assert info.tls_ca_chain == tuple(chain)
    assert (info.endpoint, info.bucket, info.path) == (s3_endpoint, bucket, "team-b")
    assert out.unit_status.name == "active"

    mysql_ctx.run(mysql_ctx.on.action("create-backup"), out)
    backup_id = mysql_ctx.action_results and mysql_ctx.action_results["backup-id"]
    assert any(
        k.startswith(f"team-b/mysql-backups/{out.model.name}/mysql/{backup_id}/")
        for k in _backup_keys(s3_endpoint, bucket)
    )


class ProfilesReadRequirer(ops.CharmBase):
    """Our requirer asking that profiles may read its bucket, as mlflow does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.s3 = OurS3Requirer(self, "object-storage", bucket="mlflow", profiles_read=True)
        framework.observe(self.on["object-storage"].relation_created, self._ask)

    def _ask(self, _: ops.EventBase) -> None:
        self.s3.publish_request()


def test_profiles_read_is_ignored_by_s3_integrator_2s_library(s3_endpoint: str):
    meta = {"name": "mlflow", "requires": {"object-storage": {"interface": "s3", "limit": 1}}}
    ours_ctx = testing.Context(ProfilesReadRequirer, meta=meta)
    ours = testing.Relation("object-storage", remote_app_name="s3-integrator")
    asked = ours_ctx.run(
        ours_ctx.on.relation_created(ours), testing.State(leader=True, relations={ours})
    )
    request = dict(asked.get_relation(ours.id).local_app_data)
    assert request["profiles-read"] == "true"

    # s3-integrator 2's library answers as it answers any v1 request.
    S3IntegratorLikeProvider.answer = _integrator_answer(
        s3_endpoint, "mlflow", [_ca_pem("root CA").strip()]
    )
    provider_ctx = testing.Context(S3IntegratorLikeProvider, meta=PROVIDER_META)
    theirs = testing.Relation("s3-credentials", remote_app_name="mlflow", remote_app_data=request)
    state = provider_ctx.run(
        provider_ctx.on.relation_created(theirs), testing.State(leader=True, relations={theirs})
    )
    state = provider_ctx.run(
        provider_ctx.on.relation_changed(state.get_relation(theirs.id), remote_unit=0), state
    )
    answer = dict(state.get_relation(theirs.id).local_app_data)
    assert "profiles-read" not in answer
    shared = state.get_secret(id=answer["secret-extra"])

    # Our requirer reads that answer.
    ours = dataclasses.replace(asked.get_relation(ours.id), remote_app_data=answer)
    with ours_ctx(
        ours_ctx.on.update_status(),
        testing.State(leader=True, relations={ours}, secrets={_seen_by_other_side(shared)}),
    ) as manager:
        fields = manager.charm.s3.connection_fields()
    assert fields is not None
    assert (fields.endpoint, fields.bucket, fields.access_key) == (
        s3_endpoint,
        "mlflow",
        "AKIAINTEGRATOR",
    )


def test_s3_integrator_1_databag_reaches_mysql(tmp_path):
    # s3-integrator 1 (v0): keys in clear, lists as JSON, PEM certificates.
    chain = [_ca_pem("root CA").strip()]
    databag = {
        "bucket": "mysql-backups",
        "endpoint": "https://s3.example.com",
        "region": "eu-west-1",
        "s3-uri-style": "path",
        "tls-ca-chain": json.dumps(chain),
        "access-key": "AKIAV0",
        "secret-key": "v0-secret-key",
    }
    ours = testing.Relation(
        "s3-parameters", remote_app_name="s3-integrator", remote_app_data=databag
    )
    mysql_ctx = testing.Context(MYSQL.MySQLCharm)

    with mysql_ctx(mysql_ctx.on.update_status(), _mysql_state(tmp_path, relations={ours})) as m:
        info = m.charm._s3.connection_info()
        out = m.run()

    assert info is not None
    assert info.tls_ca_chain == tuple(chain)
    assert (info.access_key, info.secret_key) == ("AKIAV0", "v0-secret-key")
    assert out.unit_status.name == "active"
