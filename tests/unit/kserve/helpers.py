"""Building blocks of the kserve charm's unit tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from charm_loader import load_charm
from ops import testing
from unit import gateway_metadata
from unit.pebble_services import running, service

CHARM = load_charm("kserve")
# The charm's own modules, as it imported them.
import kserve_cluster  # noqa: E402
import kserve_config  # noqa: E402
import kserve_profiles  # noqa: E402
import kserve_runtimes  # noqa: E402
import kserve_workloads as workloads  # noqa: E402

MODEL = "kubeflow"
APP = "kserve"
PEERS = "kserve-peers"
# Where the bundle's istio charm runs its gateway (its gateway-metadata).
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_NAME = "kubeflow-gateway"


def gateway_relation(**kwargs: Any) -> testing.Relation:
    """Istio's gateway-metadata, made by the ecosystem's own model."""
    return gateway_metadata.gateway_relation(
        GATEWAY_NAMESPACE,
        gateway_name=GATEWAY_NAME,
        deployment="istio-ingressgateway-workload",
        **kwargs,
    )


def containers(*, can_connect: bool = True) -> set[testing.Container]:
    """Both controller containers, their Pebble reachable or not."""
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
    """Two hooks: the first starts the controller, the second applies the runtimes."""
    return ctx.run(ctx.on.config_changed(), ctx.run(ctx.on.config_changed(), state(**kwargs)))


def with_relation(out: testing.State, relation: testing.Relation) -> testing.State:
    """The state with one more relation."""
    return dataclasses.replace(out, relations=set(out.relations) | {relation})


__all__ = [
    "CHARM",
    "kserve_cluster",
    "kserve_config",
    "kserve_profiles",
    "kserve_runtimes",
    "running",
    "service",
    "workloads",
]
