"""The katib charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`; it imports nothing
heavier than `json` so that a settled hook stays cheap.

Katib has no global placement for trials: an Experiment's trial template
says where its pods run. So the node pools go into the default trial
templates the charm publishes (the CPU ones and a GPU one). Kubeflow's
PodDefault cannot carry them instead: it has `tolerations` but no
`nodeSelector` (kubeflow/manifests v1.10.0,
apps/admission-webhook/upstream/base/crd.yaml), and it applies only to
pods whose labels select it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
MAX_GPUS_PER_TRIAL = 16

# A label key: an optional DNS subdomain prefix and a name of at most 63 characters.
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


def _label_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if "/" in key and not _DNS_SUBDOMAIN.match(prefix):
        return False
    return bool(_LABEL_NAME.match(name))


def parse_node_selector(text: str) -> dict[str, str]:
    """A JSON object of label keys to values; empty text is no selector."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("must be a JSON object of label keys to values") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object of label keys to values")
    for key, value in data.items():
        if not _label_key(key):
            raise ValueError(f"{key!r} is not a label key")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise ValueError(f"{key}: {value!r} is not a label value (a string)")
    return data


def _toleration(index: int, item: Any) -> dict[str, Any]:
    where = f"item {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be a JSON object")
    unknown = sorted(set(item) - TOLERATION_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    key = item.get("key", "")
    operator = item.get("operator", "Equal")
    value = item.get("value", "")
    effect = item.get("effect", "")
    seconds = item.get("tolerationSeconds")
    if key != "" and not _label_key(key):
        raise ValueError(f"{where}.key: {key!r} is not a label key")
    if operator not in TOLERATION_OPERATORS:
        raise ValueError(f"{where}.operator: must be Exists or Equal")
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise ValueError(f"{where}.value: {value!r} is not a label value")
    if operator == "Exists" and value:
        raise ValueError(f"{where}.value: must be empty with operator Exists")
    if key == "" and operator != "Exists":
        raise ValueError(f"{where}: a toleration without a key must use operator Exists")
    if effect not in TOLERATION_EFFECTS:
        raise ValueError(f"{where}.effect: must be NoSchedule, PreferNoSchedule or NoExecute")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ValueError(f"{where}.tolerationSeconds: must be an integer")
        if effect != "NoExecute":
            raise ValueError(f"{where}.tolerationSeconds: only with effect NoExecute")
    return dict(item)


def parse_tolerations(text: str) -> list[dict[str, Any]]:
    """A JSON list of Kubernetes tolerations; empty text is none."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("must be a JSON list of tolerations") from None
    if not isinstance(data, list):
        raise ValueError("must be a JSON list of tolerations")
    return [_toleration(i, item) for i, item in enumerate(data)]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a trial template's pods run."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class KatibConfig:
    """The charm's config options, validated; errors name the option."""

    trial_node_selector: str = ""
    trial_tolerations: str = ""
    gpu_trial_node_selector: str = ""
    gpu_trial_tolerations: str = ""
    gpus_per_trial: int = 1

    def __post_init__(self):
        for option, parse in (
            ("trial-node-selector", parse_node_selector),
            ("trial-tolerations", parse_tolerations),
            ("gpu-trial-node-selector", parse_node_selector),
            ("gpu-trial-tolerations", parse_tolerations),
        ):
            try:
                parse(getattr(self, option.replace("-", "_")))
            except ValueError as e:
                raise ValueError(f"{option}: {e}") from None
        gpus = self.gpus_per_trial
        if isinstance(gpus, bool) or not 1 <= gpus <= MAX_GPUS_PER_TRIAL:
            raise ValueError(f"gpus-per-trial: must be between 1 and {MAX_GPUS_PER_TRIAL}")

    @property
    def cpu_placement(self) -> Placement:
        """Where the default CPU trial templates' pods run."""
        return Placement(
            parse_node_selector(self.trial_node_selector),
            parse_tolerations(self.trial_tolerations),
        )

    @property
    def gpu_placement(self) -> Placement:
        """Where the default GPU trial template's pods run."""
        return Placement(
            parse_node_selector(self.gpu_trial_node_selector),
            parse_tolerations(self.gpu_trial_tolerations),
        )
