"""Building blocks of the kubeflow-trainer charm's unit tests."""

from __future__ import annotations

import dataclasses

from charm_loader import load_charm
from ops import testing
from unit.pebble_services import running

CHARM = load_charm("kubeflow-trainer")
# The charm's own modules, as it imported them.
import trainer_cluster  # noqa: E402
import trainer_runtimes  # noqa: E402
import trainer_workloads as workloads  # noqa: E402

MODEL = "kubeflow"
APP = "kubeflow-trainer"
PEERS = "trainer-peers"


def containers(*, can_connect: bool = True) -> set[testing.Container]:
    """Both controller containers, their Pebble reachable or not."""
    return {testing.Container(w.container, can_connect=can_connect) for w in workloads.WORKLOADS}


def state(**kwargs) -> testing.State:
    """A leader unit with its peer relation and containers, as after install."""
    base = {
        "leader": True,
        "containers": containers(),
        "relations": {testing.PeerRelation(PEERS)},
        "model": testing.Model(name=MODEL),
    }
    return testing.State(**(base | kwargs))


def with_relation(out: testing.State, relation: testing.Relation) -> testing.State:
    """The state with one more relation."""
    return dataclasses.replace(out, relations=set(out.relations) | {relation})


__all__ = [
    "APP",
    "CHARM",
    "MODEL",
    "PEERS",
    "containers",
    "running",
    "state",
    "trainer_cluster",
    "trainer_runtimes",
    "with_relation",
    "workloads",
]
