"""The ClusterTrainingRuntimes the charm installs, placed on the node pools its options name.

Kubeflow Trainer v2.1.0 ships six ClusterTrainingRuntimes (its
`manifests/base/runtimes`): `torch-distributed`, `deepspeed-distributed`,
`mlx-distributed` and the LLM fine-tuning runtimes `torchtune-llama3.2-1b`,
`torchtune-llama3.2-3b` and `torchtune-qwen2.5-1.5b`, which first run a
dataset and a model initializer. There is no JAX runtime in v2.1.0. Their
names, `trainer.kubeflow.org/framework` labels (the SDK lists runtimes by
it), policies, commands and replicated jobs are upstream's; every image
comes from an option.

Placement: each runtime's pods get a node selector and tolerations, and its
trainer containers (`node`, in the `node` and `launcher` jobs) a GPU limit,
from up to three placements, the most specific that sets a field winning:
`runtime-placement["<runtime>"]`, then `gpu-placement` (for the runtimes
that train on GPUs), then `runtime-placement["*"]`. Trainer reads the GPUs
per node from the `node` container's resources (pkg/runtime/runtime.go
ExtractResourcePerNodeFromRuntime), and torch's `numProcPerNode: auto`
then starts one process per GPU. `arm64-runtime`, when set, adds a CPU
runtime `torch-distributed-arm64` on the arm64 nodes it places.

`render_runtimes` is pure: the raw option strings in, the objects out.
It imports only `json` (and PyYAML for a placement that is not JSON).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from kubeflow_charms.placement import check_node_selector, check_tolerations

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "ClusterTrainingRuntime"
FRAMEWORK_LABEL = "trainer.kubeflow.org/framework"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
GPU_RESOURCE = "nvidia.com/gpu"
ARM64_RUNTIME = "torch-distributed-arm64"
ARCH_LABEL = "kubernetes.io/arch"
MAX_GPUS = 64
TRAINER_CONTAINER = "node"
TRAINER_JOBS = ("node", "launcher")

# Image options and their defaults: the tags the release's manifests name.
TRAINER_TAG = "v2.1.0"
TORCH_IMAGE = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"
IMAGE_DEFAULTS = {
    "torch-image": TORCH_IMAGE,
    "deepspeed-image": f"ghcr.io/kubeflow/trainer/deepspeed-runtime:{TRAINER_TAG}",
    "mlx-image": f"ghcr.io/kubeflow/trainer/mlx-runtime:{TRAINER_TAG}",
    "torchtune-image": f"ghcr.io/kubeflow/trainer/torchtune-trainer:{TRAINER_TAG}",
    "dataset-initializer-image": f"ghcr.io/kubeflow/trainer/dataset-initializer:{TRAINER_TAG}",
    "model-initializer-image": f"ghcr.io/kubeflow/trainer/model-initializer:{TRAINER_TAG}",
    # The torch image is published for arm64 too: the release builds its torchtune
    # image for linux/arm64 from it (.github/workflows/build-and-push-images.yaml).
    "arm64-torch-image": TORCH_IMAGE,
}
PLACEMENT_OPTIONS = ("runtime-placement", "gpu-placement", "arm64-runtime")
OPTIONS = (*IMAGE_DEFAULTS, *PLACEMENT_OPTIONS)

# The LLM fine-tuning runtimes: name, model, torchtune config, tokenizer arguments.
TORCHTUNE = (
    (
        "torchtune-llama3.2-1b",
        "hf://meta-llama/Llama-3.2-1B-Instruct",
        "llama3_2/1B_full",
        ["tokenizer.path=/workspace/model/original/tokenizer.model"],
    ),
    (
        "torchtune-llama3.2-3b",
        "hf://meta-llama/Llama-3.2-3B-Instruct",
        "llama3_2/3B_full",
        ["tokenizer.path=/workspace/model/original/tokenizer.model"],
    ),
    (
        "torchtune-qwen2.5-1.5b",
        "hf://Qwen/Qwen2.5-1.5B-Instruct",
        "qwen2_5/1.5B_full",
        [
            "tokenizer.path=/workspace/model/vocab.json",
            "tokenizer.merges_file=/workspace/model/merges.txt",
        ],
    ),
)
TORCHTUNE_DATASET = "hf://tatsu-lab/alpaca"
TORCHTUNE_GPUS = 2  # upstream's limit on each torchtune trainer
SHIPPED = (
    "torch-distributed",
    "deepspeed-distributed",
    "mlx-distributed",
    *(name for name, *_ in TORCHTUNE),
)
# The runtimes whose images are CUDA builds meant to train on GPUs: gpu-placement's.
GPU_RUNTIMES = SHIPPED

_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*[a-z0-9]$")
_PLACEMENT_KEYS = ("node-selector", "tolerations", "gpus-per-node")


class InvalidOptionError(ValueError):
    """An option's value is wrong; the message starts with the option's name."""


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a runtime's pods go; None: this placement leaves that field to another."""

    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    gpus_per_node: int | None = None

    def over(self, other: Placement) -> Placement:
        """The placement with its unset fields taken from `other`."""
        return Placement(
            node_selector=other.node_selector
            if self.node_selector is None
            else self.node_selector,
            tolerations=other.tolerations if self.tolerations is None else self.tolerations,
            gpus_per_node=other.gpus_per_node
            if self.gpus_per_node is None
            else self.gpus_per_node,
        )


# --- parsing ----------------------------------------------------------------------------


def _load(text: str) -> Any:
    """JSON, else YAML (a superset) for the operator who writes that."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError("is neither JSON nor YAML") from None


def _placement(where: str, data: Any) -> Placement:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a placement is an object of {', '.join(_PLACEMENT_KEYS)}")
    unknown = set(data) - set(_PLACEMENT_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    selector, tolerations = data.get("node-selector"), data.get("tolerations")
    try:
        selector = None if selector is None else check_node_selector(selector)
    except ValueError as e:
        raise ValueError(f"{where}.node-selector: {e}") from None
    try:
        tolerations = None if tolerations is None else check_tolerations(tolerations)
    except ValueError as e:
        raise ValueError(f"{where}.tolerations: {e}") from None
    gpus = data.get("gpus-per-node")
    if gpus is not None and (
        isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= MAX_GPUS
    ):
        raise ValueError(f"{where}.gpus-per-node: an integer from 0 to {MAX_GPUS}")
    return Placement(
        node_selector=selector,
        tolerations=tolerations,
        gpus_per_node=gpus,
    )


def parse_placement(option: str, text: str) -> Placement | None:
    """One placement option (`gpu-placement`, `arm64-runtime`); None when empty."""
    if not text.strip():
        return None
    try:
        return _placement("", _load(text))
    except ValueError as e:
        raise InvalidOptionError(f"{option}{_join(str(e))}") from None


def parse_runtime_placement(text: str) -> dict[str, Placement]:
    """`runtime-placement`: placements by runtime name, `*` for every runtime."""
    option = "runtime-placement"
    if not text.strip():
        return {}
    try:
        data = _load(text)
        if not isinstance(data, dict):
            raise ValueError(" must be an object of placements by runtime name (or '*')")
        known = {"*", *SHIPPED, ARM64_RUNTIME}
        out = {}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f": {name!r} is not a runtime; one of {', '.join(sorted(known))}")
            out[name] = _placement(f'["{name}"]', value)
        return out
    except ValueError as e:
        raise InvalidOptionError(f"{option}{_join(str(e))}") from None


def _join(message: str) -> str:
    return message if message.startswith((":", " ", "[", ".")) else f": {message}"


def parse_image(option: str, text: str) -> str:
    """An image reference option."""
    image = text.strip()
    if not image or not _IMAGE.match(image):
        raise InvalidOptionError(f"{option}: {text!r} is not an image reference")
    return image


def validate(options: Mapping[str, str]) -> None:
    """Check every option `render_runtimes` reads; InvalidOptionError names the first wrong."""
    for option in IMAGE_DEFAULTS:
        parse_image(option, options.get(option, IMAGE_DEFAULTS[option]))
    parse_runtime_placement(options.get("runtime-placement", ""))
    for option in ("gpu-placement", "arm64-runtime"):
        parse_placement(option, options.get(option, ""))


# --- the runtimes -----------------------------------------------------------------------


def _runtime(name: str, framework: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "labels": {FRAMEWORK_LABEL: framework}},
        "spec": spec,
    }


def _job(
    name: str, containers: list[dict[str, Any]], *, ancestor: str | None, **extra: Any
) -> dict[str, Any]:
    template: dict[str, Any] = {"spec": {"template": {"spec": {"containers": containers}}}}
    if ancestor is not None:
        template = {"metadata": {"labels": {ANCESTOR_LABEL: ancestor}}, **template}
    return {"name": name, **extra, "template": template}


def _torch(name: str, image: str) -> dict[str, Any]:
    return _runtime(
        name,
        "torch",
        {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        _job(
                            "node",
                            [{"name": TRAINER_CONTAINER, "image": image}],
                            ancestor="trainer",
                        )
                    ]
                }
            },
        },
    )


def _mpi(name: str, framework: str, image: str) -> dict[str, Any]:
    as_mpiuser = {"runAsUser": 1000}
    return _runtime(
        name,
        framework,
        {
            "mlPolicy": {
                "numNodes": 1,
                "mpi": {
                    "numProcPerNode": 1,
                    "mpiImplementation": "OpenMPI",
                    "sshAuthMountPath": "/home/mpiuser/.ssh",
                    "runLauncherAsNode": True,
                },
            },
            "template": {
                "spec": {
                    "network": {"publishNotReadyAddresses": True},
                    "successPolicy": {"operator": "All", "targetReplicatedJobs": ["launcher"]},
                    "replicatedJobs": [
                        _job(
                            "launcher",
                            [
                                {
                                    "name": TRAINER_CONTAINER,
                                    "image": image,
                                    "securityContext": dict(as_mpiuser),
                                }
                            ],
                            ancestor="trainer",
                        ),
                        _job(
                            "node",
                            [
                                {
                                    "name": TRAINER_CONTAINER,
                                    "image": image,
                                    "securityContext": dict(as_mpiuser),
                                    "command": ["/usr/sbin/sshd"],
                                    "args": ["-De", "-f", "/home/mpiuser/.sshd_config"],
                                    "readinessProbe": {
                                        "tcpSocket": {"port": 2222},
                                        "initialDelaySeconds": 5,
                                    },
                                }
                            ],
                            ancestor=None,
                        ),
                    ],
                }
            },
        },
    )


def _torchtune(
    name: str, model: str, config: str, tokenizer: list[str], images: Mapping[str, str]
) -> dict[str, Any]:
    mount = [{"name": "initializer", "mountPath": "/workspace"}]
    volumes = [{"name": "initializer", "persistentVolumeClaim": {"claimName": name}}]

    def initializer(job: str, image: str, uri: str) -> dict[str, Any]:
        entry = _job(
            job,
            [
                {
                    "name": job,
                    "image": image,
                    "env": [{"name": "STORAGE_URI", "value": uri}],
                    "volumeMounts": copy.deepcopy(mount),
                }
            ],
            ancestor=job,
        )
        entry["template"]["spec"]["template"]["spec"]["volumes"] = copy.deepcopy(volumes)
        return entry

    command = [
        "tune",
        "run",
        "--rdzv_endpoint=localhost:29500",
        "full_finetune_distributed",
        "--config",
        config,
        "dataset=torchtune.datasets.instruct_dataset",
        "dataset.source=parquet",
        "dataset.data_dir=/workspace/dataset/data",
        "output_dir=/workspace/output",
        *tokenizer,
        "checkpointer.checkpoint_dir=/workspace/model",
    ]
    trainer = _job(
        "node",
        [
            {
                "name": TRAINER_CONTAINER,
                "image": images["torchtune-image"],
                "command": command,
                "resources": {"limits": {GPU_RESOURCE: TORCHTUNE_GPUS}},
                "volumeMounts": copy.deepcopy(mount),
            }
        ],
        ancestor="trainer",
        dependsOn=[
            {"name": "dataset-initializer", "status": "Complete"},
            {"name": "model-initializer", "status": "Complete"},
        ],
    )
    trainer["template"]["spec"]["template"]["spec"]["volumes"] = copy.deepcopy(volumes)
    return _runtime(
        name,
        "torchtune",
        {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        initializer(
                            "dataset-initializer",
                            images["dataset-initializer-image"],
                            TORCHTUNE_DATASET,
                        ),
                        initializer("model-initializer", images["model-initializer-image"], model),
                        trainer,
                    ]
                }
            },
        },
    )


def _place(runtime: dict[str, Any], placement: Placement) -> None:
    """Put a placement into every pod template of a runtime (GPUs: its trainer containers)."""
    for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        pod = job["template"]["spec"]["template"]["spec"]
        if placement.node_selector:
            pod["nodeSelector"] = dict(sorted(placement.node_selector.items()))
        if placement.tolerations:
            pod["tolerations"] = copy.deepcopy(placement.tolerations)
        if placement.gpus_per_node is None or job["name"] not in TRAINER_JOBS:
            continue
        for container in pod["containers"]:
            if container["name"] != TRAINER_CONTAINER:
                continue
            resources = container.setdefault("resources", {})
            limits = resources.setdefault("limits", {})
            if placement.gpus_per_node:
                limits[GPU_RESOURCE] = placement.gpus_per_node
            else:
                limits.pop(GPU_RESOURCE, None)
            if not limits:
                del resources["limits"]
            if not resources:
                del container["resources"]


def render_runtimes(options: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ClusterTrainingRuntimes for these raw option strings (missing keys: defaults).

    Raises InvalidOptionError, naming the option, when one is wrong.
    """
    validate(options)
    images = {k: parse_image(k, options.get(k, d)) for k, d in IMAGE_DEFAULTS.items()}
    by_name = parse_runtime_placement(options.get("runtime-placement", ""))
    gpu = parse_placement("gpu-placement", options.get("gpu-placement", "")) or Placement()
    arm64 = parse_placement("arm64-runtime", options.get("arm64-runtime", ""))
    everywhere = by_name.get("*", Placement())

    runtimes = [
        _torch("torch-distributed", images["torch-image"]),
        _mpi("deepspeed-distributed", "deepspeed", images["deepspeed-image"]),
        _mpi("mlx-distributed", "mlx", images["mlx-image"]),
        *(_torchtune(name, m, c, t, images) for name, m, c, t in TORCHTUNE),
    ]
    for runtime in runtimes:
        name = runtime["metadata"]["name"]
        base = gpu.over(everywhere) if name in GPU_RUNTIMES else everywhere
        _place(runtime, by_name.get(name, Placement()).over(base))
    if arm64 is not None:
        runtime = _torch(ARM64_RUNTIME, images["arm64-torch-image"])
        own = Placement(node_selector=arm64.node_selector, tolerations=arm64.tolerations)
        placed = by_name.get(ARM64_RUNTIME, Placement()).over(own).over(everywhere)
        # A CPU runtime on arm64 nodes: what the placement selects, or the
        # arch label when it selects nothing. A pool label of one's own is the
        # way on autoscaled pools: the Azure cluster autoscaler (before 1.36.0)
        # labels the template node of an empty pool kubernetes.io/arch=amd64
        # whatever its VM size (kubernetes/autoscaler#9322), so an arch
        # selector would never scale an empty arm64 pool up.
        selector = placed.node_selector or {ARCH_LABEL: "arm64"}
        _place(runtime, dataclasses.replace(placed, node_selector=selector))
        runtimes.append(runtime)
    return runtimes
