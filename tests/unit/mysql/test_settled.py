"""update-status on a settled unit looks only at mysqld; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import testing
from unit.mysql.helpers import (
    NOT_READY,
    credentials_secret,
    mysql_container,
    storage,
)

PRIMARY = testing.ActiveStatus("primary")


def _settled(ctx: testing.Context, tmp_path) -> testing.State:
    peers = testing.PeerRelation("mysql-peers", local_app_data={"data-unit": "mysql/0"})
    base = testing.State(
        leader=True,
        containers={mysql_container(tmp_path)},
        storages={storage()},
        secrets={credentials_secret()},
        relations={peers},
    )
    out = ctx.run(ctx.on.config_changed(), base)
    assert out.unit_status == PRIMARY
    return out


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def test_a_settled_unit_keeps_its_status_and_runs_nothing(ctx, tmp_path):
    out = _settled(ctx, tmp_path)
    assert _stored(out) == {"active": True}
    ctx.exec_history.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == PRIMARY
    assert ctx.exec_history == {}
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.containers == out.containers
    assert _stored(again) == {"active": True}


def test_a_stopped_mysqld_is_started_again_by_update_status(ctx, tmp_path):
    out = _settled(ctx, tmp_path)
    (container,) = out.containers
    stopped = dataclasses.replace(
        container, service_statuses={"mysqld": ops.pebble.ServiceStatus.INACTIVE}
    )
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={stopped}))
    (container,) = again.containers
    assert container.service_statuses["mysqld"] == ops.pebble.ServiceStatus.ACTIVE


def test_a_failing_ready_check_is_reported_by_update_status(ctx, tmp_path):
    out = _settled(ctx, tmp_path)
    (container,) = out.containers
    failing = dataclasses.replace(container, check_infos={NOT_READY})
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={failing}))
    assert again.unit_status == testing.WaitingStatus("mysqld is not ready yet")
    assert _stored(again) == {"active": False}


def test_a_leader_without_its_peer_relation_is_not_settled(ctx, tmp_path):
    out = _settled(ctx, tmp_path)
    alone = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, relations=set()))
    assert alone.unit_status == PRIMARY
    assert _stored(alone) == {"active": False}
