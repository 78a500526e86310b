"""Building blocks of the kfp charm's unit tests."""

from __future__ import annotations

from charm_loader import load_charm

CHARM = load_charm("kfp")
# The charm's own modules, as it imported them.
import kfp_config  # noqa: E402
import kfp_data  # noqa: E402
import kfp_links  # noqa: E402
import kfp_profiles  # noqa: E402
import kfp_route  # noqa: E402
import kfp_workloads as workloads  # noqa: E402

__all__ = [
    "CHARM",
    "kfp_config",
    "kfp_data",
    "kfp_links",
    "kfp_profiles",
    "kfp_route",
    "workloads",
]
