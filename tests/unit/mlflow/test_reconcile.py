"""The server's plan, its secrets file, the relations' data and the statuses."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest
from ops import testing
from unit.mlflow.helpers import (
    APP,
    DB_PASSWORD,
    MINIO,
    MODEL,
    PEERS,
    S3_SECRET_KEY,
    VERSION,
    container,
    mlflow_data,
    peer,
    relation,
    running,
    s3_relation,
    state,
    workload,
)

from kubeflow_interfaces import dashboard_links, istio_ingress_route, kubernetes_manifests


def _service(out: testing.State):
    return out.get_container(workload.CONTAINER).plan.services[workload.SERVICE]


def test_leader_migrates_then_starts_the_server(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), state())

    assert running(out)
    assert peer(out).local_app_data[mlflow_charm_key()] == VERSION
    service = _service(out)
    script = shlex.split(service.command)
    assert script[:2] == ["/bin/sh", "-c"]
    argv = shlex.split(script[2].split("exec ", 1)[1])
    assert argv[:2] == ["mlflow", "server"]
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://mlflow/artifacts"
    assert "--serve-artifacts" in argv
    assert "--default-artifact-root" not in argv
    assert argv[argv.index("--workers") + 1] == "4"
    # No credential in the plan: only the secrets file's digest.
    plan = json.dumps(out.get_container(workload.CONTAINER).plan.to_dict())
    assert DB_PASSWORD not in plan and S3_SECRET_KEY not in plan
    assert "Pass" not in plan
    assert service.environment["MLFLOW_S3_ENDPOINT_URL"] == MINIO
    assert workload.SECRETS_DIGEST in service.environment
    assert out.opened_ports == {testing.TCPPort(workload.PORT)}
    assert out.workload_version == VERSION
    assert out.unit_status == testing.ActiveStatus()
    assert out.app_status == testing.ActiveStatus()
    # One exec for the version, one for the migration.
    assert [p.command[0] for p in ctx.exec_history[workload.CONTAINER]] == ["mlflow", "/bin/sh"]


def mlflow_charm_key() -> str:
    from unit.mlflow.helpers import mlflow_charm

    return mlflow_charm.MIGRATED_KEY


def test_the_secrets_file_holds_the_credentials_0600(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), state())

    fs = out.get_container(workload.CONTAINER).get_filesystem(ctx)
    text = (fs / workload.SECRETS_FILE.lstrip("/")).read_text()
    env = dict(line.split("=", 1) for line in text.splitlines())
    uri = shlex.split(env["MLFLOW_BACKEND_STORE_URI"])[0]
    # The password is URL-quoted in the URI (it holds ':' and '/').
    assert uri == (
        "mysql+pymysql://relation-7:db-Pass%3Aword%2F7@mysql-primary.kubeflow.svc:3306/mlflow"
    )
    assert shlex.split(env["AWS_SECRET_ACCESS_KEY"]) == [S3_SECRET_KEY]
    assert workload.digest(text) == _service(out).environment[workload.SECRETS_DIGEST]


def test_the_leader_asks_for_the_database_and_the_bucket_with_profiles_read(
    ctx: testing.Context,
):
    out = ctx.run(ctx.on.config_changed(), state())

    db = relation(out, mlflow_data.DATABASE).local_app_data
    assert json.loads(db["requests"])[0]["resource"] == "mlflow"
    bucket = relation(out, mlflow_data.STORAGE).local_app_data
    assert bucket["bucket"] == "mlflow"
    assert bucket["path"] == "artifacts"
    assert bucket["profiles-read"] == "true"
    assert json.loads(bucket["requested-secrets"]) == ["access-key", "secret-key"]


def test_route_at_mlflow_rewritten_to_root_and_the_menu_link(ctx: testing.Context):
    route = istio_ingress_route.relation_for_requirer("istio-ingress-route")
    links = testing.Relation(
        "dashboard-links", interface=dashboard_links.INTERFACE, remote_app_name="dashboard"
    )
    out = ctx.run(ctx.on.config_changed(), state(relations={route, links}))

    config = json.loads(relation(out, "istio-ingress-route").local_app_data["config"])
    (http_route,) = config["http_routes"]
    assert http_route["matches"][0]["path"] == {"type": "PathPrefix", "value": "/mlflow"}
    rewrite = http_route["filters"][0]["urlRewrite"]["path"]
    assert rewrite == {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
    (backend,) = http_route["backends"]
    assert (backend["service"], backend["port"]) == (APP, workload.PORT)
    published = dashboard_links.parse(
        relation(out, "dashboard-links").local_app_data[dashboard_links.FIELD]
    )
    menu = [(link.text, link.link) for link in published if link.location == "menu"]
    assert menu == [("MLflow", "/mlflow/")]


def _objects(ctx: testing.Context, out: testing.State, endpoint: str) -> list[dict]:
    data = relation(out, endpoint).local_app_data
    assert data[kubernetes_manifests.IS_SECRET_FIELD] == "true"
    secret = out.get_secret(id=data[kubernetes_manifests.MANIFESTS_FIELD])
    return json.loads(secret.tracked_content[kubernetes_manifests.CONTENT_KEY])


def test_profiles_get_the_tracking_secret_and_the_pod_default(ctx: testing.Context):
    secrets = kubernetes_manifests.relation_for_requirer("secrets", namespaces=["alice"])
    defaults = kubernetes_manifests.relation_for_requirer("pod-defaults")
    out = ctx.run(
        ctx.on.config_changed(),
        state(relations={secrets, defaults}, config={"default-experiment": "team-a"}),
    )

    (secret,) = _objects(ctx, out, "secrets")
    assert secret["metadata"] == {"name": "mlflow-tracking"}
    assert "namespace" not in secret["metadata"]  # the same in every profile
    assert secret["stringData"] == {
        "MLFLOW_TRACKING_URI": f"http://{APP}.{MODEL}.svc.cluster.local:5000"
    }
    (pod_default,) = _objects(ctx, out, "pod-defaults")
    assert pod_default["kind"] == "PodDefault"
    assert pod_default["metadata"]["name"] == "access-mlflow"
    spec = pod_default["spec"]
    assert spec["selector"] == {"matchLabels": {"access-mlflow": "true"}}
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env == {
        "MLFLOW_S3_ENDPOINT_URL": MINIO,
        "AWS_ENDPOINT_URL": MINIO,
        "MLFLOW_ARTIFACTS_S3_ROOT": "s3://mlflow/artifacts",
        "MLFLOW_EXPERIMENT_NAME": "team-a",
    }
    assert spec["envFrom"] == [
        {"secretRef": {"name": "mlflow-tracking"}},
        {"secretRef": {"name": "minio-credentials", "optional": True}},
    ]
    # No key of the charm's own in either object.
    assert S3_SECRET_KEY not in json.dumps([secret, pod_default])


def test_no_default_experiment_no_experiment_variable(ctx: testing.Context):
    defaults = kubernetes_manifests.relation_for_requirer("pod-defaults")
    out = ctx.run(ctx.on.config_changed(), state(relations={defaults}))

    (pod_default,) = _objects(ctx, out, "pod-defaults")
    assert "MLFLOW_EXPERIMENT_NAME" not in {e["name"] for e in pod_default["spec"]["env"]}


def test_config_reaches_the_server(ctx: testing.Context):
    out = ctx.run(
        ctx.on.config_changed(),
        state(config={"workers": 2, "request-timeout": 300, "artifact-path": "/team/runs/"}),
    )

    bucket = relation(out, mlflow_data.STORAGE).local_app_data
    assert bucket["path"] == "team/runs"
    argv = shlex.split(shlex.split(_service(out).command)[2].split("exec ", 1)[1])
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--gunicorn-opts") + 1] == "--timeout 300"


def test_the_provider_answer_decides_the_destination(ctx: testing.Context):
    storage, secret = s3_relation(bucket="shared", path="/tenants/mlflow/")
    base = state(storage=False, relations={storage}, secrets={secret})
    out = ctx.run(ctx.on.config_changed(), base)

    argv = shlex.split(shlex.split(_service(out).command)[2].split("exec ", 1)[1])
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://shared/tenants/mlflow"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"db": False}, "missing relations: relational-db"),
        ({"storage": False}, "missing relations: object-storage"),
        ({"db": False, "storage": False}, "missing relations: relational-db, object-storage"),
    ],
)
def test_missing_relations_block_and_keep_the_server_stopped(
    ctx: testing.Context, missing: dict, message: str
):
    out = ctx.run(ctx.on.config_changed(), state(**missing))

    assert out.unit_status == testing.BlockedStatus(message)
    assert out.app_status == testing.BlockedStatus(message)
    assert not running(out)


def test_a_removed_database_stops_the_server(ctx: testing.Context):
    settled = ctx.run(ctx.on.config_changed(), state())
    assert running(settled)
    db = relation(settled, mlflow_data.DATABASE)

    out = ctx.run(ctx.on.relation_broken(db), settled)

    assert not running(out)
    assert out.unit_status == testing.BlockedStatus("missing relations: relational-db")


def test_waiting_for_the_answers(ctx: testing.Context):
    db = testing.Relation(mlflow_data.DATABASE, interface="mysql_client", remote_app_name="mysql")
    storage = testing.Relation(mlflow_data.STORAGE, interface="s3", remote_app_name="minio")
    base = state(db=False, storage=False, relations={db, storage})

    out = ctx.run(ctx.on.config_changed(), base)

    assert out.unit_status == testing.WaitingStatus("waiting for the mlflow database from mysql")
    assert not running(out)
    assert ctx.exec_history == {}


def test_malformed_database_answer_blocks_and_changes_nothing(ctx: testing.Context):
    db = testing.Relation(
        mlflow_data.DATABASE,
        interface="mysql_client",
        remote_app_name="mysql",
        remote_app_data={"requests": "not json"},
    )
    out = ctx.run(ctx.on.config_changed(), state(db=False, relations={db}))

    assert out.unit_status == testing.BlockedStatus(
        "relational-db: mysql: its answer does not parse"
    )
    assert not running(out)


def test_malformed_s3_answer_blocks(ctx: testing.Context):
    storage = testing.Relation(
        mlflow_data.STORAGE,
        interface="s3",
        remote_app_name="minio",
        remote_app_data={"bucket": "mlflow", "secret-extra": "secret:nosuchsecret"},
    )
    out = ctx.run(ctx.on.config_changed(), state(storage=False, relations={storage}))

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith("object-storage: minio: ")
    assert not running(out)


def test_no_pebble_yet_waits(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), state(containers={container(can_connect=False)}))

    assert out.unit_status == testing.WaitingStatus("waiting for the mlflow-server container")


def test_a_failing_check_shows_until_it_recovers(ctx: testing.Context):
    settled = ctx.run(ctx.on.config_changed(), state())
    ready = testing.pebble.CheckLevel.READY
    check = testing.CheckInfo(
        workload.CHECK, level=ready, failures=3, status=testing.pebble.CheckStatus.DOWN
    )
    server = settled.get_container(workload.CONTAINER)
    down = dataclasses.replace(server, check_infos=frozenset({check}))
    failing = dataclasses.replace(settled, containers={down})
    out = ctx.run(ctx.on.pebble_check_failed(down, check), failing)
    assert out.unit_status == testing.WaitingStatus(
        f"mlflow-server is not ready (check {workload.CHECK} fails)"
    )
    up = testing.CheckInfo(workload.CHECK, level=ready)
    back = dataclasses.replace(down, check_infos=frozenset({up}))
    out = ctx.run(
        ctx.on.pebble_check_recovered(back, up), dataclasses.replace(out, containers={back})
    )
    assert out.unit_status == testing.ActiveStatus()


def test_peers_name_is_the_charms():
    assert PEERS == "mlflow-peers"
