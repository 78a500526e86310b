"""Objects deleted or changed behind the charms' backs are back after one update-status."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from bundle.simulator import Model


@pytest.fixture
def own_model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle for the test alone, to change."""
    return settled_models.own(tmp_path)


def _owned(model: Model, kind: str, app: str) -> dict[str, Any]:
    """The first object of a kind that an application applied (lightkube-extensions' label)."""
    for obj in model.workloads.kubernetes.of_kind(kind):
        labels = obj["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/instance") == f"kubeflow-{app}":
            return obj
    raise AssertionError(f"{app} applied no {kind}")


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what the API server sets (uid, versions, status)."""
    body = copy.deepcopy(obj)
    body.pop("status", None)
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        body["metadata"].pop(key, None)
    return body


def test_deleted_and_changed_objects_come_back_after_one_update_status(own_model: Model):
    model = own_model
    cluster = model.workloads.kubernetes
    policy = _owned(model, "AuthorizationPolicy", "istio")
    webhook = _owned(model, "MutatingWebhookConfiguration", "resource-dispatcher")
    notebook_crd = _owned(model, "CustomResourceDefinition", "kubeflow-notebooks")
    links = _owned(model, "ConfigMap", "kubeflow-dashboard")
    injector = _owned(model, "MutatingWebhookConfiguration", "istio")
    workflow_crd = cluster.get("CustomResourceDefinition", "workflows.argoproj.io")
    ui_service = cluster.get("Service", "ml-pipeline-ui", "kubeflow")
    argo_config = cluster.get("ConfigMap", "workflow-controller-configmap", "kubeflow")
    assert workflow_crd and ui_service and argo_config
    kfp_roles = [
        o
        for o in cluster.of_kind("ClusterRole")
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == "kubeflow-kfp"
    ]
    assert kfp_roles, "kfp applied no ClusterRole"
    deleted = (policy, webhook, notebook_crd, links, workflow_crd, ui_service, kfp_roles[0])
    edited = (injector, argo_config)
    before = {(o["kind"], o["metadata"]["name"]): _content(o) for o in deleted + edited}
    for obj in deleted:
        cluster.delete(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))

    def loosen(body: dict[str, Any]) -> None:
        body["webhooks"][0]["failurePolicy"] = "Ignore"  # pods would start unchecked

    def other_executor(body: dict[str, Any]) -> None:
        body["data"]["executor"] = "image: example.com/argoexec:any\n"  # steps run another image

    cluster.edit(injector["kind"], injector["metadata"]["name"], None, loosen)
    cluster.edit("ConfigMap", "workflow-controller-configmap", "kubeflow", other_executor)
    for obj in edited:
        meta = obj["metadata"]
        now = cluster.get(obj["kind"], meta["name"], meta.get("namespace"))
        assert _content(now) != before[(obj["kind"], meta["name"])]

    model.update_status_everywhere()

    for (kind, name), content in before.items():
        namespace = content["metadata"].get("namespace")
        restored = cluster.get(kind, name, namespace)
        assert restored is not None, f"{kind} {name} did not come back"
        assert _content(restored) == content, f"{kind} {name} is not as it was"
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.message}"
    # Settled again: another update-status writes nothing, to the model or the cluster.
    writes = len(cluster.writes)
    assert model.update_status_everywhere() == []
    assert len(cluster.writes) == writes
    assert cluster.rejected == []


def test_a_settled_update_status_lists_but_writes_nothing(own_model: Model):
    model = own_model
    cluster = model.workloads.kubernetes
    writes, lists = len(cluster.writes), cluster.lists
    assert model.update_status_everywhere() == []
    assert len(cluster.writes) == writes
    assert cluster.lists > lists  # each leader looked at its objects
