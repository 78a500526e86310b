"""A failing Pebble check of a kfp workload is named in the status until it recovers."""

from __future__ import annotations

import dataclasses

import ops
from ops import testing
from unit.kfp.helpers import workloads as wl
from unit.kfp.test_network import _ready


def _info(workload: wl.Workload, status=ops.pebble.CheckStatus.DOWN) -> testing.CheckInfo:
    assert workload.check is not None
    level = ops.pebble.CheckLevel.ALIVE if workload.check.endswith("-alive") else "ready"
    return testing.CheckInfo(workload.check, level=ops.pebble.CheckLevel(level), status=status)


def _with_check(state: testing.State, workload: wl.Workload, info) -> testing.State:
    container = state.get_container(workload.container)
    changed = dataclasses.replace(container, check_infos=frozenset({info}))
    return dataclasses.replace(state, containers=(state.containers - {container}) | {changed})


def _settled(ctx: testing.Context) -> testing.State:
    state = _ready()
    for _ in range(2):
        state = ctx.run(ctx.on.config_changed(), state)
    assert state.unit_status == ops.ActiveStatus()
    return state


def test_a_failed_check_is_named_until_it_recovers(ctx, kube):
    out = _settled(ctx)
    for workload in (w for w in wl.WORKLOADS if w.check is not None):
        info = _info(workload)
        failing = _with_check(out, workload, info)
        container = failing.get_container(workload.container)
        failed = ctx.run(ctx.on.pebble_check_failed(container, info), failing)
        assert failed.unit_status == ops.WaitingStatus(
            f"{workload.container} is not ready (check {workload.check} fails)"
        )
        # It stays named on later hooks, without asking Pebble.
        later = ctx.run(ctx.on.update_status(), failed)
        assert later.unit_status == failed.unit_status

        up = _info(workload, ops.pebble.CheckStatus.UP)
        mended = _with_check(later, workload, up)
        container = mended.get_container(workload.container)
        recovered = ctx.run(ctx.on.pebble_check_recovered(container, up), mended)
        assert recovered.unit_status == ops.ActiveStatus(), workload.check


def test_a_restarted_container_forgets_its_failed_checks(ctx, kube):
    out = _settled(ctx)
    info = _info(wl.API_SERVER)
    failing = _with_check(out, wl.API_SERVER, info)
    container = failing.get_container(wl.API_SERVER.container)
    failed = ctx.run(ctx.on.pebble_check_failed(container, info), failing)
    # Another container's restart does not clear it; its own does.
    other = failed.get_container(wl.UI.container)
    assert ctx.run(ctx.on.pebble_ready(other), failed).unit_status == failed.unit_status
    container = failed.get_container(wl.API_SERVER.container)
    assert ctx.run(ctx.on.pebble_ready(container), failed).unit_status == ops.ActiveStatus()


def test_two_failed_checks_are_both_kept(ctx, kube):
    out = _settled(ctx)
    state = out
    for workload in (wl.API_SERVER, wl.METADATA_GRPC):
        info = _info(workload)
        state = _with_check(state, workload, info)
        state = ctx.run(
            ctx.on.pebble_check_failed(state.get_container(workload.container), info), state
        )
    up = _info(wl.API_SERVER, ops.pebble.CheckStatus.UP)
    state = _with_check(state, wl.API_SERVER, up)
    container = state.get_container(wl.API_SERVER.container)
    state = ctx.run(ctx.on.pebble_check_recovered(container, up), state)
    assert state.unit_status == ops.WaitingStatus(
        f"{wl.METADATA_GRPC.container} is not ready (check {wl.METADATA_GRPC.check} fails)"
    )


def test_a_unit_that_loses_the_leadership_stops_its_controllers_checks(ctx, kube):
    out = _settled(ctx)
    workload = wl.WORKFLOW_CONTROLLER
    container = out.get_container(workload.container)
    assert container.service_statuses[workload.service] == ops.pebble.ServiceStatus.ACTIVE
    follower = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, leader=False))
    container = follower.get_container(workload.container)
    assert container.service_statuses[workload.service] == ops.pebble.ServiceStatus.INACTIVE
    (check,) = container.check_infos
    assert check.status == ops.pebble.CheckStatus.INACTIVE
    # Its layer keeps the check from starting again on this unit.
    assert container.plan.checks[workload.check].startup == ops.pebble.CheckStartup.DISABLED
    assert follower.unit_status == ops.ActiveStatus()
