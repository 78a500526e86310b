"""An InferenceService against the kserve charm: it validates, and its predictor lands on the pool.

The InferenceService is checked against the charm's own CRD with
tests/crd_schema.py, as the API server would. What the v0.14.1 controller
makes of it in RawDeployment mode is modelled compactly below, from
kserve/kserve v0.14.1:

- the runtime: the one the predictor names, else the auto-selected ones
  supporting its format and protocol (v1 by default), highest priority first
  (pkg/apis/serving/v1beta1/predictor_model.go GetSupportingRuntimes,
  RuntimeSupportsModel, sortSupportedRuntimeByPriority; components/predictor.go
  Reconcile);
- the container: the runtime's `kserve-container` with the predictor's
  model container merged over it, args appended, `{{.Name}}` replaced, and
  the `-gpu` tag for a GPU predictor of kserve-tensorflow-serving or
  kserve-torchserve (inferenceservice/utils/utils.go MergeRuntimeContainers,
  ReplacePlaceholders, UpdateImageTag);
- the pod spec: the runtime's nodeSelector, affinity, tolerations, volumes
  and imagePullSecrets, the predictor's pod fields merged over them (a
  strategic merge: maps merge, tolerations are replaced) (utils.go
  MergePodSpec);
- the Deployment `<name>-predictor`, labelled `app: isvc.<name>-predictor`,
  with the storage URI in the annotation the pod mutator reads
  (reconcilers/deployment/deployment_reconciler.go createRawDeployment;
  pkg/constants/constants.go).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from crd_schema import CustomResourceSchema, load_crds
from unit.kserve.helpers import kserve_cluster as cluster
from unit.kserve.helpers import kserve_config

GPU_TAGGED = ("kserve-tensorflow-serving", "kserve-torchserve")  # constants.TFServing, TorchServe
SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"
# The ModelSpec fields that select and feed the runtime; the rest is a container.
MODEL_FIELDS = (
    "modelFormat",
    "runtime",
    "runtimeVersion",
    "protocolVersion",
    "storageUri",
    "storage",
)
# ServingRuntimePodSpec fields MergePodSpec takes from the runtime.
RUNTIME_POD_FIELDS = ("nodeSelector", "affinity", "tolerations", "volumes", "imagePullSecrets")
# PodSpec fields of a predictor (not the component extension's nor the implementations').
PREDICTOR_NOT_POD = (
    "model",
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "canaryTrafficPercent",
    "containerConcurrency",
    "timeout",
    "labels",
    "annotations",
    "logger",
    "batcher",
    "deploymentStrategy",
)


def sklearn_isvc(**predictor: Any) -> dict[str, Any]:
    """An sklearn model in minio, read with the profile's keys, in RawDeployment mode."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "iris",
            "namespace": "alice",
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {
            "predictor": {
                "serviceAccountName": "kserve-models",
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://mlflow/1/0123abcd/artifacts/model",
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                },
            }
            | predictor
        },
    }


def _supports(runtime: dict, model: dict, explicit: bool) -> bool:
    fmt = model["modelFormat"]
    labels = set()
    for f in runtime["spec"].get("supportedModelFormats", []):
        if explicit or f.get("autoSelect"):
            labels |= {f["name"], f"{f['name']}:{f.get('version')}"}
    wanted = fmt["name"] if "version" not in fmt else f"{fmt['name']}:{fmt['version']}"
    return wanted in labels


def select_runtime(isvc: dict, runtimes: list[dict]) -> dict:
    """The ClusterServingRuntime the controller picks for the predictor."""
    model = isvc["spec"]["predictor"]["model"]
    by_name = {r["metadata"]["name"]: r for r in runtimes}
    if "runtime" in model:
        runtime = by_name[model["runtime"]]
        assert _supports(runtime, model, explicit=True)
        return runtime
    protocol = model.get("protocolVersion", "v1")
    candidates = [
        r
        for r in runtimes
        if not r["spec"].get("disabled")
        and _supports(r, model, explicit=False)
        and protocol in r["spec"].get("protocolVersions", [])
    ]

    def priority(r: dict) -> int:
        found = [
            f.get("priority", 0)
            for f in r["spec"]["supportedModelFormats"]
            if f["name"] == model["modelFormat"]["name"] and f.get("autoSelect")
        ]
        return max(found, default=0)

    assert candidates, "no runtime supports the model"
    return sorted(candidates, key=priority, reverse=True)[0]


def _merge_map(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_map(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def predictor_deployment(isvc: dict, runtimes: list[dict]) -> dict:
    """The Deployment the v0.14.1 controller makes for the predictor, in the fields that matter."""
    name = isvc["metadata"]["name"]
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    runtime = select_runtime(isvc, runtimes)
    runtime_name = runtime["metadata"]["name"]
    spec = runtime["spec"]
    base = next(c for c in spec["containers"] if c["name"] == "kserve-container")
    own = {k: v for k, v in model.items() if k not in MODEL_FIELDS}
    container = _merge_map(
        {k: v for k, v in base.items() if k != "args"},
        {k: v for k, v in own.items() if k != "args"},
    )
    container["args"] = [*base.get("args", []), *own.get("args", [])]
    container["args"] = [a.replace("{{.Name}}", name) for a in container["args"]]
    limits = container.get("resources", {}).get("limits", {})
    if "nvidia.com/gpu" in limits and runtime_name in GPU_TAGGED:
        if not container["image"].endswith("-gpu"):
            container["image"] += "-gpu"
    pod = {k: copy.deepcopy(spec[k]) for k in RUNTIME_POD_FIELDS if k in spec}
    for key, value in predictor.items():
        if key in PREDICTOR_NOT_POD or key == "containers":
            continue
        if isinstance(value, dict) and isinstance(pod.get(key), dict):
            pod[key] = _merge_map(pod[key], value)
        else:
            pod[key] = copy.deepcopy(value)
    others = [c for c in spec["containers"] if c["name"] != "kserve-container"]
    pod["containers"] = [container, *others]
    component = f"{name}-predictor"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": component,
            "namespace": isvc["metadata"]["namespace"],
            "labels": {"serving.kserve.io/inferenceservice": name, "component": "predictor"},
            "annotations": {SOURCE_URI: model["storageUri"]},
        },
        "spec": {
            "selector": {"matchLabels": {"app": f"isvc.{component}"}},
            "template": {"metadata": {"labels": {"app": f"isvc.{component}"}}, "spec": pod},
        },
    }


CRDS = load_crds(Path(cluster.CRDS_FILE))
ISVC = CustomResourceSchema(CRDS["inferenceservices.serving.kserve.io"])
CPU_POOL = {"kubeflow.org/pool": "cpu"}
GPU_POOL = {"kubernetes.azure.com/accelerator": "nvidia"}
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
AKS = kserve_config.KServeConfig(
    predictor_node_selector=json.dumps(CPU_POOL),
    gpu_predictor_node_selector=json.dumps(GPU_POOL),
    gpu_predictor_tolerations=json.dumps([GPU_TOLERATION]),
    gpus_per_predictor=1,
)


def _runtimes(config: kserve_config.KServeConfig) -> list[dict]:
    return [d for d in config.runtimes() if d["kind"] == "ClusterServingRuntime"]


def test_the_sklearn_inference_service_validates_against_our_crd():
    stored = ISVC.admit(sklearn_isvc())
    predictor = stored["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "kserve-models"
    assert predictor["model"]["storageUri"].startswith("s3://")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"scaleMetric": "gpu"}, "scaleMetric"),
        ({"minReplicas": "one"}, "minReplicas"),
        ({"model": {"modelFormat": {"version": "1"}}}, "name"),
    ],
)
def test_a_wrong_inference_service_is_refused(change, where):
    with pytest.raises(Exception, match=where):
        ISVC.admit(sklearn_isvc(**change))


def test_every_runtime_validates_against_our_crd():
    schema = CustomResourceSchema(CRDS["clusterservingruntimes.serving.kserve.io"])
    storage = CustomResourceSchema(CRDS["clusterstoragecontainers.serving.kserve.io"])
    for doc in AKS.runtimes():
        (storage if doc["kind"] == "ClusterStorageContainer" else schema).admit(doc)


def test_the_sklearn_predictor_runs_on_the_cpu_pool_with_the_profiles_account():
    isvc = ISVC.admit(sklearn_isvc())
    deployment = predictor_deployment(isvc, _runtimes(AKS))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == CPU_POOL
    assert "tolerations" not in pod
    assert pod["serviceAccountName"] == "kserve-models"
    (container,) = pod["containers"]
    assert container["image"] == "kserve/sklearnserver:v0.14.1"
    assert container["args"][0] == "--model_name=iris"
    # The predictor's own requests win over the runtime's; its limits stay.
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert (
        deployment["metadata"]["annotations"][SOURCE_URI]
        == isvc["spec"]["predictor"]["model"]["storageUri"]
    )


def test_a_predictor_that_names_a_gpu_runtime_lands_on_the_gpu_pool():
    isvc = ISVC.admit(
        sklearn_isvc(
            model={
                "modelFormat": {"name": "pytorch"},
                "runtime": "kserve-torchserve-gpu",
                "storageUri": "s3://models/alice/torch",
            }
        )
    )
    deployment = predictor_deployment(isvc, _runtimes(AKS))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == GPU_POOL
    assert pod["tolerations"] == [GPU_TOLERATION]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == "pytorch/torchserve-kfs:0.9.0-gpu"


def test_a_gpu_runtime_is_never_auto_selected():
    isvc = ISVC.admit(
        sklearn_isvc(model={"modelFormat": {"name": "pytorch"}, "storageUri": "s3://b/m"})
    )
    assert select_runtime(isvc, _runtimes(AKS))["metadata"]["name"] == "kserve-torchserve"


def test_the_predictors_own_placement_wins_as_the_controller_merges_it():
    own = {"kubeflow.org/pool": "big"}
    isvc = ISVC.admit(sklearn_isvc(nodeSelector=own, tolerations=[GPU_TOLERATION]))
    pod = predictor_deployment(isvc, _runtimes(AKS))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == own
    assert pod["tolerations"] == [GPU_TOLERATION]
