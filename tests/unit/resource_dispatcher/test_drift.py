"""The webhook and what was dispatched, deleted behind the charm's back, come back."""

from __future__ import annotations

import pytest
from ops import testing
from unit.resource_dispatcher.helpers import PEERS, add_namespace, offer, secret_object, state


def _peer_data(out: testing.State) -> dict[str, str]:
    (peer,) = [r for r in out.relations if r.endpoint == PEERS]
    return dict(peer.local_app_data)


@pytest.fixture
def settled(ctx, kube) -> testing.State:
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    return ctx.run(ctx.on.update_status(), out)


def test_settled_update_status_lists_but_writes_nothing(ctx, kube, settled):
    assert _peer_data(settled)["owned-objects"]
    writes, lists = list(kube.writes), kube.lists
    again = ctx.run(ctx.on.update_status(), settled)
    assert kube.writes == writes
    assert kube.lists > lists
    assert again.relations == settled.relations


def test_deleted_webhook_and_dispatched_secret_come_back(ctx, kube, settled):
    (webhook,) = kube.of_kind("MutatingWebhookConfiguration")
    kube.delete("MutatingWebhookConfiguration", webhook["metadata"]["name"])
    kube.delete("Secret", "minio-credentials", "team-a")

    out = ctx.run(ctx.on.update_status(), settled)

    restored = kube.get("MutatingWebhookConfiguration", webhook["metadata"]["name"])
    assert restored is not None and restored["webhooks"] == webhook["webhooks"]
    assert kube.get("Secret", "minio-credentials", "team-a") is not None
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 1 profile namespace(s)")
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes


def test_loosened_webhook_is_put_back(ctx, kube, settled):
    (webhook,) = kube.of_kind("MutatingWebhookConfiguration")
    name = webhook["metadata"]["name"]

    def loosen(body):
        body["webhooks"][0]["failurePolicy"] = "Ignore"

    kube.edit("MutatingWebhookConfiguration", name, None, loosen)
    ctx.run(ctx.on.update_status(), settled)
    assert kube.get("MutatingWebhookConfiguration", name)["webhooks"] == webhook["webhooks"]
