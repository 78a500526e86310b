"""Building blocks of the kfp charm's unit tests."""

from __future__ import annotations

from charm_loader import load_charm
from ops import testing
from unit import gateway_metadata

CHARM = load_charm("kfp")
# The charm's own modules, as it imported them.
import kfp_config  # noqa: E402
import kfp_data  # noqa: E402
import kfp_links  # noqa: E402
import kfp_profiles  # noqa: E402
import kfp_route  # noqa: E402
import kfp_workloads as workloads  # noqa: E402

# Where the bundle's istio charm runs its gateway, and as whom (its gateway-metadata).
GATEWAY_NAMESPACE = "kubeflow"
GATEWAY_ACCOUNT = "istio-ingressgateway-workload"
GATEWAY_PRINCIPAL = f"cluster.local/ns/{GATEWAY_NAMESPACE}/sa/{GATEWAY_ACCOUNT}"


def gateway_relation(**kwargs) -> testing.Relation:
    """Istio's gateway-metadata, made by the ecosystem's own model.

    The wire format is charmlibs-interfaces-gateway-metadata's:
    GatewayMetadata.model_dump_json() under the app databag key `metadata`.
    """
    return gateway_metadata.gateway_relation(
        GATEWAY_NAMESPACE,
        deployment="istio-ingressgateway-workload",
        account=GATEWAY_ACCOUNT,
        **kwargs,
    )


def with_gateway(kwargs: dict) -> dict:
    """`kwargs` for a State, with the gateway related unless it says `gateway=False`."""
    kwargs = dict(kwargs)
    relations = set(kwargs.get("relations", ()))
    if kwargs.pop("gateway", True) and not any(
        r.endpoint == "gateway-metadata" for r in relations
    ):
        relations.add(gateway_relation())
    return kwargs | {"relations": relations}


__all__ = [
    "CHARM",
    "GATEWAY_PRINCIPAL",
    "gateway_relation",
    "kfp_config",
    "kfp_data",
    "kfp_links",
    "kfp_profiles",
    "kfp_route",
    "with_gateway",
    "workloads",
]
