"""The kfp charm's data relations: the databases, the bucket, the files built from them."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import pebble, testing
from unit.kfp.helpers import CHARM, kfp_data, with_gateway
from unit.kfp.helpers import workloads as wl

from kubeflow_interfaces import mysql_client, s3

# The leader applies its cluster objects in every reconcile: a cluster answers.
pytestmark = pytest.mark.usefixtures("kube")

DB_PASSWORDS = {"mlpipeline": "ml-Secret-1", "metadb": "md-Secret-2"}
S3_SECRET_KEY = "s3-Secret-3"
DATA_WORKLOADS = (wl.API_SERVER, wl.METADATA_GRPC)


def _db_relation(answered: bool = True) -> tuple[testing.Relation, list[testing.Secret]]:
    """Both databases answered (v1, one response each), or the relation with no answer."""
    if not answered:
        return testing.Relation(kfp_data.DATABASE, interface="mysql_client"), []
    relations, secrets = [], []
    for name, password in DB_PASSWORDS.items():
        relation, secret = mysql_client.relation_for_requirer(
            kfp_data.DATABASE,
            database=name,
            username=f"user-{name}",
            password=password,
            endpoints="mysql-primary.kubeflow.svc:3306",
        )
        relations.append(relation)
        secrets.append(secret)
    responses = [json.loads(r.remote_app_data["requests"])[0] for r in relations]
    data = {"version": "v1", "requests": json.dumps(responses)}
    return dataclasses.replace(relations[0], remote_app_data=data), secrets


def _s3_relation(**kwargs) -> tuple[testing.Relation, testing.Secret]:
    relation, secret = s3.relation_for_requirer(
        kfp_data.OBJECT_STORAGE,
        endpoint_url="http://minio.kubeflow.svc:9000",
        bucket="mlpipeline",
        access_key="kfp-access",
        secret_key=S3_SECRET_KEY,
        **kwargs,
    )
    assert secret is not None
    return relation, secret


def _state(*, leader: bool = True, can_connect: bool = True, running=(), **kwargs):
    containers = {
        testing.Container(
            w.container,
            can_connect=can_connect,
            service_statuses={w.service: pebble.ServiceStatus.ACTIVE} if w in running else {},
        )
        for w in wl.WORKLOADS
    }
    return testing.State(
        leader=leader,
        containers=containers,
        model=testing.Model(name="kubeflow"),
        **with_gateway(kwargs),
    )


def _full_state(**kwargs) -> testing.State:
    db, db_secrets = _db_relation()
    store, store_secret = _s3_relation()
    return _state(relations={db, store}, secrets={*db_secrets, store_secret}, **kwargs)


API_FILE = (wl.API_SERVER.container, f"{wl.API_SERVER_CONFIG_DIR}/config.json")
MLMD_FILE = (wl.METADATA_GRPC.container, wl.MLMD_CONFIG)


def _file(ctx, out: testing.State, where: tuple[str, str]):
    container, path = where
    return out.get_container(container).get_filesystem(ctx) / path.lstrip("/")


def _no_secret_in(text: str) -> None:
    for secret in (*DB_PASSWORDS.values(), S3_SECRET_KEY):
        assert secret not in text


def test_leader_asks_for_both_databases_and_the_bucket():
    ctx = testing.Context(CHARM.KfpCharm)
    db, _ = _db_relation(answered=False)
    store = testing.Relation(kfp_data.OBJECT_STORAGE, interface="s3")
    out = ctx.run(ctx.on.relation_created(db), _state(relations={db, store}))
    requests = json.loads(out.get_relation(db.id).local_app_data["requests"])
    assert [r["resource"] for r in requests] == ["mlpipeline", "metadb"]
    assert all(r["request-id"] and r["salt"] for r in requests)
    assert out.get_relation(store.id).local_app_data["bucket"] == "mlpipeline"
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the mlpipeline database from remote"
    )


def test_a_written_request_is_left_alone():
    ctx = testing.Context(CHARM.KfpCharm)
    db = testing.Relation(kfp_data.DATABASE, local_app_data={"requests": '[{"resource": "x"}]'})
    out = ctx.run(ctx.on.relation_changed(db), _state(relations={db}))
    assert out.get_relation(db.id).local_app_data == {"requests": '[{"resource": "x"}]'}


def test_non_leader_writes_no_request():
    ctx = testing.Context(CHARM.KfpCharm)
    db, _ = _db_relation(answered=False)
    store = testing.Relation(kfp_data.OBJECT_STORAGE, interface="s3")
    out = ctx.run(ctx.on.relation_created(db), _state(leader=False, relations={db, store}))
    assert out.get_relation(db.id).local_app_data == {}
    assert out.get_relation(store.id).local_app_data == {}


def test_waits_for_the_bucket_once_the_databases_are_there():
    ctx = testing.Context(CHARM.KfpCharm)
    db, secrets = _db_relation()
    store = testing.Relation(kfp_data.OBJECT_STORAGE, interface="s3", remote_app_name="minio")
    out = ctx.run(ctx.on.relation_changed(db), _state(relations={db, store}, secrets=set(secrets)))
    assert out.unit_status == testing.WaitingStatus("waiting for the mlpipeline bucket from minio")
    for workload in DATA_WORKLOADS:
        assert out.get_container(workload.container).layers == {}


@pytest.mark.parametrize("leader", [True, False])
def test_both_answers_plan_the_api_server_and_mlmd(leader):
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _full_state(leader=leader))
    assert out.unit_status == testing.ActiveStatus()
    api = _file(ctx, out, API_FILE)
    document = json.loads(api.read_text())
    mysql = document["DBConfig"]["MySQLConfig"]
    assert (mysql["Host"], mysql["Port"], mysql["User"], mysql["Password"]) == (
        "mysql-primary.kubeflow.svc",
        "3306",
        "user-mlpipeline",
        DB_PASSWORDS["mlpipeline"],
    )
    store = document["ObjectStoreConfig"]
    assert (store["Host"], store["Port"], store["Secure"], store["BucketName"]) == (
        "minio.kubeflow.svc",
        "9000",
        False,
        "mlpipeline",
    )
    assert (store["AccessKey"], store["SecretAccessKey"]) == ("kfp-access", S3_SECRET_KEY)
    assert api.stat().st_mode & 0o777 == 0o600
    mlmd = _file(ctx, out, MLMD_FILE)
    assert 'user: "user-metadb"' in mlmd.read_text()
    assert f'password: "{DB_PASSWORDS["metadb"]}"' in mlmd.read_text()
    for workload in DATA_WORKLOADS:
        container = out.get_container(workload.container)
        service = container.plan.services[workload.service]
        assert service.startup == "enabled"
        assert len(service.environment[kfp_data.CONFIG_HASH]) == 64
        _no_secret_in(json.dumps(container.plan.to_dict()))
    ui = out.get_container(wl.UI.container).plan.services[wl.UI.service]
    assert ui.environment["MINIO_HOST"] == "minio.kubeflow.svc"
    _no_secret_in(json.dumps(ui.environment))
    _no_secret_in(" ".join(log.message for log in ctx.juju_log))
    _no_secret_in(str(out.unit_status))


def test_credential_rotation_restarts_with_the_new_file():
    ctx = testing.Context(CHARM.KfpCharm)
    state = _full_state(running=DATA_WORKLOADS)
    out = ctx.run(ctx.on.config_changed(), state)
    before = {
        w: out.get_container(w.container)
        .plan.services[w.service]
        .environment[kfp_data.CONFIG_HASH]
        for w in DATA_WORKLOADS
    }
    secret = next(
        s for s in out.secrets if s.tracked_content.get("password") == DB_PASSWORDS["metadb"]
    )
    rotated = dataclasses.replace(
        secret,
        tracked_content={**secret.tracked_content, "password": "md-Rotated-4"},
        latest_content={**secret.tracked_content, "password": "md-Rotated-4"},
    )
    out = ctx.run(
        ctx.on.secret_changed(rotated),
        dataclasses.replace(out, secrets=(out.secrets - {secret}) | {rotated}),
    )
    mlmd = out.get_container(wl.METADATA_GRPC.container)
    assert (
        mlmd.plan.services[wl.METADATA_GRPC.service].environment[kfp_data.CONFIG_HASH]
        != before[wl.METADATA_GRPC]
    )
    assert 'password: "md-Rotated-4"' in _file(ctx, out, MLMD_FILE).read_text()
    assert mlmd.service_statuses[wl.METADATA_GRPC.service] == pebble.ServiceStatus.ACTIVE
    # The API server's file did not change: its plan and hash stay.
    api = out.get_container(wl.API_SERVER.container)
    assert (
        api.plan.services[wl.API_SERVER.service].environment[kfp_data.CONFIG_HASH]
        == before[wl.API_SERVER]
    )
    _no_secret_in(json.dumps(mlmd.plan.to_dict()))


def test_settled_hook_changes_nothing():
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _full_state(running=DATA_WORKLOADS))
    again = ctx.run(ctx.on.update_status(), out)
    for workload in DATA_WORKLOADS:
        container = again.get_container(workload.container)
        assert container.layers == out.get_container(workload.container).layers


def test_container_not_ready_is_left_for_its_pebble_ready():
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _full_state(can_connect=False))
    for workload in DATA_WORKLOADS:
        assert out.get_container(workload.container).layers == {}


def test_relation_broken_stops_the_services():
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _full_state(running=DATA_WORKLOADS))
    db = out.get_relations(kfp_data.DATABASE)[0]
    out = ctx.run(ctx.on.relation_broken(db), dataclasses.replace(out, relations=out.relations))
    assert out.unit_status == testing.BlockedStatus("missing relations: relational-db")
    for workload in DATA_WORKLOADS:
        status = out.get_container(workload.container).service_statuses[workload.service]
        assert status == pebble.ServiceStatus.INACTIVE


@pytest.mark.parametrize(
    ("s3_kwargs", "message"),
    [
        (
            {"bucket": "other"},
            "object-storage: the bucket is 'other'; Kubeflow Pipelines needs 'mlpipeline'",
        ),
        ({"path": "prefix"}, "object-storage: a path prefix in the bucket is not supported"),
        (
            {"endpoint_url": "ftp://minio:21"},
            "object-storage: the endpoint 'ftp://minio:21' is not an http(s) host and port",
        ),
    ],
)
def test_an_unusable_store_blocks_and_changes_nothing(s3_kwargs, message):
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _full_state(running=DATA_WORKLOADS))
    store = out.get_relations(kfp_data.OBJECT_STORAGE)[0]
    bad, secret = s3.relation_for_requirer(
        kfp_data.OBJECT_STORAGE,
        **{
            "endpoint_url": "http://minio:9000",
            "bucket": "mlpipeline",
            "secret_key": S3_SECRET_KEY,
            **s3_kwargs,
        },
    )
    bad = dataclasses.replace(bad, id=store.id)
    assert secret is not None
    state = dataclasses.replace(
        out, relations=(out.relations - {store}) | {bad}, secrets=out.secrets | {secret}
    )
    after = ctx.run(ctx.on.relation_changed(bad), state)
    assert after.unit_status == testing.BlockedStatus(message)
    for workload in DATA_WORKLOADS:
        assert (
            after.get_container(workload.container).layers
            == out.get_container(workload.container).layers
        )
    assert not _file(ctx, after, API_FILE).exists()  # nothing pushed


def test_an_unreadable_database_answer_blocks():
    ctx = testing.Context(CHARM.KfpCharm)
    db = testing.Relation(
        kfp_data.DATABASE,
        remote_app_name="mysql",
        remote_app_data={"version": "v1", "requests": "not json"},
    )
    store, secret = _s3_relation()
    out = ctx.run(ctx.on.relation_changed(db), _state(relations={db, store}, secrets={secret}))
    assert out.unit_status == testing.BlockedStatus(
        "relational-db: mysql: its answer does not parse"
    )


def test_a_missing_credentials_secret_blocks_without_naming_it():
    ctx = testing.Context(CHARM.KfpCharm)
    db, _ = _db_relation()
    store, secret = _s3_relation()
    out = ctx.run(ctx.on.relation_changed(db), _state(relations={db, store}, secrets={secret}))
    assert out.unit_status == testing.BlockedStatus(
        "relational-db: mysql: the mlpipeline credentials secret cannot be read"
    )


def test_one_secret_for_both_databases_is_read_once(monkeypatch):
    # A provider with one user per relation (ours) names the same secret in both answers.
    db, secrets = _db_relation()
    responses = json.loads(db.remote_app_data["requests"])
    shared = responses[0]["secret-user"]
    for response in responses:
        response["secret-user"] = shared
    db = dataclasses.replace(
        db, remote_app_data={**db.remote_app_data, "requests": json.dumps(responses)}
    )
    store, store_secret = _s3_relation()
    state = _state(relations={db, store}, secrets={*secrets, store_secret})
    reads: list[str | None] = []
    real = ops.Model.get_secret

    def get_secret(self, *, id=None, label=None):
        reads.append(id)
        return real(self, id=id, label=label)

    monkeypatch.setattr(ops.Model, "get_secret", get_secret)
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.update_status(), state)
    assert reads.count(shared) == 1
    assert out.unit_status == testing.ActiveStatus()
    mlmd = _file(ctx, out, MLMD_FILE).read_text()
    assert DB_PASSWORDS["mlpipeline"] in mlmd  # the shared account, in both files
    assert DB_PASSWORDS["mlpipeline"] in _file(ctx, out, API_FILE).read_text()
