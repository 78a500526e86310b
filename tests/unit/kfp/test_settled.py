"""update-status on a settled unit looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import pebble, testing
from unit.kfp.helpers import workloads as wl
from unit.kfp.test_cluster import APP, MODEL
from unit.kfp.test_network import _ready

ACTIVE = pebble.ServiceStatus.ACTIVE


def _settled(ctx: testing.Context, **kwargs) -> testing.State:
    state = dataclasses.replace(_ready(), **kwargs)
    for _ in range(2):
        state = ctx.run(ctx.on.config_changed(), state)
    assert state.unit_status == ops.ActiveStatus()
    return state


def _stored(state: testing.State, name: str) -> dict:
    return next(s for s in state.stored_states if s.name == name).content


def _with_service(state: testing.State, workload: wl.Workload, status) -> testing.State:
    container = state.get_container(workload.container)
    statuses = dict(container.service_statuses) | {workload.service: status}
    changed = dataclasses.replace(container, service_statuses=statuses)
    return dataclasses.replace(state, containers=(state.containers - {container}) | {changed})


def test_a_settled_unit_is_marked_so_and_stays_so(ctx, kube):
    out = _settled(ctx)
    assert _stored(out, "_settled") == {"active": True}
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == ops.ActiveStatus()
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states
    assert kube.writes == writes


def test_a_stopped_service_is_started_again_by_update_status(ctx, kube):
    out = _settled(ctx)
    stopped = _with_service(out, wl.API_SERVER, pebble.ServiceStatus.INACTIVE)
    again = ctx.run(ctx.on.update_status(), stopped)
    container = again.get_container(wl.API_SERVER.container)
    assert container.service_statuses[wl.API_SERVER.service] == ACTIVE


def test_a_deleted_object_is_restored_by_update_status(ctx, kube):
    out = _settled(ctx)
    kube.delete("Service", "ml-pipeline", MODEL)
    kube.delete("NetworkPolicy", f"{APP}-ingress", MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("Service", "ml-pipeline", MODEL) is not None
    assert kube.get("NetworkPolicy", f"{APP}-ingress", MODEL) is not None


def test_a_unit_that_is_no_longer_leader_stops_its_controllers_on_update_status(ctx, kube):
    out = _settled(ctx)
    follower = ctx.run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
    for workload in wl.WORKLOADS:
        running = follower.get_container(workload.container).service_statuses.get(workload.service)
        assert (running == ACTIVE) is not workload.leader_only, workload.service


def test_a_unit_that_is_not_active_is_not_settled(ctx, kube):
    out = _settled(ctx)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"log-level": "loud"}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert _stored(bad, "_settled") == {"active": False}
    # update-status then reconciles in full, and still says what is wrong.
    again = ctx.run(ctx.on.update_status(), bad)
    assert again.unit_status == bad.unit_status
