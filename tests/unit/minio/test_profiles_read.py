"""`profiles-read`: an s3 requirer lets every profile read its bucket or path, read-only.

A requirer (mlflow) asks with `profiles-read: "true"`; every profile's MinIO
policy then lists and reads that bucket/path, and nothing more. A change to
those relations rewrites every profile's policy in the same hook.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# The charm's module, on the path once conftest has loaded the charm.
import minio_users
import pytest
from ops import testing

from kubeflow_interfaces import kubernetes_manifests, s3

NAMESPACES = ["alice", "bob"]
WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def _dispatcher() -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(
        "secrets", remote_app_name="dispatcher", namespaces=NAMESPACES
    )


def _mlflow(*, profiles_read: bool = True, path: str | None = "artifacts") -> testing.Relation:
    return s3.relation_for_provider(
        bucket="mlflow", path=path, remote_app_name="mlflow", profiles_read=profiles_read
    )


def _state(*relations: testing.Relation, **kwargs: Any) -> testing.State:
    defaults: dict[str, Any] = {
        "leader": True,
        "relations": set(relations),
        "containers": {testing.Container("minio", can_connect=True)},
        "storages": {testing.Storage("data")},
        "model": testing.Model(name="kubeflow"),
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def _replace_relation(
    state: testing.State, relation: testing.Relation, remote_app_data: dict[str, str]
) -> tuple[testing.State, testing.Relation]:
    before = state.get_relation(relation.id)
    changed = dataclasses.replace(before, remote_app_data=remote_app_data)
    return dataclasses.replace(state, relations=(state.relations - {before}) | {changed}), changed


def _profile_secrets(out: testing.State, relation: testing.Relation) -> list[dict[str, Any]]:
    data = out.get_relation(relation.id).local_app_data
    content = out.get_secret(id=data[kubernetes_manifests.MANIFESTS_FIELD]).latest_content or {}
    return json.loads(content[kubernetes_manifests.CONTENT_KEY])


def _granted(policy: dict[str, Any], bucket: str) -> set[str]:
    """Every action the policy allows on the bucket or its objects."""
    return {
        action
        for statement in policy["Statement"]
        if any(r.startswith(f"arn:aws:s3:::{bucket}") for r in statement["Resource"])
        for action in statement["Action"]
    }


def test_every_profile_reads_the_bucket_path_a_requirer_opens(ctx, local_minio, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow()

    out = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))

    grant = minio_users.ReadGrant("mlflow", "artifacts")
    for namespace in NAMESPACES:
        policy = minio_admin.policy_of(f"kf-profile-{namespace}")
        assert policy == minio_users.profile_policy(namespace, [grant])
        assert _granted(policy, "mlflow") == {
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
        }
        objects = {
            r
            for s in policy["Statement"]
            if "s3:GetObject" in s["Action"]
            for r in s["Resource"]
            if r.startswith("arn:aws:s3:::mlflow")
        }
        assert objects == {"arn:aws:s3:::mlflow/artifacts/*"}
        (listing,) = [
            s
            for s in policy["Statement"]
            if s["Action"] == ["s3:ListBucket"] and s["Resource"] == ["arn:aws:s3:::mlflow"]
        ]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": ["artifacts/*"]}}
    # The requirer's own user still writes there; the profiles never do.
    own = minio_admin.policy_of(f"kf-s3-{mlflow.id}")
    assert own == minio_users.relation_policy("mlflow", "artifacts")
    assert out.app_status == testing.ActiveStatus("1 bucket request(s) served")


def test_a_whole_bucket_is_opened_read_only(ctx, local_minio, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow(path=None)

    ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))

    policy = minio_admin.policy_of("kf-profile-alice")
    assert policy == minio_users.profile_policy("alice", [minio_users.ReadGrant("mlflow")])
    assert not _granted(policy, "mlflow") & WRITES
    assert any(
        s["Action"] == ["s3:GetObject"] and s["Resource"] == ["arn:aws:s3:::mlflow/*"]
        for s in policy["Statement"]
    )


def test_a_requirer_that_does_not_ask_opens_nothing(ctx, local_minio, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow(profiles_read=False)

    ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))

    for namespace in NAMESPACES:
        policy = minio_admin.policy_of(f"kf-profile-{namespace}")
        assert policy == minio_users.profile_policy(namespace)
        assert not _granted(policy, "mlflow")


def test_asking_later_rewrites_every_profile_policy_in_the_same_hook(
    ctx, local_minio, minio_admin
):
    dispatcher, mlflow = _dispatcher(), _mlflow(profiles_read=False)
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    keys = {u: k for u, k in minio_admin.users.items() if u.startswith("kf-profile-")}
    secrets_before = _profile_secrets(settled, dispatcher)
    calls = len(minio_admin.calls)
    state_in, changed = _replace_relation(
        settled, mlflow, {**mlflow.remote_app_data, "profiles-read": "true"}
    )

    out = ctx.run(ctx.on.relation_changed(changed), state_in)

    grant = minio_users.ReadGrant("mlflow", "artifacts")
    for namespace in NAMESPACES:
        policy = minio_users.profile_policy(namespace, [grant])
        assert minio_admin.policy_of(f"kf-profile-{namespace}") == policy
    written = {subject for name, subject in minio_admin.calls[calls:] if name == "policy_add"}
    assert written == {"kf-profile-alice", "kf-profile-bob"}  # the relation's own is as it was
    # The profiles keep their keys: their Secrets are unchanged.
    assert {u: minio_admin.users[u] for u in keys} == keys
    assert _profile_secrets(out, dispatcher) == secrets_before


def test_removing_the_relation_closes_it_to_every_profile_in_the_same_hook(
    ctx, local_minio, minio_admin
):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    assert _granted(minio_admin.policy_of("kf-profile-alice"), "mlflow")

    ctx.run(ctx.on.relation_broken(settled.get_relation(mlflow.id)), settled)

    for namespace in NAMESPACES:
        policy = minio_admin.policy_of(f"kf-profile-{namespace}")
        assert policy == minio_users.profile_policy(namespace)
    assert f"kf-s3-{mlflow.id}" not in minio_admin.users


def test_a_settled_hook_calls_minio_for_nothing(ctx, local_minio, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    calls = list(minio_admin.calls)

    # Not the update-status fast path: a full reconcile, compared with the stored digests.
    out = ctx.run(ctx.on.config_changed(), settled)

    assert minio_admin.calls == calls
    assert out.relations == settled.relations


def test_the_stored_digest_holds_the_grant(ctx, local_minio, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    out = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))

    users = json.loads((out.get_secret(label="scoped-users").latest_content or {})["users"])
    grant = minio_users.ReadGrant("mlflow", "artifacts")
    digest = minio_users.policy_digest(minio_users.profile_policy("alice", [grant]))
    assert users["kf-profile-alice"]["policy"] == digest
    assert digest != minio_users.policy_digest(minio_users.profile_policy("alice"))


@pytest.mark.parametrize("value", ["yes", "True", "1", ""])
def test_a_malformed_profiles_read_blocks_and_changes_nothing(
    ctx, local_minio, minio_admin, value: str
):
    dispatcher, mlflow = _dispatcher(), _mlflow(profiles_read=False)
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    policies = dict(minio_admin.policies)
    users = dict(minio_admin.users)
    state_in, changed = _replace_relation(
        settled, mlflow, {**mlflow.remote_app_data, "profiles-read": value}
    )

    out = ctx.run(ctx.on.relation_changed(changed), state_in)

    assert out.app_status == testing.BlockedStatus(
        f"s3-credentials: malformed request: mlflow wrote profiles-read {value!r} "
        '(profiles-read is "true" or "false")'
    )
    # Every user, policy and key stays as it was, the requirer's own among them; so does
    # what it was answered and what the profiles were handed.
    assert minio_admin.users == users
    assert minio_admin.policies == policies
    assert out.get_relation(mlflow.id).local_app_data == (
        settled.get_relation(mlflow.id).local_app_data
    )
    assert _profile_secrets(out, dispatcher) == _profile_secrets(settled, dispatcher)


def test_an_answered_relation_asking_for_an_invalid_bucket_keeps_its_user(
    ctx, local_minio, minio_admin
):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    users, policies = dict(minio_admin.users), dict(minio_admin.policies)
    state_in, changed = _replace_relation(
        settled, mlflow, {**mlflow.remote_app_data, "bucket": "Bad_Bucket"}
    )

    out = ctx.run(ctx.on.relation_changed(changed), state_in)

    assert out.app_status == testing.BlockedStatus(
        "invalid bucket name: mlflow asked for bucket 'Bad_Bucket'"
    )
    assert (minio_admin.users, minio_admin.policies) == (users, policies)
    assert out.get_relation(mlflow.id).local_app_data == (
        settled.get_relation(mlflow.id).local_app_data
    )


def test_a_malformed_request_keeps_what_profiles_read_until_it_is_fixed(
    ctx, local_minio, minio_admin
):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    settled = ctx.run(ctx.on.relation_changed(mlflow), _state(dispatcher, mlflow))
    opened = minio_admin.policy_of("kf-profile-alice")
    assert _granted(opened, "mlflow")
    bad_in, bad = _replace_relation(
        settled, mlflow, {**mlflow.remote_app_data, "profiles-read": "maybe"}
    )
    blocked = ctx.run(ctx.on.relation_changed(bad), bad_in)
    assert minio_admin.policy_of("kf-profile-alice") == opened

    # Fixed by no longer asking: the grant goes from every profile.
    fixed_in, fixed = _replace_relation(
        blocked, mlflow, {k: v for k, v in mlflow.remote_app_data.items() if k != "profiles-read"}
    )
    out = ctx.run(ctx.on.relation_changed(fixed), fixed_in)

    assert out.app_status == testing.ActiveStatus("1 bucket request(s) served")
    for namespace in NAMESPACES:
        assert minio_admin.policy_of(f"kf-profile-{namespace}") == (
            minio_users.profile_policy(namespace)
        )


def test_external_mode_makes_no_user_for_profiles_read(ctx, minio_admin):
    dispatcher, mlflow = _dispatcher(), _mlflow()
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = {
        "mode": "external",
        "external-endpoint": "https://s3.example.com",
        "external-secret-id": keys.id,
    }

    out = ctx.run(
        ctx.on.relation_changed(mlflow),
        _state(dispatcher, mlflow, config=config, secrets={keys}),
    )

    assert minio_admin.calls == []
    assert out.get_relation(mlflow.id).local_app_data["bucket"] == "mlflow"
    assert _profile_secrets(out, dispatcher) == []
