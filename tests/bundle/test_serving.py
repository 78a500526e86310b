"""MLflow and KServe in the simulated model: the registry, profiles' access and serving.

mlflow keeps its runs in a mysql database and its artifacts on minio, and
asks minio to let every profile read them; the resource dispatcher puts its
tracking Secret and PodDefault into every profile. kserve takes istio's
gateway for its InferenceServices' Ingresses and hands every profile the
ServiceAccount that reads models with the profile's own keys. The AKS
overlay puts predictors on the CPU pool and the GPU runtimes' on the GPU
pool.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bundle.simulator import BUNDLE, Model
from conformance.test_kserve_isvc import predictor_deployment, sklearn_isvc
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

AKS = BUNDLE.parent / "overlays" / "aks.yaml"
NAMESPACE = "kubeflow"
PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
NOTICE = "kubeflow.org/profile-namespace"
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
KSERVE_WEBHOOKS = [
    ("MutatingWebhookConfiguration", "inferenceservice.serving.kserve.io"),
    ("ValidatingWebhookConfiguration", "inferenceservice.serving.kserve.io"),
    ("ValidatingWebhookConfiguration", "servingruntime.serving.kserve.io"),
    ("ValidatingWebhookConfiguration", "clusterservingruntime.serving.kserve.io"),
]


@pytest.fixture
def shared_model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


@pytest.fixture
def profile_model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle with the profile `alice` made and dispatched."""
    model: Model = settled_models.own(tmp_path)
    client = model.workloads.kubernetes.client()
    client.apply(Namespace(metadata=ObjectMeta(name="alice", labels=PROFILE_LABELS)))
    model.notify("resource-dispatcher/0", "namespace-watch", NOTICE, name="alice")
    return model


def _get(model: Model, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict:
    found = model.workloads.kubernetes.get(kind, name, namespace)
    assert found is not None, f"no {kind} {name} in {namespace}"
    return found


def _related(model: Model, app: str) -> set[frozenset[tuple[str, str]]]:
    return {
        frozenset(zip(r.apps, r.endpoints, strict=True))
        for r in model.relations.values()
        if app in r.apps and not r.is_peer
    }


def _aks_options(app: str) -> dict[str, Any]:
    options = yaml.safe_load(AKS.read_text())["applications"][app]["options"]
    return {
        key: yaml.safe_load(value) if isinstance(value, str) else value
        for key, value in options.items()
    }


def _runtimes(model: Model) -> list[dict]:
    return model.workloads.kubernetes.of_kind("ClusterServingRuntime")


def test_both_charms_settle_active_with_their_relations(shared_model: Model):
    for unit in ("mlflow/0", "kserve/0"):
        assert shared_model.statuses[unit].name == "active", shared_model.statuses[unit]
    assert _related(shared_model, "mlflow") == {
        frozenset({("mysql", "database"), ("mlflow", "relational-db")}),
        frozenset({("minio", "s3-credentials"), ("mlflow", "object-storage")}),
        frozenset({("istio", "istio-ingress-route"), ("mlflow", "istio-ingress-route")}),
        frozenset({("kubeflow-dashboard", "links"), ("mlflow", "dashboard-links")}),
        frozenset({("resource-dispatcher", "secrets"), ("mlflow", "secrets")}),
        frozenset({("resource-dispatcher", "pod-defaults"), ("mlflow", "pod-defaults")}),
    }
    assert _related(shared_model, "kserve") == {
        frozenset({("istio", "gateway-metadata"), ("kserve", "gateway-metadata")}),
        frozenset({("resource-dispatcher", "service-accounts"), ("kserve", "service-accounts")}),
        frozenset({("knative-serving", "knative-serving"), ("kserve", "knative-serving")}),
    }
    assert shared_model.workloads.kubernetes.rejected == []


def test_mlflow_serves_from_its_database_and_bucket_with_no_key_in_its_plan(shared_model: Model):
    plan = shared_model.unit("mlflow/0").state.get_container("mlflow-server").plan
    (service,) = plan.services.values()
    assert "--serve-artifacts" in service.command
    assert "s3://mlflow/artifacts" in service.command
    secrets = shared_model.secret_values()
    assert not any(value in json.dumps(plan.to_dict()) for value in secrets)
    # The accounts are in the secrets file only, the one mysql and minio made for mlflow.
    env = shared_model.container_file("mlflow/0", "mlflow-server", "/etc/mlflow/server.env")
    assert "mysql+pymysql://" in env and "AWS_SECRET_ACCESS_KEY=" in env
    assert shared_model.statuses["mlflow/0"].name == "active"


def test_profiles_may_read_mlflows_artifacts_and_not_write_them(profile_model: Model):
    admin = profile_model.workloads.minio_admin
    policy = admin.policies[admin.attached["kf-profile-alice"]]
    statements = json.dumps(policy["Statement"])
    assert "arn:aws:s3:::mlflow/artifacts/*" in statements
    for statement in policy["Statement"]:
        resources = statement.get("Resource", [])
        if any(r.startswith("arn:aws:s3:::mlflow") for r in resources):
            assert not any(a in statement["Action"] for a in ("s3:PutObject", "s3:DeleteObject"))


def test_a_profile_gets_mlflows_uri_and_kserves_account(profile_model: Model):
    cluster = profile_model.workloads.kubernetes
    tracking = _get(profile_model, "Secret", "mlflow-tracking", "alice")
    assert tracking["stringData"] == {
        "MLFLOW_TRACKING_URI": "http://mlflow.kubeflow.svc.cluster.local:5000"
    }
    pod_default = _get(profile_model, "PodDefault", "access-mlflow", "alice")
    env = {e["name"]: e["value"] for e in pod_default["spec"]["env"]}
    assert env["MLFLOW_ARTIFACTS_S3_ROOT"] == "s3://mlflow/artifacts"
    assert env["MLFLOW_S3_ENDPOINT_URL"].startswith("http://minio.kubeflow.svc.cluster.local")
    assert [s["secretRef"]["name"] for s in pod_default["spec"]["envFrom"]] == [
        "mlflow-tracking",
        "minio-credentials",
    ]
    assert not any(v in json.dumps(pod_default) for v in profile_model.secret_values())

    account = _get(profile_model, "ServiceAccount", "kserve-models", "alice")
    assert account["secrets"] == [{"name": "minio-credentials"}]
    secret = _get(profile_model, "Secret", "minio-credentials", "alice")
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == "minio.kubeflow.svc.cluster.local:9000"
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"
    assert cluster.rejected == []
    for name, status in {**profile_model.statuses, **profile_model.app_statuses}.items():
        assert status.name == "active", f"{name}: {status.message}"


def test_an_sklearn_inference_service_in_a_profile_is_accepted(profile_model: Model):
    isvc = sklearn_isvc(serviceAccountName="kserve-models")
    isvc["metadata"]["namespace"] = "alice"
    from lightkube.generic_resource import create_namespaced_resource

    resource = create_namespaced_resource(
        "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
    )
    profile_model.workloads.kubernetes.client().apply(resource(isvc), field_manager="alice")
    assert profile_model.workloads.kubernetes.rejected == []
    assert _get(profile_model, "InferenceService", isvc["metadata"]["name"], "alice")


def test_kserve_routes_through_istios_gateway(shared_model: Model):
    # RawDeployment Ingresses of class istio; the default mode is Serverless with
    # knative-serving in the bundle (test_serverless.py), RawDeployment per InferenceService.
    data = _get(shared_model, "ConfigMap", "inferenceservice-config")["data"]
    ingress = json.loads(data["ingress"])
    gateways = shared_model.workloads.kubernetes.of_kind("Gateway")
    assert ingress["ingressGateway"] in {
        f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in gateways
    }
    assert ingress["ingressClassName"] == "istio"
    ingress_class = _get(shared_model, "IngressClass", "istio", None)
    assert ingress_class["spec"]["controller"] == "istio.io/ingress-controller"


def test_kserve_webhooks_trust_its_ca_and_reach_the_leader(shared_model: Model):
    [secret] = [
        s
        for s in shared_model.secrets.values()
        if s.owner_app == "kserve" and s.label == "webhook-certificates"
    ]
    ca = secret.content["ca-cert"]
    services = set()
    for kind, name in KSERVE_WEBHOOKS:
        for hook in _get(shared_model, kind, name, None)["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == ca
            services.add(hook["clientConfig"]["service"]["name"])
    leader = shared_model.leader_of("kserve").name.replace("/", "-")
    for name in services:
        selector = _get(shared_model, "Service", name)["spec"]["selector"]
        assert selector == {"statefulset.kubernetes.io/pod-name": leader}, name


def test_the_plain_bundle_puts_no_placement_on_predictors(shared_model: Model):
    runtimes = _runtimes(shared_model)
    assert runtimes
    for runtime in runtimes:
        assert "nodeSelector" not in runtime["spec"], runtime["metadata"]["name"]


def test_on_aks_predictors_go_to_the_cpu_pool_and_gpu_runtimes_to_the_gpu_pool(
    aks_model: Model,
):
    options = _aks_options("kserve")
    runtimes = _runtimes(aks_model)
    gpu = [r for r in runtimes if r["metadata"]["name"].endswith("-gpu")]
    cpu = [r for r in runtimes if not r["metadata"]["name"].endswith("-gpu")]
    assert len(gpu) == 4 and cpu
    for runtime in cpu:
        assert runtime["spec"]["nodeSelector"] == options["predictor-node-selector"]
    for runtime in gpu:
        spec = runtime["spec"]
        assert spec["nodeSelector"] == {"kubernetes.azure.com/accelerator": "nvidia"}
        assert GPU_TOLERATION in spec["tolerations"]
        (container,) = spec["containers"]
        assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
        assert spec.get("supportedModelFormats") and not any(
            f.get("autoSelect") for f in spec["supportedModelFormats"]
        )
    # What the controller makes of an sklearn InferenceService: a Deployment on the CPU pool.
    deployment = predictor_deployment(sklearn_isvc(), runtimes)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubeflow.org/pool": "cpu"}
    assert aks_model.statuses["kserve/0"].name == "active"


def test_rotating_kserves_certificates_reaches_its_webhooks(settled_models, tmp_path: Path):
    model: Model = settled_models.own(tmp_path)
    results = model.run_action("kserve/0", "rotate-certificates")
    assert results["ca-serial"]
    [secret] = [
        s
        for s in model.secrets.values()
        if s.owner_app == "kserve" and s.label == "webhook-certificates"
    ]
    for kind, name in KSERVE_WEBHOOKS:
        for hook in _get(model, kind, name, None)["webhooks"]:
            ca_bundle = base64.b64decode(hook["clientConfig"]["caBundle"]).decode()
            assert ca_bundle == secret.content["ca-cert"]
    assert model.statuses["kserve/0"].name == "active"
