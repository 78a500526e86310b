"""What the kfp charm renders for a run, and what Argo and the KFP backend make of it.

No KFP SDK here (the workload tests use this module too): the charm's own
modules render the objects (`charms/kfp/src`), and the functions below
redo, in Python, the few steps of the released Go code that decide where a
step's pod runs and where its artifacts go. Each says where it was read:

- KFP 2.4.1 (kubeflow/pipelines tag 2.4.1), the v2 driver:
  backend/src/v2/driver/driver.go `initPodSpecPatch` (the accelerator
  becomes a limit named as given, on the container `main`) and
  `extendPodSpecPatch` (the kubernetes platform spec's node selector
  replaces the pod's `nodeSelector` in the patch; tolerations only when the
  step sets some); the output URIs: driver.go `provisionOutputs` and
  backend/src/v2/metadata/client.go `GenerateOutputURI` / `GetPipeline`
  (`<root>/<pipeline name>/<run id>` is the run's root, each output
  `<run root>/<task name>/<uuid>/<output name>`); the root is the run's own,
  else the `kfp-launcher` ConfigMap's `defaultPipelineRoot` (driver.go
  `RootDAG`, backend/src/v2/config/env.go).
- Argo Workflows v3.4.17 (argoproj/argo-workflows tag v3.4.17): the
  controller's `workflowDefaults` go under the Workflow, whose own fields
  win (workflow/util/merge.go `MergeTo`); a pod takes `nodeSelector` and
  `tolerations` from its template, else from the Workflow's spec
  (workflow/controller/workflowpod.go `addSchedulingConstraints`), then the
  template's `podSpecPatch` is applied as a strategic merge patch of a
  PodSpec (workflowpod.go, `strategicpatch.StrategicMergePatch(...,
  apiv1.PodSpec{})`); archived logs go to `<keyFormat>/<container>.log`
  (workflow/executor/executor.go `saveContainerLogs`,
  `saveArtifactFromFile`).
- The strategic merge of a PodSpec (kubernetes/api v0.24.3, the version
  Argo v3.4.17 builds with, core/v1/types.go): maps (`nodeSelector`,
  `resources.limits`) merge key by key; `containers`, `initContainers`,
  `volumes` and `env` merge by `name`, `volumeMounts` by `mountPath`; a list
  without a patch strategy (`tolerations`) is replaced whole.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KFP_SRC = ROOT / "charms" / "kfp" / "src"
if str(KFP_SRC) not in sys.path:
    sys.path.insert(0, str(KFP_SRC))

import kfp_cluster  # noqa: E402
import kfp_config  # noqa: E402
import kfp_profiles  # noqa: E402
import kfp_workloads  # noqa: E402

from kubeflow_charms.kubernetes import render  # noqa: E402

AKS_OVERLAY = ROOT / "bundle" / "overlays" / "aks.yaml"
# The placement bundle/overlays/aks.yaml describes for pipeline steps (its
# comments name the pools): used when the overlay sets no kfp options yet.
AKS_DEFAULTS = {
    "default-node-selector": json.dumps({"kubeflow.org/pool": "cpu"}),
    "default-tolerations": json.dumps(
        [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    ),
}
MAIN_CONTAINER = "main"  # Argo's user container; the driver patches it by that name
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
}


# --- the charm's view ------------------------------------------------------------


def config_from_options(options: dict[str, Any]) -> kfp_config.KfpConfig:
    """The charm's typed config from juju option names (unknown options are an error)."""
    fields = {f.name for f in dataclasses.fields(kfp_config.KfpConfig)}
    kwargs = {name.replace("-", "_"): value for name, value in options.items()}
    unknown = sorted(set(kwargs) - fields)
    assert not unknown, f"not options of the kfp charm: {unknown}"
    return kfp_config.KfpConfig(**kwargs)


def aks_options() -> dict[str, Any]:
    """The kfp options of the AKS overlay, or the placement its comments describe."""
    overlay = yaml.safe_load(AKS_OVERLAY.read_text())
    options = ((overlay.get("applications") or {}).get("kfp") or {}).get("options") or {}
    placement = {k: v for k, v in options.items() if k in AKS_DEFAULTS}
    return placement or dict(AKS_DEFAULTS)


def object_store(
    host: str = "minio.kubeflow.svc.cluster.local",
    port: int = 9000,
    *,
    access_key: str = "kfp-app-key",
    secret_key: str = "kfp-app-secret",  # noqa: S107 - a test value
) -> kfp_workloads.ObjectStore:
    """An object store as the object-storage relation hands it over (plain HTTP)."""
    return kfp_workloads.ObjectStore(
        host=host,
        port=port,
        secure=False,
        region="",
        access_key=access_key,
        secret_key=secret_key,
    )


def argo_config(
    config: kfp_config.KfpConfig, store: kfp_workloads.ObjectStore, namespace: str = "kubeflow"
) -> dict[str, Any]:
    """Argo's ConfigMap as the charm renders it, each data key parsed as Argo parses it."""
    values = kfp_cluster.context(config, app="kfp", namespace=namespace, store=store)
    (template,) = kfp_cluster.SCOPES["argo"][0]
    (configmap,) = list(yaml.safe_load_all(render(kfp_cluster.MANIFESTS, [template], values)))
    assert configmap["kind"] == "ConfigMap"
    return {key: yaml.safe_load(value) for key, value in configmap["data"].items()}


def launcher_config(
    config: kfp_config.KfpConfig, store: kfp_workloads.ObjectStore, namespace: str
) -> dict[str, Any]:
    """The `kfp-launcher` ConfigMap of one profile, as the charm hands it to the dispatcher."""
    configmap = kfp_profiles.launcher_config_map(config, store, namespace)
    assert configmap["metadata"] == {"name": "kfp-launcher", "namespace": namespace}
    return configmap["data"]


# --- Argo ----------------------------------------------------------------------------


def strategic_merge(original: Any, patch: Any) -> Any:
    """A strategic merge patch of a PodSpec (the parts a pod spec patch uses)."""
    if not isinstance(original, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(original)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in MERGE_KEYS and isinstance(value, list):
            merged[key] = _merge_list(merged.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_list(original: list, patch: list, key: str) -> list:
    merged = copy.deepcopy(original)
    for item in patch:
        match = next((i for i, o in enumerate(merged) if o.get(key) == item.get(key)), None)
        if match is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[match] = strategic_merge(merged[match], item)
    return merged


def workflow_spec(defaults: dict[str, Any] | None, own_spec: dict[str, Any]) -> dict[str, Any]:
    """The Workflow's spec after the controller's workflowDefaults (the Workflow's own win)."""
    return strategic_merge((defaults or {}).get("spec") or {}, own_spec)


def step_pod_spec(wf_spec: dict[str, Any], pod_spec_patch: dict[str, Any]) -> dict[str, Any]:
    """A step's pod spec: the Workflow's scheduling constraints, then the driver's patch.

    KFP's executor template sets no nodeSelector or tolerations of its own
    (backend/src/v2/compiler/argocompiler/container.go at 2.4.1), so the
    Workflow's apply.
    """
    pod: dict[str, Any] = {"containers": [{"name": MAIN_CONTAINER}]}
    for field in ("nodeSelector", "tolerations", "affinity"):
        if wf_spec.get(field):
            pod[field] = copy.deepcopy(wf_spec[field])
    return strategic_merge(pod, pod_spec_patch)


def archived_log_key(
    key_format: str,
    *,
    workflow: str,
    namespace: str,
    pod: str,
    created: datetime.datetime,
    container: str = MAIN_CONTAINER,
) -> str:
    """The object key of a pod's archived log, from the artifact repository's keyFormat."""
    values = {
        "workflow.name": workflow,
        "workflow.namespace": namespace,
        "pod.name": pod,
        "workflow.creationTimestamp.Y": created.strftime("%Y"),
        "workflow.creationTimestamp.m": created.strftime("%m"),
        "workflow.creationTimestamp.d": created.strftime("%d"),
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        assert name in values, f"keyFormat uses {{{{{name}}}}}, which this test cannot fill"
        return values[name]

    key = re.sub(r"\{\{([^}]*)\}\}", value, key_format)
    return f"{key.rstrip('/')}/{container}.log"


# --- the KFP driver -------------------------------------------------------------------


def pod_spec_patch(pipeline_spec: dict[str, Any], platform_spec: dict[str, Any], task: str):
    """The driver's pod spec patch for one task of a compiled pipeline (the parts we use)."""
    component = pipeline_spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    executor = pipeline_spec["components"][component]["executorLabel"]
    container = pipeline_spec["deploymentSpec"]["executors"][executor]["container"]
    main: dict[str, Any] = {"name": MAIN_CONTAINER, "image": container["image"]}
    accelerator = (container.get("resources") or {}).get("accelerator") or {}
    kind = accelerator.get("resourceType") or accelerator.get("type") or ""
    count = accelerator.get("resourceCount") or str(accelerator.get("count") or "")
    if kind and count:
        main["resources"] = {"limits": {kind: count}}
    patch: dict[str, Any] = {"containers": [main]}
    kubernetes = (
        (platform_spec.get("platforms") or {}).get("kubernetes", {}).get("deploymentSpec", {})
    )
    executor_config = (kubernetes.get("executors") or {}).get(executor) or {}
    labels = (executor_config.get("nodeSelector") or {}).get("labels")
    if labels is not None:
        patch["nodeSelector"] = dict(labels)
    tolerations = executor_config.get("tolerations")
    if tolerations:
        patch["tolerations"] = [dict(t) for t in tolerations]
    return patch


def pipeline_root(pipeline_spec: dict[str, Any] | None, launcher: dict[str, str]) -> str:
    """The run's pipeline root: the spec's own if it has one, else the profile's default."""
    own = (pipeline_spec or {}).get("defaultPipelineRoot")
    return own or launcher["defaultPipelineRoot"]


def output_uri(root: str, pipeline: str, run_id: str, task: str, salt: str, output: str) -> str:
    """Where the launcher writes one output artifact of a task."""
    run_root = f"{root.split('?')[0].rstrip('/')}/{pipeline}/{run_id}"
    return f"{run_root}/{task}/{salt}/{output}"


def bucket_and_key(uri: str) -> tuple[str, str]:
    """An s3:// or minio:// URI's bucket and object key."""
    scheme, sep, rest = uri.partition("://")
    assert sep and scheme in ("minio", "s3"), uri
    bucket, _, key = rest.partition("/")
    return bucket, key
