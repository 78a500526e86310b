"""The settled models the bundle tests share, and the copies the others change.

A copy must be the settled model as it stands, down to the files in its
workload folders and the objects in its cluster, and changing it must leave
the shared model as it was. A test that changes a shared model is caught.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from bundle.simulator import Model
from ops import testing


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _without_mounts(state: testing.State) -> testing.State:
    containers = {dataclasses.replace(c, mounts={}) for c in state.containers}
    return dataclasses.replace(state, containers=frozenset(containers))


def _picture(model: Model) -> dict:
    """Everything a test can read from a model, with its folder left out."""
    return {
        "snapshot": model._snapshot(),
        "statuses": dict(model.statuses),
        "app statuses": dict(model.app_statuses),
        "hooks": list(model.hooks),
        "logs": list(model.logs),
        "secrets": {k: dataclasses.asdict(v) for k, v in model.secrets.items()},
        "relations": {k: dataclasses.asdict(v) for k, v in model.relations.items()},
        "config": {name: dict(app.config) for name, app in model.apps.items()},
        "states": {
            unit.name: _without_mounts(unit.state)
            for app in model.apps.values()
            for unit in app.units
        },
        "cluster": {k: v.body for k, v in model.workloads.kubernetes.objects.items()},
        "files": _files(model.tmp_path),
    }


def test_a_copy_is_the_settled_model_as_it_stands(settled_models, tmp_path):
    original = settled_models.settled()
    twin = settled_models.own(tmp_path)
    assert _picture(twin) == _picture(original)
    assert twin.tmp_path != original.tmp_path
    assert twin.workloads.kubernetes is not original.workloads.kubernetes
    for app in twin.apps.values():
        for unit in app.units:
            assert unit.ctx is not original.apps[app.name].units[unit.index].ctx
            for container in unit.state.containers:
                for mount in container.mounts.values():
                    assert Path(mount.source).is_relative_to(twin.tmp_path), mount
    # It runs: a round of update-status on the copy changes nothing.
    assert twin.update_status_everywhere() == []
    assert twin.workloads.kubernetes.rejected == []


def test_changing_a_copy_leaves_the_settled_model_alone(settled_models, tmp_path):
    original = settled_models.settled()
    before = _picture(original)
    twin = settled_models.own(tmp_path)
    twin.set_config("mysql", **{"max-connections": 1})
    twin.settle()
    twin.set_config("istio", **{"gateway-replicas": 2})  # the gateway Deployment
    twin.settle()
    twin.run_action("oidc-gateway/0", "rotate-secrets")  # files in two workloads
    twin.run_action("minio/0", "rotate-credentials")
    twin.remove_relation("resource-dispatcher:secrets", "minio:secrets")
    # The copy changed: statuses, secrets, relations, config, cluster, files.
    after = _picture(twin)
    for part in ("statuses", "secrets", "relations", "config", "hooks", "cluster", "files"):
        assert after[part] != before[part], part
    assert twin.statuses["mysql/0"].name == "blocked"
    # The settled model did not.
    assert _picture(original) == before


def test_a_test_that_changes_a_shared_model_is_caught(
    settled_models, tmp_path_factory, s3_endpoint, tmp_path
):
    # A SettledModels of its own, holding a copy: the session's shared model stays clean.
    models = type(settled_models)(s3_endpoint, tmp_path_factory)
    models._models[((), None)] = settled_models.own(tmp_path)
    use = models.shared()
    model = next(use)
    model.run_action("minio/0", "rotate-credentials")
    with pytest.raises(AssertionError, match="a test changed a shared settled model"):
        next(use)
