"""The secrets and pod-defaults requirers: what minio hands the resource dispatcher."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# The charm's module, on the path once conftest has loaded the charm.
import minio_users
import pytest
import yaml
from ops import testing

from kubeflow_interfaces import kubernetes_manifests

SERVICE_URL = "http://minio.kubeflow.svc.cluster.local:9000"
# KServe's S3 annotations for the in-cluster MinIO (names: kserve/kserve v0.14.1
# pkg/credentials/s3/s3_secret.go; tests/conformance checks them against the facts).
KSERVE = {
    "serving.kserve.io/s3-endpoint": "minio.kubeflow.svc.cluster.local:9000",
    "serving.kserve.io/s3-usehttps": "0",
    "serving.kserve.io/s3-region": "us-east-1",
}
CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUSGVsbG8gdGVzdCBjZXJ0aWZpY2F0ZTAKBggqhkjOPQQD\n"
    "-----END CERTIFICATE-----\n"
)


def _relation(endpoint: str) -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(endpoint, remote_app_name="dispatcher")


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


def _objects(out: testing.State, relation: testing.Relation) -> list[dict[str, Any]]:
    data = out.get_relation(relation.id).local_app_data
    assert data[kubernetes_manifests.IS_SECRET_FIELD] == "true"
    secret = out.get_secret(id=data[kubernetes_manifests.MANIFESTS_FIELD])
    assert relation.id in secret.remote_grants
    content = secret.latest_content or {}
    return json.loads(content[kubernetes_manifests.CONTENT_KEY])


def _root(out: testing.State) -> dict[str, str]:
    return dict(out.get_secret(label="root-credentials").latest_content or {})


def _dispatcher(namespaces: list[str] | None, **kwargs: Any) -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(
        "secrets", remote_app_name="dispatcher", namespaces=namespaces, **kwargs
    )


def _with_namespaces(
    state: testing.State, relation: testing.Relation, namespaces: list[str] | str
) -> tuple[testing.State, testing.Relation]:
    """The dispatcher's list changed (a JSON list, or raw text for a bad one)."""
    before = state.get_relation(relation.id)
    text = namespaces if isinstance(namespaces, str) else json.dumps(namespaces)
    changed = dataclasses.replace(
        before, remote_app_data={**before.remote_app_data, "profile-namespaces": text}
    )
    return dataclasses.replace(state, relations=(state.relations - {before}) | {changed}), changed


@pytest.fixture
def relations() -> tuple[testing.Relation, testing.Relation]:
    return _dispatcher(["alice", "bob"]), _relation("pod-defaults")


def test_each_profile_gets_its_own_keys_pinned_to_its_namespace(
    ctx, relations, local_minio, minio_admin
):
    secrets, pod_defaults = relations
    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    root = _root(out)
    objects = _objects(out, secrets)
    assert [(o["kind"], o["metadata"]) for o in objects] == [
        ("Secret", {"name": "minio-credentials", "namespace": "alice", "annotations": KSERVE}),
        ("Secret", {"name": "minio-credentials", "namespace": "bob", "annotations": KSERVE}),
    ]
    for obj in objects:
        namespace = obj["metadata"]["namespace"]
        user = f"kf-profile-{namespace}"
        key = minio_admin.users[user]
        assert obj["stringData"] == {
            "AWS_ACCESS_KEY_ID": user,
            "AWS_SECRET_ACCESS_KEY": key,
            "MINIO_ACCESS_KEY": user,
            "MINIO_SECRET_KEY": key,
        }
        assert minio_admin.policy_of(user) == minio_users.profile_policy(namespace)
        # Never the root keys.
        assert not set(root.values()) & set(obj["stringData"].values())
    # The bucket the profile policies name exists.
    assert "mlpipeline" in local_minio.buckets()
    # Nothing in clear in the databag: only the secret's id and the flag saying it is one.
    assert set(out.get_relation(secrets.id).local_app_data) == {
        "kubernetes_manifests",
        "is_secret",
    }
    assert out.app_status == testing.ActiveStatus("0 bucket request(s) served")


def test_the_pod_default_names_the_profile_secret_by_its_one_name(ctx, relations, local_minio):
    secrets, pod_defaults = relations
    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    (pod_default,) = _objects(out, pod_defaults)
    names = {o["metadata"]["name"] for o in _objects(out, secrets)}
    assert pod_default["spec"]["envFrom"] == [{"secretRef": {"name": names.pop()}}]
    assert not names  # every profile's Secret has that same name


def test_without_the_dispatchers_list_no_profile_gets_keys(ctx, local_minio, minio_admin):
    secrets = _dispatcher(None)

    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets))

    assert _objects(out, secrets) == []
    assert minio_admin.calls == []
    assert out.app_status == testing.ActiveStatus(
        "0 bucket request(s) served; profile credentials wait for the dispatcher's namespace list"
    )


def test_no_dispatcher_says_nothing_about_profiles(ctx):
    out = ctx.run(ctx.on.config_changed(), _state())

    assert out.app_status == testing.ActiveStatus("0 bucket request(s) served")


@pytest.mark.parametrize("bad", ["not json", '"alice"', '["Alice"]', '["alice", 3]', '["-x"]'])
def test_a_bad_namespace_list_blocks_and_changes_nothing(
    ctx, relations, local_minio, minio_admin, bad
):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))
    users = dict(minio_admin.users)
    state_in, changed = _with_namespaces(settled, secrets, bad)

    out = ctx.run(ctx.on.relation_changed(changed), state_in)

    assert isinstance(out.app_status, testing.BlockedStatus)
    assert out.app_status.message.startswith("secrets: dispatcher")
    assert "profile namespace" in out.app_status.message
    assert minio_admin.users == users
    assert _objects(out, secrets) == _objects(settled, secrets)


def test_a_profile_gone_loses_its_user_policy_and_secret(ctx, relations, local_minio, minio_admin):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))
    state_in, changed = _with_namespaces(settled, secrets, ["alice"])

    out = ctx.run(ctx.on.relation_changed(changed), state_in)

    assert "kf-profile-bob" not in minio_admin.users
    assert "kf-profile-bob" not in minio_admin.policies
    assert "kf-profile-alice" in minio_admin.users
    assert [o["metadata"]["namespace"] for o in _objects(out, secrets)] == ["alice"]
    # The user goes before its policy: MinIO refuses to remove a policy in use.
    assert minio_admin.calls[-2:] == [
        ("user_remove", "kf-profile-bob"),
        ("policy_remove", "kf-profile-bob"),
    ]


def test_removing_the_dispatcher_removes_every_profile_user(
    ctx, relations, local_minio, minio_admin
):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    ctx.run(ctx.on.relation_broken(settled.get_relation(secrets.id)), settled)

    assert not [u for u in minio_admin.users if u.startswith("kf-profile-")]
    assert not [p for p in minio_admin.policies if p.startswith("kf-profile-")]


def test_minio_down_hands_out_nothing_and_retries(ctx, relations, local_minio, minio_admin):
    secrets, pod_defaults = relations
    minio_admin.down = True

    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    assert _objects(out, secrets) == []
    assert out.app_status == testing.WaitingStatus(
        "MinIO users: cannot reach MinIO to write policy kf-profile-alice: MaxRetryError; "
        "retrying on the next hook"
    )
    # MinIO is back: the next hook makes the users and hands their keys out.
    minio_admin.down = False
    again = ctx.run(ctx.on.update_status(), out)
    assert {o["metadata"]["namespace"] for o in _objects(again, secrets)} == {"alice", "bob"}
    assert again.app_status == testing.ActiveStatus("0 bucket request(s) served")


def test_the_pod_default_has_the_endpoint_and_no_credential(ctx, relations, local_minio):
    secrets, pod_defaults = relations
    out = ctx.run(ctx.on.relation_created(pod_defaults), _state(secrets, pod_defaults))

    (pod_default,) = _objects(out, pod_defaults)
    spec = pod_default["spec"]
    assert (
        pod_default["kind"] == "PodDefault" and pod_default["metadata"]["name"] == "access-minio"
    )
    assert spec["selector"] == {"matchLabels": {"access-minio": "true"}}
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env["MINIO_ENDPOINT_URL"] == SERVICE_URL
    assert env["AWS_ENDPOINT_URL"] == SERVICE_URL
    assert env["S3_ENDPOINT"] == "minio.kubeflow.svc.cluster.local:9000"
    assert spec["envFrom"] == [{"secretRef": {"name": "minio-credentials"}}]
    text = yaml.safe_dump(pod_default)
    for value in _root(out).values():
        assert value not in text


def test_rotation_updates_the_profile_secrets_in_the_same_hook(
    ctx, relations, local_minio, minio_admin
):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))
    old = _objects(settled, secrets)

    out = ctx.run(ctx.on.action("rotate-credentials"), settled)

    new = _objects(out, secrets)
    for before, after in zip(old, new, strict=True):
        user = after["stringData"]["AWS_ACCESS_KEY_ID"]
        assert after["stringData"]["AWS_SECRET_ACCESS_KEY"] == minio_admin.users[user]
        assert after["stringData"] != before["stringData"]
    assert (ctx.action_results or {})["updated-profiles"] == "alice, bob"
    assert _objects(out, pod_defaults) == _objects(settled, pod_defaults)


def test_settled_hook_writes_no_manifests(ctx, relations, local_minio, minio_admin):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))
    calls = list(minio_admin.calls)

    out = ctx.run(ctx.on.update_status(), settled)

    assert out.relations == settled.relations
    assert {(s.id, s._latest_revision) for s in out.secrets} == {
        (s.id, s._latest_revision) for s in settled.secrets
    }
    assert minio_admin.calls == calls


def _external(keys: testing.Secret, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "external",
        "external-endpoint": "https://s3.eu-west-1.amazonaws.com",
        "external-region": "eu-west-1",
        "external-secret-id": keys.id,
        **extra,
    }


def test_external_mode_hands_profiles_no_keys_by_default(ctx, relations):
    secrets, pod_defaults = relations
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    out = ctx.run(
        ctx.on.config_changed(),
        _state(secrets, pod_defaults, config=_external(keys), secrets={keys}),
    )

    assert _objects(out, secrets) == []
    (pod_default,) = _objects(out, pod_defaults)
    env = {e["name"]: e["value"] for e in pod_default["spec"]["env"]}
    assert env["AWS_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["S3_USE_HTTPS"] == "1" and env["AWS_REGION"] == "eu-west-1"
    assert "ext-secret" not in json.dumps(_objects(out, pod_defaults))


def test_external_mode_hands_the_keys_to_every_profile_when_asked(ctx, relations):
    secrets, pod_defaults = relations
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = _external(keys, **{"external-profile-credentials": True})
    out = ctx.run(
        ctx.on.config_changed(), _state(secrets, pod_defaults, config=config, secrets={keys})
    )

    (secret,) = _objects(out, secrets)
    # Not pinned: every profile namespace. KServe reaches the external store over https,
    # verifying its certificate against the storage initializer's own CA bundle.
    assert secret["metadata"] == {
        "name": "minio-credentials",
        "annotations": {
            "serving.kserve.io/s3-endpoint": "s3.eu-west-1.amazonaws.com",
            "serving.kserve.io/s3-usehttps": "1",
            "serving.kserve.io/s3-region": "eu-west-1",
            "serving.kserve.io/s3-verifyssl": "1",
        },
    }
    assert secret["stringData"]["AWS_ACCESS_KEY_ID"] == "AKIAEXT"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # A CA the operator gave: the storage initializer has no way to trust it.
        (
            {"external-ca-chain": CA_PEM, "external-endpoint": "https://rgw.lab:8443"},
            {
                "serving.kserve.io/s3-endpoint": "rgw.lab:8443",
                "serving.kserve.io/s3-usehttps": "1",
                "serving.kserve.io/s3-verifyssl": "0",
            },
        ),
        # Plain http: no certificate to verify.
        (
            {"external-endpoint": "http://gw.lab:9000/"},
            {"serving.kserve.io/s3-endpoint": "gw.lab:9000", "serving.kserve.io/s3-usehttps": "0"},
        ),
        # Host-style addressing on the store: KServe addresses buckets by host name too.
        (
            {"external-uri-style": "host"},
            {
                "serving.kserve.io/s3-endpoint": "s3.eu-west-1.amazonaws.com",
                "serving.kserve.io/s3-usehttps": "1",
                "serving.kserve.io/s3-usevirtualbucket": "true",
                "serving.kserve.io/s3-verifyssl": "1",
            },
        ),
    ],
)
def test_the_external_secret_tells_kserve_how_to_reach_the_store(
    ctx, relations, extra: dict[str, Any], expected: dict[str, str]
):
    secrets, pod_defaults = relations
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = _external(keys, **{"external-profile-credentials": True, **extra})
    out = ctx.run(
        ctx.on.config_changed(), _state(secrets, pod_defaults, config=config, secrets={keys})
    )

    (secret,) = _objects(out, secrets)
    annotations = secret["metadata"]["annotations"]
    assert {k: annotations.get(k) for k in expected} == expected
    if expected["serving.kserve.io/s3-usehttps"] == "0":
        assert "serving.kserve.io/s3-verifyssl" not in annotations
    assert "ext-secret" not in json.dumps(secret["metadata"])


def test_relation_broken_revokes_the_secret(ctx, relations, local_minio):
    secrets, _ = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets))
    uri = settled.get_relation(secrets.id).local_app_data["kubernetes_manifests"]

    out = ctx.run(ctx.on.relation_broken(settled.get_relation(secrets.id)), settled)

    assert all(s.id != uri for s in out.secrets)


def test_non_leader_hands_over_nothing(ctx, relations):
    secrets, _ = relations
    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, leader=False))

    assert out.get_relation(secrets.id).local_app_data == {}
