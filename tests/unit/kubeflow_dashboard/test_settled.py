"""update-status on a settled unit looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import pebble, testing
from unit.kubeflow_dashboard.helpers import APP, MODEL, route_relation, settle, state

ACTIVE = pebble.ServiceStatus.ACTIVE
URL = ops.ActiveStatus("https://kf.example.com/")


def _settled(ctx: testing.Context) -> testing.State:
    out = settle(ctx, state(relations=state().relations | {route_relation()}))
    assert out.unit_status == URL
    return out


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def _with_service(state: testing.State, name: str, status: pebble.ServiceStatus):
    container = state.get_container(name)
    changed = dataclasses.replace(container, service_statuses={name: status})
    return dataclasses.replace(state, containers=(state.containers - {container}) | {changed})


def test_a_settled_unit_keeps_its_status_and_writes_nothing(ctx, kube):
    out = _settled(ctx)
    assert _stored(out) == {"active": True}
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == URL
    assert again.app_status == URL
    assert again.relations == out.relations
    assert again.containers == out.containers
    assert again.stored_states == out.stored_states
    assert kube.writes == writes


def test_a_stopped_service_is_started_again_by_update_status(ctx, kube):
    out = _settled(ctx)
    stopped = _with_service(out, "kfam", pebble.ServiceStatus.INACTIVE)
    again = ctx.run(ctx.on.update_status(), stopped)
    assert again.get_container("kfam").service_statuses["kfam"] == ACTIVE
    assert again.unit_status == URL


def test_a_deleted_object_is_restored_by_update_status(ctx, kube):
    out = _settled(ctx)
    kube.delete("ConfigMap", f"{APP}-config", MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("ConfigMap", f"{APP}-config", MODEL) is not None


def test_a_unit_that_is_not_active_is_not_settled(ctx, kube):
    out = _settled(ctx)
    bad = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"menu-order": "Notebooks"})
    )
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert _stored(bad) == {"active": False}
    # update-status then reconciles in full, and still says what is wrong.
    again = ctx.run(ctx.on.update_status(), bad)
    assert again.unit_status == bad.unit_status
