"""Knative Serving under KServe in the simulated model: Serverless mode, scale to zero, canary.

knative-serving takes istio's gateway for its external routes and adds a
cluster-local listener on the same gateway pods; it tells kserve where it
runs, and kserve's default mode becomes Serverless. The control plane runs
in the charm's pod; the data path (activator, autoscaler) and net-istio's
controller are Deployments of their own, placed on the platform pool by the
AKS overlay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bundle.simulator import BUNDLE, Model
from conformance.test_kserve_serverless import knative_service, serverless_isvc
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

AKS = BUNDLE.parent / "overlays" / "aks.yaml"
NAMESPACE = "kubeflow"
PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
CERT_SECRETS = ("webhook-certs", "net-istio-webhook-certs")
DATA_PATH = ("activator", "autoscaler")


@pytest.fixture
def shared_model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


def _get(model: Model, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict:
    found = model.workloads.kubernetes.get(kind, name, namespace)
    assert found is not None, f"no {kind} {name} in {namespace}"
    return found


def _secret_data(model: Model, name: str) -> dict[str, str]:
    secret = _get(model, "Secret", name)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return data | (secret.get("stringData") or {})


def _ca(model: Model) -> str:
    [secret] = [
        s
        for s in model.secrets.values()
        if s.owner_app == "knative-serving" and s.label == "webhook-certificates"
    ]
    return secret.content["ca-cert"]


def test_knative_serving_settles_active_and_makes_kserve_serverless(shared_model: Model):
    for unit in ("knative-serving/0", "kserve/0"):
        assert shared_model.statuses[unit].name == "active", shared_model.statuses[unit]
    related = {
        frozenset(zip(r.apps, r.endpoints, strict=True))
        for r in shared_model.relations.values()
        if "knative-serving" in r.apps and not r.is_peer
    }
    assert related == {
        frozenset({("istio", "gateway-metadata"), ("knative-serving", "gateway-metadata")}),
        frozenset({("knative-serving", "knative-serving"), ("kserve", "knative-serving")}),
    }
    data = _get(shared_model, "ConfigMap", "inferenceservice-config")["data"]
    assert json.loads(data["deploy"]) == {"defaultDeploymentMode": "Serverless"}
    ingress = json.loads(data["ingress"])
    assert ingress["localGateway"] == f"{NAMESPACE}/knative-local-gateway"
    assert ingress["localGatewayService"] == (
        f"knative-local-gateway.{NAMESPACE}.svc.cluster.local"
    )
    assert shared_model.workloads.kubernetes.rejected == []


def test_knative_routes_through_istios_gateway_and_a_cluster_local_listener(shared_model: Model):
    istio = _get(shared_model, "ConfigMap", "config-istio")["data"]
    (gateway,) = shared_model.workloads.kubernetes.of_kind("Gateway")[:1]
    gateways = {
        f"{g['metadata']['namespace']}/{g['metadata']['name']}"
        for g in shared_model.workloads.kubernetes.of_kind("Gateway")
    }
    assert {f"{NAMESPACE}/kubeflow-gateway", f"{NAMESPACE}/knative-local-gateway"} <= gateways
    assert istio[f"gateway.{NAMESPACE}.kubeflow-gateway"].endswith(
        f".{NAMESPACE}.svc.cluster.local"
    )
    local = _get(shared_model, "Gateway", "knative-local-gateway")
    (server,) = local["spec"]["servers"]
    assert server["port"]["number"] == 8081
    service = _get(shared_model, "Service", "knative-local-gateway")
    assert (
        service["metadata"]["labels"]["experimental.istio.io/disable-gateway-port-translation"]
        == "true"
    )
    # The local listener's pods are the gateway's own.
    deployment = _get(shared_model, "Deployment", "istio-ingressgateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    domain = _get(shared_model, "ConfigMap", "config-domain")["data"]
    assert domain == {"example.com": ""}
    assert gateway


def test_the_login_covers_the_public_listeners_not_the_cluster_local_one(shared_model: Model):
    policies = [
        p
        for p in shared_model.workloads.kubernetes.of_kind("AuthorizationPolicy")
        if p["spec"].get("action") in ("CUSTOM", "DENY")
        and p["spec"].get("selector", {}).get("matchLabels") == {"istio": "ingressgateway"}
    ]
    assert policies
    for policy in policies:
        for rule in policy["spec"]["rules"]:
            for to in rule["to"]:
                assert to["operation"]["ports"] == ["8080", "8443"]


def test_the_webhooks_serve_the_charms_certificates(shared_model: Model):
    ca = _ca(shared_model)
    for name in CERT_SECRETS:
        data = _secret_data(shared_model, name)
        assert data.get("ca-cert.pem") == ca, name
        assert data.get("server-cert.pem") and data.get("server-key.pem"), name
    # Knative fills in rules and caBundle itself: the charm leaves them out.
    for hook_config in shared_model.workloads.kubernetes.of_kind("ValidatingWebhookConfiguration"):
        if hook_config["metadata"]["name"].endswith("knative.dev"):
            for hook in hook_config["webhooks"]:
                assert "caBundle" not in hook["clientConfig"]


def test_the_data_path_runs_apart_from_the_charm(shared_model: Model):
    for name in (*DATA_PATH, "net-istio-controller"):
        deployment = _get(shared_model, "Deployment", name)
        assert deployment["spec"]["template"]["spec"]["containers"]
    assert _get(shared_model, "Service", "activator-service")
    assert _get(shared_model, "Service", "autoscaler")
    for name in DATA_PATH:
        pod = _get(shared_model, "Deployment", name)["spec"]["template"]["spec"]
        assert "nodeSelector" not in pod


def test_on_aks_the_data_path_runs_on_the_platform_pool(aks_model: Model):
    options = yaml.safe_load(AKS.read_text())["applications"]["knative-serving"]["options"]
    selector = json.loads(options["data-path-node-selector"])
    for name in DATA_PATH:
        pod = _get(aks_model, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == selector, name
    assert aks_model.statuses["knative-serving/0"].name == "active"


def test_scale_to_zero_and_canary_inference_services_are_accepted(settled_models, tmp_path: Path):
    model: Model = settled_models.own(tmp_path)
    client = model.workloads.kubernetes.client()
    client.apply(Namespace(metadata=ObjectMeta(name="alice", labels=PROFILE_LABELS)))
    isvc_kind = create_namespaced_resource(
        "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
    )
    ksvc_kind = create_namespaced_resource("serving.knative.dev", "v1", "Service", "services")
    for name, predictor in (
        ("zero", {"minReplicas": 0}),
        ("canary", {"canaryTrafficPercent": 20}),
    ):
        isvc = serverless_isvc(name, **predictor)
        isvc["metadata"]["namespace"] = "alice"
        client.apply(isvc_kind(isvc), field_manager="alice")
        # What KServe makes of it (after a first rollout, for the canary) is a Knative
        # Service our CRD accepts.
        ksvc = knative_service(isvc, rolled_out=f"{name}-predictor-00001")
        ksvc["metadata"]["namespace"] = "alice"
        client.apply(ksvc_kind(ksvc), field_manager="kserve")
    assert model.workloads.kubernetes.rejected == []
    zero = _get(model, "Service", "zero-predictor", "alice")
    annotations = zero["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    canary = _get(model, "Service", "canary-predictor", "alice")
    assert sorted(t["percent"] for t in canary["spec"]["traffic"]) == [20, 80]


def test_rotating_knatives_certificates_reaches_both_secrets(settled_models, tmp_path: Path):
    model: Model = settled_models.own(tmp_path)
    before = _ca(model)
    results = model.run_action("knative-serving/0", "rotate-certificates")
    assert results
    after = _ca(model)
    assert after != before
    for name in CERT_SECRETS:
        assert _secret_data(model, name)["ca-cert.pem"] == after
    assert model.statuses["knative-serving/0"].name == "active"
