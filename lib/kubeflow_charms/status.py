"""Status rules every charm shares: an application never looks better than its leader unit.

Only the leader sets the application's status, and it knows no unit's status
but its own. So each charm's collect-app-status handler starts with
:func:`add_leader_unit_status`, which works out what the charm's own
collect-unit-status handler will say and, when that is worse than active,
adds it to the application's candidates: the worse of the two wins, and a
Blocked leader unit makes the application Blocked with the same message.

ops collects the application's statuses first, then the unit's. The unit
handler, decorated with :func:`collected_once`, does its work (Pebble calls,
reads) the first time only and gives the same statuses the second time.

Nothing here sets a status: the charm's collect-status handlers decide.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from typing import TypeVar

import ops

# The order ops picks a collected status by (CollectStatusEvent), highest first.
_PRIORITY = {"error": 5, "blocked": 4, "maintenance": 3, "waiting": 2, "active": 1}

CollectStatusHandler = Callable[[ops.CollectStatusEvent], None]
_Charm = TypeVar("_Charm", bound=ops.CharmBase)
# The unit statuses a charm object collected, by charm object (one per hook).
_COLLECTED: weakref.WeakKeyDictionary[ops.CharmBase, list[ops.StatusBase]] = (
    weakref.WeakKeyDictionary()
)


class _UnitStatusCollector(ops.CollectStatusEvent):
    """Stands in for a collect-unit-status event: keeps what is added, sets nothing."""

    def __init__(self) -> None:
        super().__init__(ops.Handle(None, "collect_unit_status", None))
        self.statuses: list[ops.StatusBase] = []

    def add_status(self, status: ops.StatusBase) -> None:
        """Keep a status, as collect-unit-status would, without touching the unit."""
        if not isinstance(status, ops.StatusBase):
            raise TypeError(f"status should be a StatusBase, not {type(status).__name__}")
        self.statuses.append(status)


def collected_once(
    handler: Callable[[_Charm, ops.CollectStatusEvent], None],
) -> Callable[[_Charm, ops.CollectStatusEvent], None]:
    """Decorate a collect-unit-status handler to run once per charm object (once a hook).

    The first call collects what the handler adds; every call, the first
    included, adds those same statuses to its event. The leader calls it
    first through :func:`add_leader_unit_status`, ops second.
    """

    @functools.wraps(handler)
    def once(charm: _Charm, event: ops.CollectStatusEvent) -> None:
        statuses = _COLLECTED.get(charm)
        if statuses is None:
            collector = _UnitStatusCollector()
            handler(charm, collector)
            statuses = _COLLECTED[charm] = collector.statuses
        for status in statuses:
            event.add_status(status)

    return once


def worst(statuses: Iterable[ops.StatusBase]) -> ops.StatusBase | None:
    """The status ops would set from these: the highest priority, the first among equals."""
    found: ops.StatusBase | None = None
    for status in statuses:
        if found is None or _PRIORITY.get(status.name, 0) > _PRIORITY.get(found.name, 0):
            found = status
    return found


def unit_status(collect_unit_status: CollectStatusHandler) -> ops.StatusBase | None:
    """What the unit's collect-status handler would set the unit to (None: nothing)."""
    collector = _UnitStatusCollector()
    collect_unit_status(collector)
    return worst(collector.statuses)


def add_leader_unit_status(
    event: ops.CollectStatusEvent, collect_unit_status: CollectStatusHandler
) -> None:
    """On collect-app-status: make the leader unit's own problem one of the app's.

    Call it first in the handler, with the charm's collect-unit-status handler:
    among statuses of the same level the first added wins, so the app then
    shows the unit's message. An active unit adds nothing.
    """
    status = unit_status(collect_unit_status)
    if status is not None and status.name != ops.ActiveStatus.name:
        event.add_status(status)


def add_and_note_settled(
    event: ops.CollectStatusEvent,
    statuses: Iterable[ops.StatusBase],
    settled: ops.framework.BoundStoredState,
    *,
    reconciled: bool,
) -> None:
    """Add a unit's statuses, and note in `settled.active` whether they leave it settled.

    Only a hook that reconciled in full (`reconciled`) may say the unit is
    settled; any hook may say it is not. A settled unit's next update-status
    looks only at what can drift without an event. The stored value is written
    only when it changes, so a settled hook writes nothing.
    """
    statuses = list(statuses)
    for status in statuses:
        event.add_status(status)
    active = reconciled and all(isinstance(s, ops.ActiveStatus) for s in statuses)
    if settled.active != active:
        settled.active = active
