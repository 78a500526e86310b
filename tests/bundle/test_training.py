"""Katib and Kubeflow Trainer in the simulated model: trials, runtimes, pools and webhooks.

Both charms run every controller on their leader and serve the webhooks from
it, so each webhook Service selects the leader's pod, and each webhook
configuration trusts the CA in the charm's own secret. kubeflow-trainer tells
katib over `trial-kinds` that TrainJobs exist, so Katib may run them as
trials. The AKS overlay sends the GPU runtimes and the GPU trial template to
the GPU pool and adds an ARM64 CPU runtime (bundle/overlays/aks.yaml).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from bundle.simulator import BUNDLE, Model

AKS = BUNDLE.parent / "overlays" / "aks.yaml"
NAMESPACE = "kubeflow"
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
ARM_TOLERATION = {
    "key": "kubeflow.org/arch",
    "operator": "Equal",
    "value": "arm64",
    "effect": "NoSchedule",
}
WEBHOOKS = {
    "katib": [
        ("ValidatingWebhookConfiguration", "katib.kubeflow.org"),
        ("MutatingWebhookConfiguration", "katib.kubeflow.org"),
    ],
    "kubeflow-trainer": [
        ("ValidatingWebhookConfiguration", "validator.trainer.kubeflow.org"),
        ("MutatingWebhookConfiguration", "jobset-mutating-webhook-configuration"),
        ("ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration"),
    ],
}
SHIPPED_RUNTIMES = {
    "torch-distributed",
    "deepspeed-distributed",
    "mlx-distributed",
    "torchtune-llama3.2-1b",
    "torchtune-llama3.2-3b",
    "torchtune-qwen2.5-1.5b",
}


@pytest.fixture
def shared_model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


def _aks_options(app: str) -> dict[str, Any]:
    options = yaml.safe_load(AKS.read_text())["applications"][app]["options"]
    return {key: yaml.safe_load(value) for key, value in options.items()}


def _get(model: Model, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict:
    found = model.workloads.kubernetes.get(kind, name, namespace)
    assert found is not None, f"no {kind} {name}"
    return found


def _runtimes(model: Model) -> dict[str, dict]:
    return {
        o["metadata"]["name"]: o
        for o in model.workloads.kubernetes.of_kind("ClusterTrainingRuntime")
    }


def _node_pod(runtime: dict) -> dict:
    """The pod spec of the runtime's `node` job, the one that trains."""
    for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        if job["name"] == "node":
            return job["template"]["spec"]["template"]["spec"]
    raise AssertionError(f"{runtime['metadata']['name']} has no node job")


def _templates(model: Model) -> dict[str, dict]:
    data = _get(model, "ConfigMap", "trial-templates")["data"]
    return {key: yaml.safe_load(value) for key, value in data.items()}


def _ca(model: Model, app: str) -> str:
    [secret] = [
        s
        for s in model.secrets.values()
        if s.owner_app == app and s.label == "webhook-certificates"
    ]
    return secret.content["ca-cert"]


def test_both_charms_settle_active_with_their_relations(shared_model: Model):
    for unit in ("katib/0", "kubeflow-trainer/0"):
        assert shared_model.statuses[unit].name == "active", shared_model.statuses[unit]
    related = {
        frozenset(zip(r.apps, r.endpoints, strict=True))
        for r in shared_model.relations.values()
        if "katib" in r.apps
    }
    assert frozenset({("katib", "trial-kinds"), ("kubeflow-trainer", "trial-kinds")}) in related


def test_katib_runs_trainjobs_as_trials_once_the_trainer_offers_them(shared_model: Model):
    config = yaml.safe_load(
        _get(shared_model, "ConfigMap", "katib-config")["data"]["katib-config.yaml"]
    )
    assert (
        "TrainJob.v1alpha1.trainer.kubeflow.org" in config["init"]["controller"]["trialResources"]
    )
    # The controller reads the init section from its file at start: the same text.
    on_disk = shared_model.container_file(
        "katib/0", "katib-controller", "/etc/katib/katib-config.yaml"
    )
    assert yaml.safe_load(on_disk)["init"] == config["init"]
    rules = _get(shared_model, "ClusterRole", "katib-controller", None)["rules"]
    assert any(
        "trainer.kubeflow.org" in r.get("apiGroups", [])
        and "trainjobs" in r.get("resources", [])
        and {"create", "delete", "get", "list", "watch"} <= set(r.get("verbs", []))
        for r in rules
    ), rules
    template = _templates(shared_model)["trainJobTemplate"]
    assert template["kind"] == "TrainJob"
    assert template["spec"]["runtimeRef"]["name"] in _runtimes(shared_model)


def test_the_plain_bundle_ships_upstreams_runtimes_with_no_placement(shared_model: Model):
    runtimes = _runtimes(shared_model)
    assert set(runtimes) == SHIPPED_RUNTIMES
    for runtime in runtimes.values():
        # The SDK lists runtimes by this label (kubeflow 0.1.0 trainer/constants).
        assert "trainer.kubeflow.org/framework" in runtime["metadata"]["labels"]
    assert "nodeSelector" not in _node_pod(runtimes["torch-distributed"])


def test_on_aks_the_gpu_runtimes_and_the_gpu_trials_go_to_the_gpu_pool(aks_model: Model):
    gpu = _aks_options("kubeflow-trainer")["gpu-placement"]
    runtimes = _runtimes(aks_model)
    assert set(runtimes) == SHIPPED_RUNTIMES | {"torch-distributed-arm64"}
    for name in SHIPPED_RUNTIMES:
        pod = _node_pod(runtimes[name])
        assert pod["nodeSelector"] == gpu["node-selector"], name
        assert GPU_TOLERATION in pod["tolerations"], name
    torch = _node_pod(runtimes["torch-distributed"])["containers"][0]
    assert torch["resources"]["limits"]["nvidia.com/gpu"] == gpu["gpus-per-node"]
    arm = _node_pod(runtimes["torch-distributed-arm64"])
    assert arm["nodeSelector"] == {"kubeflow.org/pool": "arm64"}
    assert arm["tolerations"] == [ARM_TOLERATION]
    assert "resources" not in arm["containers"][0]

    katib = _aks_options("katib")
    templates = _templates(aks_model)
    gpu_pod = templates["gpuTrialTemplate"]["spec"]["template"]["spec"]
    assert gpu_pod["nodeSelector"] == katib["gpu-trial-node-selector"]
    assert gpu_pod["tolerations"] == katib["gpu-trial-tolerations"]
    cpu_pod = templates["defaultTrialTemplate.yaml"]["spec"]["template"]["spec"]
    assert cpu_pod["nodeSelector"] == katib["trial-node-selector"] == {"kubeflow.org/pool": "cpu"}
    for unit in ("katib/0", "kubeflow-trainer/0"):
        assert aks_model.statuses[unit].name == "active"


@pytest.mark.parametrize("app", sorted(WEBHOOKS))
def test_webhooks_trust_the_charms_ca_and_reach_the_leader(shared_model: Model, app: str):
    ca = _ca(shared_model, app)
    services = set()
    for kind, name in WEBHOOKS[app]:
        config = _get(shared_model, kind, name, None)
        for hook in config["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == ca, hook["name"]
            assert hook["failurePolicy"] == "Fail"
            services.add(hook["clientConfig"]["service"]["name"])
    leader = shared_model.leader_of(app).name.replace("/", "-")
    for name in services:
        selector = _get(shared_model, "Service", name)["spec"]["selector"]
        assert selector == {"statefulset.kubernetes.io/pod-name": leader}, name


def test_rotation_and_a_new_leader_move_the_webhooks_with_them(settled_models, tmp_path):
    model = settled_models.own(tmp_path)
    app = "kubeflow-trainer"
    old_ca = _ca(model, app)
    results = model.run_action(f"{app}/0", "rotate-certificates")
    assert results["ca-serial"] and _ca(model, app) != old_ca
    for kind, name in WEBHOOKS[app]:
        for hook in _get(model, kind, name, None)["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == _ca(model, app)

    model.add_unit(app)
    model.elect(f"{app}/1")
    model.settle()
    selector = _get(model, "Service", "jobset-webhook-service")["spec"]["selector"]
    assert selector == {"statefulset.kubernetes.io/pod-name": f"{app}-1"}
    for unit in (f"{app}/0", f"{app}/1"):
        assert model.statuses[unit].name == "active", model.statuses[unit]
