"""update-status on a settled leader looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses

import ops
from ops import testing
from unit.istio.helpers import istiod, route, settle, state, with_relations

URL = testing.ActiveStatus("http://kf.example.com")


def _settled(ctx: testing.Context) -> testing.State:
    base = state(config={"external-hostname": "kf.example.com"})
    out = settle(ctx, with_relations(base, route("dex", "/dex", auth=False)))
    assert out.unit_status == URL
    return out


def _stored(state: testing.State) -> dict:
    return next(s for s in state.stored_states if s.name == "_settled").content


def test_a_settled_leader_keeps_its_status_and_writes_nothing(ctx, kube):
    out = _settled(ctx)
    assert _stored(out) == {"active": True}
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == again.app_status == URL
    assert kube.writes == writes
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.containers == out.containers
    assert _stored(again) == {"active": True}


def test_a_stopped_istiod_is_started_again_by_update_status(ctx, kube):
    out = _settled(ctx)
    stopped = dataclasses.replace(
        out.get_container(istiod.CONTAINER),
        service_statuses={istiod.SERVICE: ops.pebble.ServiceStatus.INACTIVE},
    )
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={stopped}))
    services = again.get_container(istiod.CONTAINER).service_statuses
    assert services[istiod.SERVICE] == ops.pebble.ServiceStatus.ACTIVE


def test_a_failing_ready_check_is_reported_by_update_status(ctx, kube):
    out = _settled(ctx)
    container = out.get_container(istiod.CONTAINER)
    down = testing.CheckInfo(
        istiod.READY_CHECK, level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
    )
    failing = dataclasses.replace(container, check_infos=frozenset({down}))
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={failing}))
    assert again.unit_status == testing.WaitingStatus("istiod is not ready yet")
    assert _stored(again) == {"active": False}


def test_a_follower_reconciles_in_full(ctx, kube):
    out = _settled(ctx)
    follower = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, leader=False))
    assert _stored(follower) == {"active": True}
    # A follower's istiod must run the certificates the leader keeps: it reads its
    # plan again (here emptied behind its back) and gives istiod its layer back.
    emptied = dataclasses.replace(
        follower.get_container(istiod.CONTAINER), layers={}, check_infos=frozenset()
    )
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(follower, containers={emptied}))
    assert istiod.SERVICE in again.get_container(istiod.CONTAINER).plan.services
