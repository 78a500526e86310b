"""The Notebook kind and its RBAC, deleted behind the charm's back, come back on update-status."""

from __future__ import annotations

import pytest
from ops import testing
from unit.kubeflow_notebooks.helpers import PEERS, route_relation, settle, state


def _peer_data(out: testing.State) -> dict[str, str]:
    (peer,) = [r for r in out.relations if r.endpoint == PEERS]
    return dict(peer.local_app_data)


@pytest.fixture
def settled(ctx, kube) -> testing.State:
    return settle(ctx, state(relations={testing.PeerRelation(PEERS), route_relation()}))


def test_settled_update_status_lists_but_writes_nothing(ctx, kube, settled):
    assert _peer_data(settled)["owned-objects"]
    writes, lists = list(kube.writes), kube.lists
    again = ctx.run(ctx.on.update_status(), settled)
    assert kube.writes == writes
    assert kube.lists > lists
    assert again.relations == settled.relations


def test_deleted_crd_and_cluster_role_come_back(ctx, kube, settled):
    (crd,) = kube.of_kind("CustomResourceDefinition")
    (role, *_) = kube.of_kind("ClusterRole")
    kube.delete("CustomResourceDefinition", crd["metadata"]["name"])
    kube.delete("ClusterRole", role["metadata"]["name"])

    out = ctx.run(ctx.on.update_status(), settled)

    assert kube.get("CustomResourceDefinition", crd["metadata"]["name"])["spec"] == crd["spec"]
    assert kube.get("ClusterRole", role["metadata"]["name"])["rules"] == role["rules"]
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes
