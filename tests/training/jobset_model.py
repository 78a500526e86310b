"""A small model of the JobSet Kubeflow Trainer v2.1.0 makes from a TrainJob and its runtime.

Read in kubeflow/trainer v2.1.0 ("T" below), for the torch and plain ML
policies a ClusterTrainingRuntime like torch-distributed has:

- T pkg/runtime/core/trainingruntime.go newRuntimeInfo: the runtime's
  `spec.template` is the JobSet's spec; its labels and annotations, with
  the TrainJob's `spec.labels`/`spec.annotations` over them, go on the
  JobSet. One pod set per replicated Job: its count is the Job template's
  parallelism (1 when unset), or `mlPolicy.numNodes` for the Job labelled
  `trainer.kubeflow.org/trainjob-ancestor-step: trainer` when the runtime
  has an ML policy (T pkg/runtime/runtime.go WithPodSet: at least 1).
- T pkg/runtime/framework/plugins/torch/torch.go EnforceMLPolicy: the
  TrainJob's `trainer.numNodes` replaces that count (as given: no floor);
  `numProcPerNode` is
  the TrainJob's, else the runtime's, else `auto`, and `auto` without a GPU
  in the resources per node (the TrainJob's, else the runtime's `node`
  container's: T pkg/runtime/runtime.go ExtractResourcePerNodeFromRuntime,
  GetNumGPUPerNode counts the first resource named like "gpu") or `cpu`
  becomes the CPUs per node (at least 1; quantities rounded up, as
  Quantity.Value does). When the TrainJob has a `trainer` (even empty), the
  `node` container gets the TrainJob's env, then PET_NNODES,
  PET_NPROC_PER_NODE, PET_NODE_RANK (the Job completion index),
  PET_MASTER_ADDR `<trainjob>-node-0-0.<trainjob>` and PET_MASTER_PORT
  29500, and the container port 29500 (T pkg/constants/constants.go), upserted
  as T pkg/apply/apply.go does: a port replaces the first with the same
  number or the same name, two unnamed ports having the same (nil) name.
  plugins/plainml/plainml.go: without a torch or MPI policy, only the count
  and the env.
- T pkg/runtime/framework/plugins/jobset/jobset.go Build: each replicated
  Job's parallelism and completions are its pod set's count; the pod set's
  env and ports are upserted (by name, by port) into its containers; the
  JobSet is named and namespaced as the TrainJob, owned by it (controller).
  builder.go Initializer: the jobs labelled as the dataset or model
  initializer get `replicas: 1`.
  builder.go Trainer: the trainer Job gets `replicas: 1`; its `node`
  container takes the TrainJob's image, command and args, and
  `resourcesPerNode` replaces the container's resources (limits and
  requests as given); the TrainJob's env is upserted again. Suspend is the
  TrainJob's `spec.suspend`, unset when the TrainJob leaves it unset.

Left out (the model refuses what it does not cover rather than guess):
`podTemplateOverrides` (a strategic merge patch), `initializer`
(dataset/model initializer env and secret refs), the MPI and torchtune
paths (SSH secrets, hostfiles, the launcher Job, torchtune's rewritten
command: a TrainJob whose command is `tune run` is refused),
`numProcPerNode: gpu` arithmetic beyond passing the value on,
elastic policy, pod group policies (coscheduling, Volcano: pod labels and
PodGroups), volumes and volume mounts from plugins, the JobSet webhook's own
defaulting (JobSet v0.10.1 fills in e.g. `successPolicy`, `network`,
`startupPolicy`), and the server-side apply field ownership.
"""

from __future__ import annotations

import copy
import math
from decimal import Decimal, InvalidOperation
from typing import Any

# T pkg/constants/constants.go
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
ANCESTOR_TRAINER = "trainer"
ANCESTOR_INITIALIZERS = ("dataset-initializer", "model-initializer")
TORCHTUNE_ENTRYPOINT = ["tune", "run"]
NODE = "node"
TRAINER_PORT = 29500
COMPLETION_INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
TRAINER_GROUP_VERSION = "trainer.kubeflow.org/v1alpha1"
JOBSET_GROUP_VERSION = "jobset.x-k8s.io/v1alpha2"


class NotModelled(Exception):  # noqa: N818 - the model's limit, named
    """The TrainJob or runtime uses what this model leaves out."""


def _upsert(items: list[dict[str, Any]], item: dict[str, Any], same) -> None:
    """T pkg/apply/apply.go upsert: replace the first item that matches, else append."""
    for i, existing in enumerate(items):
        if same(existing, item):
            items[i] = item
            return
    items.append(item)


def _upsert_env(env: list[dict[str, Any]], *entries: dict[str, Any]) -> None:
    for entry in entries:
        _upsert(env, copy.deepcopy(entry), lambda a, b: a["name"] == b["name"])


def _upsert_port(ports: list[dict[str, Any]], port: dict[str, Any]) -> None:
    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        # byContainerPortOrName: ptr.Equal on both, and two unset names are equal.
        return a.get("containerPort") == b.get("containerPort") or (a.get("name") or None) == (
            b.get("name") or None
        )

    _upsert(ports, port, same)


_SUFFIXES = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
}


def _quantity(value: Any) -> Decimal:
    """A resource quantity's exact value (the suffixes CPU and GPU counts use)."""
    text = str(value).strip()
    number = text.rstrip("kKMGim")
    suffix = text[len(number) :]
    if suffix not in _SUFFIXES:
        raise NotModelled(f"the quantity {text!r}")
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as e:
        raise NotModelled(f"the quantity {text!r}") from e


def _quantity_count(value: Any) -> int:
    """Quantity.Value: the value rounded up to a whole number."""
    return math.ceil(_quantity(value))


def _gpus(resources: dict[str, Any]) -> int:
    def first(resource_list: dict[str, Any]) -> int:
        for name, quantity in resource_list.items():
            if "gpu" in name.lower():
                return _quantity_count(quantity)
        return 0

    gpus = first(resources.get("requests") or {})
    return gpus or first(resources.get("limits") or {})


def _cpus(resources: dict[str, Any]) -> int:
    """torch.go getNumCPUPerNode: the CPU request unless zero, else the limit."""
    request = (resources.get("requests") or {}).get("cpu")
    if request is None or _quantity(request) == 0:
        limit = (resources.get("limits") or {}).get("cpu")
        return _quantity_count(limit) if limit is not None else 0
    return _quantity_count(request)


def _ancestor(job: dict[str, Any]) -> str | None:
    labels = (job["template"].get("metadata") or {}).get("labels") or {}
    return labels.get(ANCESTOR_LABEL)


def _is_trainer(job: dict[str, Any]) -> bool:
    return _ancestor(job) == ANCESTOR_TRAINER


def _node_container(job: dict[str, Any]) -> dict[str, Any] | None:
    containers = job["template"]["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c["name"] == NODE), None)


def _refuse_what_is_left_out(trainjob: dict[str, Any], runtime: dict[str, Any]) -> None:
    spec = trainjob["spec"]
    for field in ("podTemplateOverrides", "initializer"):
        if spec.get(field):
            raise NotModelled(f"the TrainJob sets {field}")
    policy = runtime["spec"].get("mlPolicy") or {}
    for field in ("mpi",):
        if policy.get(field):
            raise NotModelled(f"the runtime's mlPolicy is {field}")
    if (policy.get("torch") or {}).get("elasticPolicy"):
        raise NotModelled("the runtime has an elastic policy")
    if runtime["spec"].get("podGroupPolicy"):
        raise NotModelled("the runtime has a pod group policy")
    if (spec.get("trainer") or {}).get("command") == TORCHTUNE_ENTRYPOINT:
        raise NotModelled("the TrainJob runs torchtune")
    if trainjob["spec"]["runtimeRef"].get("kind", "ClusterTrainingRuntime") != runtime["kind"]:
        raise NotModelled("the TrainJob refers to another kind of runtime")


def _num_proc_per_node(
    trainjob: dict[str, Any], torch_policy: dict[str, Any], resources: dict[str, Any]
) -> str:
    trainer = trainjob["spec"].get("trainer") or {}
    value = trainer.get("numProcPerNode", torch_policy.get("numProcPerNode", "auto"))
    if value == "cpu" or (value == "auto" and _gpus(resources) == 0):
        value = max(1, _cpus(resources))
    return str(value)


def _pod_set_counts(
    jobs: list[dict[str, Any]], policy: dict[str, Any] | None, trainer: dict
) -> list:
    """trainingruntime.go newRuntimeInfo, then the ML policy plugins' numNodes override."""
    counts = []
    for job in jobs:
        count = job["template"]["spec"].get("parallelism", 1)
        if _is_trainer(job) and policy is not None:
            count = policy.get("numNodes", 1)
        count = max(count, 1)  # WithPodSet
        if _is_trainer(job) and trainer.get("numNodes") is not None:
            count = trainer["numNodes"]  # the plugins set it as given
        counts.append(count)
    return counts


def _enforce_torch(
    node: dict[str, Any], trainjob: dict[str, Any], torch: dict[str, Any], count: int
) -> None:
    """torch.go EnforceMLPolicy: the torchrun environment and port of the `node` container."""
    name = trainjob["metadata"]["name"]
    trainer = trainjob["spec"]["trainer"]
    resources = trainer.get("resourcesPerNode")
    if resources is None:
        resources = node.get("resources") or {}
    _upsert_env(
        node.setdefault("env", []),
        {"name": "PET_NNODES", "value": str(count)},
        {"name": "PET_NPROC_PER_NODE", "value": _num_proc_per_node(trainjob, torch, resources)},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_PATH}}},
        {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
        {"name": "PET_MASTER_PORT", "value": str(TRAINER_PORT)},
    )
    _upsert_port(node.setdefault("ports", []), {"containerPort": TRAINER_PORT})


def _build_trainer_job(job: dict[str, Any], trainer: dict[str, Any]) -> None:
    """builder.go Trainer: one replica; image, command, args, resources and env from the job."""
    job["replicas"] = 1
    node = _node_container(job)
    if node is None:
        return
    for field in ("image", "command", "args"):
        if field in trainer:
            node[field] = copy.deepcopy(trainer[field])
    resources = trainer.get("resourcesPerNode") or {}
    if resources.get("limits") is not None or resources.get("requests") is not None:
        node["resources"] = {
            k: dict(resources[k]) for k in ("limits", "requests") if resources.get(k) is not None
        }
    _upsert_env(node.setdefault("env", []), *trainer.get("env", []))


def trainer_jobset(trainjob: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    """The JobSet Trainer v2.1.0 would apply for `trainjob` on `runtime` (both as stored)."""
    _refuse_what_is_left_out(trainjob, runtime)
    name = trainjob["metadata"]["name"]
    spec = trainjob["spec"]
    has_trainer = spec.get("trainer") is not None  # Go: a non-nil pointer, even if empty
    trainer = spec.get("trainer") or {}
    ml_policy = runtime["spec"].get("mlPolicy")
    policy = ml_policy or {}
    template = copy.deepcopy(runtime["spec"]["template"])
    jobset_spec = template.get("spec") or {}
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {}) | (spec.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {}) | (spec.get("annotations") or {})

    jobs = jobset_spec["replicatedJobs"]
    counts = _pod_set_counts(jobs, ml_policy, trainer)
    for job, count in zip(jobs, counts, strict=True):
        node = _node_container(job)
        if _is_trainer(job) and has_trainer and node is not None:
            _upsert_env(node.setdefault("env", []), *trainer.get("env", []))
            if "torch" in policy:
                _enforce_torch(node, trainjob, policy["torch"], count)
        job["template"]["spec"]["parallelism"] = count
        job["template"]["spec"]["completions"] = count
        if _ancestor(job) in ANCESTOR_INITIALIZERS:
            job["replicas"] = 1
        if _is_trainer(job):
            _build_trainer_job(job, trainer)

    if spec.get("suspend") is not None:
        jobset_spec["suspend"] = spec["suspend"]
    else:
        jobset_spec.pop("suspend", None)  # builder.go Suspend sets the TrainJob's, even nil
    metadata: dict[str, Any] = {"name": name, "namespace": trainjob["metadata"].get("namespace")}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    metadata["ownerReferences"] = [
        {
            "apiVersion": TRAINER_GROUP_VERSION,
            "kind": "TrainJob",
            "name": name,
            "uid": trainjob["metadata"].get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {
        "apiVersion": JOBSET_GROUP_VERSION,
        "kind": "JobSet",
        "metadata": metadata,
        "spec": jobset_spec,
    }
