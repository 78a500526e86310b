"""Whether a relation hook says a relation or a unit is going, or this unit itself.

When a unit is scaled away, Juju runs relation-departed and relation-broken on
it for every relation it was in, though those relations stay for the units
that remain. A leader keeps its lease meanwhile, so `is_leader()` is still
true in those hooks: a leader that took them at their word would revoke the
credentials, routes and objects the remaining units still serve, and a new
leader would make them again. A charm asks :func:`own_departure` first and
leaves what the application serves alone when the answer is yes.

On Kubernetes Juju removes no named unit: scaling down removes the
highest-numbered units, and `planned_units()` counts only the units that stay
(goal-state units not dying). So a unit whose number is not below the planned
count is leaving; `departing_unit` says so too, where Juju names it.

Nothing here sets a status or writes anything.
"""

from __future__ import annotations

import ops


def unit_number(unit: ops.Unit) -> int:
    """The number in a unit's name: 3 for `app/3`."""
    return int(unit.name.rsplit("/", 1)[1])


def leader_pod(app: str, unit: ops.Unit) -> str:
    """A unit's pod, as its StatefulSet names it (label statefulset.kubernetes.io/pod-name)."""
    return f"{app}-{unit_number(unit)}"


def own_departure(charm: ops.CharmBase, event: ops.EventBase | None) -> bool:
    """Whether this relation-departed or relation-broken hook is this unit leaving.

    False for every other event (or none), and for a relation that goes
    (remove-relation, the other application removed) or a remote unit that
    goes while this unit stays. The planned unit count is asked only in those
    two hooks.
    """
    if not isinstance(event, (ops.RelationDepartedEvent, ops.RelationBrokenEvent)):
        return False
    if isinstance(event, ops.RelationDepartedEvent) and event.departing_unit == charm.unit:
        return True
    return unit_number(charm.unit) >= charm.app.planned_units()
