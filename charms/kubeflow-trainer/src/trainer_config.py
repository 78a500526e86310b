"""The kubeflow-trainer charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`; the checks are those of
`trainer_runtimes` (which imports only `json` unless a placement is YAML).
"""

from __future__ import annotations

import dataclasses

import trainer_runtimes
from trainer_runtimes import IMAGE_DEFAULTS


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    """The charm's options, validated; `options()` gives them as a bundle writes them."""

    torch_image: str = IMAGE_DEFAULTS["torch-image"]
    deepspeed_image: str = IMAGE_DEFAULTS["deepspeed-image"]
    mlx_image: str = IMAGE_DEFAULTS["mlx-image"]
    torchtune_image: str = IMAGE_DEFAULTS["torchtune-image"]
    dataset_initializer_image: str = IMAGE_DEFAULTS["dataset-initializer-image"]
    model_initializer_image: str = IMAGE_DEFAULTS["model-initializer-image"]
    arm64_torch_image: str = IMAGE_DEFAULTS["arm64-torch-image"]
    runtime_placement: str = ""
    gpu_placement: str = ""
    arm64_runtime: str = ""

    def __post_init__(self):
        for option in trainer_runtimes.OPTIONS:
            if not isinstance(getattr(self, option.replace("-", "_")), str):
                raise ValueError(f"{option}: must be a string")
        trainer_runtimes.validate(self.options())

    def options(self) -> dict[str, str]:
        """The options by their dashed names, as `render_runtimes` takes them."""
        return {o: getattr(self, o.replace("-", "_")) for o in trainer_runtimes.OPTIONS}
