"""Leadership moves and leaders go: the new leader takes over, nothing is lost or made twice.

Every application gets a second unit (`juju add-unit`), and a profile
workspace is served, so there is something to lose. Then, one application
at a time: leadership moves to unit 1 (the leader's pod was away longer than
its lease, say), and unit 1 is scaled away while it leads (on Kubernetes
`juju remove-unit` removes the highest-numbered unit; a dying leader keeps
its lease until it is gone, see `Model.remove_unit`). After each step the
model settles with the same statuses, the same cluster objects, the same
application secrets (same ids, same revisions: no certificate rotated, no
credential made again) and the same relation data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle.fake_kubernetes import routed_lightkube
from bundle.simulator import Model
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
NOTICE = "kubeflow.org/profile-namespace"
APPS = (
    "mysql",
    "minio",
    "istio",
    "dex",
    "oidc-gateway",
    "kubeflow-dashboard",
    "kubeflow-notebooks",
    "resource-dispatcher",
    "kfp",
)
# What mysql says by design with two units: its data lives on one unit only.
MYSQL_SECOND = "replication is not supported yet: this unit keeps mysqld stopped"
MYSQL_LEADER_WITHOUT_DATA = (
    "data lives on mysql/0; replication is not supported yet,"
    " so this leader serves no new relation"
)
MINIO_TWO = "server mode runs one unit: scale the application to 1"


def two_units_each(model: Model) -> None:
    """A profile workspace, then a second unit of every application; settled."""
    model.workloads.kubernetes.client().apply(
        Namespace(metadata=ObjectMeta(name="alice", labels=PROFILE_LABELS))
    )
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")
    for app in APPS:
        model.add_unit(app)
    model.settle()


@pytest.fixture
def two_units(settled_models) -> Iterator[Model]:
    """The bundle with two units of everything, shared by the tests that only read it."""
    model = settled_models.derived(two_units_each)
    with routed_lightkube(model.workloads.kubernetes):
        yield model


def _statuses(model: Model) -> dict[str, str]:
    """Each unit's and application's status; what each leader unit says, by application."""
    units = {name: status.name for name, status in model.statuses.items()}
    apps = {f"app {name}": f"{s.name}: {s.message}" for name, s in model.app_statuses.items()}
    leaders = {
        f"leader of {app}": f"{model.statuses[leader.name].name}: "
        + model.statuses[leader.name].message
        for app in model.apps
        for leader in [model.leader_of(app)]
    }
    return units | apps | leaders


def _served(model: Model) -> dict[str, Any]:
    """What the model serves, whoever serves it.

    Every cluster object (without what the API server bumps on each write),
    every application secret with its revision, every relation's application
    data. Unit data and unit-owned secrets go with their units.
    """
    objects = {}
    for key, stored in model.workloads.kubernetes.objects.items():
        body = copy.deepcopy(stored.body)
        for field in ("resourceVersion", "managedFields", "generation"):
            body["metadata"].pop(field, None)
        objects[key] = body
    secrets = {
        record.id: (record.owner_app, record.label, record.revision, dict(record.content))
        for record in model.secrets.values()
        if record.owner == "app"
    }
    relations = {
        (record.id, app): dict(data)
        for record in model.relations.values()
        for app, data in record.app_data.items()
    }
    return {"objects": objects, "secrets": secrets, "relations": relations}


def _assert_same(before: dict[str, Any], after: dict[str, Any], when: str) -> None:
    for part in ("objects", "secrets", "relations"):
        old, new = before[part], after[part]
        changed = sorted(str(k) for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        assert changed == [], f"{when}: {part} changed: {changed}"


def test_a_second_unit_of_every_application_settles(two_units: Model):
    model = two_units
    assert all(len(model.apps[app].units) == 2 for app in APPS)
    statuses = _statuses(model)
    blocked = {name: status for name, status in statuses.items() if "active" not in status}
    assert blocked == {"mysql/1": "blocked", "app minio": f"blocked: {MINIO_TWO}"}
    assert model.statuses["mysql/1"].message == MYSQL_SECOND
    assert statuses["leader of mysql"] == "active: primary"
    assert statuses["app mysql"] == "active: one unit serves; replication is not supported yet"
    # The workspace is served once, by the leader.
    objects = {
        f"{obj['kind']}/{obj['metadata']['name']}"
        for kind in ("Secret", "PodDefault")
        for obj in model.workloads.kubernetes.of_kind(kind)
        if obj["metadata"].get("namespace") == "alice"
    }
    assert {"Secret/minio-credentials", "PodDefault/access-minio"} <= objects
    assert model.workloads.kubernetes.rejected == []
    assert model.leaks() == []


@pytest.mark.parametrize("app", APPS)
def test_leadership_moves_then_the_leader_is_scaled_away(settled_models, tmp_path: Path, app):
    model = settled_models.own_derived(tmp_path, two_units_each)
    statuses, served = _statuses(model), _served(model)

    model.elect(f"{app}/1")
    model.settle()

    assert model.leader_of(app).name == f"{app}/1"
    expected = dict(statuses)
    if app == "mysql":  # the new leader holds no data: what is served stays on mysql/0
        expected["mysql/1"] = "blocked"
        blocked = f"blocked: {MYSQL_LEADER_WITHOUT_DATA}"
        expected["app mysql"] = expected["leader of mysql"] = blocked
    assert _statuses(model) == expected
    if app == "mysql":
        assert model.statuses["mysql/0"].message == (
            "primary; new relations wait until this unit leads"
        )
    _assert_same(served, _served(model), f"after {app}/1 was elected")

    model.remove_unit(f"{app}/1")

    assert model.leader_of(app).name == f"{app}/0"
    assert [unit.name for unit in model.apps[app].units] == [f"{app}/0"]
    expected = {name: status for name, status in statuses.items() if name != f"{app}/1"}
    if app == "mysql":  # one unit: nothing to say about replication
        expected["app mysql"] = "active: "
    if app == "minio":  # one unit: what minio serves
        expected["app minio"] = "active: 3 bucket request(s) served"  # mysql's, kfp's, mlflow's
    assert _statuses(model) == expected
    _assert_same(served, _served(model), f"after {app}/1 was scaled away")
    # Settled: the next update-status of the unit that stays changes nothing.
    assert model.update_status(f"{app}/0") == []
    assert model.workloads.kubernetes.rejected == []


def test_only_the_highest_numbered_unit_can_be_removed(settled_models, tmp_path: Path):
    model = settled_models.own_derived(tmp_path, two_units_each)
    with pytest.raises(ValueError, match="highest-numbered unit"):
        model.remove_unit("istio/0")
