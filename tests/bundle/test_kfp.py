"""Kubeflow Pipelines in the simulated model: where steps run, and what each profile gets.

The kfp charm writes its placement options into Argo's ConfigMap as
`workflowDefaults`, which Argo merges into every Workflow and so into every
step's pod (argoproj/argo-workflows v3.4.17 workflow/controller/
controller.go setWorkflowDefaults, workflowpod.go addSchedulingConstraints).
The AKS overlay sends steps to the CPU pool and lets them tolerate the GPU
pool's taint, so a step that selects the GPU pool can land there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bundle.simulator import BUNDLE, Model
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

AKS = BUNDLE.parent / "overlays" / "aks.yaml"
ARGO_CONFIGMAP = "workflow-controller-configmap"
PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
NOTICE = "kubeflow.org/profile-namespace"
# The AKS pools' label and the GPU pool's taint (tools/aks-up.sh, bundle/overlays/aks.yaml).
POOL = "kubeflow.org/pool"
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


@pytest.fixture
def shared_model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


def _argo_config(model: Model) -> dict:
    """Argo's configuration as the controller reads it: the data keys joined as YAML."""
    cm = model.workloads.kubernetes.get("ConfigMap", ARGO_CONFIGMAP, "kubeflow")
    assert cm is not None, "kfp applied no Argo ConfigMap"
    return {key: yaml.safe_load(value) for key, value in cm["data"].items()}


def test_on_aks_every_step_defaults_to_the_cpu_pool_and_tolerates_the_gpu_pool(
    aks_model: Model,
):
    config = _argo_config(aks_model)
    spec = config["workflowDefaults"]["spec"]
    # Every step on the CPU pool unless it selects another: the KFP driver puts a step's
    # kfp-kubernetes selector in its pod spec patch, which Argo merges over this map, so
    # kubeflow.org/pool=gpu replaces cpu (kubeflow/pipelines 2.4.1 backend/src/v2/driver/
    # driver.go extendPodSpecPatch; Argo v3.4.17 workflow/controller/workflowpod.go).
    assert spec["nodeSelector"] == {POOL: "cpu"}
    # ...and every step may go where the GPU pool's taint is: only a GPU step's selector
    # sends one there.
    assert spec["tolerations"] == [GPU_TOLERATION]
    # No other defaults: affinity, a step's own resources and the rest stay the step's.
    assert set(spec) == {"nodeSelector", "tolerations"}
    assert aks_model.statuses["kfp/0"].name == "active"


def test_the_plain_bundle_sets_no_step_placement(shared_model: Model):
    config = _argo_config(shared_model)
    assert "workflowDefaults" not in config
    store = config["artifactRepository"]["s3"]
    assert store["bucket"] == "mlpipeline"
    assert store["endpoint"] == "minio.kubeflow.svc.cluster.local:9000"


def test_the_microk8s_overlay_limits_concurrent_runs(settled_models):
    model = settled_models.settled([BUNDLE.parent / "overlays" / "microk8s.yaml"])
    assert _argo_config(model)["parallelism"] == 2
    assert model.statuses["kfp/0"].name == "active"


def test_a_new_profile_gets_kfps_config_maps(settled_models, tmp_path: Path):
    model: Model = settled_models.own(tmp_path)
    client = model.workloads.kubernetes.client()
    client.apply(Namespace(metadata=ObjectMeta(name="alice", labels=PROFILE_LABELS)))
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")

    cluster = model.workloads.kubernetes
    mlmd = cluster.get("ConfigMap", "metadata-grpc-configmap", "alice")
    assert mlmd is not None
    assert mlmd["data"] == {
        "METADATA_GRPC_SERVICE_HOST": "metadata-grpc-service.kubeflow",
        "METADATA_GRPC_SERVICE_PORT": "8080",
    }
    launcher = cluster.get("ConfigMap", "kfp-launcher", "alice")
    assert launcher is not None
    root = launcher["data"]["defaultPipelineRoot"]
    assert root == "minio://mlpipeline/private-artifacts/alice/v2/artifacts"
    providers = yaml.safe_load(launcher["data"]["providers"])
    secret_ref = providers["minio"]["default"]["credentials"]["secretRef"]
    assert secret_ref["secretName"] == "minio-credentials"
    # The launcher names the profile's Secret; the keys stay in it.
    assert not any(v in json.dumps(launcher) for v in model.secret_values())
    assert cluster.get("Secret", "minio-credentials", "alice") is not None
    # The servers the UI and the API server call in each profile, with the profile's keys
    # by reference, and the mesh's rules for who may call them.
    for name in ("ml-pipeline-ui-artifact", "ml-pipeline-visualizationserver"):
        assert cluster.get("Deployment", name, "alice") is not None, name
        assert cluster.get("Service", name, "alice") is not None, name
    artifact = cluster.get("Deployment", "ml-pipeline-ui-artifact", "alice")
    (container,) = artifact["spec"]["template"]["spec"]["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert refs == {
        "MINIO_ACCESS_KEY": "minio-credentials",
        "MINIO_SECRET_KEY": "minio-credentials",
    }
    assert len(cluster.of_kind("AuthorizationPolicy")) > 0
    assert {p["metadata"]["namespace"] for p in cluster.of_kind("AuthorizationPolicy")} >= {
        "alice"
    }
    assert not any(v in json.dumps(artifact) for v in model.secret_values())
    assert cluster.rejected == []
    for name, status in {**model.statuses, **model.app_statuses}.items():
        assert status.name == "active", f"{name}: {status.message}"


def test_kfp_pods_are_labelled_for_the_sidecar_and_no_one_elses(shared_model: Model):
    cluster = shared_model.workloads.kubernetes
    for stateful_set in cluster.of_kind("StatefulSet"):
        labels = stateful_set["spec"]["template"]["metadata"]["labels"]
        app = stateful_set["metadata"]["name"]
        if app == "kfp":
            # Istio's injection webhook takes pods labelled so in namespaces without
            # istio-injection (charms/istio/src/templates/istiod.yaml.j2).
            assert labels["sidecar.istio.io/inject"] == "true"
        else:
            assert "sidecar.istio.io/inject" not in labels, app
    assert shared_model.statuses["kfp/0"].name == "active"
