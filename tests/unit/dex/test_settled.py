"""update-status on a settled leader looks only at Dex itself; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import testing
from unit.dex.test_registration_record import settle

UP = testing.CheckInfo(
    "dex-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
)


def _settled(ctx: testing.Context) -> testing.State:
    out = settle(ctx)
    assert out.unit_status.name == "active"
    return _with_dex(out, check_infos={UP})  # Dex serves


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def _with_dex(state: testing.State, **changes) -> testing.State:
    dex = dataclasses.replace(state.get_container("dex"), **changes)
    return dataclasses.replace(state, containers={dex})


def test_a_settled_leader_keeps_its_status_and_writes_nothing(ctx: testing.Context):
    out = _settled(ctx)
    assert _stored(out) == {"active": True}
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == out.unit_status
    assert again.app_status == out.app_status
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.get_container("dex") == out.get_container("dex")
    assert _stored(again) == {"active": True}


def test_a_stopped_dex_is_started_again_by_update_status(ctx: testing.Context):
    out = _settled(ctx)
    stopped = _with_dex(out, service_statuses={"dex": ops.pebble.ServiceStatus.INACTIVE})
    again = ctx.run(ctx.on.update_status(), stopped)
    assert again.get_container("dex").service_statuses["dex"] == ops.pebble.ServiceStatus.ACTIVE


def test_a_failing_ready_check_is_reported_by_update_status(ctx: testing.Context):
    out = _settled(ctx)
    down = testing.CheckInfo(
        "dex-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
    )
    again = ctx.run(ctx.on.update_status(), _with_dex(out, check_infos={down}))
    assert again.unit_status == testing.WaitingStatus("waiting for Dex to be ready")
    assert _stored(again) == {"active": False}
