"""User workspaces in the simulated model.

A new profile namespace gets the object-store credentials within one round
of hooks, through the dispatcher's namespace watch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bundle.simulator import BUNDLE, Model
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
NOTICE = "kubeflow.org/profile-namespace"
AKS = BUNDLE.parent / "overlays" / "aks.yaml"


@pytest.fixture
def model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle for the test alone: workspaces change it."""
    return settled_models.own(tmp_path)


@pytest.fixture
def shared_model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


def _namespace(model: Model, name: str, labels: dict[str, str]) -> None:
    client = model.workloads.kubernetes.client()
    client.apply(Namespace(metadata=ObjectMeta(name=name, labels=labels)))


def _in(model: Model, namespace: str) -> dict[str, dict]:
    kube = model.workloads.kubernetes
    return {
        f"{obj['kind']}/{obj['metadata']['name']}": obj
        for kind in ("Secret", "PodDefault")
        for obj in kube.of_kind(kind)
        if obj["metadata"].get("namespace") == namespace
    }


def test_a_new_profile_gets_the_object_store_credentials(model: Model):
    _namespace(model, "alice", PROFILE_LABELS)
    _namespace(model, "not-a-profile", {})
    # The dispatcher's kubectl watch sees the namespace and notifies the charm.
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")

    objects = _in(model, "alice")
    assert {"Secret/minio-credentials", "PodDefault/access-minio"} <= set(objects)
    assert _in(model, "not-a-profile") == {}
    assert model.workloads.kubernetes.rejected == []

    # Credentials travel only in the Secret, never in clear in the PodDefault.
    pod_default = json.dumps(objects["PodDefault/access-minio"])
    assert not any(value in pod_default for value in model.secret_values())
    # The Secret holds the profile's own MinIO user, never the root keys.
    _assert_own_keys(model, objects["Secret/minio-credentials"], "alice")
    assert model.statuses["resource-dispatcher/0"].name == "active"


def _assert_own_keys(model: Model, secret: dict, namespace: str) -> None:
    keys = secret["stringData"]
    minio_root = next(r for r in model.secrets.values() if r.label == "root-credentials")
    assert not set(minio_root.content.values()) & set(keys.values())
    user = f"kf-profile-{namespace}"
    assert keys["AWS_ACCESS_KEY_ID"] == user
    assert keys["AWS_SECRET_ACCESS_KEY"] == model.workloads.minio_admin.users[user]


def test_rotated_minio_credentials_reach_every_profile(model: Model):
    _namespace(model, "alice", PROFILE_LABELS)
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")
    before = _in(model, "alice")["Secret/minio-credentials"]["stringData"]
    model.run_action("minio/0", "rotate-credentials")
    secret = _in(model, "alice")["Secret/minio-credentials"]
    assert secret["stringData"] != before
    _assert_own_keys(model, secret, "alice")


def test_removing_the_relation_takes_the_objects_back(model: Model):
    _namespace(model, "alice", PROFILE_LABELS)
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")
    model.remove_relation("resource-dispatcher:secrets", "minio:secrets")
    assert "Secret/minio-credentials" not in _in(model, "alice")
    assert "PodDefault/access-minio" in _in(model, "alice")


def test_aks_overlay_offers_the_gpu_and_arm64_pools_in_the_spawner(aks_model: Model):
    text = aks_model.container_file(
        "kubeflow-notebooks/0", "jupyter-web-app", "/etc/config/spawner_ui_config.yaml"
    )
    form = yaml.safe_load(text)["spawnerFormDefaults"]
    # A new notebook starts on the CPU pool; GPU and ARM64 notebooks pick their pool's
    # affinity and its toleration group. Pools are told apart by the label
    # tools/aks-up.sh sets, never by kubernetes.io/arch (kubernetes/autoscaler#9322).
    assert form["affinityConfig"]["value"] == "aks-cpu-pool"
    pools = {}
    for option in form["affinityConfig"]["options"]:
        (term,) = option["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        (expression,) = term["matchExpressions"]
        assert expression["key"] == "kubeflow.org/pool"
        assert expression["operator"] == "In"
        pools[option["configKey"]] = expression["values"]
    assert pools == {"aks-cpu-pool": ["cpu"], "aks-gpu-pool": ["gpu"], "aks-arm64-pool": ["arm64"]}
    groups = {g["groupKey"]: g["tolerations"] for g in form["tolerationGroup"]["options"]}
    assert groups == {
        "aks-gpu-pool": [
            {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        ],
        "aks-arm64-pool": [
            {
                "key": "kubeflow.org/arch",
                "operator": "Equal",
                "value": "arm64",
                "effect": "NoSchedule",
            }
        ],
    }
    assert [v["limitsKey"] for v in form["gpus"]["value"]["vendors"]] == ["nvidia.com/gpu"]


def test_a_profile_made_with_the_action_becomes_a_served_workspace(model: Model):
    results = model.run_action(
        "kubeflow-dashboard/0", "create-profile", name="alice", owner="alice@example.com"
    )
    assert results
    (profile,) = model.workloads.kubernetes.of_kind("Profile")
    assert profile["spec"]["owner"] == {"kind": "User", "name": "alice@example.com"}
    # The profile controller (not simulated) makes the namespace with the labels it
    # is configured with; the dispatcher's watch then reports it.
    labels = yaml.safe_load(
        model.container_file(
            "kubeflow-dashboard/0",
            "profile-controller",
            "/etc/profile-controller/namespace-labels.yaml",
        )
    )
    _namespace(model, "alice", labels)
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")
    assert {"Secret/minio-credentials", "PodDefault/access-minio"} <= set(_in(model, "alice"))


def test_the_dashboard_menu_links_to_notebooks(shared_model: Model):
    (config,) = [
        c
        for c in shared_model.workloads.kubernetes.of_kind("ConfigMap")
        if "links" in c.get("data", {})
    ]
    links = json.loads(config["data"]["links"])
    (notebooks,) = [e for e in links["menuLinks"] if e["text"] == "Notebooks"]
    assert notebooks["link"] == "/jupyter/"
