"""kubeflow_charms.pebble: a plan is changed only when it lacks what a layer says."""

from __future__ import annotations

from typing import ClassVar

import ops
from ops import pebble, testing

from kubeflow_charms.pebble import keep_stopped, plan_has, service_layer, start_when_changed

LAYER: ops.pebble.LayerDict = {
    "services": {"srv": {"override": "replace", "command": "srv --port 1", "startup": "enabled"}},
    "checks": {"up": {"override": "replace", "level": "ready", "tcp": {"port": 1}}},
}


def _plan(services=None, checks=None) -> ops.pebble.Plan:
    return ops.pebble.Plan({"services": services or {}, "checks": checks or {}})


def test_plan_with_the_layer_and_defaults_has_it():
    plan = _plan(
        {
            "srv": {
                "override": "replace",
                "command": "srv --port 1",
                "startup": "enabled",
                "user": "x",
            }
        },
        {"up": {"override": "replace", "level": "ready", "tcp": {"port": 1}, "period": "10s"}},
    )
    assert plan_has(plan, LAYER)
    assert plan_has(plan, ops.pebble.Layer(LAYER))


def test_changed_command_or_missing_check_is_noticed():
    changed = _plan(
        {"srv": {"command": "srv --port 2", "startup": "enabled"}},
        {"up": {"level": "ready", "tcp": {"port": 1}}},
    )
    assert not plan_has(changed, LAYER)
    no_check = _plan({"srv": {"command": "srv --port 1", "startup": "enabled"}})
    assert not plan_has(no_check, LAYER)
    assert not plan_has(_plan(), LAYER)


def test_service_running_answers_none_when_pebble_cannot_be_reached():
    from ops import testing

    from kubeflow_charms.pebble import service_running

    class Charm(ops.CharmBase):
        pass

    meta = {"name": "c", "containers": {"w": {}}}
    for can_connect, expected in ((False, None), (True, False)):
        ctx = testing.Context(Charm, meta=meta)
        state = testing.State(containers={testing.Container("w", can_connect=can_connect)})
        with ctx(ctx.on.update_status(), state) as manager:
            container = manager.charm.unit.get_container("w")
            assert service_running(container, "svc") is expected


def test_service_layer_runs_the_service_and_its_check_where_it_runs():
    layer = service_layer(
        "srv",
        "up",
        command="srv --port 1",
        runs=True,
        environment={"A": "1"},
        check_spec={"override": "replace", "tcp": {"port": 1}},
        user=(10, 20),
    )
    assert layer == {
        "summary": "srv",
        "services": {
            "srv": {
                "override": "replace",
                "summary": "srv",
                "command": "srv --port 1",
                "working-dir": "/",
                "startup": "enabled",
                "environment": {"A": "1"},
                "user-id": 10,
                "group-id": 20,
            }
        },
        "checks": {"up": {"override": "replace", "tcp": {"port": 1}}},
    }


def test_service_layer_disables_the_service_and_its_check_elsewhere():
    spec = {"override": "replace", "tcp": {"port": 1}}
    layer = service_layer(
        "srv", "up", command="srv", runs=False, environment={}, check_spec=spec, working_dir="/app"
    )
    service = layer["services"]["srv"]
    assert (service["startup"], service["working-dir"]) == ("disabled", "/app")
    assert "user-id" not in service
    assert layer["checks"]["up"] == {**spec, "startup": "disabled"}
    assert spec == {"override": "replace", "tcp": {"port": 1}}  # the caller's spec is left alone


class _ProbeCharm(ops.CharmBase):
    """Starts or stops `srv` on config-changed as the test says; records the answers."""

    stop = False
    restarted = False
    answers: ClassVar[list[bool | None]] = []
    digests: ClassVar[dict[str, str]] = {}

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._run)

    def _run(self, _: ops.EventBase) -> None:
        container = self.unit.get_container("box")
        if _ProbeCharm.stop:
            stopped = {
                **LAYER,
                "services": {"srv": {**LAYER["services"]["srv"], "startup": "disabled"}},
            }
            answer = keep_stopped(container, "srv", "up", stopped, lambda: _ProbeCharm.digests)  # type: ignore[arg-type]
        else:
            answer = start_when_changed(
                container,
                "srv",
                LAYER,
                digest="d1",
                digests=lambda: _ProbeCharm.digests,
                restarted=_ProbeCharm.restarted,
                push=lambda: container.push("/etc/srv.conf", "x", make_dirs=True),
            )
        _ProbeCharm.answers.append(answer)


def _run_probe(state: testing.State, *, stop: bool = False, restarted: bool = False):
    _ProbeCharm.stop, _ProbeCharm.restarted = stop, restarted
    ctx = testing.Context(_ProbeCharm, meta={"name": "probe", "containers": {"box": {}}})
    return ctx.run(ctx.on.config_changed(), state)


def test_start_when_changed_starts_once_then_leaves_it_until_pebble_restarts():
    _ProbeCharm.answers.clear()
    _ProbeCharm.digests.clear()
    state = testing.State(containers={testing.Container("box", can_connect=True)})
    out = _run_probe(state)
    assert out.get_container("box").service_statuses["srv"] == pebble.ServiceStatus.ACTIVE
    out = _run_probe(out)
    out = _run_probe(out, restarted=True)
    assert _ProbeCharm.answers == [True, False, True]
    assert _ProbeCharm.digests == {"box": "d1"}
    _run_probe(testing.State(containers={testing.Container("box", can_connect=False)}))
    assert _ProbeCharm.answers[-1] is None


def test_keep_stopped_stops_the_service_and_forgets_its_digest():
    _ProbeCharm.answers.clear()
    _ProbeCharm.digests.clear()
    state = testing.State(containers={testing.Container("box", can_connect=True)})
    out = _run_probe(_run_probe(state), stop=True)
    out = _run_probe(out, stop=True)
    assert _ProbeCharm.answers == [True, True, False]
    assert out.get_container("box").service_statuses["srv"] == pebble.ServiceStatus.INACTIVE
    assert _ProbeCharm.digests == {}
