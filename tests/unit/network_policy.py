"""NetworkPolicies as the API documents them, and the pods of the istio charm's gateway.

For the tests of the charms whose pods only the ingress gateway may reach.
"""

from __future__ import annotations

from typing import Any

import yaml
from charm_loader import CHARMS

from kubeflow_charms.kubernetes import render

ISTIO_TEMPLATES = CHARMS / "istio" / "src" / "templates"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only: all the charm writes) matches labels."""
    assert set(selector) <= {"matchLabels"}
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def allowed(policy: dict[str, Any], port: int, ns: str, labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy lets a pod (namespace, labels) connect to `port` over TCP.

    As the API documents it: a rule without `from` admits every source, one
    without `ports` every port; a peer with a podSelector alone means pods of
    the policy's namespace; both selectors in one peer must both match.
    """
    namespace_labels = {"kubernetes.io/metadata.name": ns}
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports")
        if ports is not None and not any(
            p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in ports
        ):
            continue
        peers_ = rule.get("from")
        if peers_ is None:
            return True
        for peer in peers_:
            assert "ipBlock" not in peer
            if "namespaceSelector" in peer:
                ns_ok = _selects(peer["namespaceSelector"], namespace_labels)
            else:
                ns_ok = ns == policy["metadata"]["namespace"]
            pod_ok = _selects(peer.get("podSelector", {}), labels)
            if ns_ok and pod_ok:
                return True
    return False


def istio_gateway_pod_labels(namespace_: str) -> dict[str, str]:
    """The labels the istio charm puts on its gateway's pods (its template, rendered)."""
    context = {
        "gateway": "kubeflow-gateway",
        "gateway_name": "istio-ingressgateway",
        "namespace": namespace_,
        "ca_serial": "1",
        "proxy_image": "docker.io/istio/proxyv2:1.29.6",
        "istiod_address": f"istiod.{namespace_}.svc:15012",
        "replicas": 1,
        "service_type": "ClusterIP",
        "service_annotations": {},
        "node_selector": {},
        "tls": None,
        "tls_secret_name": "kubeflow-gateway-tls",
        "tls_mount_path": "/etc/istio/gateway-tls",
    }
    docs = yaml.safe_load_all(render(ISTIO_TEMPLATES, ["gateway.yaml.j2"], context))
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["metadata"]["labels"]
