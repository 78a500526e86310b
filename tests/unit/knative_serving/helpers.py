"""Building blocks of the knative-serving charm's unit tests."""

from __future__ import annotations

from typing import Any

from charm_loader import load_charm
from ops import testing
from unit import gateway_metadata
from unit.pebble_services import running, service

CHARM = load_charm("knative-serving")
# The charm's own modules, as it imported them.
import knative_cluster  # noqa: E402
import knative_config  # noqa: E402
import knative_workloads as workloads  # noqa: E402

MODEL = "kubeflow"
APP = "knative-serving"
PEERS = "knative-serving-peers"
# Where the bundle's istio charm runs its gateway (its gateway-metadata): the same model.
GATEWAY_NAMESPACE = MODEL
GATEWAY_NAME = "kubeflow-gateway"


def gateway_relation(**kwargs: Any) -> testing.Relation:
    """Istio's gateway-metadata, made by the ecosystem's own model."""
    return gateway_metadata.gateway_relation(
        GATEWAY_NAMESPACE, gateway_name=GATEWAY_NAME, deployment="istio-ingressgateway", **kwargs
    )


def containers(*, can_connect: bool = True) -> set[testing.Container]:
    """The three control-plane containers, their Pebble reachable or not."""
    return {testing.Container(w.container, can_connect=can_connect) for w in workloads.WORKLOADS}


def state(leader: bool = True, *, gateway: bool = True, **kwargs) -> testing.State:
    """A unit with its peer relation and containers, and by default istio's gateway."""
    relations: set[testing.Relation] = {testing.PeerRelation(PEERS)}
    if gateway:
        relations.add(gateway_relation())
    relations |= set(kwargs.pop("relations", ()))
    base = {
        "leader": leader,
        "containers": containers(),
        "relations": relations,
        "model": testing.Model(name=MODEL),
    }
    return testing.State(**(base | kwargs))


def settled(ctx: testing.Context, **kwargs: Any) -> testing.State:
    """Two hooks: the first applies and starts everything, the second finds it so."""
    return ctx.run(ctx.on.config_changed(), ctx.run(ctx.on.config_changed(), state(**kwargs)))


__all__ = ["CHARM", "knative_cluster", "knative_config", "running", "service", "workloads"]
