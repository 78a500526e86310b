"""Only the ingress gateway reaches the Jupyter web app, which trusts the user-id header.

The charm's NetworkPolicy lets the gateway's pods (in this model, where the
notebook controller's routes bind to its Gateway) reach the web app (5000),
anyone reach the controller's metrics (8080), and nobody its probes (8081,
which Pebble calls in the pod).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from unit.kubeflow_notebooks.helpers import CHARM, MODEL, controller, settle, state, web_app
from unit.network_policy import allowed, istio_gateway_pod_labels

APP = "kubeflow-notebooks"
POLICY = f"{APP}-ingress"
GATEWAY_POD = istio_gateway_pod_labels(MODEL)
NOTEBOOK_POD = {"app": "my-notebook", "notebook-name": "my-notebook"}


def _policy(kube) -> dict[str, Any]:
    policy = kube.get("NetworkPolicy", POLICY, MODEL)
    assert policy is not None
    return policy


def test_the_policy_selects_the_charms_pod_and_is_a_valid_object(ctx, kube):
    settle(ctx, state())

    policy = _policy(kube)
    kubernetes_validate.validate(policy, "1.31", strict=True)
    # Juju labels a charm's pods with the application's name.
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": APP}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize(
    ("port", "ns", "labels", "expected"),
    [
        # The web app: the gateway of this model only.
        (web_app.PORT, MODEL, GATEWAY_POD, True),
        (web_app.PORT, "team-a", NOTEBOOK_POD, False),
        (web_app.PORT, "team-a", GATEWAY_POD, False),
        (web_app.PORT, MODEL, {"app.kubernetes.io/name": "kubeflow-dashboard"}, False),
        # The controller's metrics: anyone; its probes: nobody.
        (controller.METRICS_PORT, "monitoring", {"app": "prometheus"}, True),
        (controller.PROBE_PORT, MODEL, GATEWAY_POD, False),
        (controller.PROBE_PORT, "team-a", NOTEBOOK_POD, False),
        # A port nothing in the pod serves.
        (9999, MODEL, GATEWAY_POD, False),
    ],
)
def test_who_reaches_which_port(ctx, kube, port, ns, labels, expected):
    settle(ctx, state())

    assert allowed(_policy(kube), port, ns, labels) is expected


def test_every_port_the_policy_opens_is_served(ctx, kube):
    settle(ctx, state())

    rules = _policy(kube)["spec"]["ingress"]
    assert all(rule.get("ports") for rule in rules)
    opened = {p["port"] for rule in rules for p in rule["ports"]}
    assert opened == {web_app.PORT, controller.METRICS_PORT}
    (gateway_rule,) = [r for r in rules if "from" in r]
    assert gateway_rule["ports"] == [{"port": web_app.PORT, "protocol": "TCP"}]


def test_the_charm_selects_the_pods_the_istio_charm_labels():
    assert CHARM.GATEWAY_POD_LABELS.items() <= GATEWAY_POD.items()
