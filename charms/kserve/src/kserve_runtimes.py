"""The ClusterServingRuntimes and ClusterStorageContainer the charm installs, placed on node pools.

KServe v0.14.1, as Kubeflow 1.10.0 ships it (kubeflow/manifests v1.10.0
apps/kserve/kserve/kserve-cluster-resources.yaml, built from kserve/kserve
v0.14.1 config/runtimes and config/storagecontainers), has ten
ClusterServingRuntimes and the ClusterStorageContainer `default`. Their
names, arguments, environment, formats, protocols, resources and security
contexts are upstream's; each image comes from an option.

Placement: every runtime's pod spec gets the `predictor-node-selector` and
`predictor-tolerations` options; the controller merges a runtime's
nodeSelector, tolerations, affinity, volumes and imagePullSecrets into the
predictor's pod spec, the InferenceService's own fields winning
(kserve v0.14.1 pkg/controller/v1beta1/inferenceservice/utils/utils.go
MergePodSpec). The runtimes whose images are CUDA builds get a twin
`<name>-gpu` with the GPU pool's selector and tolerations and an
`nvidia.com/gpu` limit on `kserve-container`. A twin's formats are not
auto-selected: two runtimes auto-selecting a format at one priority are
refused by KServe's runtime webhook, and a CPU model must not land on a
GPU. An InferenceService asks for a GPU by naming the twin as its runtime.
Upstream's controller swaps in the `-gpu` image tag for a GPU predictor of
`kserve-tensorflow-serving` and `kserve-torchserve` only, by those names
(utils.go UpdateImageTag), so their twins name the `-gpu` image
themselves.

`render` is pure: the typed config in, the objects out; it imports `json`
at most.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

API_VERSION = "serving.kserve.io/v1alpha1"
KIND = "ClusterServingRuntime"
STORAGE_KIND = "ClusterStorageContainer"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER = "kserve-container"
GPU_SUFFIX = "-gpu"
TAG = "v0.14.1"

_RESOURCES = {
    "limits": {"cpu": "1", "memory": "2Gi"},
    "requests": {"cpu": "1", "memory": "2Gi"},
}
_PROMETHEUS_PATH = "prometheus.kserve.io/path"
_PROMETHEUS_PORT = "prometheus.kserve.io/port"


def _security(run_as_user: int | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "runAsNonRoot": True,
    }
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
    return context


def _formats(*items: tuple[str, str, int | None]) -> list[dict[str, Any]]:
    """Supported formats: (name, version, priority); priority None is not auto-selected."""
    out = []
    for name, version, priority in items:
        entry: dict[str, Any] = {"name": name, "version": version}
        if priority is not None:
            entry |= {"autoSelect": True, "priority": priority}
        out.append(entry)
    return out


_SERVER_ARGS = ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"]

# name: image option, default image, container (without image), pod extras, metrics port,
# protocol versions, supported formats.
RUNTIMES: dict[str, dict[str, Any]] = {
    "kserve-huggingfaceserver": {
        "option": "huggingfaceserver-image",
        "image": f"kserve/huggingfaceserver:{TAG}",
        "container": {
            "args": ["--model_name={{.Name}}"],
            "volumeMounts": [{"mountPath": "/dev/shm", "name": "devshm"}],  # noqa: S108
        },
        "pod": {
            "hostIPC": False,
            "volumes": [{"name": "devshm", "emptyDir": {"medium": "Memory"}}],
        },
        "port": "8080",
        "protocols": ["v2", "v1"],
        "formats": _formats(("huggingface", "1", 1)),
    },
    "kserve-lgbserver": {
        "option": "lgbserver-image",
        "image": f"kserve/lgbserver:{TAG}",
        "container": {"args": [*_SERVER_ARGS, "--nthread=1"]},
        "port": "8080",
        "protocols": ["v1", "v2"],
        "formats": _formats(("lightgbm", "3", 1)),
    },
    "kserve-mlserver": {
        "option": "mlserver-image",
        "image": "docker.io/seldonio/mlserver:1.5.0",
        "container": {
            "env": [
                {"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "{{.Labels.modelClass}}"},
                {"name": "MLSERVER_HTTP_PORT", "value": "8080"},
                {"name": "MLSERVER_GRPC_PORT", "value": "9000"},
                {"name": "MODELS_DIR", "value": "/mnt/models"},
            ]
        },
        "port": "8080",
        "protocols": ["v2"],
        "formats": _formats(
            ("sklearn", "0", 2),
            ("sklearn", "1", 2),
            ("xgboost", "1", 2),
            ("xgboost", "2", 2),
            ("lightgbm", "3", 2),
            ("lightgbm", "4", 2),
            ("mlflow", "1", 1),
            ("mlflow", "2", 1),
        ),
    },
    "kserve-paddleserver": {
        "option": "paddleserver-image",
        "image": f"kserve/paddleserver:{TAG}",
        "container": {"args": list(_SERVER_ARGS)},
        "port": "8080",
        "protocols": ["v1", "v2"],
        "formats": _formats(("paddle", "2", 1)),
    },
    "kserve-pmmlserver": {
        "option": "pmmlserver-image",
        "image": f"kserve/pmmlserver:{TAG}",
        "container": {"args": list(_SERVER_ARGS)},
        "port": "8080",
        "protocols": ["v1", "v2"],
        "formats": _formats(("pmml", "3", 1), ("pmml", "4", 1)),
    },
    "kserve-sklearnserver": {
        "option": "sklearnserver-image",
        "image": f"kserve/sklearnserver:{TAG}",
        "container": {"args": list(_SERVER_ARGS)},
        "port": "8080",
        "protocols": ["v1", "v2"],
        "formats": _formats(("sklearn", "1", 1)),
    },
    "kserve-tensorflow-serving": {
        "option": "tensorflow-serving-image",
        "image": "tensorflow/serving:2.6.2",
        "container": {
            "args": [
                "--model_name={{.Name}}",
                "--port=9000",
                "--rest_api_port=8080",
                "--model_base_path=/mnt/models",
                "--rest_api_timeout_in_ms=60000",
            ],
            "command": ["/usr/bin/tensorflow_model_server"],
        },
        "run_as_user": 1000,
        "port": "8080",
        "protocols": ["v1", "grpc-v1"],
        "formats": _formats(("tensorflow", "1", 2), ("tensorflow", "2", 2)),
    },
    "kserve-torchserve": {
        "option": "torchserve-image",
        "image": "pytorch/torchserve-kfs:0.9.0",
        "container": {
            "args": [
                "torchserve",
                "--start",
                "--model-store=/mnt/models/model-store",
                "--ts-config=/mnt/models/config/config.properties",
            ],
            "env": [{"name": "TS_SERVICE_ENVELOPE", "value": "{{.Labels.serviceEnvelope}}"}],
        },
        "run_as_user": 1000,
        "port": "8082",
        "protocols": ["v1", "v2", "grpc-v2"],
        "formats": _formats(("pytorch", "1", 2)),
    },
    "kserve-tritonserver": {
        "option": "tritonserver-image",
        "image": "nvcr.io/nvidia/tritonserver:23.05-py3",
        "container": {
            "args": [
                "tritonserver",
                "--model-store=/mnt/models",
                "--grpc-port=9000",
                "--http-port=8080",
                "--allow-grpc=true",
                "--allow-http=true",
            ]
        },
        "run_as_user": 1000,
        "port": "8002",
        "protocols": ["v2", "grpc-v2"],
        "formats": _formats(
            ("tensorrt", "8", 1),
            ("tensorflow", "1", 1),
            ("tensorflow", "2", 1),
            ("onnx", "1", 1),
            ("pytorch", "1", None),
            ("triton", "2", 1),
        ),
    },
    "kserve-xgbserver": {
        "option": "xgbserver-image",
        "image": f"kserve/xgbserver:{TAG}",
        "container": {"args": [*_SERVER_ARGS, "--nthread=1"]},
        "port": "8080",
        "protocols": ["v1", "v2"],
        "formats": _formats(("xgboost", "1", 1)),
    },
}
# CUDA builds (huggingfaceserver's base is nvidia/cuda, kserve/kserve v0.14.1
# python/huggingface_server.Dockerfile; Triton's is NVIDIA's own), and the two
# whose GPU builds upstream tags `-gpu`.
GPU_RUNTIMES = (
    "kserve-huggingfaceserver",
    "kserve-tensorflow-serving",
    "kserve-torchserve",
    "kserve-tritonserver",
)
GPU_TAGGED = ("kserve-tensorflow-serving", "kserve-torchserve")

STORAGE_INITIALIZER_IMAGE = f"kserve/storage-initializer:{TAG}"
IMAGE_DEFAULTS = {r["option"]: r["image"] for r in RUNTIMES.values()} | {
    "storage-initializer-image": STORAGE_INITIALIZER_IMAGE
}
STORAGE_URI_FORMATS = [
    {"prefix": "gs://"},
    {"prefix": "s3://"},
    {"prefix": "hdfs://"},
    {"prefix": "hf://"},
    {"prefix": "webhdfs://"},
    {"regex": "https://(.+?).blob.core.windows.net/(.+)"},
    {"regex": "https://(.+?).file.core.windows.net/(.+)"},
    {"regex": "https?://(.+)/(.+)"},
]


def gpu_image(name: str, image: str) -> str:
    """The image of a runtime's GPU twin: the `-gpu` tag where upstream's GPU builds have one."""
    if name in GPU_TAGGED and not image.endswith(GPU_SUFFIX):
        return image + GPU_SUFFIX
    return image


def runtime(
    name: str,
    image: str,
    *,
    node_selector: Mapping[str, str],
    tolerations: list[dict[str, Any]],
    gpus: int = 0,
) -> dict[str, Any]:
    """One ClusterServingRuntime: upstream's `name` with this image and placement."""
    known = RUNTIMES[name]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        **copy.deepcopy(known["container"]),
        "resources": copy.deepcopy(_RESOURCES),
        "securityContext": _security(known.get("run_as_user")),
    }
    formats = copy.deepcopy(known["formats"])
    if gpus:
        container["resources"]["limits"][GPU_RESOURCE] = str(gpus)
        formats = [{"name": f["name"], "version": f["version"]} for f in formats]
    spec: dict[str, Any] = {
        "annotations": {_PROMETHEUS_PATH: "/metrics", _PROMETHEUS_PORT: known["port"]},
        "containers": [container],
        "protocolVersions": list(known["protocols"]),
        "supportedModelFormats": formats,
        **copy.deepcopy(known.get("pod", {})),
    }
    if node_selector:
        spec["nodeSelector"] = dict(sorted(node_selector.items()))
    if tolerations:
        spec["tolerations"] = copy.deepcopy(tolerations)
    full = f"{name}{GPU_SUFFIX}" if gpus else name
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": full}, "spec": spec}


def storage_container(image: str) -> dict[str, Any]:
    """The ClusterStorageContainer `default`: the storage initializer for the URIs it reads."""
    return {
        "apiVersion": API_VERSION,
        "kind": STORAGE_KIND,
        "metadata": {"name": "default"},
        "spec": {
            "container": {
                "name": "storage-initializer",
                "image": image,
                "resources": {
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "100m", "memory": "100Mi"},
                },
            },
            "supportedUriFormats": copy.deepcopy(STORAGE_URI_FORMATS),
            "workloadType": "initContainer",
        },
    }


def render(
    images: Mapping[str, str],
    *,
    node_selector: Mapping[str, str],
    tolerations: list[dict[str, Any]],
    gpu_node_selector: Mapping[str, str],
    gpu_tolerations: list[dict[str, Any]],
    gpus: int,
) -> list[dict[str, Any]]:
    """Every runtime (and GPU twin), then the storage container, for these options."""
    out = []
    for name, known in RUNTIMES.items():
        image = images.get(known["option"], known["image"])
        out.append(runtime(name, image, node_selector=node_selector, tolerations=tolerations))
    for name in GPU_RUNTIMES:
        image = gpu_image(name, images.get(RUNTIMES[name]["option"], RUNTIMES[name]["image"]))
        out.append(
            runtime(
                name,
                image,
                node_selector=gpu_node_selector,
                tolerations=gpu_tolerations,
                gpus=gpus,
            )
        )
    out.append(
        storage_container(images.get("storage-initializer-image", STORAGE_INITIALIZER_IMAGE))
    )
    return out
