"""The leader's servers in every profile namespace, the pod's mesh label, and resync-profiles.

Upstream's objects are those of kubeflow/manifests v1.10.0 apps/pipeline/upstream/base/
installs/multi-user/pipelines-profile-controller/sync.py (the conformance tests compare
them); the Secret and its keys are the ones charms/minio/src/profile_manifests.py puts in
each profile namespace.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import CHARMS
from ops import testing
from unit.kfp.helpers import CHARM, kfp_profiles
from unit.kfp.test_data import S3_SECRET_KEY, _full_state

from kubeflow_charms.kubernetes import render
from kubeflow_interfaces import kubernetes_manifests

pw = CHARM.kfp_profile_workloads  # the charm's own modules, as it imported them
mesh = CHARM.kfp_mesh

MODEL = "kubeflow"
APP = "kfp"
PEERS = "kfp-peers"
PRINCIPAL = f"cluster.local/ns/{MODEL}/sa/{APP}"
META = yaml.safe_load((CHARMS / "kfp" / "charmcraft.yaml").read_text())
KINDS = ("Deployment", "Service", "AuthorizationPolicy")
NAMES = {"ml-pipeline-ui-artifact", "ml-pipeline-visualizationserver"}


@pytest.fixture
def cluster(kube: FakeKubernetes) -> FakeKubernetes:
    """Istio's AuthorizationPolicy kind, three profile namespaces and Juju's StatefulSet."""
    from lightkube import codecs
    from lightkube.resources.core_v1 import Namespace

    api = kube.client()
    istio = CHARMS / "istio" / "src" / "templates"
    for obj in codecs.load_all_yaml(render(istio, ["crds.yaml.j2"], {})):
        if obj.spec.names.kind == "AuthorizationPolicy":
            api.apply(obj)
    for name in ("alice", "bob", "carol"):
        api.create(Namespace.from_dict({"metadata": {"name": name}}))
    api.create(codecs.from_dict(_statefulset()))
    return kube


def _statefulset() -> dict[str, Any]:
    """The StatefulSet Juju makes for the application's pods (the parts that matter here)."""
    labels = {"app.kubernetes.io/name": APP}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": APP, "namespace": MODEL},
        "spec": {
            "selector": {"matchLabels": labels},
            "serviceName": f"{APP}-endpoints",
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "charm", "image": "charm-base"}]},
            },
        },
    }


def _dispatcher(namespaces=("alice", "bob"), **kwargs) -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(
        kfp_profiles.CONFIG_MAPS, namespaces=namespaces, **kwargs
    )


def _state(*relations: testing.RelationBase, leader: bool = True) -> testing.State:
    """The kfp unit, its database and object store answered, a peer relation, `relations`."""
    state = _full_state(leader=leader)
    peer = testing.PeerRelation(PEERS)
    return dataclasses.replace(state, relations={*state.relations, peer, *relations})


def _settle(ctx: testing.Context, state: testing.State) -> testing.State:
    return ctx.run(ctx.on.config_changed(), ctx.run(ctx.on.install(), state))


def _objects(kube: FakeKubernetes, namespace: str | None = None) -> dict[tuple[str, str], dict]:
    """The profile objects in the cluster by (kind, name), in one namespace or all."""
    return {
        (o["kind"], o["metadata"]["name"]): o
        for kind in KINDS
        for o in kube.of_kind(kind)
        if o["metadata"].get("namespace") not in (MODEL, None)
        and (namespace is None or o["metadata"]["namespace"] == namespace)
    }


def _in(kube: FakeKubernetes) -> set[str]:
    return {
        o["metadata"]["namespace"]
        for kind in KINDS
        for o in kube.of_kind(kind)
        if o["metadata"].get("namespace") != MODEL
    }


def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _with_namespaces(out: testing.State, relation: testing.Relation, *namespaces: str):
    """The dispatcher's relation in `out`, listing other namespaces now."""
    changed = _dispatcher(
        namespaces=namespaces,
        id=relation.id,
        local_app_data=dict(out.get_relation(relation.id).local_app_data),
    )
    relations = {r for r in out.relations if r.id != relation.id} | {changed}
    return changed, dataclasses.replace(out, relations=relations)


# --- the objects -------------------------------------------------------------------------


def test_images_are_the_charms_own():
    resources = META["resources"]
    assert pw.FRONTEND_IMAGE == resources["ui-image"]["upstream-source"]
    assert pw.VISUALIZATION_IMAGE == resources["visualization-server-image"]["upstream-source"]


def test_each_profile_gets_both_servers(cluster):
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(dispatcher))
    assert out.unit_status == testing.ActiveStatus()
    assert _in(cluster) == {"alice", "bob"}
    for namespace in ("alice", "bob"):
        objects = _objects(cluster, namespace)
        assert set(objects) == {(k, n) for k in KINDS for n in NAMES}
        for obj in objects.values():
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == f"{MODEL}-{APP}.profiles"
            assert labels["kubernetes-resource-handler-scope"] == namespace
        artifact = objects[("Deployment", "ml-pipeline-ui-artifact")]
        spec = artifact["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == "default-editor"
        env = {e["name"]: e for e in _container(artifact)["env"]}
        assert env["MINIO_HOST"]["value"] == "minio.kubeflow.svc"
        assert env["MINIO_PORT"]["value"] == "9000"
        assert env["MINIO_SSL"]["value"] == "false"
        assert env["FRONTEND_SERVER_NAMESPACE"]["value"] == namespace
        keys = ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")
        refs = {n: env[n]["valueFrom"]["secretKeyRef"] for n in keys}
        assert refs == {
            "MINIO_ACCESS_KEY": {"name": "minio-credentials", "key": "AWS_ACCESS_KEY_ID"},
            "MINIO_SECRET_KEY": {"name": "minio-credentials", "key": "AWS_SECRET_ACCESS_KEY"},
        }
        service = objects[("Service", "ml-pipeline-ui-artifact")]["spec"]
        assert service["ports"][0]["port"] == 80
        assert service["ports"][0]["targetPort"] == 3000
    # The kfp charm's own object-store keys are in no object.
    text = json.dumps([s.body for s in cluster.objects.values()])
    assert S3_SECRET_KEY not in text
    assert "kfp-access" not in text


def test_only_the_kfp_pod_reaches_the_servers(cluster):
    dispatcher = _dispatcher(namespaces=("alice",))
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    _settle(ctx, _state(dispatcher))
    objects = _objects(cluster, "alice")
    artifact = objects[("AuthorizationPolicy", "ml-pipeline-ui-artifact")]["spec"]
    assert artifact["selector"] == {"matchLabels": {"app": "ml-pipeline-ui-artifact"}}
    assert artifact["action"] == "DENY"
    assert artifact["rules"] == [
        {"from": [{"source": {"notPrincipals": [PRINCIPAL]}}]},
        {"when": [{"key": "request.headers[kubeflow-userid]", "notValues": ["*"]}]},
    ]
    visualization = objects[("AuthorizationPolicy", "ml-pipeline-visualizationserver")]["spec"]
    assert visualization["action"] == "ALLOW"
    assert visualization["rules"] == [{"from": [{"source": {"principals": [PRINCIPAL]}}]}]


def test_nothing_before_the_object_store_or_the_namespace_list(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    _settle(ctx, _state(_dispatcher(namespaces=None)))
    assert _in(cluster) == set()
    state = _state(_dispatcher())
    no_store = {r for r in state.relations if r.endpoint != "object-storage"}
    _settle(ctx, dataclasses.replace(state, relations=no_store))
    assert _in(cluster) == set()


def test_non_leader_does_nothing(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    before = len(cluster.writes)
    _settle(ctx, _state(_dispatcher(), leader=False))
    assert cluster.writes[before:] == []


# --- prune, drift, settled hooks ---------------------------------------------------------


def test_a_profile_gone_loses_its_servers(cluster):
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(dispatcher))
    alice = {k: v["metadata"]["uid"] for k, v in _objects(cluster, "alice").items()}
    changed, state = _with_namespaces(out, dispatcher, "alice", "carol")
    ctx.run(ctx.on.relation_changed(changed), state)
    assert _in(cluster) == {"alice", "carol"}
    # alice's objects are the same ones.
    assert {k: v["metadata"]["uid"] for k, v in _objects(cluster, "alice").items()} == alice


def test_relation_broken_deletes_every_profiles_servers(cluster):
    dispatcher = _dispatcher()
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(dispatcher))
    assert _in(cluster) == {"alice", "bob"}
    out = ctx.run(ctx.on.relation_broken(out.get_relation(dispatcher.id)), out)
    assert _in(cluster) == set()
    assert out.unit_status == testing.ActiveStatus()


def test_remove_deletes_every_profiles_servers(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(_dispatcher()))
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert _in(cluster) == set()


def test_deleted_server_comes_back_on_update_status(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(_dispatcher()))
    cluster.delete("Deployment", "ml-pipeline-ui-artifact", "bob")
    cluster.delete("AuthorizationPolicy", "ml-pipeline-visualizationserver", "alice")
    out = ctx.run(ctx.on.update_status(), out)
    assert cluster.get("Deployment", "ml-pipeline-ui-artifact", "bob") is not None
    assert cluster.get("AuthorizationPolicy", "ml-pipeline-visualizationserver", "alice")
    writes = list(cluster.writes)
    ctx.run(ctx.on.update_status(), out)
    assert cluster.writes == writes


def test_settled_update_status_writes_nothing(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(_dispatcher()))
    out = ctx.run(ctx.on.update_status(), out)  # the cluster objects' first drift record
    writes = list(cluster.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert cluster.writes == writes
    assert again.relations == out.relations
    # (The persistence agent's token is renewed here: this state keeps no token file.)
    mine = {"KfpCharm/MeshJoin[mesh]"}
    assert [s.content for s in out.stored_states if s.owner_path in mine] == [{"labelled": True}]
    assert {s for s in again.stored_states if s.owner_path in mine} == {
        s for s in out.stored_states if s.owner_path in mine
    }


def test_a_failing_namespace_does_not_stop_the_others(cluster):
    dispatcher = _dispatcher(namespaces=("alice", "ghost", "bob"))
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(dispatcher))
    assert _in(cluster) == {"alice", "bob"}
    assert out.unit_status.name == "waiting"
    assert out.unit_status.message.startswith("profile namespace(s) ghost: ")
    assert "not found" in out.unit_status.message


# --- the pod joins the mesh ----------------------------------------------------------------


def _template_labels(kube: FakeKubernetes) -> dict[str, str]:
    statefulset = kube.get("StatefulSet", APP, MODEL)
    assert statefulset is not None
    return statefulset["spec"]["template"]["metadata"]["labels"]


def _statefulset_writes(kube: FakeKubernetes) -> list[tuple[str, str, str]]:
    return [w for w in kube.writes if w[1] == "StatefulSet" and w[0] != "create"]


def test_leader_labels_the_pod_template_once(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state())
    assert _template_labels(cluster) == {
        "app.kubernetes.io/name": APP,
        "sidecar.istio.io/inject": "true",
    }
    assert _statefulset_writes(cluster) == [("apply", "StatefulSet", APP)]
    out = ctx.run(ctx.on.update_status(), ctx.run(ctx.on.config_changed(), out))
    assert _statefulset_writes(cluster) == [("apply", "StatefulSet", APP)]
    # The application is the label's field manager.
    managers = cluster.get("StatefulSet", APP, MODEL)["metadata"]["managedFields"]
    assert any(m["manager"] == APP and m["operation"] == "Apply" for m in managers)


def test_label_comes_back_after_upgrade(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state())

    def rewritten(body):  # Juju writes the StatefulSet anew on upgrade, without the label
        del body["spec"]["template"]["metadata"]["labels"][mesh.INJECT_LABEL]

    cluster.edit("StatefulSet", APP, MODEL, rewritten)
    ctx.run(ctx.on.upgrade_charm(), out)
    assert _template_labels(cluster)[mesh.INJECT_LABEL] == "true"


def test_non_leader_leaves_the_statefulset_alone(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    _settle(ctx, _state(leader=False))
    assert mesh.INJECT_LABEL not in _template_labels(cluster)


def test_no_statefulset_is_no_problem(kube):
    # Outside Juju on Kubernetes there is no pod to label: logged, not a status.
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state())
    assert out.unit_status == testing.ActiveStatus()
    assert any("no StatefulSet kfp" in line.message for line in ctx.juju_log)


def test_a_refused_label_is_a_status(cluster, monkeypatch):
    from kubeflow_charms.kubernetes import KubernetesError

    def refuse(app, model):
        raise KubernetesError("Forbidden: no", status=403)

    monkeypatch.setattr(mesh, "apply_label", refuse)
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state())
    assert out.unit_status == testing.BlockedStatus(
        f"not allowed to manage Kubernetes objects: run `juju trust {APP} --scope=cluster`"
    )


# --- resync-profiles ---------------------------------------------------------------------


def test_resync_applies_every_profile_again(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = _settle(ctx, _state(_dispatcher()))
    cluster.delete("Service", "ml-pipeline-visualizationserver", "alice")
    ctx.run(ctx.on.action("resync-profiles"), out)
    assert ctx.action_results == {
        "namespaces": "2",
        "objects": "12",
        "applied-in": json.dumps(["alice", "bob"]),
    }
    assert cluster.get("Service", "ml-pipeline-visualizationserver", "alice") is not None


@pytest.mark.parametrize(
    ("leader", "relations", "message"),
    [
        (False, "dispatcher", "run resync-profiles on the leader unit"),
        (True, "none", "no `config-maps` relation"),
        (True, "no-list", "the dispatcher has not listed the profile namespaces"),
    ],
)
def test_resync_fails_and_changes_nothing(cluster, leader, relations, message):
    extra = {
        "dispatcher": (_dispatcher(),),
        "none": (),
        "no-list": (_dispatcher(namespaces=None),),
    }[relations]
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    state = _state(*extra, leader=leader)
    before = {k: repr(v.body) for k, v in cluster.objects.items()}
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("resync-profiles"), state)
    assert message in failed.value.message
    assert {k: repr(v.body) for k, v in cluster.objects.items()} == before


def test_resync_names_a_failing_namespace(cluster):
    dispatcher = _dispatcher(namespaces=("alice", "ghost"))
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("resync-profiles"), _state(dispatcher))
    assert "applying failed in 1 namespace(s): ghost: " in failed.value.message
    assert _in(cluster) == {"alice"}
