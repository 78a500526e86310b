"""The simulation's Kubernetes API.

lightkube and the resource manager work against it, and it refuses what a
real API server would.
"""

from __future__ import annotations

import logging

import pytest
from bundle.fake_kubernetes import FakeKubernetes
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap, Service
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
    assert fake.objects == {}


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
    with pytest.raises(ApiError, match="no CustomResourceDefinition"):
        client.apply(widget)

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
