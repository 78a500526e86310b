"""The leader applies the kfp charm's cluster objects, keeps them, deletes them; the agent's token.

The Service names, ports and port names are those of kubeflow/manifests v1.10.0,
apps/pipeline/upstream/base/pipeline/ml-pipeline-apiserver-service.yaml,
ml-pipeline-ui-service.yaml, ml-pipeline-visualization-service.yaml and
base/metadata/base/metadata-{grpc,envoy}-service.yaml. The token's audience and
path are the persistence agent's (same tag, base/pipeline/
ml-pipeline-persistenceagent-deployment.yaml, projected volume).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import cast

import ops
import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.kfp.helpers import CHARM, with_gateway, workloads

from kubeflow_charms import kubernetes

kfp_cluster = CHARM.kfp_cluster  # the charm's own module, as it imported it

MODEL = "kubeflow"
APP = "kfp"
PEERS = "kfp-peers"
AGENT = workloads.PERSISTENCE_AGENT.container
STORE = workloads.ObjectStore(
    host="minio.kubeflow.svc.cluster.local",
    port=9000,
    secure=False,
    region="",
    access_key="TEST-ACCESS-KEY",
    secret_key="TEST-SECRET-KEY",
)


ISTIO_GROUPS = {
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
}
TOKEN_DIR = workloads.PERSISTENCE_AGENT_TOKEN_PATH.rpartition("/")[0]


def _state(leader: bool = True, **kwargs) -> testing.State:
    """A unit with every container; the agent's token folder outlives a hook, as in the pod."""
    # The testing Pebble keeps a container's files for one hook unless mounted.
    mount = testing.Mount(location=TOKEN_DIR, source=tempfile.mkdtemp())
    containers = {
        testing.Container(
            w.container,
            can_connect=True,
            mounts={"tokens": mount} if w.container == AGENT else {},
        )
        for w in workloads.WORKLOADS
    }
    defaults = {
        "leader": leader,
        "containers": containers,
        "relations": {testing.PeerRelation(PEERS)},
        "model": testing.Model(name=MODEL),
    }
    return testing.State(**with_gateway(defaults | kwargs))


def _settle(ctx: testing.Context, state: testing.State) -> testing.State:
    return ctx.run(ctx.on.config_changed(), ctx.run(ctx.on.install(), state))


def _token_file(out: testing.State) -> Path:
    mount = out.get_container(AGENT).mounts["tokens"]
    return Path(mount.source) / Path(workloads.PERSISTENCE_AGENT_TOKEN_PATH).name


def _token(out: testing.State) -> str:
    return _token_file(out).read_text()


def _names(kube: FakeKubernetes, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.of_kind(kind)}


def test_leader_applies_the_objects(ctx, kube, clock):
    _settle(ctx, _state())
    ours = [
        c
        for c in kube.of_kind("CustomResourceDefinition")
        if c["spec"]["group"] not in ISTIO_GROUPS
    ]
    assert len(ours) == 10
    assert f"{APP}-api-server" in _names(kube, "ClusterRole")
    assert "kubeflow-pipelines-edit" in _names(kube, "ClusterRole")
    for binding in kube.of_kind("ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": APP, "namespace": MODEL}]
    # No object store yet: no Argo ConfigMap.
    assert kube.get("ConfigMap", workloads.ARGO_CONFIGMAP, MODEL) is None


def test_services_select_the_charm_pods_on_upstream_ports(ctx, kube, clock):
    _settle(ctx, _state())
    ports = {}
    for service in kube.of_kind("Service"):
        # Juju labels a charm's pods app.kubernetes.io/name=<app>.
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": APP}
        for p in service["spec"]["ports"]:
            ports[service["metadata"]["name"], p["name"]] = (p["port"], p["targetPort"])
    assert ports == {
        ("ml-pipeline", "http"): (8888, 8889),
        ("ml-pipeline", "grpc"): (8887, 8887),
        ("ml-pipeline-ui", "http"): (80, 3000),
        ("metadata-grpc-service", "grpc-api"): (8080, 8081),
        ("metadata-envoy-service", "md-envoy"): (9090, 9090),
        ("ml-pipeline-visualizationserver", "http"): (8888, 8888),
    }


def test_argo_configmap_once_the_store_is_known(ctx, kube, clock):
    config = CHARM.KfpConfig(max_concurrent_runs=5, default_node_selector='{"pool": "runs"}')
    with ctx(ctx.on.config_changed(), _state()) as mgr:
        event = cast(ops.EventBase, None)  # neither a forced nor a routine hook
        mgr.charm._cluster.reconcile(event, config, STORE)
        mgr.run()
    configmap = kube.get("ConfigMap", workloads.ARGO_CONFIGMAP, MODEL)
    assert configmap is not None
    data = configmap["data"]
    assert "minio.kubeflow.svc.cluster.local:9000" in data["artifactRepository"]
    assert STORE.access_key not in str(configmap)
    assert STORE.secret_key not in str(configmap)
    assert data["parallelism"].strip() == "5"
    assert "runs" in data["workflowDefaults"]
    # Argo's metrics off 9090, the envoy's port.
    assert data["metricsConfig"] == '{"port": 9091}'


@pytest.mark.parametrize("archive", [True, False])
def test_argo_archives_logs_with_each_profiles_keys_under_its_prefix(ctx, kube, clock, archive):
    import yaml

    config = CHARM.KfpConfig(archive_logs=archive)
    with ctx(ctx.on.config_changed(), _state()) as mgr:
        event = cast(ops.EventBase, None)
        mgr.charm._cluster.reconcile(event, config, STORE)
        mgr.run()
    configmap = kube.get("ConfigMap", workloads.ARGO_CONFIGMAP, MODEL)
    assert configmap is not None
    repository = yaml.safe_load(configmap["data"]["artifactRepository"])
    assert repository["archiveLogs"] is archive
    s3 = repository["s3"]
    # The Secret the minio charm puts in every profile namespace, and its keys
    # (charms/minio/src/profile_manifests.py), as the launcher's providers name them.
    assert s3["accessKeySecret"] == {"name": "minio-credentials", "key": "AWS_ACCESS_KEY_ID"}
    assert s3["secretKeySecret"] == {"name": "minio-credentials", "key": "AWS_SECRET_ACCESS_KEY"}
    assert s3["keyFormat"].startswith("private-artifacts/{{workflow.namespace}}/artifacts/")
    assert s3["keyFormat"].endswith("/{{pod.name}}")


def test_non_leader_applies_nothing(ctx, kube, clock):
    _settle(ctx, _state(leader=False))
    assert {v.body["kind"] for v in kube.made().values()} == {"ServiceAccount"}
    assert kube.tokens_issued == 0


def test_forbidden_asks_for_trust(ctx, kube, clock, monkeypatch):
    def refuse(self, text):
        raise kubernetes.KubernetesError("Forbidden: no", status=403)

    monkeypatch.setattr(kubernetes.Resources, "reconcile", refuse)
    out = _settle(ctx, _state())
    assert out.unit_status == ops.BlockedStatus(
        f"not allowed to manage Kubernetes objects: run `juju trust {APP} --scope=cluster`"
    )


def test_untrusted_app_is_blocked_and_writes_nothing(ctx, kube, clock):
    with routed_lightkube(kube, MODEL, app=APP, trusted=False):
        out = _settle(ctx, _state())
    assert kube.forbidden
    assert "juju trust kfp" in out.unit_status.message
    assert [w for w in kube.writes if w[1] != "ServiceAccount"] == []


def test_deleted_objects_come_back_on_update_status(ctx, kube, clock):
    out = _settle(ctx, _state())
    crd = kube.delete("CustomResourceDefinition", "workflows.argoproj.io")
    kube.delete("Service", "ml-pipeline", MODEL)
    kube.delete("ClusterRoleBinding", f"{APP}-persistence-agent")

    again = ctx.run(ctx.on.update_status(), out)

    assert kube.get("CustomResourceDefinition", crd["metadata"]["name"])["spec"] == crd["spec"]
    assert kube.get("Service", "ml-pipeline", MODEL) is not None
    assert kube.get("ClusterRoleBinding", f"{APP}-persistence-agent") is not None
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), again)
    assert kube.writes == writes


def test_settled_update_status_writes_nothing(ctx, kube, clock):
    out = _settle(ctx, _state())
    writes, tokens = list(kube.writes), kube.tokens_issued
    again = ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes
    assert kube.tokens_issued == tokens
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states


def test_token_written_for_the_agent(ctx, kube, clock):
    out = _settle(ctx, _state())
    assert kube.tokens_issued == 1
    token = _token(out)
    assert token.startswith(f"fake-token-{APP}-")
    path = _token_file(out)
    assert path.stat().st_mode & 0o777 == 0o600


def test_token_audience_is_the_api_servers(ctx, kube, clock, monkeypatch):
    import lightkube

    bodies = []
    create = lightkube.Client.create

    def spy(self, obj, *args, **kwargs):
        bodies.append(obj)
        return create(self, obj, *args, **kwargs)

    monkeypatch.setattr(lightkube.Client, "create", spy)
    _settle(ctx, _state())
    (request,) = [b for b in bodies if type(b).__name__ == "ServiceAccountToken"]
    assert request.spec.audiences == ["pipelines.kubeflow.org"]


def test_token_renewed_before_expiry(ctx, kube, clock):
    out = _settle(ctx, _state())
    first = _token(out)
    clock[0] += kfp_cluster.TOKEN_LIFETIME / 2
    out = ctx.run(ctx.on.update_status(), out)
    assert kube.tokens_issued == 1
    clock[0] += kfp_cluster.TOKEN_LIFETIME / 6 + 1  # past two thirds of its life
    out = ctx.run(ctx.on.update_status(), out)
    assert kube.tokens_issued == 2
    assert _token(out) != first


def test_token_written_again_when_the_file_is_gone(ctx, kube, clock):
    out = _settle(ctx, _state())
    path = _token_file(out)
    path.unlink()  # a new pod
    ctx.run(ctx.on.update_status(), out)
    assert kube.tokens_issued == 2
    assert path.exists()


def test_remove_deletes_what_the_leader_made(ctx, kube, clock):
    out = _settle(ctx, _state())
    assert kube.of_kind("Service")
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    # What is left is Juju's: the ServiceAccount it made for the pods.
    assert {v.body["kind"] for v in kube.made().values()} == {"ServiceAccount"}


def test_remove_on_a_non_leader_deletes_nothing(ctx, kube, clock):
    out = _settle(ctx, _state())
    count = len(kube.made())
    ctx.run(ctx.on.remove(), dataclasses.replace(out, leader=False, planned_units=0))
    assert len(kube.made()) == count
