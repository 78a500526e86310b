"""update-status on a settled unit looks only at what can drift; anything off reconciles."""

from __future__ import annotations

import dataclasses
import time

import ops
from ops import testing
from unit.resource_dispatcher import test_watch_token
from unit.resource_dispatcher.helpers import (
    certificates_secret,
    namespace_watch,
    offer,
    secret_object,
    state,
    webhook,
)
from unit.resource_dispatcher.test_webhook import _webhook_check

ACTIVE = ops.pebble.ServiceStatus.ACTIVE
DAY = test_watch_token.DAY
# The token issuer and the watch's restarts, as the watch token's tests fake them.
issuer = test_watch_token.issuer
restarts = test_watch_token.restarts
ACTIVE_STATUS = testing.ActiveStatus("1 app(s) dispatched to 0 profile namespace(s)")


def _settled(ctx: testing.Context) -> testing.State:
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    out = ctx.run(ctx.on.config_changed(), state(relation, secrets={secret}))
    assert out.unit_status == ACTIVE_STATUS
    return out


def _stored(out: testing.State) -> dict:
    (stored,) = [s for s in out.stored_states if s.owner_path == "ResourceDispatcherCharm"]
    return dict(stored.content)


def test_a_settled_unit_keeps_its_status_and_writes_nothing(ctx, kube, issuer):
    out = _settled(ctx)
    assert _stored(out)["settled"] is True
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == again.app_status == ACTIVE_STATUS
    assert kube.writes == writes
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.containers == out.containers
    assert _stored(again) == _stored(out)
    assert len(issuer.calls) == 1


def test_a_stopped_watch_is_started_again_by_update_status(ctx, kube, issuer):
    out = _settled(ctx)
    watch = out.get_container(namespace_watch.CONTAINER)
    stopped = dataclasses.replace(
        watch, service_statuses={namespace_watch.SERVICE: ops.pebble.ServiceStatus.INACTIVE}
    )
    changed = dataclasses.replace(out, containers=(out.containers - {watch}) | {stopped})
    again = ctx.run(ctx.on.update_status(), changed)
    services = again.get_container(namespace_watch.CONTAINER).service_statuses
    assert services[namespace_watch.SERVICE] == ACTIVE


def test_a_webhook_that_stops_answering_is_reported_by_update_status(ctx, kube, issuer):
    out = _settled(ctx)
    again = ctx.run(ctx.on.update_status(), _webhook_check(out, ops.pebble.CheckStatus.DOWN))
    assert again.unit_status == testing.WaitingStatus(
        "the PodDefault webhook is not ready yet (check webhook-ready)"
    )
    assert _stored(again)["settled"] is False


def test_a_due_watch_token_is_renewed_on_a_settled_unit(ctx, kube, issuer, restarts):
    out = _settled(ctx)
    issued = time.time() - DAY * 2 / 3 - 60
    (stored,) = [s for s in out.stored_states if s.owner_path == "ResourceDispatcherCharm"]
    content = dict(stored.content, watch_token_issued=issued, watch_token_expires=issued + DAY)
    aged = dataclasses.replace(stored, content=content)
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, stored_states={aged}))
    assert len(issuer.calls) == 2
    assert restarts == [namespace_watch.SERVICE]
    assert again.unit_status == ACTIVE_STATUS


def test_a_due_certificate_is_renewed_on_a_settled_unit(ctx, kube, issuer):
    out = _settled(ctx)
    secret = certificates_secret(out)
    aged = dict(secret.latest_content, **{"not-before": "2000-01-01T00:00:00+00:00"})
    aged_secret = dataclasses.replace(secret, tracked_content=aged, latest_content=aged)
    again = ctx.run(
        ctx.on.update_status(),
        dataclasses.replace(out, secrets=(out.secrets - {secret}) | {aged_secret}),
    )
    renewed = certificates_secret(again).latest_content
    assert renewed["serial"] != secret.latest_content["serial"]
    env = again.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE].environment
    assert env == {"TLS_SERIAL": renewed["serial"]}


def test_a_settled_follower_takes_the_certificate_the_leader_renewed(ctx, kube, issuer):
    leader = _settled(ctx)
    follower = ctx.run(ctx.on.config_changed(), dataclasses.replace(leader, leader=False))
    assert _stored(follower)["settled"] is True
    secret = certificates_secret(leader)
    aged = dict(secret.latest_content, **{"not-before": "2000-01-01T00:00:00+00:00"})
    aged_secret = dataclasses.replace(secret, tracked_content=aged, latest_content=aged)
    renewed = ctx.run(
        ctx.on.update_status(),
        dataclasses.replace(leader, secrets=(leader.secrets - {secret}) | {aged_secret}),
    )
    new = certificates_secret(renewed)
    # The leader's new revision, as the follower reads it on its next update-status.
    again = ctx.run(
        ctx.on.update_status(),
        dataclasses.replace(follower, secrets=(follower.secrets - {secret}) | {new}),
    )
    env = again.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE].environment
    assert env == {"TLS_SERIAL": new.latest_content["serial"]}
