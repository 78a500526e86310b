"""An object of istio's deleted or changed behind its back is back after one update-status."""

from __future__ import annotations

import pytest
from ops import testing
from unit.istio.helpers import route, settle, state, with_relations

from kubeflow_charms import drift
from kubeflow_charms.kubernetes import KubernetesError


def _peer_data(out: testing.State) -> dict[str, str]:
    (peer,) = [r for r in out.relations if r.endpoint == "istio-peers"]
    return dict(peer.local_app_data)


@pytest.fixture
def settled(ctx, kube) -> testing.State:
    return settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))


def test_settled_update_status_lists_but_writes_nothing(ctx, kube, settled):
    assert _peer_data(settled)["owned-objects"]
    writes, lists = list(kube.writes), kube.lists
    again = ctx.run(ctx.on.update_status(), settled)
    assert kube.writes == writes
    assert kube.lists > lists
    assert again.relations == settled.relations


def test_deleted_webhook_is_applied_again_on_update_status(ctx, kube, settled):
    (webhook,) = kube.of_kind("MutatingWebhookConfiguration")
    name = webhook["metadata"]["name"]
    kube.delete("MutatingWebhookConfiguration", name)
    before = _peer_data(settled)["owned-objects"]

    out = ctx.run(ctx.on.update_status(), settled)

    restored = kube.get("MutatingWebhookConfiguration", name)
    assert restored is not None and restored["webhooks"] == webhook["webhooks"]
    assert _peer_data(out)["owned-objects"] not in (before, None)
    assert out.unit_status == settled.unit_status
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes


def test_changed_gateway_deployment_is_applied_again(ctx, kube, settled):
    (deployment,) = kube.of_kind("Deployment")
    name = deployment["metadata"]["name"]
    wanted = deployment["spec"]["replicas"]
    kube.edit("Deployment", name, "kubeflow", lambda b: b["spec"].update(replicas=wanted + 4))
    ctx.run(ctx.on.update_status(), settled)
    assert kube.get("Deployment", name, "kubeflow")["spec"]["replicas"] == wanted


def test_api_unreachable_on_update_status_changes_nothing(ctx, kube, settled, monkeypatch):
    def unreachable(*_):
        raise KubernetesError("the Kubernetes API is unreachable: connection refused")

    monkeypatch.setattr(drift, "send", unreachable)
    writes = list(kube.writes)
    out = ctx.run(ctx.on.update_status(), settled)
    assert kube.writes == writes
    assert out.relations == settled.relations
    assert out.unit_status == settled.unit_status
    assert any("cannot check the Kubernetes objects" in line.message for line in ctx.juju_log)
