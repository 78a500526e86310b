"""The `pod-defaults` relation: the `access-ml-pipeline` PodDefault for every profile.

Upstream's PodDefault: kubeflow/manifests v1.10.0 tests/gh-actions/kf-objects/
poddefaults.access-ml-pipeline.kubeflow-user-example-com.yaml; the SDK's token path
and variable: kubeflow/pipelines 2.4.1 sdk/python/kfp/client/__init__.py; the
caching switch: sdk/python/kfp/dsl/pipeline_context.py (same tag).
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.kfp.helpers import CHARM
from unit.kfp.test_data import S3_SECRET_KEY, _full_state, _state

from kubeflow_interfaces import kubernetes_manifests

kfp_pod_defaults = CHARM.kfp_pod_defaults
POD_DEFAULTS = "pod-defaults"

# The leader applies its cluster objects in every reconcile: a cluster answers.
pytestmark = pytest.mark.usefixtures("kube")


def _dispatcher(**kwargs) -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(POD_DEFAULTS, **kwargs)


def _handed(out: testing.State, relation: testing.Relation) -> list[dict]:
    secret = out.get_secret(label=f"{POD_DEFAULTS}-{relation.id}")
    return json.loads(secret.latest_content[kubernetes_manifests.CONTENT_KEY])


def _run(state: testing.State, event_of, relation: testing.Relation) -> testing.State:
    ctx = testing.Context(CHARM.KfpCharm)
    return ctx.run(event_of(ctx)(relation), state)


def _with(relation: testing.Relation, *, full: bool = True, **kwargs) -> testing.State:
    state = _full_state(**kwargs) if full else _state(**kwargs)
    return dataclasses.replace(state, relations={*state.relations, relation})


def _env(pod_default: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod_default["spec"]["env"]}


def test_the_pod_default_is_upstreams():
    pod_default = kfp_pod_defaults.pod_default(CHARM.KfpConfig())
    assert pod_default["apiVersion"] == "kubeflow.org/v1alpha1"
    assert pod_default["kind"] == "PodDefault"
    # Unpinned: the same in every profile namespace.
    assert pod_default["metadata"] == {"name": "access-ml-pipeline"}
    spec = pod_default["spec"]
    assert spec["desc"] == "Allow access to Kubeflow Pipelines"
    assert spec["selector"] == {"matchLabels": {"access-ml-pipeline": "true"}}
    assert _env(pod_default) == {
        "KF_PIPELINES_SA_TOKEN_PATH": "/var/run/secrets/kubeflow/pipelines/token"
    }
    assert spec["volumes"] == [
        {
            "name": "volume-kf-pipeline-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "path": "token",
                            "expirationSeconds": 7200,
                            # The API server's TOKEN_REVIEW_AUDIENCE default (backend/src/
                            # apiserver/common/const.go, 2.4.1).
                            "audience": "pipelines.kubeflow.org",
                        }
                    }
                ]
            },
        }
    ]
    assert spec["volumeMounts"] == [
        {
            "name": "volume-kf-pipeline-token",
            "mountPath": "/var/run/secrets/kubeflow/pipelines",
            "readOnly": True,
        }
    ]


@pytest.mark.parametrize(
    ("cache", "extra"),
    [(True, {}), (False, {"KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT": "true"})],
)
def test_cache_off_makes_the_sdk_compile_tasks_without_caching(cache, extra):
    dispatcher = _dispatcher()
    out = _run(
        _with(dispatcher, config={"cache": cache}), lambda c: c.on.relation_changed, dispatcher
    )
    [pod_default] = _handed(out, dispatcher)
    token_path = {"KF_PIPELINES_SA_TOKEN_PATH": "/var/run/secrets/kubeflow/pipelines/token"}
    assert _env(pod_default) == token_path | extra


@pytest.mark.parametrize("event", ["relation_created", "relation_joined", "relation_changed"])
def test_leader_hands_over_the_pod_default_in_a_granted_secret(event):
    dispatcher = _dispatcher()
    out = _run(_with(dispatcher), lambda c: getattr(c.on, event), dispatcher)
    databag = out.get_relation(dispatcher.id).local_app_data
    if event == "relation_joined":
        # Not observed: created and changed bracket it.
        assert databag == {}
        return
    assert databag[kubernetes_manifests.IS_SECRET_FIELD] == "true"
    assert databag[kubernetes_manifests.MANIFESTS_FIELD].startswith("secret:")
    handed = _handed(out, dispatcher)
    assert [o["metadata"]["name"] for o in handed] == ["access-ml-pipeline"]
    assert S3_SECRET_KEY not in json.dumps(handed)
    assert "kfp-access" not in json.dumps(handed)
    secret = out.get_secret(label=f"{POD_DEFAULTS}-{dispatcher.id}")
    assert dispatcher.id in secret.remote_grants


def test_the_pod_default_needs_neither_database_nor_object_store():
    dispatcher = _dispatcher()
    out = _run(_with(dispatcher, full=False), lambda c: c.on.relation_created, dispatcher)
    assert [o["metadata"]["name"] for o in _handed(out, dispatcher)] == ["access-ml-pipeline"]


def test_non_leader_hands_over_nothing():
    dispatcher = _dispatcher()
    out = _run(_with(dispatcher, leader=False), lambda c: c.on.relation_changed, dispatcher)
    assert out.get_relation(dispatcher.id).local_app_data == {}
    assert [s for s in out.secrets if s.label and s.label.startswith(POD_DEFAULTS)] == []


def test_a_settled_hook_writes_nothing_new():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with(dispatcher))
    secret = out.get_secret(label=f"{POD_DEFAULTS}-{dispatcher.id}")
    again = ctx.run(ctx.on.update_status(), out)
    assert again.get_secret(label=f"{POD_DEFAULTS}-{dispatcher.id}") == secret
    assert again.get_relation(dispatcher.id).local_app_data == (
        out.get_relation(dispatcher.id).local_app_data
    )


def test_turning_cache_off_updates_the_handed_pod_default():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with(dispatcher))
    assert "KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT" not in _env(_handed(out, dispatcher)[0])
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"cache": False}))
    assert _env(_handed(out, dispatcher)[0])["KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT"] == "true"


def test_relation_broken_revokes_the_secret():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with(dispatcher))
    label = f"{POD_DEFAULTS}-{dispatcher.id}"
    assert [s for s in out.secrets if s.label == label]
    out = ctx.run(ctx.on.relation_broken(out.get_relation(dispatcher.id)), out)
    assert [s for s in out.secrets if s.label == label] == []


def test_non_leader_broken_leaves_the_secret():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with(dispatcher))
    label = f"{POD_DEFAULTS}-{dispatcher.id}"
    follower = dataclasses.replace(out, leader=False)
    out = ctx.run(ctx.on.relation_broken(follower.get_relation(dispatcher.id)), follower)
    assert [s for s in out.secrets if s.label == label]


def test_the_dispatcher_accepts_it():
    # Our dispatcher refuses hostPath volumes and privileged containers in a PodDefault
    # (charms/resource-dispatcher/src/dispatch.py); a projected token is neither.
    from charm_loader import load_charm

    dispatch = load_charm("resource-dispatcher").dispatch
    manifest = kubernetes_manifests.Manifest(
        "kfp", kfp_pod_defaults.pod_default(CHARM.KfpConfig(cache=False))
    )
    assert dispatch.danger(manifest) is None


def _with_peers(relation: testing.Relation) -> testing.State:
    state = _with(relation)
    peers = testing.PeerRelation(CHARM.kfp_cluster.PEERS)
    return dataclasses.replace(state, relations={*state.relations, peers})


def _secret_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = ops.Model.get_secret

    def get_secret(self, *, id=None, label=None):
        reads.append(label or id)
        return real(self, id=id, label=label)

    monkeypatch.setattr(ops.Model, "get_secret", get_secret)
    return reads


def test_the_leader_notes_what_it_handed_and_a_settled_hook_reads_no_secret(monkeypatch):
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with_peers(dispatcher))
    label = f"{POD_DEFAULTS}-{dispatcher.id}"
    uri = out.get_relation(dispatcher.id).local_app_data[kubernetes_manifests.MANIFESTS_FIELD]
    peers = out.get_relation(out.get_relations(CHARM.kfp_cluster.PEERS)[0].id)
    assert peers.local_app_data[f"published-{label}"].endswith(f" {uri}")
    reads = _secret_reads(monkeypatch)
    again = ctx.run(ctx.on.update_status(), out)
    assert label not in reads
    assert again.secrets == out.secrets
    assert again.relations == out.relations


def test_a_changed_pod_default_is_handed_over_and_noted_again():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with_peers(dispatcher))
    key = f"published-{POD_DEFAULTS}-{dispatcher.id}"
    peer_id = out.get_relations(CHARM.kfp_cluster.PEERS)[0].id
    noted = out.get_relation(peer_id).local_app_data[key]
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"cache": False}))
    assert _env(_handed(out, dispatcher)[0])["KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT"] == "true"
    renoted = out.get_relation(peer_id).local_app_data[key]
    assert renoted != noted
    assert renoted.split(" ")[1] == noted.split(" ")[1]  # the same secret, a new content


def test_relation_broken_drops_the_note():
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(dispatcher), _with_peers(dispatcher))
    key = f"published-{POD_DEFAULTS}-{dispatcher.id}"
    peer_id = out.get_relations(CHARM.kfp_cluster.PEERS)[0].id
    assert key in out.get_relation(peer_id).local_app_data
    out = ctx.run(ctx.on.relation_broken(out.get_relation(dispatcher.id)), out)
    assert key not in out.get_relation(peer_id).local_app_data
