"""The Jupyter web app's spawner form, from the charm's typed config.

The web app reads `spawner_ui_config.yaml`: under `spawnerFormDefaults`,
each field of the "new notebook" form has its default `value` (and, for
some, the `options` offered). This module checks the charm's options
(`NotebooksConfig`) and builds that document.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from typing import Any, Literal

import yaml

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
_SUFFIXES = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    **{s: Fraction(1000**n) for n, s in enumerate("kMGTPE", start=1)},
    **{f"{s}i": Fraction(1024**n) for n, s in enumerate("KMGTPE", start=1)},
}
# Kubernetes holds no quantity greater than the largest int64 in its base unit
# (bytes, or cores); a longer text than this is no quantity it would hold either.
MAX_QUANTITY = 2**63 - 1
_MAX_QUANTITY_CHARS = 64
_FACTOR = re.compile(r"^\d{1,12}(\.\d{1,12})?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_RESOURCE_NAME = re.compile(
    r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)


# --- the items of the list options ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GpuVendor:
    """A GPU vendor the form offers: the resource limit it sets and its name in the form.

    Checked by hand, not by a pydantic model: the default `gpu-vendors` is read
    on every hook, and the other options' models load only when they are set.
    """

    limits_key: str
    ui_name: str

    def dump(self) -> dict[str, str]:
        """The vendor as the web app reads it."""
        return {"limitsKey": self.limits_key, "uiName": self.ui_name}


_GPU_VENDOR_KEYS = {"limitsKey": "limits_key", "uiName": "ui_name"}


def _gpu_vendor(item: Any) -> GpuVendor:
    """One `gpu-vendors` item; ValueError("<where>: <why>") names its first wrong key."""
    if not isinstance(item, dict):
        raise ValueError(": must be a map with limitsKey and uiName")
    values: dict[str, Any] = {}
    for key, value in item.items():  # the form's names, or the field names
        if key in _GPU_VENDOR_KEYS:
            values[_GPU_VENDOR_KEYS[key]] = value
        elif key in _GPU_VENDOR_KEYS.values():
            values.setdefault(key, value)
        else:
            raise ValueError(f".{key}: unknown key (limitsKey and uiName only)")
    for alias, name in _GPU_VENDOR_KEYS.items():
        value = values.get(name)
        if name not in values:
            raise ValueError(f".{alias}: missing")
        if not isinstance(value, str):
            raise ValueError(f".{alias}: must be a string")
    if not _RESOURCE_NAME.match(values["limits_key"]):
        raise ValueError(".limitsKey: must be a resource name like nvidia.com/gpu")
    if not 1 <= len(values["ui_name"]) <= 64:
        raise ValueError(".uiName: must be 1 to 64 characters")
    return GpuVendor(**values)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.dump() if isinstance(i, GpuVendor) else _dump_model(i) for i in items]


def _dump_model(item: Any) -> dict[str, Any]:
    return item.model_dump(by_alias=True, exclude_none=True)


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


def _parse_items(option: str, text: str, model_name: str, key: str) -> list[Any]:
    raw = _yaml_list(option, text)
    if not raw:
        return []
    import spawner_items  # pydantic: only for an option that lists items
    from pydantic import ValidationError

    model = getattr(spawner_items, model_name)
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
    vendors = []
    for index, item in enumerate(_yaml_list("gpu-vendors", text)):
        try:
            vendors.append(_gpu_vendor(item))
        except ValueError as e:
            raise ValueError(f"gpu-vendors: item {index}{e}") from None
    keys = [v.limits_key for v in vendors]
    if len(set(keys)) != len(keys):
        raise ValueError("gpu-vendors: two items have the same limitsKey")
    return vendors


def parse_affinity_options(text: str) -> list[Any]:
    """The `affinity-options` option (spawner_items.AffinityOption)."""
    return _parse_items("affinity-options", text, "AffinityOption", "config_key")


def parse_toleration_groups(text: str) -> list[Any]:
    """The `toleration-groups` option (spawner_items.TolerationGroup)."""
    groups = _parse_items("toleration-groups", text, "TolerationGroup", "group_key")
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
            if t.toleration_seconds is not None and t.effect != "NoExecute":
                raise ValueError(
                    f"toleration-groups: {group.group_key}: a toleration with "
                    "tolerationSeconds must have effect NoExecute"
                )
    return groups


def _quantity(option: str, value: str, *, cpu: bool = False) -> str:
    match = _QUANTITY.match(value) if len(value) <= _MAX_QUANTITY_CHARS else None
    amount = _quantity_amount(match) if match else Fraction(0)
    if amount <= 0:
        example = "0.5 or 500m" if cpu else "5Gi"
        raise ValueError(f"{option}: must be a positive Kubernetes quantity like {example}")
    if value.endswith("m") and not cpu:
        raise ValueError(f"{option}: must be a quantity of bytes like 5Gi, not {value!r}")
    if amount > MAX_QUANTITY:
        unit = "cores" if cpu else "bytes"
        raise ValueError(f"{option}: must be at most 2^63-1 {unit} (Kubernetes' largest quantity)")
    return value


def _quantity_amount(match: re.Match[str]) -> Fraction:
    """The exact value of a quantity `_QUANTITY` matched, in its base unit."""
    number, suffix = match.group(1), match.group(3) or ""
    return Fraction(number) * _SUFFIXES[suffix]


def _limit_factor(option: str, value: str) -> str:
    if value == "none":
        return value
    # Plain decimals only: the web app reads the factor with Python's float() on the
    # server and Number() in the browser, which disagree on forms such as "1_0".
    factor = float(value) if _FACTOR.match(value) else math.nan
    if not (math.isfinite(factor) and factor >= 1):
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
    affinity_default: str = ""
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
        affinities = parse_affinity_options(self.affinity_options)
        if self.affinity_default and self.affinity_default not in {
            a.config_key for a in affinities
        }:
            raise ValueError(
                f"affinity-default: {self.affinity_default!r} is not a configKey of "
                "affinity-options"
            )
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
        # The web app selects the option whose configKey is `value` in a new form.
        "affinityConfig": {
            "value": config.affinity_default,
            "options": _dump(affinities),
            "readOnly": False,
        },
        "tolerationGroup": {"value": "", "options": _dump(tolerations), "readOnly": False},
        "shm": {"value": True, "readOnly": False},
        "configurations": {"value": [], "readOnly": False},
    }
    return {"spawnerFormDefaults": form}


def render(config: NotebooksConfig) -> str:
    """The spawner config file's text."""
    return yaml.safe_dump(spawner_defaults(config), sort_keys=False)
