"""The knative-serving charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`; it imports nothing
heavier than `json` and `re` so that a settled hook stays cheap. The ranges
are Knative's own (knative/serving v1.16.2 pkg/autoscaler/config/config.go),
so a value Knative would refuse blocks the charm instead of its autoscaler.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kubeflow_charms.placement import named, parse_node_selector, parse_tolerations

RELEASE = "gcr.io/knative-releases/knative.dev"
ACTIVATOR_IMAGE = (
    f"{RELEASE}/serving/cmd/activator"
    "@sha256:cc39d40985f7b37ba384a857d194a24ac5eae7e204aac4ed9bf4ebfd8d62e721"
)
AUTOSCALER_IMAGE = (
    f"{RELEASE}/serving/cmd/autoscaler"
    "@sha256:59c2e7ad52cea17bedfc2aca9b9e33060bb34f04d35fd71fe61147bcbdb881e4"
)
NET_ISTIO_CONTROLLER_IMAGE = (
    f"{RELEASE}/net-istio/cmd/controller"
    "@sha256:e70bc675f97778da144157f125b3001124ba7a5903b85dab9e77776352fea1c7"
)
QUEUE_PROXY_IMAGE = (
    f"{RELEASE}/serving/cmd/queue"
    "@sha256:698ef80ebc698f4d2bb93c1e85684063a0cf253a83faebcbf106cee444181d8e"
)
IMAGE_OPTIONS = (
    "activator-image",
    "autoscaler-image",
    "net-istio-controller-image",
    "queue-proxy-image",
)
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*[a-z0-9]$")
_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A Go duration (time.ParseDuration) in the units a window is written in.
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
STABLE_WINDOW_MIN = 6.0
STABLE_WINDOW_MAX = 3600.0


def seconds(option: str, text: Any) -> float:
    """A duration option in seconds; ValueError naming the option when it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text.strip()):
        raise ValueError(f"{option}: {text!r} is not a duration such as 30s or 1m30s")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text.strip()))


def number(option: str, text: Any) -> float:
    """A number option (Knative reads them as text); ValueError naming the option."""
    try:
        return float(str(text).strip())
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a number") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnativeConfig:
    """The charm's options, validated; errors name the option."""

    domain: str = "example.com"
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period: str = "30s"
    stable_window: str = "60s"
    panic_window_percentage: str = "10.0"
    target_burst_capacity: str = "211"
    activator_image: str = ACTIVATOR_IMAGE
    autoscaler_image: str = AUTOSCALER_IMAGE
    net_istio_controller_image: str = NET_ISTIO_CONTROLLER_IMAGE
    queue_proxy_image: str = QUEUE_PROXY_IMAGE
    data_path_node_selector: str = ""
    data_path_tolerations: str = ""

    def __post_init__(self):
        domain = self.domain
        if not isinstance(domain, str) or not domain.strip():
            raise ValueError("domain: required, else every route is cluster-local")
        if len(domain) > 253 or not _DOMAIN.match(domain):
            raise ValueError(f"domain: {domain!r} is not a DNS domain name")
        if not isinstance(self.enable_scale_to_zero, bool):
            raise ValueError("enable-scale-to-zero: must be true or false")
        if seconds("scale-to-zero-grace-period", self.scale_to_zero_grace_period) <= 0:
            raise ValueError("scale-to-zero-grace-period: must be more than zero")
        window = seconds("stable-window", self.stable_window)
        if not STABLE_WINDOW_MIN <= window <= STABLE_WINDOW_MAX or window != int(window):
            raise ValueError("stable-window: must be whole seconds between 6s and 1h")
        panic = number("panic-window-percentage", self.panic_window_percentage)
        if not 1 <= panic <= 100:
            raise ValueError("panic-window-percentage: must be between 1 and 100")
        burst = number("target-burst-capacity", self.target_burst_capacity)
        if burst < 0 and burst != -1:
            raise ValueError("target-burst-capacity: must be 0 or more, or -1")
        for option in IMAGE_OPTIONS:
            text = getattr(self, option.replace("-", "_"))
            if not isinstance(text, str) or not _IMAGE.match(text.strip()):
                raise ValueError(f"{option}: {text!r} is not an image reference")
        named("data-path-node-selector", parse_node_selector, self.data_path_node_selector)
        named("data-path-tolerations", parse_tolerations, self.data_path_tolerations)

    def image(self, option: str) -> str:
        """An image option by its dashed name."""
        return getattr(self, option.replace("-", "_")).strip()

    def placement(self) -> dict[str, Any]:
        """The data path's nodeSelector and tolerations (empty when none)."""
        return {
            "nodeSelector": parse_node_selector(self.data_path_node_selector),
            "tolerations": parse_tolerations(self.data_path_tolerations),
        }
