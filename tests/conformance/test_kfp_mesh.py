"""kfp's policies against Kubeflow 1.10.0's: who may send the user header to the UI and the API."""

from __future__ import annotations

import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.kfp.helpers import CHARM, kfp_config, workloads

from kubeflow_charms.gateway_identity import Gateway
from kubeflow_charms.kubernetes import render

FACTS = facts.load("kfp-mesh")
MANIFESTS = CHARMS / "kfp" / "src" / "manifests"
Ports = workloads.Ports
GATEWAY = Gateway(namespace="kubeflow", service_account="istio-ingressgateway-workload")


def _policy() -> dict:
    values = CHARM.kfp_cluster.context(
        kfp_config.KfpConfig(), app="kfp", namespace="kubeflow", store=None, gateway=GATEWAY
    )
    (policy,) = yaml.safe_load_all(render(MANIFESTS, ["mesh.yaml.j2"], values))
    return policy


def _rule_for(port: int) -> list[dict]:
    return [r for r in _policy()["spec"]["rules"] if str(port) in r["to"][0]["operation"]["ports"]]


def _without_header(fact: facts.Fact) -> dict:
    return {
        "key": f"request.headers[{fact.value['header']}]",
        "notValues": fact.value["notValues"],
    }


def test_the_gateway_may_send_anything_to_the_ui():
    fact = FACTS["ui"]["gateway-may-send-anything"]
    (rule,) = _rule_for(Ports.UI)
    (principal,) = rule["from"][0]["source"]["principals"]
    # Upstream names its gateway's identity; ours is whatever istio says over gateway-metadata,
    # in the same form.
    upstream = fact.value["principal"].split("/")
    ours = principal.split("/")
    assert (
        [upstream[i] for i in (0, 1, 3)]
        == [ours[i] for i in (0, 1, 3)]
        == [
            "cluster.local",
            "ns",
            "sa",
        ]
    )
    assert principal == GATEWAY.principal
    assert "when" not in rule


def test_others_reach_the_api_only_without_the_user_header():
    fact = FACTS["api-server"]["others-only-without-user-header"]
    for port in (Ports.API_HTTP, Ports.API_GRPC):
        (rule,) = _rule_for(port)
        assert "from" not in rule
        assert rule["when"] == [_without_header(fact)]


def test_the_header_is_the_one_the_ui_and_api_read():
    for workload in ("ui", "api-server"):
        fact = FACTS[workload]["others-only-without-user-header"]
        assert fact.value["header"] == workloads.USER_HEADER
