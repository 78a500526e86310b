"""The AKS overlay's istio options: the gateway's pool and the Azure load balancer's probe.

The options are read from `bundle/overlays/aks.yaml` itself. What the Azure
cloud provider does with the Service's annotations was read in
kubernetes-sigs/cloud-provider-azure v1.31.0 (the same at commit 7b31c76c):

- pkg/consts/consts.go, helpers.go: per-port keys are
  `service.beta.kubernetes.io/port_<port>_<param>`, the probe's params
  `health-probe_port`, `health-probe_protocol`, `health-probe_request-path`,
  and `no_lb_rule` ("true": that port gets no load-balancing rule);
- pkg/provider/azure_loadbalancer.go, getExpectedLBRules: a probe is made
  only for a port that has a rule, so a port with `no_lb_rule` is probed only
  through another port's `health-probe_port`;
- pkg/provider/azure_loadbalancer_healthprobe.go, buildHealthProbeRulesForPort:
  a `health-probe_port` that is the number of a Service port probes that
  port's NodePort; the per-port protocol comes first, then the port's
  appProtocol, then the Service-wide annotation, else TCP; a request path
  is used only with HTTP or HTTPS.
"""

from __future__ import annotations

import dataclasses

import yaml
from unit.istio.helpers import CHARM, MODEL, settle, state

OVERLAY = CHARM.TEMPLATES.parent.parent.parents[1] / "bundle" / "overlays" / "aks.yaml"
PREFIX = "service.beta.kubernetes.io/"


def _options() -> dict:
    return yaml.safe_load(OVERLAY.read_text())["applications"]["istio"]["options"]


def _gateway(ctx, kube) -> tuple[dict, dict]:
    out = settle(ctx, state(config=_options()))
    assert out.unit_status.name == "active", out.unit_status
    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    service = kube.get("Service", "istio-ingressgateway", MODEL)
    return deployment, service


def _probes(service: dict) -> dict[int, dict[str, str]]:
    """What the cloud provider reads per Service port: {port: {param: value}}."""
    found: dict[int, dict[str, str]] = {}
    for key, value in service["metadata"].get("annotations", {}).items():
        if not key.startswith(PREFIX + "port_"):
            continue
        port, _, param = key.removeprefix(PREFIX + "port_").partition("_")
        found.setdefault(int(port), {})[param] = value
    return found


def test_the_gateway_runs_on_the_platform_pool(ctx, kube):
    deployment, _ = _gateway(ctx, kube)
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubeflow.org/pool": "platform"
    }


def test_the_load_balancer_probes_the_gateways_readiness_and_not_the_status_port(ctx, kube):
    deployment, service = _gateway(ctx, kube)
    (proxy,) = deployment["spec"]["template"]["spec"]["containers"]
    ready = proxy["readinessProbe"]["httpGet"]
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    probes = _probes(service)

    # The status port: in the Service (its NodePort is what the probe reaches), with
    # no load-balancing rule of its own.
    (status,) = [p for p in ports.values() if p["targetPort"] == ready["port"]]
    assert probes[status["port"]] == {"no_lb_rule": "true"}

    served = set(ports) - {status["port"]}
    assert served == {80, 443}
    for port in served:
        assert probes[port] == {
            "health-probe_port": str(status["port"]),
            "health-probe_protocol": ready["scheme"].lower(),
            "health-probe_request-path": ready["path"],
        }
        assert "appProtocol" not in ports[port]
    # The Service-wide request path does nothing without an HTTP protocol: not used.
    service_wide = PREFIX + "azure-load-balancer-health-probe-request-path"
    assert service_wide not in service["metadata"]["annotations"]


def test_clearing_the_node_selector_frees_the_gateway(ctx, kube):
    out = settle(ctx, state(config=_options()))
    config = {**_options(), "gateway-node-selector": ""}
    settle(ctx, dataclasses.replace(out, config=config))
    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]
