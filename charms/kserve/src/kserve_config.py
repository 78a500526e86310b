"""The kserve charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`; it imports nothing
heavier than `json` and `re` so that a settled hook stays cheap.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import kserve_runtimes as rt

from kubeflow_charms.placement import named, parse_node_selector, parse_tolerations

MAX_GPUS_PER_PREDICTOR = 16
URL_SCHEMES = ("http", "https")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*[a-z0-9]$")
# A DNS subdomain (RFC 1123), as an Ingress host's domain must be.
_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A Secret's name: a DNS subdomain of at most 253 characters.
_SECRET = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _check_image(option: str, text: Any) -> None:
    if not isinstance(text, str) or not _IMAGE.match(text.strip()):
        raise ValueError(f"{option}: {text!r} is not an image reference")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KServeConfig:
    """The charm's options, validated; errors name the option."""

    ingress_domain: str = "example.com"
    url_scheme: str = "http"
    storage_secret: str = "minio-credentials"  # noqa: S105 - a Secret's name
    predictor_node_selector: str = ""
    predictor_tolerations: str = ""
    gpu_predictor_node_selector: str = ""
    gpu_predictor_tolerations: str = ""
    gpus_per_predictor: int = 1
    storage_initializer_image: str = rt.STORAGE_INITIALIZER_IMAGE
    huggingfaceserver_image: str = rt.IMAGE_DEFAULTS["huggingfaceserver-image"]
    lgbserver_image: str = rt.IMAGE_DEFAULTS["lgbserver-image"]
    mlserver_image: str = rt.IMAGE_DEFAULTS["mlserver-image"]
    paddleserver_image: str = rt.IMAGE_DEFAULTS["paddleserver-image"]
    pmmlserver_image: str = rt.IMAGE_DEFAULTS["pmmlserver-image"]
    sklearnserver_image: str = rt.IMAGE_DEFAULTS["sklearnserver-image"]
    tensorflow_serving_image: str = rt.IMAGE_DEFAULTS["tensorflow-serving-image"]
    torchserve_image: str = rt.IMAGE_DEFAULTS["torchserve-image"]
    tritonserver_image: str = rt.IMAGE_DEFAULTS["tritonserver-image"]
    xgbserver_image: str = rt.IMAGE_DEFAULTS["xgbserver-image"]

    def __post_init__(self):
        domain = self.ingress_domain
        if not isinstance(domain, str) or len(domain) > 253 or not _DOMAIN.match(domain):
            raise ValueError(f"ingress-domain: {domain!r} is not a DNS domain name")
        if self.url_scheme not in URL_SCHEMES:
            raise ValueError("url-scheme: must be http or https")
        if not isinstance(self.storage_secret, str) or not _SECRET.match(self.storage_secret):
            raise ValueError(f"storage-secret: {self.storage_secret!r} is not a Secret name")
        named("predictor-node-selector", parse_node_selector, self.predictor_node_selector)
        named("predictor-tolerations", parse_tolerations, self.predictor_tolerations)
        named("gpu-predictor-node-selector", parse_node_selector, self.gpu_predictor_node_selector)
        named("gpu-predictor-tolerations", parse_tolerations, self.gpu_predictor_tolerations)
        gpus = self.gpus_per_predictor
        if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= 16:
            raise ValueError(f"gpus-per-predictor: must be between 1 and {MAX_GPUS_PER_PREDICTOR}")
        for option in rt.IMAGE_DEFAULTS:
            _check_image(option, getattr(self, option.replace("-", "_")))

    def images(self) -> dict[str, str]:
        """The image options by their dashed names."""
        return {o: getattr(self, o.replace("-", "_")).strip() for o in rt.IMAGE_DEFAULTS}

    def runtimes(self) -> list[dict[str, Any]]:
        """The ClusterServingRuntimes (GPU twins too) and the ClusterStorageContainer."""
        return rt.render(
            self.images(),
            node_selector=parse_node_selector(self.predictor_node_selector),
            tolerations=parse_tolerations(self.predictor_tolerations),
            gpu_node_selector=parse_node_selector(self.gpu_predictor_node_selector),
            gpu_tolerations=parse_tolerations(self.gpu_predictor_tolerations),
            gpus=self.gpus_per_predictor,
        )
