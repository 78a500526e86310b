"""update-status on a settled unit looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import pebble, testing
from unit.kubeflow_notebooks.helpers import MODEL, controller, settle, state, web_app

ACTIVE = pebble.ServiceStatus.ACTIVE


def _settled(ctx: testing.Context) -> testing.State:
    out = settle(ctx, state())
    assert out.unit_status == ops.ActiveStatus()
    return out


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def _with_container(state: testing.State, name: str, **changes) -> testing.State:
    container = state.get_container(name)
    changed = dataclasses.replace(container, **changes)
    return dataclasses.replace(state, containers=(state.containers - {container}) | {changed})


def test_a_settled_unit_keeps_its_status_and_writes_nothing(ctx, kube):
    out = _settled(ctx)
    assert _stored(out) == {"active": True}
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == ops.ActiveStatus()
    assert again.relations == out.relations
    assert again.containers == out.containers
    assert again.stored_states == out.stored_states
    assert kube.writes == writes


def test_a_stopped_service_is_started_again_by_update_status(ctx, kube):
    out = _settled(ctx)
    statuses = {web_app.SERVICE: pebble.ServiceStatus.INACTIVE}
    stopped = _with_container(out, web_app.CONTAINER, service_statuses=statuses)
    again = ctx.run(ctx.on.update_status(), stopped)
    assert again.get_container(web_app.CONTAINER).service_statuses[web_app.SERVICE] == ACTIVE


def test_a_failing_check_is_reported_by_update_status(ctx, kube):
    out = _settled(ctx)
    down = testing.CheckInfo(
        controller.READY_CHECK, level=pebble.CheckLevel.READY, status=pebble.CheckStatus.DOWN
    )
    failing = _with_container(out, controller.CONTAINER, check_infos=frozenset({down}))
    again = ctx.run(ctx.on.update_status(), failing)
    assert again.unit_status == ops.WaitingStatus("the notebook controller is not ready yet")
    assert _stored(again) == {"active": False}


def test_a_deleted_object_is_restored_by_update_status(ctx, kube):
    out = _settled(ctx)
    (policy,) = kube.of_kind("NetworkPolicy")
    kube.delete("NetworkPolicy", policy["metadata"]["name"], MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("NetworkPolicy", policy["metadata"]["name"], MODEL) is not None


def test_a_unit_that_is_not_active_is_not_settled(ctx, kube):
    out = _settled(ctx)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"cpu-default": "x"}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert _stored(bad) == {"active": False}
    again = ctx.run(ctx.on.update_status(), bad)
    assert again.unit_status == bad.unit_status
