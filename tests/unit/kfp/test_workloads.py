"""Each container's Pebble layer and files, leader and non-leader.

Commands, flags, environment, ports and paths were read from Kubeflow
Pipelines 2.4.1 (kubeflow/pipelines, backend/Dockerfile*, the flag
definitions of each main.go, frontend/server/configs.ts,
manifests/kustomize/base), Argo Workflows v3.4.17
(cmd/workflow-controller/main.go, Dockerfile) and ML Metadata v1.14.0
(ml_metadata/metadata_store/metadata_store_server_main.cc); see
tests/conformance/facts/kfp.yaml for each.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import pebble, testing
from unit.kfp.helpers import CHARM, kfp_config, with_gateway, workloads

wl = workloads
CONFIG = kfp_config.KfpConfig()
DB = wl.Database(host="mysql-primary", port=3306, user="kfp", password='p"w\\d\n')
STORE = wl.ObjectStore(
    host="minio", port=9000, secure=False, region="us-east-1", access_key="AK", secret_key="SK"
)


def _service(layer) -> dict:
    (service,) = layer["services"].values()
    return service


def _argv(layer) -> list[str]:
    return _service(layer)["command"].split()


def test_api_server_layer():
    layer = wl.api_server_layer(CONFIG, namespace="kubeflow")
    service = _service(layer)
    assert _argv(layer) == [
        "/bin/apiserver",
        "--config=/etc/kfp/api-server",
        "--sampleconfig=/config/sample_config.json",
        "-logtostderr=true",
        "--logLevel=info",
        "--rpcPortFlag=:8887",
        "--httpPortFlag=:8889",
    ]
    assert service["working-dir"] == "/bin"
    assert (service["user-id"], service["group-id"]) == (1000, 0)
    assert service["startup"] == "enabled"
    env = service["environment"]
    assert env["POD_NAMESPACE"] == "kubeflow"
    assert env["MULTIUSER"] == "true"
    assert env["DEFAULTPIPELINERUNNERSERVICEACCOUNT"] == "default-editor"
    assert env["ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_HOST"] == "localhost"
    assert env["ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_PORT"] == "8888"
    assert env["KUBEFLOW_USERID_HEADER"] == "kubeflow-userid"
    assert env["KUBEFLOW_USERID_PREFIX"] == ""
    check = layer["checks"]["api-server-ready"]
    assert check["http"]["url"] == "http://localhost:8889/apis/v1beta1/healthz"
    assert check["level"] == "ready"


def test_api_server_config_holds_the_credentials_not_the_plan():
    file = wl.api_server_config(DB, STORE)
    assert (file.container, file.path) == ("api-server", "/etc/kfp/api-server/config.json")
    assert (file.user_id, file.permissions) == (1000, 0o600)
    doc = json.loads(file.content)
    mysql = doc["DBConfig"]["MySQLConfig"]
    assert mysql == {
        "Host": "mysql-primary",
        "Port": "3306",
        "User": "kfp",
        "Password": DB.password,
        "DBName": "mlpipeline",
        "GroupConcatMaxLen": "4194304",
    }
    assert doc["DBDriverName"] == "mysql"
    assert doc["InitConnectionTimeout"] == "6m"
    store = doc["ObjectStoreConfig"]
    assert (store["Host"], store["Port"], store["Secure"]) == ("minio", "9000", False)
    assert (store["AccessKey"], store["SecretAccessKey"]) == ("AK", "SK")
    assert (store["BucketName"], store["PipelinePath"]) == ("mlpipeline", "pipelines")
    layer = json.dumps(wl.layers(CONFIG, namespace="kubeflow", pod_name="kfp-0", leader=True))
    for secret in ("kfp", "AK", "SK", 'p\\"w'):
        assert f'"{secret}"' not in layer


@pytest.mark.parametrize("leader", [True, False])
def test_persistence_agent_layer(leader):
    config = kfp_config.KfpConfig(workflow_ttl=3600, log_level="debug")
    layer = wl.persistence_agent_layer(config, leader=leader)
    service = _service(layer)
    assert _argv(layer) == [
        "/bin/persistence_agent",
        "--logtostderr=true",
        "--namespace=",
        "--ttlSecondsAfterWorkflowFinish=3600",
        "--numWorker=2",
        "--executionType=Workflow",
        "--logLevel=debug",
        "--mlPipelineAPIServerName=localhost",
        "--mlPipelineServiceHttpPort=8889",
        "--mlPipelineServiceGRPCPort=8887",
    ]
    assert service["startup"] == ("enabled" if leader else "disabled")
    assert service["working-dir"] == "/bin"
    assert "checks" not in layer  # upstream has no probe


@pytest.mark.parametrize("leader", [True, False])
def test_scheduled_workflow_layer(leader):
    layer = wl.scheduled_workflow_layer(CONFIG, leader=leader)
    service = _service(layer)
    assert _argv(layer) == [
        "/bin/controller",
        "--logtostderr=true",
        "--namespace=",
        "--logLevel=info",
    ]
    assert service["environment"] == {"CRON_SCHEDULE_TIMEZONE": "UTC"}
    assert service["startup"] == ("enabled" if leader else "disabled")
    assert "checks" not in layer


def test_ui_layer():
    layer = wl.ui_layer(CONFIG, namespace="kubeflow")
    service = _service(layer)
    assert _argv(layer) == ["node", "dist/server.js", "../client/", "3000"]
    assert service["working-dir"] == "/server"
    env = service["environment"]
    assert (env["ML_PIPELINE_SERVICE_HOST"], env["ML_PIPELINE_SERVICE_PORT"]) == (
        "localhost",
        "8889",
    )
    assert env["METADATA_ENVOY_SERVICE_SERVICE_PORT"] == "9090"
    assert env["DEPLOYMENT"] == "KUBEFLOW"
    assert env["ENABLE_AUTHZ"] == "true"
    assert env["ARTIFACTS_SERVICE_PROXY_ENABLED"] == "true"
    assert env["ARTIFACTS_SERVICE_PROXY_NAME"] == "ml-pipeline-ui-artifact"
    assert env["FRONTEND_SERVER_NAMESPACE"] == "kubeflow"
    assert env["VIEWER_TENSORBOARD_POD_TEMPLATE_SPEC_PATH"] == wl.UI_VIEWER_TEMPLATE
    assert "MINIO_HOST" not in env
    assert {name for name in env if "KEY" in name} == {"ARGO_KEYFORMAT"}
    check = layer["checks"]["ui-ready"]
    assert check["http"]["url"] == "http://localhost:3000/apis/v1beta1/healthz"


def test_ui_layer_with_an_object_store_gets_its_address_only():
    env = _service(wl.ui_layer(CONFIG, namespace="kubeflow", store=STORE))["environment"]
    assert (env["MINIO_HOST"], env["MINIO_PORT"], env["MINIO_SSL"]) == ("minio", "9000", "false")
    assert env["MINIO_NAMESPACE"] == ""
    assert "AK" not in env.values() and "SK" not in env.values()


def test_ui_reads_no_archived_logs_but_knows_where_they_are():
    env = _service(wl.ui_layer(CONFIG, namespace="kubeflow", store=STORE))["environment"]
    # Off: the UI would read them with keys of its own, the same it serves every artifact
    # with (frontend/server/handlers/pod-logs.ts, artifacts.ts at KFP 2.4.1).
    assert env["ARGO_ARCHIVE_LOGS"] == "false"
    assert not {"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "AWS_ACCESS_KEY_ID"} & set(env)
    # Where Argo puts them, the same text as its ConfigMap's keyFormat.
    assert env["ARGO_KEYFORMAT"] == kfp_config.ARGO_KEY_FORMAT
    assert env["ARGO_KEYFORMAT"].startswith("private-artifacts/{{workflow.namespace}}/")
    assert env["ARGO_ARCHIVE_BUCKETNAME"] == "mlpipeline"


def test_ui_viewer_template():
    file = wl.ui_viewer_template()
    assert json.loads(file.content) == {"spec": {"serviceAccountName": "default-editor"}}


def test_metadata_grpc_layer_and_config():
    layer = wl.metadata_grpc_layer()
    assert _argv(layer) == [
        "/bin/metadata_store_server",
        "--grpc_port=8081",
        "--metadata_source_config_type=config_file",
        f"--metadata_store_server_config_file={wl.MLMD_CONFIG}",
    ]
    assert layer["checks"]["metadata-grpc-ready"]["tcp"] == {"port": 8081}
    file = wl.mlmd_server_config(DB)
    assert file.permissions == 0o600
    assert 'host: "mysql-primary"' in file.content
    assert "port: 3306" in file.content
    assert 'database: "metadb"' in file.content
    # Quotes, backslashes and a newline escaped as the protobuf text format reads them.
    assert 'password: "p\\"w\\\\d\\012"' in file.content
    assert "enable_upgrade_migration: true" in file.content


def test_metadata_envoy_layer_and_config():
    layer = wl.metadata_envoy_layer()
    assert _argv(layer) == ["/usr/local/bin/envoy", "-c", wl.ENVOY_CONFIG]
    assert layer["checks"]["metadata-envoy-ready"]["tcp"] == {"port": 9090}
    doc = json.loads(wl.envoy_config().content)
    assert doc["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }
    (listener,) = doc["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 9090
    (cluster,) = doc["static_resources"]["clusters"]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8081}


@pytest.mark.parametrize("leader", [True, False])
def test_workflow_controller_layer(leader):
    layer = wl.workflow_controller_layer(CONFIG, leader=leader, pod_name="kfp-0")
    service = _service(layer)
    assert _argv(layer) == [
        "/bin/workflow-controller",
        "--configmap",
        "workflow-controller-configmap",
        "--executor-image",
        "gcr.io/ml-pipeline/argoexec:v3.4.17-license-compliance",
        "--loglevel",
        "info",
    ]
    assert service["environment"] == {"LEADER_ELECTION_IDENTITY": "kfp-0"}
    assert service["user-id"] == 8737
    assert service["startup"] == ("enabled" if leader else "disabled")
    check = layer["checks"]["workflow-controller-alive"]
    assert check["http"]["url"] == "http://localhost:6060/healthz"
    assert check["level"] == "alive"


def test_argo_settings_from_config():
    assert wl.argo_controller_settings(CONFIG) == {"metricsConfig": '{"port": 9091}'}
    config = kfp_config.KfpConfig(
        max_concurrent_runs=10,
        default_node_selector='{"agentpool": "user"}',
        default_tolerations='[{"key": "sku", "operator": "Exists"}]',
    )
    data = wl.argo_controller_settings(config)
    assert data["parallelism"] == "10"
    assert json.loads(data["workflowDefaults"]) == {
        "spec": {
            "nodeSelector": {"agentpool": "user"},
            "tolerations": [{"key": "sku", "operator": "Exists"}],
        }
    }


@pytest.mark.parametrize("leader", [True, False])
def test_viewer_controller_layer(leader):
    layer = wl.viewer_controller_layer(leader=leader)
    assert _argv(layer) == [
        "/bin/controller",
        "-logtostderr=true",
        "-max_num_viewers=50",
        "--namespace=",
    ]
    assert _service(layer)["startup"] == ("enabled" if leader else "disabled")
    assert "checks" not in layer


def test_visualization_server_layer():
    layer = wl.visualization_server_layer()
    assert _argv(layer) == ["python3", "server.py"]
    assert _service(layer)["working-dir"] == "/src"
    check = layer["checks"]["visualization-server-ready"]
    assert check["http"]["url"] == "http://localhost:8888/"


def test_no_two_workloads_listen_on_one_port():
    ports = [
        wl.Ports.API_GRPC,
        wl.Ports.API_HTTP,
        wl.Ports.UI,
        wl.Ports.MLMD,
        wl.Ports.ENVOY,
        wl.Ports.ENVOY_ADMIN,
        wl.Ports.ARGO_HEALTH,
        wl.Ports.ARGO_METRICS,
        wl.Ports.VIEWER_METRICS,
        wl.Ports.VISUALIZATION,
    ]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("leader", [True, False])
def test_layers_cover_every_container(leader):
    layers = wl.layers(CONFIG, namespace="kubeflow", pod_name="kfp-0", leader=leader)
    assert set(layers) == {w.container for w in wl.WORKLOADS}
    for workload in wl.WORKLOADS:
        service = layers[workload.container]["services"][workload.service]
        expected = "disabled" if workload.leader_only and not leader else "enabled"
        assert service["startup"] == expected, workload.service


def _state(leader: bool, **kwargs) -> testing.State:
    containers = {testing.Container(w.container, can_connect=True) for w in wl.WORKLOADS}
    return testing.State(leader=leader, containers=containers, **with_gateway(kwargs))


NEED_RELATIONS = (wl.API_SERVER, wl.METADATA_GRPC)


@pytest.mark.parametrize("leader", [True, False])
def test_charm_plans_the_workloads_that_need_no_relation(leader):
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _state(leader))
    for workload in wl.WORKLOADS:
        container = out.get_container(workload.container)
        if workload in NEED_RELATIONS:
            assert container.layers == {}, workload.container
            continue
        service = container.plan.services[workload.service]
        expected = "disabled" if workload.leader_only and not leader else "enabled"
        assert service.startup == expected, workload.service
    envoy = out.get_container(wl.METADATA_ENVOY.container)
    config = envoy.get_filesystem(ctx) / wl.ENVOY_CONFIG.lstrip("/")
    assert json.loads(config.read_text()) == json.loads(wl.envoy_config().content)
    assert out.unit_status == testing.BlockedStatus(
        "missing relations: relational-db, object-storage"
    )


def test_non_leader_stops_a_running_controller():
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _state(leader=True))
    containers = {
        dataclasses.replace(
            c,
            service_statuses={
                w.service: pebble.ServiceStatus.ACTIVE
                for w in wl.WORKLOADS
                if w.container == c.name and w not in NEED_RELATIONS
            },
        )
        for c in out.containers
    }
    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, leader=False, containers=containers)
    )
    for workload in wl.WORKLOADS:
        if workload in NEED_RELATIONS:
            continue
        status = out.get_container(workload.container).service_statuses[workload.service]
        expected = (
            pebble.ServiceStatus.INACTIVE
            if workload.leader_only
            else (pebble.ServiceStatus.ACTIVE)
        )
        assert status == expected, workload.service


def _plan_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = ops.Container.get_plan

    def get_plan(self):
        reads.append(self.name)
        return real(self)

    monkeypatch.setattr(ops.Container, "get_plan", get_plan)
    return reads


def test_a_settled_hook_reads_no_plan_back_from_a_running_service(monkeypatch):
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _state(leader=True))
    reads = _plan_reads(monkeypatch)
    again = ctx.run(ctx.on.update_status(), out)
    assert reads == []
    applied = [s for s in out.stored_states if s.name == "_applied"]
    assert applied and applied[0].content["digests"]
    assert [s for s in again.stored_states if s.name == "_applied"] == applied
    for container in out.containers:
        assert again.get_container(container.name).layers == container.layers


def test_a_new_pebble_gets_its_layer_again_though_a_service_of_that_name_runs():
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.config_changed(), _state(leader=True))
    ui = out.get_container(wl.UI.container)
    # The container restarted: its Pebble runs a `ui` service of the image's own layer.
    image_layer = pebble.Layer(
        {"services": {wl.UI.service: {"override": "replace", "command": "/bin/sleep 1d"}}}
    )
    restarted = dataclasses.replace(
        ui,
        layers={"image": image_layer},
        service_statuses={wl.UI.service: pebble.ServiceStatus.ACTIVE},
        check_infos=frozenset(),
    )
    state = dataclasses.replace(out, containers=(out.containers - {ui}) | {restarted})
    again = ctx.run(ctx.on.pebble_ready(restarted), state)
    planned = again.get_container(wl.UI.container).plan.services[wl.UI.service]
    assert planned.command == ui.plan.services[wl.UI.service].command
