"""The simulation's Kubernetes API.

lightkube and the resource manager work against it, and it refuses what a
real API server would.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from bundle.fake_kubernetes import FakeKubernetes
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service
from lightkube.resources.rbac_authorization_v1 import ClusterRole
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
