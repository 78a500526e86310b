"""Istio's `gateway-metadata` relation as a unit test's remote side.

The databag is what charmlibs-interfaces-gateway-metadata writes:
`GatewayMetadata.model_dump_json()` under the app databag key `metadata`.
"""

from __future__ import annotations

from typing import Any

from ops import testing


def gateway_relation(
    namespace: str,
    *,
    deployment: str,
    account: str | None = None,
    gateway_name: str = "kubeflow-gateway",
    **kwargs: Any,
) -> testing.Relation:
    """The relation as the istio charm fills it, made by the ecosystem's own model."""
    from charmlibs.interfaces.gateway_metadata import GatewayMetadata

    metadata = GatewayMetadata(
        namespace=namespace,
        gateway_name=gateway_name,
        deployment_name=deployment,
        service_account=account or deployment,
    )
    return testing.Relation(
        "gateway-metadata",
        interface="gateway_metadata",
        remote_app_data={"metadata": metadata.model_dump_json()},
        **kwargs,
    )
