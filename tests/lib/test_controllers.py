"""kubeflow_charms.controllers: a settled unit's check and the shared reconcile events."""

from __future__ import annotations

import dataclasses
import datetime as dt

import ops
import pytest
from ops import pebble, testing

from kubeflow_charms import certificates, controllers

META = {
    "name": "probe",
    "peers": {"probe-peers": {"interface": "probe-peers"}},
    "containers": {"leader-only": {}, "everywhere": {}},
}
RENEWAL = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
SEEN: list[object] = []


@dataclasses.dataclass(frozen=True)
class Workload:
    """A service; `leader_only` as a charm's workload says it."""

    container: str
    service: str
    leader_only: bool = True


WORKLOADS = (Workload("leader-only", "ctl"), Workload("everywhere", "ui", leader_only=False))


class ProbeCharm(ops.CharmBase):
    """Records which event ran and what `settled_as_left` says on update-status."""

    drifted = False

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        containers = [w.container for w in WORKLOADS]
        for event in controllers.reconcile_events(
            self, peers="probe-peers", containers=containers
        ):
            framework.observe(event, self._record)

    def _record(self, event: ops.EventBase) -> None:
        if not isinstance(event, ops.UpdateStatusEvent):
            SEEN.append(type(event).__name__)
            return
        SEEN.append(
            controllers.settled_as_left(
                self.unit,
                WORKLOADS,
                next_renewal=RENEWAL.timestamp(),
                drifted=lambda: ProbeCharm.drifted,
            )
        )


def _container(name: str, service: str, running: bool) -> testing.Container:
    layer = pebble.Layer({"services": {service: {"override": "replace", "command": service}}})
    status = pebble.ServiceStatus.ACTIVE if running else pebble.ServiceStatus.INACTIVE
    return testing.Container(
        name, can_connect=True, layers={"l": layer}, service_statuses={service: status}
    )


def _settled(leader: bool, ctl: bool, ui: bool, *, now: dt.datetime | None = None) -> object:
    SEEN.clear()
    state = testing.State(
        leader=leader,
        containers={_container("leader-only", "ctl", ctl), _container("everywhere", "ui", ui)},
    )
    ctx = testing.Context(ProbeCharm, meta=META)
    ctx.run(ctx.on.update_status(), state)
    return SEEN[-1]


@pytest.fixture(autouse=True)
def _before_renewal(monkeypatch):
    monkeypatch.setattr(certificates, "_now", lambda: RENEWAL - dt.timedelta(days=1))
    ProbeCharm.drifted = False


@pytest.mark.parametrize(
    ("leader", "ctl", "ui", "settled"),
    [
        (True, True, True, True),
        (True, False, True, False),
        (True, True, False, False),
        (False, False, True, True),
        (False, True, True, False),
        (False, False, False, False),
    ],
)
def test_each_service_runs_where_it_should(leader: bool, ctl: bool, ui: bool, settled: bool):
    assert _settled(leader, ctl, ui) is settled


def test_an_unreachable_container_is_not_settled():
    SEEN.clear()
    state = testing.State(
        leader=False,
        containers={
            testing.Container("leader-only", can_connect=False),
            _container("everywhere", "ui", True),
        },
    )
    ctx = testing.Context(ProbeCharm, meta=META)
    ctx.run(ctx.on.update_status(), state)
    assert SEEN == [False]


def test_the_leader_is_not_settled_once_a_certificate_is_due(monkeypatch):
    monkeypatch.setattr(certificates, "_now", lambda: RENEWAL)
    assert _settled(True, True, True) is False


def test_the_leader_is_not_settled_when_its_objects_drifted():
    ProbeCharm.drifted = True
    assert _settled(True, True, True) is False
    assert _settled(False, False, True) is True  # other units do not look at the cluster


def test_the_reconcile_events_include_the_peers_and_pebble_ready():
    ctx = testing.Context(ProbeCharm, meta=META)
    SEEN.clear()
    peers = testing.PeerRelation("probe-peers")
    ctx.run(ctx.on.relation_created(peers), testing.State(relations={peers}))
    container = testing.Container("everywhere", can_connect=True)
    ctx.run(ctx.on.pebble_ready(container), testing.State(containers={container}))
    secret = testing.Secret({"a": "b"})
    ctx.run(ctx.on.secret_changed(secret), testing.State(secrets={secret}))
    assert SEEN == ["RelationCreatedEvent", "PebbleReadyEvent", "SecretChangedEvent"]
