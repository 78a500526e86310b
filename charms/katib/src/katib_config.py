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
from typing import Any

from kubeflow_charms.placement import named, parse_node_selector, parse_tolerations

MAX_GPUS_PER_TRIAL = 16


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
        named("trial-node-selector", parse_node_selector, self.trial_node_selector)
        named("trial-tolerations", parse_tolerations, self.trial_tolerations)
        named("gpu-trial-node-selector", parse_node_selector, self.gpu_trial_node_selector)
        named("gpu-trial-tolerations", parse_tolerations, self.gpu_trial_tolerations)
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
