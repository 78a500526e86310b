"""kubeflow_charms.pebble: a plan is changed only when it lacks what a layer says."""

from __future__ import annotations

import ops

from kubeflow_charms.pebble import plan_has, service_layer

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
