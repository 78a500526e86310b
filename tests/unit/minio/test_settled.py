"""update-status on a settled unit looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses
from typing import Any

import ops
from ops import testing
from unit.minio.test_charm import SERVICE_URL, _ready_check, container, make_state
from unit.minio.test_charm import _keys_root as _keys_root  # each test's key directory

ACTIVE = ops.pebble.ServiceStatus.ACTIVE


def _settled(ctx: testing.Context) -> testing.State:
    out = ctx.run(ctx.on.pebble_ready(container()), make_state())
    assert out.unit_status == testing.ActiveStatus(SERVICE_URL)
    return out


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def test_a_settled_unit_keeps_its_status_and_writes_nothing(
    ctx: testing.Context, local_minio: Any
):
    out = _settled(ctx)
    assert _stored(out) == {"active": True}
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == out.unit_status
    assert again.app_status == out.app_status
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.containers == out.containers
    assert _stored(again) == {"active": True}


def test_a_stopped_minio_is_started_again_by_update_status(ctx: testing.Context, local_minio: Any):
    out = _settled(ctx)
    stopped = dataclasses.replace(
        out.get_container("minio"), service_statuses={"minio": ops.pebble.ServiceStatus.INACTIVE}
    )
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={stopped}))
    assert again.get_container("minio").service_statuses["minio"] == ACTIVE


def test_a_failing_check_is_reported_by_update_status(ctx: testing.Context, local_minio: Any):
    out = _settled(ctx)
    again = ctx.run(ctx.on.update_status(), _ready_check(out, ops.pebble.CheckStatus.DOWN))
    assert again.unit_status == testing.WaitingStatus("MinIO is not ready yet (check minio-ready)")
    assert _stored(again) == {"active": False}


def test_a_second_unit_blocks_the_app_on_update_status(ctx: testing.Context, local_minio: Any):
    out = _settled(ctx)
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, planned_units=2))
    assert again.app_status == testing.BlockedStatus(
        "server mode runs one unit: scale the application to 1"
    )


def test_a_unit_that_is_not_active_is_not_settled(ctx: testing.Context, local_minio: Any):
    out = _settled(ctx)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"mode": "nowhere"}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert _stored(bad) == {"active": False}
    again = ctx.run(ctx.on.update_status(), bad)
    assert again.unit_status == bad.unit_status
