"""The simulated model holds charms to Juju's rules for relation teardown and secrets.

The `juju-probe` test charm logs what it is shown; these tests read its lines.
Each fact about Juju is from its source: the hook reference
(juju/juju docs/reference/hook.md, commit 3ab4df3a), the uniter's relation
resolver (juju/juju worker/uniter/relation/resolver.go, commit 073dc4cb) and
rotation policies (juju/juju core/secrets/rotate.go, commit e143850c).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from bundle.simulator import EXPIRE_RETRY, ROTATE_RETRY, Model, next_rotation, simulate
from bundle.workloads import Workloads

PROBE = "juju-probe"


def _simulate(
    tmp_path: Path, apps: dict[str, dict[str, Any]], relations: list[list[str]]
) -> Model:
    """A model of juju-probe applications only: (name: settings), related as given."""
    bundle = {
        "applications": {name: {"charm": PROBE, **spec} for name, spec in apps.items()},
        "relations": relations,
    }
    return simulate(bundle, Workloads(), tmp_path)


def _said(model: Model, unit: str, since: int = 0) -> list[str]:
    """What a probe unit logged (its `probe:` lines), from log line `since` on."""
    return [
        message.removeprefix("probe: ")
        for name, _, message in model.logs[since:]
        if name == unit and message.startswith("probe: ")
    ]


def _hooks(model: Model, since: int = 0) -> list[tuple[str, str]]:
    return [(h.unit, h.event) for h in model.hooks[since:]]


def _all_active(model: Model) -> None:
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.name}: {status.message}"
    assert model.update_status_everywhere() == []


# --- relation teardown ---------------------------------------------------------------

PAIR = ["left:give", "right:take"]


@pytest.fixture
def pair(tmp_path: Path) -> Model:
    """Two applications of two units each, related."""
    return _simulate(tmp_path, {"left": {"scale": 2}, "right": {"scale": 2}}, [PAIR])


def test_each_unit_departs_each_remote_unit_in_turn_then_breaks(pair: Model):
    hooks, logs = len(pair.hooks), len(pair.logs)
    pair.remove_relation(*PAIR)

    ran = _hooks(pair, hooks)
    departed = [h for h in ran if h[1].endswith("-relation-departed")]
    broken = [h for h in ran if h[1].endswith("-relation-broken")]
    # Every departed hook (each unit, each remote unit) before any broken one.
    assert len(departed) == 8 and len(broken) == 4
    assert max(ran.index(h) for h in departed) < min(ran.index(h) for h in broken)
    # The departing unit is no longer listed, but its data is still readable;
    # the remote application's data too. Remote units depart in name order.
    assert _said(pair, "right/1", logs) == [
        "departed left/0: departing=left/0 units=[left/1] its-data=left/0 app-data=left",
        "departed left/1: departing=left/1 units=[] its-data=left/1 app-data=left",
        "broken: units=[] app-data={} active=False",
    ]
    assert _said(pair, "left/0", logs) == [
        "departed right/0: departing=right/0 units=[right/1] its-data=right/0 app-data=right",
        "departed right/1: departing=right/1 units=[] its-data=right/1 app-data=right",
        "broken: units=[] app-data={} active=False",
    ]
    assert not any(set(r.apps) == {"left", "right"} for r in pair.relations.values())
    _all_active(pair)


def test_a_relation_being_removed_sees_no_more_relation_changed(pair: Model):
    # A change of data is under way: relation-changed is queued on the other side...
    pair.set_config("left", note="bye")
    pair.run(*pair._queue.popleft())
    assert ("right/0", "take-relation-changed") in [(u.name, label) for u, _, label in pair._queue]
    hooks = len(pair.hooks)

    pair.remove_relation(*PAIR)

    # ...and dropped; nor does writing in relation-departed (as the probe does) wake anyone.
    assert not [h for h in _hooks(pair, hooks) if h[1].endswith("-relation-changed")]
    assert pair.hooks[hooks:] and all(
        h.event.endswith(("-relation-departed", "-relation-broken", "config-changed"))
        for h in pair.hooks[hooks:]
    )


# --- secrets -------------------------------------------------------------------------

GIVE_READER = ["owner:give", "reader:take"]
GIVE_IDLE = ["owner:give", "idle:take"]


def _secret(model: Model):
    (record,) = model.secrets.values()
    return record


def test_a_grant_to_a_unit_is_not_a_grant_to_its_application(tmp_path: Path):
    model = _simulate(
        tmp_path,
        {"owner": {"options": {"grant-unit": 1}}, "reader": {"scale": 2}},
        [GIVE_READER],
    )
    record = _secret(model)
    assert list(record.grants.values()) == [frozenset({"reader/1"})]
    assert "read n=1" in _said(model, "reader/1")
    assert "cannot read the secret" in _said(model, "reader/0")
    assert "read n=1" not in _said(model, "reader/0")
    assert record.tracked == {"reader/1": 1}
    _all_active(model)


@pytest.fixture
def readers(tmp_path: Path) -> Model:
    """An owner of two units; two readers, the second reading without refresh; one idle."""
    return _simulate(
        tmp_path,
        {
            "owner": {"scale": 2},
            "reader": {"scale": 2, "options": {"plain-readers": "1"}},
            "idle": {"options": {"read": False}},
        },
        [GIVE_READER, GIVE_IDLE],
    )


def test_secret_changed_goes_to_each_unit_that_tracks_the_secret(readers: Model):
    model = readers
    record = _secret(model)
    # Every unit of both applications may read it; only the readers did, and
    # the owner's other unit, which reads its application's secret as they do.
    assert {frozenset({"reader"}), frozenset({"idle"})} == set(record.grants.values())
    assert record.tracked == {"owner/1": 1, "reader/0": 1, "reader/1": 1}
    hooks, logs = len(model.hooks), len(model.logs)

    assert model.run_action("owner/0", "set-content") == {"count": "2"}

    changed = [unit for unit, event in _hooks(model, hooks) if event == "secret-changed"]
    # Not idle/0, which never read it, nor the owner's leader (juju/juju issue 19035).
    assert sorted(changed) == ["owner/1", "reader/0", "reader/1"]
    # Each unit tracks its own revision: a read without refresh stays on the old one.
    assert _said(model, "reader/0", logs) == ["changed, refreshed to n=2"]
    assert _said(model, "reader/1", logs) == ["changed, tracked n=1, latest n=2"]
    assert record.tracked == {"owner/1": 2, "reader/0": 2, "reader/1": 1}
    # Revision 1 is still tracked: the owner is not told to remove it yet.
    assert sorted(record.revisions) == [1, 2]
    assert ("owner/0", "secret-remove") not in _hooks(model, hooks)
    _all_active(model)


def test_the_owners_leader_removes_a_revision_once_no_unit_tracks_it(readers: Model):
    model = readers
    record = _secret(model)
    model.run_action("owner/0", "set-content")
    hooks, logs = len(model.hooks), len(model.logs)

    assert model.run_action("reader/1", "refresh") == {"count": "2"}

    assert ("owner/0", "secret-remove") in _hooks(model, hooks)
    assert not [h for h in _hooks(model, hooks) if h[0] == "owner/1"]
    assert _said(model, "owner/0", logs) == ["remove revision 1"]
    assert sorted(record.revisions) == [2]
    assert record.tracked == {"owner/1": 2, "reader/0": 2, "reader/1": 2}
    # Told once: nothing more happens.
    _all_active(model)
    assert [event for _, event in _hooks(model, hooks)].count("secret-remove") == 1


# --- the clock: rotation and expiry -----------------------------------------------------


def test_a_rotation_policy_raises_secret_rotate_on_the_owners_leader_when_due(tmp_path: Path):
    model = _simulate(
        tmp_path,
        {"owner": {"scale": 2, "options": {"rotate": "hourly"}}, "reader": {"scale": 2}},
        [GIVE_READER],
    )
    record = _secret(model)
    assert record.rotate == "hourly"
    hooks = len(model.hooks)

    model.advance(dt.timedelta(minutes=59))
    assert _hooks(model, hooks) == []

    model.advance(dt.timedelta(minutes=2))
    ran = _hooks(model, hooks)
    assert ran[0] == ("owner/0", "secret-rotate")
    assert sorted(u for u, e in ran if e == "secret-changed") == [
        "owner/1",
        "reader/0",
        "reader/1",
    ]
    assert ("owner/0", "secret-remove") in ran  # revision 1, which nobody tracks now
    assert record.revision == 2 and sorted(record.revisions) == [2]
    assert record.tracked == {"owner/1": 2, "reader/0": 2, "reader/1": 2}

    # An hour after the rotation, the next one; two rotations in one long step.
    hooks = len(model.hooks)
    model.advance(dt.timedelta(hours=2))
    assert [e for u, e in _hooks(model, hooks) if u == "owner/0"].count("secret-rotate") == 2
    assert record.revision == 4
    _all_active(model)


def test_secret_rotate_runs_again_until_the_owner_makes_a_revision(tmp_path: Path):
    model = _simulate(
        tmp_path,
        {"owner": {"options": {"rotate": "daily", "rotate-writes": False}}, "reader": {}},
        [GIVE_READER],
    )
    hooks = len(model.hooks)
    model.advance(dt.timedelta(days=1, seconds=30))
    assert _hooks(model, hooks) == [("owner/0", "secret-rotate")]
    model.advance(ROTATE_RETRY - dt.timedelta(minutes=1))
    assert _hooks(model, hooks) == [("owner/0", "secret-rotate")]
    model.advance(dt.timedelta(minutes=2))
    assert _hooks(model, hooks) == [("owner/0", "secret-rotate")] * 2
    assert _secret(model).revision == 1
    _all_active(model)


def test_secret_expired_runs_until_the_expired_revision_is_removed(tmp_path: Path):
    # Both readers stay on the revision they read: it is not obsolete when it expires.
    model = _simulate(
        tmp_path,
        {
            "owner": {"options": {"expire-minutes": 30}},
            "reader": {"scale": 2, "options": {"plain-readers": "0,1"}},
        },
        [GIVE_READER],
    )
    record = _secret(model)
    expires = record.expiry[1]
    assert dt.timedelta(minutes=29) < expires - model.now() <= dt.timedelta(minutes=30)
    hooks, logs = len(model.hooks), len(model.logs)

    model.advance(dt.timedelta(minutes=31))
    # The owner made a new revision that expires in turn; revision 1 is still there.
    assert _hooks(model, hooks)[0] == ("owner/0", "secret-expired")
    assert _said(model, "owner/0", logs) == ["expired revision 1, now n=2"]
    assert sorted(record.revisions) == [1, 2] and record.revision == 2
    # Made when revision 1 expired, to expire 30 minutes later.
    assert dt.timedelta(minutes=30) <= record.expiry[2] - expires < dt.timedelta(minutes=31)

    # Juju asks again until the owner removes the expired revision.
    model.advance(EXPIRE_RETRY)
    assert _said(model, "owner/0", logs)[1:] == ["expired revision 1, removed"]
    assert sorted(record.revisions) == [2]
    hooks = len(model.hooks)
    model.advance(dt.timedelta(minutes=10))
    assert _hooks(model, hooks) == []
    _all_active(model)


@pytest.mark.parametrize(
    ("policy", "last", "due"),
    [
        ("hourly", "2024-01-31T23:30:00", "2024-02-01T00:30:00"),
        ("daily", "2024-02-28T12:00:00", "2024-02-29T12:00:00"),
        ("weekly", "2024-12-28T00:00:00", "2025-01-04T00:00:00"),
        # Go's AddDate runs past a month's end on into the next month.
        ("monthly", "2024-01-31T00:00:00", "2024-03-02T00:00:00"),
        ("quarterly", "2024-11-30T00:00:00", "2025-03-02T00:00:00"),
        ("yearly", "2024-02-29T00:00:00", "2025-03-01T00:00:00"),
        ("never", "2024-01-01T00:00:00", None),
    ],
)
def test_rotation_policies_step_as_juju_steps_them(policy, last, due):
    expected = dt.datetime.fromisoformat(due) if due else None
    assert next_rotation(policy, dt.datetime.fromisoformat(last)) == expected


# --- the bundle's charms -------------------------------------------------------------


def test_the_bundles_owners_remove_the_revisions_nobody_tracks(settled_models, tmp_path: Path):
    model = settled_models.own(tmp_path)
    hooks = len(model.hooks)
    # Each makes new revisions of secrets: some read by other applications, some not.
    model.run_action("oidc-gateway/0", "rotate-secrets")  # its cookie key, dex's client secret
    model.run_action("minio/0", "rotate-credentials")  # root keys, users, the s3 relation's
    model.run_action("mysql/0", "set-password")  # its admin credentials
    model.run_action("resource-dispatcher/0", "rotate-certificates")  # its webhook's CA
    model.run_action("istio/0", "rotate-certificates")  # istiod's CA

    removed = {unit for unit, event in _hooks(model, hooks) if event == "secret-remove"}
    assert removed == {
        "oidc-gateway/0",
        "dex/0",
        "minio/0",
        "mysql/0",
        "resource-dispatcher/0",
        "istio/0",
    }
    # Every old revision is gone: no credential or key outlives its rotation.
    for record in model.secrets.values():
        assert set(record.revisions) == {record.revision}, f"{record.owner_app} {record.label}"
    _all_active(model)
