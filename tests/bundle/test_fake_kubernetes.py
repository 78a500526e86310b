"""The simulation's Kubernetes API.

lightkube and the resource manager work against it, and it refuses what a
real API server would.
"""

from __future__ import annotations

import copy
import logging

import httpx
import kubernetes_validate
import pytest
from bundle.fake_kubernetes import KUBERNETES_VERSION, FakeKubernetes
from lightkube import operators
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service
from lightkube.resources.rbac_authorization_v1 import ClusterRole
from lightkube.types import CascadeType, PatchType
from lightkube_extensions.batch import KubernetesResourceManager, create_charm_default_labels

LABELS = create_charm_default_labels("demo", "kubeflow", scope="test")


def _configmap(name: str, **data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace="kubeflow"), data=data)


def _manager(fake: FakeKubernetes) -> KubernetesResourceManager:
    return KubernetesResourceManager(
        labels=LABELS,
        resource_types={ConfigMap, Service},
        lightkube_client=fake.client(field_manager="demo"),
        logger=logging.getLogger("test"),
    )


def test_resource_manager_applies_and_prunes():
    fake = FakeKubernetes()
    manager = _manager(fake)
    manager.reconcile([_configmap("a", x="1"), _configmap("b", y="2")])
    assert {c["metadata"]["name"] for c in fake.of_kind("ConfigMap")} == {"a", "b"}
    assert fake.get("ConfigMap", "a", "kubeflow")["metadata"]["labels"] == LABELS

    manager.reconcile([_configmap("a", x="3")])
    assert [c["metadata"]["name"] for c in fake.of_kind("ConfigMap")] == ["a"]
    assert fake.get("ConfigMap", "a", "kubeflow")["data"] == {"x": "3"}
    assert ("delete", "ConfigMap", "b") in fake.writes


def test_objects_of_others_are_not_pruned():
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(_configmap("not-ours", k="v"))
    _manager(fake).reconcile([_configmap("ours", k="v")])
    assert {c["metadata"]["name"] for c in fake.of_kind("ConfigMap")} == {"not-ours", "ours"}


# A generic resource sends its body as written, which lightkube's models would refuse.
RawService = create_namespaced_resource("", "v1", "Service", "services")


def test_invalid_builtin_object_is_refused():
    fake = FakeKubernetes()
    bad = RawService.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc", "namespace": "kubeflow"},
            "spec": {"ports": [{"port": "eighty"}], "bogusField": True},
        }
    )
    with pytest.raises(ApiError) as error:
        fake.client().apply(bad)
    assert error.value.status.code == 422
    assert fake.rejected
    assert fake.of_kind("Service") == []


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.org"},
    "spec": {
        "group": "example.org",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                                "required": ["size"],
                            }
                        },
                    }
                },
            }
        ],
    },
}
Widget = create_namespaced_resource("example.org", "v1", "Widget", "widgets")


def test_custom_resources_need_their_crd_and_follow_its_schema():
    fake = FakeKubernetes()
    client = fake.client()
    widget = Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={"size": 2})
    client.apply(CustomResourceDefinition.from_dict(CRD))
    client.apply(widget)
    assert fake.get("Widget", "w", "kubeflow")["spec"] == {"size": 2}

    with pytest.raises(ApiError, match="size"):
        client.apply(Widget(metadata=ObjectMeta(name="x", namespace="kubeflow"), spec={}))


def test_a_crd_that_requires_metadata_accepts_objects_and_still_checks_the_rest():
    # Argo's CRDs require metadata, apiVersion and kind at the root, which every object has.
    crd = copy.deepcopy(CRD)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["required"] = ["metadata", "apiVersion", "kind", "spec"]
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(CustomResourceDefinition.from_dict(crd))

    client.apply(Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={"size": 2}))

    assert fake.get("Widget", "w", "kubeflow") is not None
    with pytest.raises(ApiError, match="spec"):
        client.apply(Widget(metadata=ObjectMeta(name="x", namespace="kubeflow")))


def test_get_and_delete_answer_404_when_missing():
    client = FakeKubernetes().client()
    with pytest.raises(ApiError) as error:
        client.get(ConfigMap, "nope", namespace="kubeflow")
    assert error.value.status.code == 404


def test_simulation_routes_every_lightkube_client_to_the_fake(s3_endpoint):
    from bundle.workloads import Workloads
    from lightkube import Client

    workloads = Workloads(s3_endpoint)
    Client(field_manager="some-charm").apply(_configmap("routed", k="v"))
    assert workloads.kubernetes.get("ConfigMap", "routed", "kubeflow") is not None


# What a real API server answers for a kind it does not serve: its route does not exist.
NOT_SERVED = "the server could not find the requested resource"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.list(Widget, namespace="kubeflow"),
        lambda c: list(c.list(Widget, namespace="kubeflow")),
        lambda c: c.get(Widget, "w", namespace="kubeflow"),
        lambda c: c.apply(Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={})),
        lambda c: c.create(Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={})),
        lambda c: c.delete(Widget, "w", namespace="kubeflow"),
    ],
    ids=["list-lazy", "list", "get", "apply", "create", "delete"],
)
def test_a_kind_without_its_crd_is_not_found(call):
    fake = FakeKubernetes()
    client = fake.client()
    with pytest.raises(ApiError) as error:
        list(call(client) or [])
    assert error.value.status.code == 404
    assert NOT_SERVED in error.value.status.message
    assert fake.rejected == []


def test_a_version_the_crd_does_not_serve_is_not_found():
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(CustomResourceDefinition.from_dict(CRD))
    assert _request(fake, "GET", "/apis/example.org/v2/namespaces/kubeflow/widgets") == 404
    assert list(client.list(Widget, namespace="kubeflow")) == []


def test_the_model_namespace_exists_and_others_must_be_created():
    fake = FakeKubernetes()
    client = fake.client()
    assert fake.get("Namespace", "kubeflow") is not None
    with pytest.raises(ApiError) as error:
        client.apply(ConfigMap(metadata=ObjectMeta(name="c", namespace="elsewhere")))
    assert error.value.status.code == 404
    assert error.value.status.message == 'namespaces "elsewhere" not found'
    assert fake.of_kind("ConfigMap") == []

    client.create(Namespace(metadata=ObjectMeta(name="elsewhere")))
    client.apply(ConfigMap(metadata=ObjectMeta(name="c", namespace="elsewhere")))
    assert fake.get("ConfigMap", "c", "elsewhere") is not None


def _request(fake: FakeKubernetes, method: str, path: str, body: dict | None = None) -> int:
    """Send one raw request (lightkube always builds the right scope's path) and say its code."""
    request = httpx.Request(
        method,
        f"https://kubernetes.invalid{path}",
        json=body,
        params={"fieldManager": "test"} if method == "PATCH" else None,
        headers={"content-type": "application/apply-patch+yaml"} if body else {},
    )
    return fake.handle(request).status_code


def test_a_kind_at_the_path_of_the_other_scope_is_not_found():
    fake = FakeKubernetes()
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}
    role["metadata"] = {"name": "r"}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    assert _request(fake, "PATCH", "/api/v1/configmaps/c", configmap) == 404
    assert _request(fake, "POST", "/api/v1/configmaps", configmap) == 404
    assert _request(fake, "GET", "/api/v1/configmaps/c") == 404
    assert _request(fake, "DELETE", "/api/v1/configmaps/c") == 404
    assert _request(fake, "PATCH", f"{rbac}/namespaces/kubeflow/clusterroles/r", role) == 404
    assert _request(fake, "GET", f"{rbac}/namespaces/kubeflow/clusterroles") == 404
    assert fake.of_kind("ConfigMap") == fake.of_kind("ClusterRole") == []

    # Listing a namespaced kind across all namespaces is the one cluster path it has.
    client = fake.client()
    client.apply(_configmap("c"))
    assert [c.metadata.name for c in client.list(ConfigMap, namespace="*")] == ["c"]
    assert _request(fake, "PATCH", f"{rbac}/clusterroles/r", role) == 201
    client.apply(ClusterRole(metadata=ObjectMeta(name="system:r")))  # RBAC names are segments


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        (ConfigMap(metadata=ObjectMeta(name="Upper", namespace="kubeflow")), "subdomain"),
        (ConfigMap(metadata=ObjectMeta(name="a_b", namespace="kubeflow")), "subdomain"),
        (ConfigMap(metadata=ObjectMeta(name="x" * 254, namespace="kubeflow")), "subdomain"),
        (Namespace(metadata=ObjectMeta(name="a.b")), "label"),
        (Service(metadata=ObjectMeta(name="1svc", namespace="kubeflow")), "DNS-1035"),
        (ClusterRole(metadata=ObjectMeta(name="a/b")), "path segment"),
        (
            ConfigMap(metadata=ObjectMeta(name="c", namespace="kubeflow", labels={"k": "a b"})),
            "label",
        ),
        (
            ConfigMap(metadata=ObjectMeta(name="c", namespace="kubeflow", labels={"k": "v" * 64})),
            "63",
        ),
        (
            ConfigMap(metadata=ObjectMeta(name="c", namespace="kubeflow", labels={"-k": "v"})),
            "qualified name",
        ),
        (
            ConfigMap(metadata=ObjectMeta(name="c", namespace="kubeflow", labels={"A_/k": "v"})),
            "qualified name",
        ),
    ],
)
def test_names_and_labels_kubernetes_rejects_are_invalid(resource, why):
    fake = FakeKubernetes()
    with pytest.raises(ApiError, match=why) as error:
        fake.client().create(resource)  # the name in the body: a path could not carry "a/b"
    assert error.value.status.code == 422
    assert fake.rejected
    assert fake.writes == []


def test_names_and_labels_kubernetes_accepts_are_stored():
    fake = FakeKubernetes()
    client = fake.client()
    labels = {"app.kubernetes.io/name": "a-b_c.d", "empty": "", "x": "v" * 63}
    client.apply(ConfigMap(metadata=ObjectMeta(name="a.b-c", namespace="kubeflow", labels=labels)))
    client.apply(Service(metadata=ObjectMeta(name="svc-1", namespace="kubeflow")))
    assert fake.get("ConfigMap", "a.b-c", "kubeflow")["metadata"]["labels"] == labels
    assert fake.rejected == []


# --- server-side apply: field managers
#
# What the API server does, read from kubernetes-sigs/structured-merge-diff
# (v6.4.2: merge/update.go, merge/conflict.go, typed/tofieldset.go) and
# kubernetes/apimachinery (pkg/util/managedfields/internal/conflict.go: the
# conflict message; fieldmanager.go). FieldsV1 keys: "f:<field>", and
# 'k:{"<key>":<value>}' for an item of a keyed list (fieldpath/serialize-pe.go).


def _owns(body: dict, manager: str, *path: str) -> bool:
    """Whether `manager`'s entry in managedFields holds `path` (FieldsV1 elements)."""
    for entry in body["metadata"].get("managedFields") or []:
        node = entry["fieldsV1"] if entry["manager"] == manager else None
        for element in path:
            node = node.get(element) if node is not None else None
        if node is not None:
            return True
    return False


def test_an_apply_leaves_the_fields_other_managers_set():
    fake = FakeKubernetes()
    ours = fake.client(field_manager="ours")
    ours.apply(_configmap("c", mine="1"))
    fake.edit("ConfigMap", "c", "kubeflow", lambda body: body["data"].update(theirs="2"))

    ours.apply(_configmap("c", mine="3"))

    configmap = fake.get("ConfigMap", "c", "kubeflow")
    assert configmap["data"] == {"mine": "3", "theirs": "2"}
    assert _owns(configmap, "ours", "f:data", "f:mine")
    assert not _owns(configmap, "ours", "f:data", "f:theirs")
    assert _owns(configmap, "kubectl-edit", "f:data", "f:theirs")
    entries = {(e["manager"], e["operation"]) for e in configmap["metadata"]["managedFields"]}
    assert entries == {("ours", "Apply"), ("kubectl-edit", "Update")}


def test_a_field_the_applier_drops_goes_unless_another_manager_owns_it():
    fake = FakeKubernetes()
    ours, theirs = fake.client(field_manager="ours"), fake.client(field_manager="theirs")
    ours.apply(_configmap("c", kept="1", dropped="2", shared="3"))
    theirs.apply(_configmap("c", shared="3"))  # the same value: no conflict, both own it

    ours.apply(_configmap("c", kept="1"))

    configmap = fake.get("ConfigMap", "c", "kubeflow")
    assert configmap["data"] == {"kept": "1", "shared": "3"}
    assert _owns(configmap, "theirs", "f:data", "f:shared")
    assert not _owns(configmap, "ours", "f:data", "f:shared")


def test_changing_a_field_another_manager_owns_is_a_conflict_unless_forced():
    fake = FakeKubernetes()
    ours, theirs = fake.client(field_manager="ours"), fake.client(field_manager="theirs")
    ours.apply(_configmap("c", key="ours", other="x"))
    version = fake.get("ConfigMap", "c", "kubeflow")["metadata"]["resourceVersion"]

    with pytest.raises(ApiError) as error:
        theirs.apply(_configmap("c", key="theirs"))
    assert error.value.status.code == 409
    assert error.value.status.reason == "Conflict"
    assert error.value.status.message == (
        'Apply failed with 1 conflict: conflict with "ours": .data.key'
    )
    configmap = fake.get("ConfigMap", "c", "kubeflow")
    assert configmap["data"] == {"key": "ours", "other": "x"}
    assert configmap["metadata"]["resourceVersion"] == version

    theirs.apply(_configmap("c", key="theirs"), force=True)
    configmap = fake.get("ConfigMap", "c", "kubeflow")
    assert configmap["data"] == {"key": "theirs", "other": "x"}
    assert _owns(configmap, "theirs", "f:data", "f:key")
    assert not _owns(configmap, "ours", "f:data", "f:key")
    assert _owns(configmap, "ours", "f:data", "f:other")
    with pytest.raises(ApiError, match=r'conflict with "theirs": \.data\.key'):
        ours.apply(_configmap("c", key="ours", other="x"))


def test_creates_and_updates_own_what_they_write_and_an_apply_conflicts_with_them():
    fake = FakeKubernetes()
    fake.client(field_manager="creator").create(_configmap("c", key="v"))
    (entry,) = fake.get("ConfigMap", "c", "kubeflow")["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "creator",
        "Update",
        "v1",
    )
    assert entry["fieldsV1"] == {"f:data": {"f:key": {}}}

    with pytest.raises(ApiError) as error:
        fake.client(field_manager="ours").apply(_configmap("c", key="w"))
    assert error.value.status.message == (
        'Apply failed with 1 conflict: conflict with "creator" using v1: .data.key'
    )


RawDeployment = create_namespaced_resource("apps", "v1", "Deployment", "deployments")


def _deployment(containers: list[dict], name: str = "web", **spec) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kubeflow"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            **spec,
        },
    }


def test_keyed_lists_merge_item_by_item_and_atomic_lists_are_one_field():
    fake = FakeKubernetes()
    ours, injector = fake.client(field_manager="ours"), fake.client(field_manager="injector")
    app = {
        "name": "app",
        "image": "app:1",
        "args": ["serve"],
        "env": [{"name": "OLD", "value": "1"}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }
    ours.apply(RawDeployment.from_dict(_deployment([app])))
    # Another manager adds a container, with only the fields it cares for.
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "kubeflow"},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "proxy:1"}]}}},
    }
    injector.apply(RawDeployment.from_dict(sidecar))

    app = {**app, "env": [{"name": "NEW", "value": "2"}]}
    ours.apply(RawDeployment.from_dict(_deployment([app])))

    pod = fake.get("Deployment", "web", "kubeflow")["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in pod["containers"]] == [
        ("app", "app:1"),
        ("proxy", "proxy:1"),
    ]
    assert pod["containers"][0]["env"] == [{"name": "NEW", "value": "2"}]
    deployment = fake.get("Deployment", "web", "kubeflow")
    containers = ("f:spec", "f:template", "f:spec", "f:containers")
    assert _owns(deployment, "injector", *containers, 'k:{"name":"proxy"}', "f:image")
    assert _owns(deployment, "ours", *containers, 'k:{"name":"app"}', "f:env", 'k:{"name":"NEW"}')
    assert _owns(deployment, "ours", *containers, 'k:{"name":"app"}', "f:args")

    # An atomic list (args) is one field: another manager may not change part of it.
    bump = {
        **sidecar,
        "spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["debug"]}]}}},
    }
    with pytest.raises(ApiError) as error:
        injector.apply(RawDeployment.from_dict(bump))
    assert error.value.status.message == (
        'Apply failed with 1 conflict: conflict with "ours": '
        '.spec.template.spec.containers[name="app"].args'
    )


def test_a_users_edit_survives_a_charms_reconcile_and_a_forced_field_comes_back():
    fake = FakeKubernetes()
    manager = _manager(fake)  # lightkube-extensions applies with force=True, manager "demo"
    manager.reconcile([_configmap("a", x="1")])

    def by_hand(body: dict) -> None:
        body["data"]["x"] = "changed"
        body["metadata"]["annotations"] = {"note": "by hand"}

    fake.edit("ConfigMap", "a", "kubeflow", by_hand)
    assert _owns(fake.get("ConfigMap", "a", "kubeflow"), "kubectl-edit", "f:data", "f:x")

    manager.reconcile([_configmap("a", x="1")])

    configmap = fake.get("ConfigMap", "a", "kubeflow")
    assert configmap["data"] == {"x": "1"}
    assert configmap["metadata"]["annotations"] == {"note": "by hand"}
    assert configmap["metadata"]["labels"] == LABELS
    assert _owns(configmap, "demo", "f:data", "f:x")
    assert not _owns(configmap, "kubectl-edit", "f:data", "f:x")
    assert _owns(configmap, "kubectl-edit", "f:metadata", "f:annotations", "f:note")


def test_an_apply_request_is_checked_as_the_api_server_checks_it():
    fake = FakeKubernetes()
    path = "https://kubernetes.invalid/api/v1/namespaces/kubeflow/configmaps/c"
    apply = {"content-type": "application/apply-patch+yaml"}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    no_manager = httpx.Request("PATCH", path, json=body, headers=apply)
    assert fake.handle(no_manager).json()["message"] == (
        "fieldManager: Required value: is required for apply patch"
    )
    with_fields = {**body, "metadata": {"name": "c", "managedFields": []}}
    request = httpx.Request(
        "PATCH", path, json=with_fields, headers=apply, params={"fieldManager": "m"}
    )
    answer = fake.handle(request)
    assert (answer.status_code, answer.json()["message"]) == (
        400,
        "metadata.managedFields must be nil",
    )
    assert fake.of_kind("ConfigMap") == []


# --- patches


def test_a_merge_patch_merges_maps_deletes_nulls_and_replaces_lists():
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(_configmap("c", a="1", b="2"))
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    client.apply(ClusterRole.from_dict({"metadata": {"name": "r"}, "rules": rules}))

    patch = {"data": {"a": None, "c": "3"}, "metadata": {"labels": {"l": "v"}}}
    client.patch(
        ConfigMap,
        "c",
        patch,
        namespace="kubeflow",
        patch_type=PatchType.MERGE,
        field_manager="patcher",
    )
    new_rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    client.patch(ClusterRole, "r", {"rules": new_rules}, patch_type=PatchType.MERGE)

    configmap = fake.get("ConfigMap", "c", "kubeflow")
    assert configmap["data"] == {"b": "2", "c": "3"}
    assert configmap["metadata"]["labels"] == {"l": "v"}
    assert _owns(configmap, "patcher", "f:data", "f:c")
    assert fake.get("ClusterRole", "r")["rules"] == new_rules
    assert ("patch", "ConfigMap", "c") in fake.writes
    with pytest.raises(ApiError) as error:
        client.patch(
            ConfigMap, "nope", {"data": {}}, namespace="kubeflow", patch_type=PatchType.MERGE
        )
    assert error.value.status.code == 404


def test_a_strategic_merge_patch_merges_keyed_lists_and_custom_resources_refuse_it():
    fake = FakeKubernetes()
    client = fake.client()
    containers = [
        {"name": "app", "image": "app:1", "args": ["serve"]},
        {"name": "proxy", "image": "p:1"},
    ]
    client.apply(RawDeployment.from_dict(_deployment(containers)))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}

    client.patch(Deployment, "web", patch, namespace="kubeflow", patch_type=PatchType.STRATEGIC)
    pod = fake.get("Deployment", "web", "kubeflow")["spec"]["template"]["spec"]
    assert pod["containers"] == [
        {"name": "app", "image": "app:2", "args": ["serve"]},
        {"name": "proxy", "image": "p:1"},
    ]
    # The same as a merge patch replaces the list.
    client.patch(Deployment, "web", patch, namespace="kubeflow", patch_type=PatchType.MERGE)
    pod = fake.get("Deployment", "web", "kubeflow")["spec"]["template"]["spec"]
    assert pod["containers"] == [{"name": "app", "image": "app:2"}]

    client.apply(CustomResourceDefinition.from_dict(CRD))
    client.apply(Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={"size": 1}))
    with pytest.raises(ApiError) as error:
        client.patch(
            Widget,
            "w",
            {"spec": {"size": 2}},
            namespace="kubeflow",
            patch_type=PatchType.STRATEGIC,
        )
    assert error.value.status.code == 415
    client.patch(
        Widget, "w", {"spec": {"size": 2}}, namespace="kubeflow", patch_type=PatchType.MERGE
    )
    assert fake.get("Widget", "w", "kubeflow")["spec"] == {"size": 2}


# --- optimistic concurrency

STALE = (
    'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


def test_a_write_carrying_a_stale_resource_version_is_a_conflict():
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(_configmap("c", k="1"))
    stale = client.get(ConfigMap, "c", namespace="kubeflow")
    client.apply(_configmap("c", k="2"))
    old = stale.metadata.resourceVersion

    stale.data = {"k": "3"}
    with pytest.raises(ApiError) as error:
        client.replace(stale)
    assert (error.value.status.code, error.value.status.reason) == (409, "Conflict")
    assert error.value.status.message == STALE
    with pytest.raises(ApiError, match="has been modified"):
        patch = {"metadata": {"resourceVersion": old}, "data": {"k": "3"}}
        client.patch(ConfigMap, "c", patch, namespace="kubeflow", patch_type=PatchType.MERGE)
    with pytest.raises(ApiError, match="has been modified"):
        configmap = _configmap("c", k="3")
        configmap.metadata.resourceVersion = old
        client.apply(configmap)
    assert fake.get("ConfigMap", "c", "kubeflow")["data"] == {"k": "2"}

    fresh = client.get(ConfigMap, "c", namespace="kubeflow")
    fresh.data = {"k": "3"}
    client.replace(fresh)
    assert fake.get("ConfigMap", "c", "kubeflow")["data"] == {"k": "3"}
    assert ("update", "ConfigMap", "c") in fake.writes


# --- label and field selectors
#
# The grammar and what each operator matches: kubernetes/apimachinery
# pkg/labels/selector.go (Lexer, Parser, Requirement.Matches); field selectors:
# pkg/fields/selector.go, and the fields every kind serves.

SELECTED = {
    "a": {"tier": "web", "env": "prod"},
    "b": {"tier": "db", "env": "dev"},
    "c": {"tier": "web"},
    "d": {},
}


def _selected(fake: FakeKubernetes, **query: str) -> list[str] | tuple[int, str]:
    url = "https://kubernetes.invalid/api/v1/namespaces/kubeflow/configmaps"
    answer = fake.handle(httpx.Request("GET", url, params=query))
    if answer.status_code != 200:
        return answer.status_code, answer.json()["message"]
    return sorted(i["metadata"]["name"] for i in answer.json()["items"])


@pytest.fixture(scope="module")
def labelled() -> FakeKubernetes:
    fake = FakeKubernetes()
    client = fake.client()
    for name, labels in SELECTED.items():
        client.apply(
            ConfigMap(metadata=ObjectMeta(name=name, namespace="kubeflow", labels=labels))
        )
    return fake


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["b", "d"]),  # without the label: matched
        ("env", ["a", "b"]),
        ("!env", ["c", "d"]),
        ("tier=web", ["a", "c"]),
        ("tier==web", ["a", "c"]),
        ("tier!=web", ["b", "d"]),  # without the label: matched
        ("tier in (web), !env", ["c"]),
        ("tier in (web),env notin (prod)", ["c"]),
        ("env in (prod,dev),tier!=db", ["a"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors_match_as_kubernetes_matches(labelled, selector, names):
    assert _selected(labelled, labelSelector=selector) == names


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ("tier in web", "found 'web' expected: '('"),
        ("tier in (web", "unable to parse requirement"),
        ("tier in (a b)", "found 'b', expected: ',' or ')'"),
        ("!tier=web", "unable to parse requirement"),
        ("tier=a b", "found 'b', expected: ',' or 'end of string'"),
        ("-tier=web", "unable to parse requirement"),
        ("tier=web,", "expected: identifier after ','"),
        ("tier>high", "must be an integer"),
        ("tier ~ web", "unable to parse requirement"),
    ],
)
def test_a_selector_that_does_not_parse_is_a_bad_request(labelled, selector, why):
    code, message = _selected(labelled, labelSelector=selector)
    assert code == 400
    assert why in message


def test_lightkubes_set_based_selectors_and_field_selectors_select():
    fake = FakeKubernetes()
    client = fake.client()
    for name, labels in SELECTED.items():
        client.apply(
            ConfigMap(metadata=ObjectMeta(name=name, namespace="kubeflow", labels=labels))
        )

    def names(**kwargs) -> list[str]:
        return sorted(
            c.metadata.name for c in client.list(ConfigMap, namespace="kubeflow", **kwargs)
        )

    assert names(labels={"tier": operators.in_(["db", "web"])}) == ["a", "b", "c"]
    assert names(labels={"tier": operators.not_in(["web"])}) == ["b", "d"]
    assert names(labels={"env": operators.exists()}) == ["a", "b"]
    assert names(labels={"env": operators.not_exists()}) == ["c", "d"]
    assert names(fields={"metadata.name": "b"}) == ["b"]
    assert names(fields={"metadata.name": operators.not_equal("b")}) == ["a", "c", "d"]
    assert names(fields={"metadata.namespace": "kubeflow"}) == ["a", "b", "c", "d"]
    assert _selected(fake, fieldSelector="spec.x=1") == (400, "field label not supported: spec.x")


# --- deletion: owner references, namespaces, custom resource definitions


def _owned_by(name: str, *owners: ConfigMap) -> ConfigMap:
    refs = [
        OwnerReference(apiVersion="v1", kind="ConfigMap", name=o.metadata.name, uid=o.metadata.uid)
        for o in owners
    ]
    return ConfigMap(metadata=ObjectMeta(name=name, namespace="kubeflow", ownerReferences=refs))


def test_deleting_an_owner_deletes_its_dependents_unless_they_are_orphaned():
    fake = FakeKubernetes()
    client = fake.client()
    owner, other = (client.apply(_configmap(n)) for n in ("owner", "other"))
    child = client.apply(_owned_by("child", owner))
    client.apply(_owned_by("grandchild", child))
    client.apply(_owned_by("shared", owner, other))

    client.delete(ConfigMap, "owner", namespace="kubeflow")

    left = {c["metadata"]["name"]: c for c in fake.of_kind("ConfigMap")}
    assert set(left) == {"other", "shared"}  # the chain went; the object another owns stays
    assert [r["name"] for r in left["shared"]["metadata"]["ownerReferences"]] == ["other"]

    # Orphaned, by the query (lightkube) or by DeleteOptions in the body (kubectl).
    parent = client.apply(_configmap("parent"))
    client.apply(_owned_by("kept", parent))
    client.delete(ConfigMap, "parent", namespace="kubeflow", cascade=CascadeType.ORPHAN)
    assert "ownerReferences" not in fake.get("ConfigMap", "kept", "kubeflow")["metadata"]
    parent = client.apply(_configmap("parent"))
    client.apply(_owned_by("kept-too", parent))
    url = "https://kubernetes.invalid/api/v1/namespaces/kubeflow/configmaps/parent"
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}
    assert fake.handle(httpx.Request("DELETE", url, json=options)).status_code == 200
    assert fake.get("ConfigMap", "kept-too", "kubeflow") is not None
    assert fake.get("ConfigMap", "parent", "kubeflow") is None


def test_a_deletes_options_in_the_body_win_over_the_query_and_are_checked():
    fake = FakeKubernetes()
    client = fake.client()
    parent = client.apply(_configmap("parent"))
    client.apply(_owned_by("kept", parent))
    url = "https://kubernetes.invalid/api/v1/namespaces/kubeflow/configmaps/parent"
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}
    request = httpx.Request(
        "DELETE", url, params={"propagationPolicy": "Background"}, json=options
    )

    assert fake.handle(request).status_code == 200
    assert fake.get("ConfigMap", "kept", "kubeflow") is not None

    client.apply(_configmap("parent"))
    bad = httpx.Request("DELETE", url, params={"propagationPolicy": "Sometimes"})
    answer = fake.handle(bad)
    assert answer.status_code == 422
    assert "propagationPolicy" in answer.json()["message"]
    assert fake.get("ConfigMap", "parent", "kubeflow") is not None


def test_deleting_a_namespace_deletes_everything_in_it():
    fake = FakeKubernetes()
    client = fake.client()
    client.create(Namespace(metadata=ObjectMeta(name="team")))
    client.apply(ConfigMap(metadata=ObjectMeta(name="c", namespace="team")))
    client.apply(RawService.from_dict(SERVICE | {"metadata": {"name": "s", "namespace": "team"}}))
    client.apply(_configmap("elsewhere"))
    client.apply(ClusterRole(metadata=ObjectMeta(name="cluster-wide")))

    client.delete(Namespace, "team")

    assert [c["metadata"]["name"] for c in fake.of_kind("ConfigMap")] == ["elsewhere"]
    assert fake.of_kind("Service") == []
    assert fake.get("ClusterRole", "cluster-wide") is not None
    with pytest.raises(ApiError) as error:
        client.apply(ConfigMap(metadata=ObjectMeta(name="c", namespace="team")))
    assert error.value.status.code == 404


def test_deleting_a_crd_deletes_its_custom_resources():
    fake = FakeKubernetes()
    client = fake.client()
    client.apply(CustomResourceDefinition.from_dict(CRD))
    client.apply(Widget(metadata=ObjectMeta(name="w", namespace="kubeflow"), spec={"size": 1}))

    client.delete(CustomResourceDefinition, CRD["metadata"]["name"])
    client.apply(CustomResourceDefinition.from_dict(CRD))

    assert list(client.list(Widget, namespace="kubeflow")) == []


# --- what the API server's own validation refuses, beyond the schemas
#
# kubernetes pkg/apis/apps/validation/validation.go (selectors),
# pkg/registry/apps/*/strategy.go (immutable selectors), pkg/apis/core/
# validation/validation.go and apimachinery pkg/util/validation/validation.go
# (IsValidPortNum, IsValidPortName), pkg/apis/networking/validation.

SERVICE = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}}
MISMATCH = "`selector` does not match template `labels`"


def _workload(kind: str, selector: dict, labels: dict) -> dict:
    spec = {
        "selector": selector,
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "web", "namespace": "kubeflow"},
        "spec": spec,
    }


def _write(fake: FakeKubernetes, obj: dict) -> httpx.Response:
    plural = {"Service": "services", "NetworkPolicy": "networkpolicies"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    group, _, version = obj["apiVersion"].rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    url = (
        f"https://kubernetes.invalid{base}/namespaces/kubeflow/{plural}/{obj['metadata']['name']}"
    )
    request = httpx.Request(
        "PATCH",
        url,
        json=obj,
        params={"fieldManager": "test"},
        headers={"content-type": "application/apply-patch+yaml"},
    )
    return fake.handle(request)


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"])
@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": {"app": "web"}},
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
        {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["api"]}]},
    ],
)
def test_a_workload_whose_selector_does_not_select_its_pods_is_invalid(kind, selector):
    fake = FakeKubernetes()
    answer = _write(fake, _workload(kind, selector, {"app": "api"}))
    assert answer.status_code == 422
    assert MISMATCH in answer.json()["message"]
    assert fake.of_kind(kind) == []

    assert _write(fake, _workload(kind, selector, {"app": "web", "x": "y"})).status_code == 201
    empty = _write(fake, _workload(kind, {}, {"app": "web"}))
    assert empty.status_code == 422
    assert "empty selector is" in empty.json()["message"]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"])
def test_a_workloads_selector_cannot_change(kind):
    fake = FakeKubernetes()
    labels = {"app": "web", "tier": "front"}
    assert (
        _write(fake, _workload(kind, {"matchLabels": {"app": "web"}}, labels)).status_code == 201
    )
    changed = _write(fake, _workload(kind, {"matchLabels": labels}, labels))
    assert changed.status_code == 422
    assert "immutable" in changed.json()["message"] or "forbidden" in changed.json()["message"]
    selector = fake.get(kind, "web", "kubeflow")["spec"]["selector"]
    assert selector == {"matchLabels": {"app": "web"}}


def test_a_statefulset_update_may_change_only_what_kubernetes_allows():
    fake = FakeKubernetes()
    labels = {"app": "web"}
    first = _workload("StatefulSet", {"matchLabels": labels}, labels)
    assert _write(fake, first).status_code == 201
    scaled = copy.deepcopy(first)
    scaled["spec"].update(replicas=3, minReadySeconds=5)
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    assert _write(fake, scaled).status_code == 200

    renamed = copy.deepcopy(scaled)
    renamed["spec"]["serviceName"] = "other"
    answer = _write(fake, renamed)

    assert answer.status_code == 422
    assert (
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds'" in answer.json()["message"]
    )
    assert fake.get("StatefulSet", "web", "kubeflow")["spec"]["serviceName"] == "web"


def _with_container(**container) -> dict:
    return _deployment([{"name": "app", "image": "app:1", **container}])


def _service(**port) -> dict:
    return {
        **SERVICE,
        "metadata": {"name": "svc", "namespace": "kubeflow"},
        "spec": {"ports": [port]},
    }


def _policy(port) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "policy", "namespace": "kubeflow"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": port}]}]},
    }


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        (_with_container(ports=[{"containerPort": 70000}]), "ports[0].containerPort"),
        (_with_container(ports=[{"containerPort": 0}]), "ports[0].containerPort: Required"),
        (_with_container(ports=[{"containerPort": 80, "hostPort": 65536}]), "hostPort"),
        (_with_container(ports=[{"containerPort": 80, "name": "Web_UI"}]), "ports[0].name"),
        (_with_container(ports=[{"containerPort": 80, "name": "a-very-long-port-name"}]), "name"),
        (_with_container(readinessProbe={"httpGet": {"port": 0}}), "readinessProbe.httpGet.port"),
        (_with_container(livenessProbe={"tcpSocket": {"port": "web--ui"}}), "tcpSocket.port"),
        (_service(port=70000), "spec.ports[0].port"),
        (_service(port=0), "spec.ports[0].port"),
        (_service(port=80, targetPort=65536), "spec.ports[0].targetPort"),
        (_service(port=80, targetPort="not_a_name"), "spec.ports[0].targetPort"),
        (_service(port=80, nodePort=70000), "spec.ports[0].nodePort"),
        (_policy(70000), "spec.ingress[0].ports[0].port"),
    ],
)
def test_ports_out_of_range_or_misnamed_are_invalid(obj, where):
    # kubernetes-validate's schemas carry no port ranges: the schema alone lets these through.
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    fake = FakeKubernetes()
    answer = _write(fake, obj)
    assert answer.status_code == 422
    assert where in answer.json()["message"]
    assert fake.of_kind(obj["kind"]) == []


@pytest.mark.parametrize(
    "obj",
    [
        _with_container(ports=[{"containerPort": 65535, "name": "http-web"}]),
        _with_container(readinessProbe={"httpGet": {"port": "http-web"}}),
        _service(port=1, targetPort="http-web", nodePort=30080),
        _service(port=80),  # the target port defaults to the port
        _policy("metrics"),
    ],
)
def test_ports_in_range_and_well_named_are_stored(obj):
    fake = FakeKubernetes()
    assert _write(fake, obj).status_code == 201


# --- the charms' objects in the settled bundle


@pytest.fixture
def shared_model(settled_models):
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


def test_each_charms_objects_are_its_own_and_no_apply_took_fields_by_force(shared_model):
    cluster = shared_model.workloads.kubernetes
    assert cluster.forced == []
    for key in cluster.made():
        meta = cluster.objects[key].body["metadata"]
        managers = [(e["manager"], e["operation"]) for e in meta.get("managedFields") or []]
        # lightkube-extensions labels the app's objects "<model>-<app>"; the app is the manager.
        app = meta["labels"]["app.kubernetes.io/instance"].removeprefix("kubeflow-")
        assert managers == [(app, "Apply")], f"{key}: {managers}"


def test_a_users_change_to_a_charms_object_survives_the_charms_next_apply(
    settled_models, tmp_path
):
    model = settled_models.own(tmp_path)
    cluster = model.workloads.kubernetes
    name = "istio-ingressgateway"
    replicas = cluster.get("Deployment", name, "kubeflow")["spec"]["replicas"]

    def by_hand(body: dict) -> None:
        body["metadata"].setdefault("annotations", {})["team.example.com/owner"] = "platform"
        body["spec"]["replicas"] = replicas + 4  # a field the charm sets

    cluster.edit("Deployment", name, "kubeflow", by_hand)
    model.update_status_everywhere()  # istio sees its Deployment changed and applies it again

    deployment = cluster.get("Deployment", name, "kubeflow")
    assert deployment["metadata"]["annotations"]["team.example.com/owner"] == "platform"
    assert deployment["spec"]["replicas"] == replicas  # the charm's apply is forced
    assert [f for f in cluster.forced if "kubectl-edit" in f and ".spec.replicas" in f]
    assert _owns(deployment, "kubectl-edit", "f:metadata", "f:annotations")
    assert not _owns(deployment, "kubectl-edit", "f:spec", "f:replicas")
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.message}"
    writes = len(cluster.writes)
    assert model.update_status_everywhere() == []
    assert len(cluster.writes) == writes
