"""kubeflow_charms.lifecycle: a unit's own departure told from a relation going."""

from __future__ import annotations

import ops
import pytest
from ops import testing

from kubeflow_charms import lifecycle

META = {
    "name": "probe",
    "requires": {"db": {"interface": "db"}},
    "peers": {"probe-peers": {"interface": "probe-peers"}},
}
SEEN: list[bool] = []


class ProbeCharm(ops.CharmBase):
    """Records what `own_departure` says for each event."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on["db"].relation_departed,
            self.on["db"].relation_broken,
            self.on["probe-peers"].relation_departed,
            self.on.update_status,
        ):
            framework.observe(event, self._record)

    def _record(self, event: ops.EventBase) -> None:
        SEEN.append(lifecycle.own_departure(self, event))


def _said(unit_id: int, planned: int, make_event) -> bool:
    SEEN.clear()
    ctx = testing.Context(ProbeCharm, meta=META, unit_id=unit_id)
    db = testing.Relation("db", remote_units_data={0: {}})
    peers = testing.PeerRelation("probe-peers", peers_data={9: {}})
    state = testing.State(leader=True, relations={db, peers}, planned_units=planned)
    ctx.run(make_event(ctx, db, peers), state)
    (said,) = SEEN
    return said


def test_a_unit_number_is_read_from_its_name():
    ctx = testing.Context(ProbeCharm, meta=META, unit_id=12)
    with ctx(ctx.on.update_status(), testing.State()) as manager:
        assert lifecycle.unit_number(manager.charm.unit) == 12


@pytest.mark.parametrize(
    ("unit_id", "planned", "expected"),
    [
        (1, 1, True),  # scaled from 2 to 1: unit 1 goes
        (0, 0, True),  # the application is removed: every unit goes
        (0, 1, False),  # unit 0 stays; the relation itself is removed
        (1, 3, False),
    ],
)
def test_relation_broken_is_this_units_own_departure_when_it_is_scaled_away(
    unit_id, planned, expected
):
    said = _said(unit_id, planned, lambda ctx, db, _: ctx.on.relation_broken(db))
    assert said is expected


def test_a_departure_juju_names_as_this_units_own_is_one():
    def departed(ctx, _, peers):
        return ctx.on.relation_departed(peers, remote_unit=9, departing_unit=3)

    assert _said(3, 5, departed) is True


def test_a_remote_unit_departing_is_not_this_units_departure():
    def departed(ctx, db, _):
        return ctx.on.relation_departed(db, remote_unit=0, departing_unit=0)

    assert _said(0, 1, departed) is False


def test_other_events_are_never_a_departure():
    assert _said(5, 1, lambda ctx, *_: ctx.on.update_status()) is False
