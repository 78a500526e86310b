"""Kubernetes Ingress objects (KServe's per-InferenceService routes) served on the gateway.

Istio's side, read at istio/istio 1.29.6: an Ingress whose IngressClass has the controller
`istio.io/ingress-controller` is served (pilot/pkg/config/kube/ingress/virtualservices.go,
shouldProcessIngressWithClass); its Gateway selects `istio: <ingressSelector>` and lives in
K8S_INGRESS_NS (gateways.go), whose Service `ingressService` gives the Ingress status
(ingress.go, runningAddresses). tests/conformance/test_istio.py checks these against the facts.
"""

from __future__ import annotations

import dataclasses

import yaml
from unit.istio.helpers import (
    MODEL,
    auth_relation,
    file_text,
    istiod,
    route,
    settle,
    state,
    with_relations,
)


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_istio_ingress_class_names_istios_controller(ctx, kube):
    settle(ctx, state())
    (ingress_class,) = kube.of_kind("IngressClass")
    assert ingress_class["metadata"]["name"] == "istio"
    assert "namespace" not in ingress_class["metadata"]  # cluster-scoped
    assert ingress_class["spec"] == {"controller": "istio.io/ingress-controller"}
    # Not the cluster's default: Ingress objects without a class are not taken over.
    annotations = ingress_class["metadata"].get("annotations") or {}
    assert "ingressclass.kubernetes.io/is-default-class" not in annotations


def test_istiod_serves_ingress_on_the_gateway_and_reports_its_service(ctx, kube):
    out = settle(ctx, state())
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert mesh["ingressClass"] == "istio"
    assert mesh["ingressControllerMode"] == "STRICT"
    assert mesh["ingressService"] == "istio-ingressgateway"
    assert mesh["ingressSelector"] == "ingressgateway"
    env = out.get_container(istiod.CONTAINER).plan.services[istiod.SERVICE].environment
    assert env["K8S_INGRESS_NS"] == MODEL

    # The Service named there is the gateway's, in that namespace ...
    service = kube.get("Service", mesh["ingressService"], env["K8S_INGRESS_NS"])
    assert service is not None
    # ... and `istio: <ingressSelector>` selects the gateway's pods.
    (deployment,) = kube.of_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["istio"] == mesh["ingressSelector"]
    assert _labels_match(service["spec"]["selector"], pod_labels)


def test_the_login_covers_every_host_of_the_gateway(ctx, kube):
    """The ext_authz policy names paths only: an Ingress host is behind the login too."""
    base = with_relations(state(), auth_relation(), route("dex", "/dex", auth=False))
    settle(ctx, base)
    policy = kube.get("AuthorizationPolicy", "istio-ingressgateway-ext-authz", MODEL)
    assert policy is not None and policy["spec"]["action"] == "CUSTOM"
    (deployment,) = kube.of_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(policy["spec"]["selector"]["matchLabels"], pod_labels)
    (rule,) = policy["spec"]["rules"]
    assert set(rule) == {"to"}  # no source, no condition
    (operation,) = rule["to"]
    assert set(operation["operation"]) == {"ports", "paths", "notPaths"}  # every host
    assert operation["operation"]["paths"] == ["/*"]
    assert operation["operation"]["notPaths"] == ["/dex", "/dex/*"]
    # The ports it names are the gateway's own public listeners: every port its
    # Service sends traffic to (the status port aside).
    (proxy,) = deployment["spec"]["template"]["spec"]["containers"]
    gateway = kube.get("Service", "istio-ingressgateway", MODEL)
    public = {
        str(port["targetPort"])
        for port in gateway["spec"]["ports"]
        if port["name"] != "status-port"
    }
    assert set(operation["operation"]["ports"]) == public
    assert public <= {str(port["containerPort"]) for port in proxy["ports"]}


def test_without_the_login_ingress_hosts_are_denied_too(ctx, kube):
    settle(ctx, state())
    policy = kube.get("AuthorizationPolicy", "istio-ingressgateway-deny-unauthenticated", MODEL)
    assert policy is not None and policy["spec"]["action"] == "DENY"
    (rule,) = policy["spec"]["rules"]
    assert rule["to"][0]["operation"] == {"ports": ["8080", "8443"], "paths": ["/*"]}


def test_a_deleted_ingress_class_is_applied_again_on_update_status(ctx, kube):
    out = settle(ctx, state())
    kube.delete("IngressClass", "istio")
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("IngressClass", "istio") is not None


def test_removal_deletes_the_ingress_class(ctx, kube):
    out = settle(ctx, state())
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.of_kind("IngressClass") == []
