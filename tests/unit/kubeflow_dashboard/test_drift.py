"""The dashboard's objects deleted or changed behind its back are back after one update-status."""

from __future__ import annotations

import pytest
from ops import testing
from unit.kubeflow_dashboard.helpers import peer_data, settle, state


@pytest.fixture
def settled(ctx, kube) -> testing.State:
    return settle(ctx, state())


def test_settled_update_status_lists_but_writes_nothing(ctx, kube, settled):
    assert peer_data(settled)["owned-objects"]
    writes, lists = list(kube.writes), kube.lists
    again = ctx.run(ctx.on.update_status(), settled)
    assert kube.writes == writes
    assert kube.lists > lists
    assert again.relations == settled.relations


def test_deleted_role_binding_and_changed_config_map_come_back(ctx, kube, settled):
    (binding, *_) = kube.of_kind("ClusterRoleBinding")
    (config,) = kube.of_kind("ConfigMap")
    meta = config["metadata"]
    kube.delete("ClusterRoleBinding", binding["metadata"]["name"])
    kube.edit("ConfigMap", meta["name"], meta["namespace"], lambda b: b.update(data={}))

    out = ctx.run(ctx.on.update_status(), settled)

    restored = kube.get("ClusterRoleBinding", binding["metadata"]["name"])
    assert restored is not None and restored["subjects"] == binding["subjects"]
    assert kube.get("ConfigMap", meta["name"], meta["namespace"])["data"] == config["data"]
    assert peer_data(out)["owned-objects"] != peer_data(settled)["owned-objects"]
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes
    assert again.relations == out.relations
