"""kubeflow_charms.status: the leader unit's own problem is one of the application's."""

from __future__ import annotations

import ops
import pytest
from ops import testing

from kubeflow_charms import status

META = {"name": "probe"}
CALLS: list[ops.CharmBase] = []  # the charm objects whose unit handler did its work


class ProbeCharm(ops.CharmBase):
    """A charm whose unit reports what the test asks, and whose app has one status of its own."""

    unit_statuses: tuple[ops.StatusBase, ...] = ()
    app_own: ops.StatusBase = ops.ActiveStatus("app")

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.collect_app_status, self._on_collect_app_status)

    @status.collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        CALLS.append(self)
        for s in self.unit_statuses:
            event.add_status(s)

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        status.add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(self.app_own)


def _run(unit_statuses, app_own=None, *, leader=True) -> testing.State:
    CALLS.clear()
    ProbeCharm.unit_statuses = tuple(unit_statuses)
    ProbeCharm.app_own = app_own or ops.ActiveStatus("app")
    ctx = testing.Context(ProbeCharm, meta=META)
    return ctx.run(ctx.on.update_status(), testing.State(leader=leader))


@pytest.mark.parametrize(
    ("unit_statuses", "app_own", "app"),
    [
        # An active unit leaves the app's own status alone.
        ([ops.ActiveStatus("unit")], None, testing.ActiveStatus("app")),
        ([], None, testing.ActiveStatus("app")),
        # A worse unit makes the app as bad, with the unit's message.
        (
            [ops.ActiveStatus(), ops.BlockedStatus("bad config")],
            None,
            testing.BlockedStatus("bad config"),
        ),
        ([ops.WaitingStatus("no pebble")], None, testing.WaitingStatus("no pebble")),
        ([ops.MaintenanceStatus("starting")], None, testing.MaintenanceStatus("starting")),
        # Of the same level, the unit's message shows.
        (
            [ops.WaitingStatus("unit waits")],
            ops.WaitingStatus("app waits"),
            testing.WaitingStatus("unit waits"),
        ),
        # The app's own worse problem still wins.
        (
            [ops.WaitingStatus("unit waits")],
            ops.BlockedStatus("app blocked"),
            testing.BlockedStatus("app blocked"),
        ),
    ],
)
def test_app_is_no_better_than_the_leader_unit(unit_statuses, app_own, app):
    out = _run(unit_statuses, app_own)
    assert out.app_status == app
    # The unit's own status is what it was always going to be.
    expected_unit = status.worst(unit_statuses)
    if expected_unit is not None:
        assert out.unit_status.name == expected_unit.name
        assert out.unit_status.message == expected_unit.message


def test_a_non_leader_sets_no_app_status():
    out = _run([ops.BlockedStatus("bad config")], leader=False)
    assert out.unit_status == testing.BlockedStatus("bad config")
    assert out.app_status == testing.UnknownStatus()


@pytest.mark.parametrize(
    ("statuses", "index"),
    [
        ([ops.ActiveStatus(), ops.WaitingStatus("w")], 1),
        ([ops.WaitingStatus("w"), ops.MaintenanceStatus("m")], 1),
        ([ops.BlockedStatus("b1"), ops.MaintenanceStatus("m"), ops.BlockedStatus("b2")], 0),
        ([ops.WaitingStatus("w1"), ops.WaitingStatus("w2")], 0),
    ],
)
def test_worst_is_what_ops_would_pick(statuses, index):
    assert status.worst(statuses) is statuses[index]


def test_worst_of_nothing_is_none():
    assert status.worst([]) is None


def test_unit_status_sets_nothing_and_refuses_non_statuses():
    calls = []

    def handler(event: ops.CollectStatusEvent) -> None:
        calls.append(event)
        event.add_status(ops.BlockedStatus("b"))

    assert status.unit_status(handler) == ops.BlockedStatus("b")
    assert len(calls) == 1

    def bad(event: ops.CollectStatusEvent) -> None:
        event.add_status("blocked")  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        status.unit_status(bad)


@pytest.mark.parametrize("leader", [True, False])
def test_the_unit_handler_does_its_work_once_a_hook(leader):
    # The leader asks it for the app's status, then ops for the unit's: one run.
    out = _run([ops.WaitingStatus("no pebble")], leader=leader)
    assert len(CALLS) == 1
    assert out.unit_status == testing.WaitingStatus("no pebble")
    # The next hook is a new charm object: the handler works again, nothing is reused.
    out = _run([ops.BlockedStatus("bad config")], leader=leader)
    assert len(CALLS) == 1
    assert out.unit_status == testing.BlockedStatus("bad config")
