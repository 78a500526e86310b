"""The secrets and pod-defaults requirers: what minio hands the resource dispatcher."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from ops import testing

from kubeflow_interfaces import kubernetes_manifests

SERVICE_URL = "http://minio.kubeflow.svc.cluster.local:9000"


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


@pytest.fixture
def relations() -> tuple[testing.Relation, testing.Relation]:
    return _relation("secrets"), _relation("pod-defaults")


def test_the_secret_holds_the_root_credentials(ctx, relations):
    secrets, pod_defaults = relations
    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    root = _root(out)
    (secret,) = _objects(out, secrets)
    assert secret["kind"] == "Secret" and secret["metadata"] == {"name": "minio-credentials"}
    assert secret["stringData"] == {
        "AWS_ACCESS_KEY_ID": root["access-key"],
        "AWS_SECRET_ACCESS_KEY": root["secret-key"],
        "MINIO_ACCESS_KEY": root["access-key"],
        "MINIO_SECRET_KEY": root["secret-key"],
    }
    # Nothing in clear in the databag: only the secret's id and the flag saying it is one.
    assert set(out.get_relation(secrets.id).local_app_data) == {
        "kubernetes_manifests",
        "is_secret",
    }
    for value in root.values():
        assert value not in json.dumps(out.get_relation(secrets.id).local_app_data)


def test_the_pod_default_has_the_endpoint_and_no_credential(ctx, relations):
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


def test_rotation_updates_the_secret_in_the_same_hook(ctx, relations):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))
    old = _objects(settled, secrets)

    out = ctx.run(ctx.on.action("rotate-credentials"), settled)

    root = _root(out)
    (secret,) = _objects(out, secrets)
    assert secret != old[0]
    assert secret["stringData"]["AWS_SECRET_ACCESS_KEY"] == root["secret-key"]
    assert _objects(out, pod_defaults) == _objects(settled, pod_defaults)


def test_settled_hook_writes_no_manifests(ctx, relations):
    secrets, pod_defaults = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets, pod_defaults))

    out = ctx.run(ctx.on.update_status(), settled)

    assert out.relations == settled.relations
    assert {(s.id, s._latest_revision) for s in out.secrets} == {
        (s.id, s._latest_revision) for s in settled.secrets
    }


def test_external_mode_hands_over_the_external_store(ctx, relations):
    secrets, pod_defaults = relations
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = {
        "mode": "external",
        "external-endpoint": "https://s3.eu-west-1.amazonaws.com",
        "external-region": "eu-west-1",
        "external-secret-id": keys.id,
    }
    out = ctx.run(
        ctx.on.config_changed(), _state(secrets, pod_defaults, config=config, secrets={keys})
    )

    (secret,) = _objects(out, secrets)
    assert secret["stringData"]["AWS_ACCESS_KEY_ID"] == "AKIAEXT"
    (pod_default,) = _objects(out, pod_defaults)
    env = {e["name"]: e["value"] for e in pod_default["spec"]["env"]}
    assert env["AWS_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["S3_USE_HTTPS"] == "1" and env["AWS_REGION"] == "eu-west-1"


def test_relation_broken_revokes_the_secret(ctx, relations):
    secrets, _ = relations
    settled = ctx.run(ctx.on.relation_created(secrets), _state(secrets))
    uri = settled.get_relation(secrets.id).local_app_data["kubernetes_manifests"]

    out = ctx.run(ctx.on.relation_broken(settled.get_relation(secrets.id)), settled)

    assert all(s.id != uri for s in out.secrets)


def test_non_leader_hands_over_nothing(ctx, relations):
    secrets, _ = relations
    out = ctx.run(ctx.on.relation_created(secrets), _state(secrets, leader=False))

    assert out.get_relation(secrets.id).local_app_data == {}
