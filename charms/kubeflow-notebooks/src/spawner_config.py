"""The Jupyter web app's spawner form, from the charm's typed config.

The web app reads `spawner_ui_config.yaml`: under `spawnerFormDefaults`,
each field of the "new notebook" form has its default `value` (and, for
some, the `options` offered). This module checks the charm's options
(`NotebooksConfig`) and builds that document.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The example notebook server images the Kubeflow 1.10.0 release publishes and
# offers by default (its web app's spawner config), and the same GPU vendors.
IMAGE_TAG = "v1.10.0"
_SERVERS = "ghcr.io/kubeflow/kubeflow/notebook-servers"
DEFAULT_JUPYTER_IMAGES = [
    f"{_SERVERS}/{name}:{IMAGE_TAG}"
    for name in (
        "jupyter-scipy",
        "jupyter-pytorch-full",
        "jupyter-pytorch-cuda-full",
        "jupyter-pytorch-gaudi-full",
        "jupyter-tensorflow-full",
        "jupyter-tensorflow-cuda-full",
    )
]
DEFAULT_VSCODE_IMAGES = [f"{_SERVERS}/codeserver-python:{IMAGE_TAG}"]
DEFAULT_RSTUDIO_IMAGES = [f"{_SERVERS}/rstudio-tidyverse:{IMAGE_TAG}"]
DEFAULT_GPU_VENDORS = [
    {"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"},
    {"limitsKey": "amd.com/gpu", "uiName": "AMD"},
    {"limitsKey": "habana.ai/gaudi", "uiName": "Intel Gaudi"},
]
GPU_COUNTS = (0, 1, 2, 4, 8)  # what the form offers; 0 is "none"
WORKSPACE_MOUNT = "/home/jovyan"

_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_RESOURCE_NAME = re.compile(
    r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


# --- the items of the list options ----------------------------------------------------


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class GpuVendor(_Item):
    """A GPU vendor the form offers: the resource limit it sets and its name in the form."""

    limits_key: str = Field(alias="limitsKey", pattern=_RESOURCE_NAME.pattern)
    ui_name: str = Field(alias="uiName", min_length=1, max_length=64)


class _Affinity(_Item):
    node_affinity: dict[str, Any] | None = Field(None, alias="nodeAffinity")
    pod_affinity: dict[str, Any] | None = Field(None, alias="podAffinity")
    pod_anti_affinity: dict[str, Any] | None = Field(None, alias="podAntiAffinity")


class AffinityOption(_Item):
    """A choice of node (or pod) affinity the form offers."""

    config_key: str = Field(alias="configKey", pattern=_KEY.pattern)
    display_name: str = Field(alias="displayName", min_length=1, max_length=128)
    affinity: _Affinity


class Toleration(_Item):
    """One toleration of a pod, as Kubernetes writes it."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = Field(None, alias="tolerationSeconds")


class TolerationGroup(_Item):
    """A named set of tolerations the form offers."""

    group_key: str = Field(alias="groupKey", pattern=_KEY.pattern)
    display_name: str = Field(alias="displayName", min_length=1, max_length=128)
    tolerations: list[Toleration] = Field(min_length=1)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(by_alias=True, exclude_none=True) for i in items]


# --- parsing ---------------------------------------------------------------------------


def _yaml_list(option: str, text: str) -> list[Any]:
    if not text.strip():
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"{option}: must be a YAML list") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{option}: must be a YAML list")
    return data


def parse_images(option: str, text: str) -> list[str]:
    """A non-empty YAML list of image references, the first the default."""
    images = _yaml_list(option, text)
    if not images:
        raise ValueError(f"{option}: must list at least one image (the first is the default)")
    for image in images:
        if not isinstance(image, str) or not _IMAGE.match(image):
            raise ValueError(f"{option}: {image!r} is not an image reference")
    if len(set(images)) != len(images):
        raise ValueError(f"{option}: lists an image twice")
    return images


def _parse_items(option: str, text: str, model: type[_Item], key: str) -> list[Any]:
    raw = _yaml_list(option, text)
    items = []
    for index, item in enumerate(raw):
        try:
            items.append(model.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in (index, *first["loc"]))
            raise ValueError(f"{option}: item {where}: {first['msg']}") from None
    keys = [getattr(i, key) for i in items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{option}: two items have the same {model.model_fields[key].alias}")
    return items


def parse_gpu_vendors(text: str) -> list[GpuVendor]:
    """The `gpu-vendors` option."""
    return _parse_items("gpu-vendors", text, GpuVendor, "limits_key")


def parse_affinity_options(text: str) -> list[AffinityOption]:
    """The `affinity-options` option."""
    return _parse_items("affinity-options", text, AffinityOption, "config_key")


def parse_toleration_groups(text: str) -> list[TolerationGroup]:
    """The `toleration-groups` option."""
    groups = _parse_items("toleration-groups", text, TolerationGroup, "group_key")
    for group in groups:
        for t in group.tolerations:
            if t.operator == "Exists" and t.value:
                raise ValueError(
                    f"toleration-groups: {group.group_key}: an Exists toleration has no value"
                )
            if not t.key and t.operator != "Exists":
                raise ValueError(
                    f"toleration-groups: {group.group_key}: a toleration without a key "
                    "must use operator Exists"
                )
    return groups


def _quantity(option: str, value: str, *, cpu: bool = False) -> str:
    if not _QUANTITY.match(value) or float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
        example = "0.5 or 500m" if cpu else "5Gi"
        raise ValueError(f"{option}: must be a positive Kubernetes quantity like {example}")
    if value.endswith("m") and not cpu:
        raise ValueError(f"{option}: must be a quantity of bytes like 5Gi, not {value!r}")
    return value


def _limit_factor(option: str, value: str) -> str:
    if value == "none":
        return value
    try:
        factor = float(value)
    except ValueError:
        factor = 0.0
    if factor < 1:
        raise ValueError(f"{option}: must be a number of at least 1 (e.g. 1.2), or none")
    return value


# --- the config class ------------------------------------------------------------------


def _default_list(items: list[Any]) -> str:
    return yaml.safe_dump(items, sort_keys=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotebooksConfig:
    """The charm's config options, validated; errors name the option."""

    jupyter_images: str = _default_list(DEFAULT_JUPYTER_IMAGES)
    vscode_images: str = _default_list(DEFAULT_VSCODE_IMAGES)
    rstudio_images: str = _default_list(DEFAULT_RSTUDIO_IMAGES)
    workspace_volume_size: str = "5Gi"
    storage_class: str = ""
    cpu_default: str = "0.5"
    cpu_limit_factor: str = "1.2"
    memory_default: str = "1Gi"
    memory_limit_factor: str = "1.2"
    gpu_vendors: str = _default_list(DEFAULT_GPU_VENDORS)
    gpu_default_count: int = 0
    affinity_options: str = ""
    toleration_groups: str = ""
    culling_idle_minutes: int = 0

    def __post_init__(self):
        self.images("jupyter")
        self.images("vscode")
        self.images("rstudio")
        _quantity("workspace-volume-size", self.workspace_volume_size)
        if self.storage_class and not _DNS_SUBDOMAIN.match(self.storage_class):
            raise ValueError("storage-class: must be a StorageClass name, or empty")
        _quantity("cpu-default", self.cpu_default, cpu=True)
        _limit_factor("cpu-limit-factor", self.cpu_limit_factor)
        _quantity("memory-default", self.memory_default)
        _limit_factor("memory-limit-factor", self.memory_limit_factor)
        vendors = parse_gpu_vendors(self.gpu_vendors)
        if self.gpu_default_count not in GPU_COUNTS:
            raise ValueError("gpu-default-count: must be 0 (none), 1, 2, 4 or 8")
        if self.gpu_default_count and not vendors:
            raise ValueError("gpu-default-count: needs a vendor in gpu-vendors")
        parse_affinity_options(self.affinity_options)
        parse_toleration_groups(self.toleration_groups)
        if not 0 <= self.culling_idle_minutes <= 525600:
            raise ValueError("culling-idle-minutes: must be 0 (off) to 525600 (a year)")

    def images(self, kind: Literal["jupyter", "vscode", "rstudio"]) -> list[str]:
        """The images offered for one kind of server, the default first."""
        text = {
            "jupyter": self.jupyter_images,
            "vscode": self.vscode_images,
            "rstudio": self.rstudio_images,
        }[kind]
        return parse_images(f"{kind}-images", text)


# --- the web app's document -------------------------------------------------------------


def spawner_defaults(config: NotebooksConfig) -> dict[str, Any]:
    """The `spawner_ui_config.yaml` document the web app reads."""
    jupyter, vscode, rstudio = (config.images(k) for k in ("jupyter", "vscode", "rstudio"))
    vendors = parse_gpu_vendors(config.gpu_vendors)
    affinities = parse_affinity_options(config.affinity_options)
    tolerations = parse_toleration_groups(config.toleration_groups)
    new_pvc_spec: dict[str, Any] = {
        "resources": {"requests": {"storage": config.workspace_volume_size}},
        "accessModes": ["ReadWriteOnce"],
    }
    if config.storage_class:
        new_pvc_spec["storageClassName"] = config.storage_class
    gpu_count = config.gpu_default_count
    form = {
        "image": {"value": jupyter[0], "options": jupyter},
        "imageGroupOne": {"value": vscode[0], "options": vscode},
        "imageGroupTwo": {"value": rstudio[0], "options": rstudio},
        "allowCustomImage": True,
        # The form shows images without their registry, with their tag.
        "hideRegistry": True,
        "hideTag": False,
        "imagePullPolicy": {"value": "IfNotPresent", "readOnly": False},
        "cpu": {
            "value": config.cpu_default,
            "limitFactor": config.cpu_limit_factor,
            "readOnly": False,
        },
        "memory": {
            "value": config.memory_default,
            "limitFactor": config.memory_limit_factor,
            "readOnly": False,
        },
        "environment": {"value": {}, "readOnly": False},
        "workspaceVolume": {
            "value": {
                "mount": WORKSPACE_MOUNT,
                "newPvc": {
                    "metadata": {"name": "{notebook-name}-workspace"},
                    "spec": new_pvc_spec,
                },
            },
            "readOnly": False,
        },
        "dataVolumes": {"value": [], "readOnly": False},
        "gpus": {
            # The web app reads the vendor list from inside `value`.
            "value": {
                "num": str(gpu_count) if gpu_count else "none",
                "vendor": vendors[0].limits_key if gpu_count else "",
                "vendors": _dump(vendors),
            },
            "readOnly": False,
        },
        "affinityConfig": {"value": "", "options": _dump(affinities), "readOnly": False},
        "tolerationGroup": {"value": "", "options": _dump(tolerations), "readOnly": False},
        "shm": {"value": True, "readOnly": False},
        "configurations": {"value": [], "readOnly": False},
    }
    return {"spawnerFormDefaults": form}


def render(config: NotebooksConfig) -> str:
    """The spawner config file's text."""
    return yaml.safe_dump(spawner_defaults(config), sort_keys=False)
