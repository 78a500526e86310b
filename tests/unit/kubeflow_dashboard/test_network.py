"""Only the ingress gateway reaches the services that trust the user-id header.

The dashboard (8082) and KFAM (8081) take the user from `kubeflow-userid`:
the charm's NetworkPolicy lets the gateway's pods reach the dashboard, nobody
reach KFAM (the dashboard calls it over localhost), anyone reach the profile
controller's metrics, and nobody its probes (Pebble calls them in the pod).
In profile namespaces the sidecars trust the header only from the gateway's
(or the pipelines UI's) mesh identity: the contributor policies the charm
makes say so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kubernetes_validate
import pytest
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    APP,
    CHARM,
    GATEWAY_PRINCIPAL,
    ISTIO_MODEL,
    MODEL,
    gateway_metadata,
    gateway_relation,
    istio_authorization_policy_crd,
    namespace,
    peers,
    profile_crd,
    services,
    settle,
    state,
)
from unit.network_policy import allowed, istio_gateway_pod_labels

POLICY = f"{APP}-ingress"


def _policy(kube) -> dict[str, Any]:
    policy = kube.get("NetworkPolicy", POLICY, MODEL)
    assert policy is not None
    return policy


GATEWAY_POD = istio_gateway_pod_labels(ISTIO_MODEL)
NOTEBOOK_POD = {"app": "my-notebook", "notebook-name": "my-notebook"}


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
        # The dashboard: the gateway only.
        (services.DASHBOARD_PORT, ISTIO_MODEL, GATEWAY_POD, True),
        (services.DASHBOARD_PORT, "team-a", NOTEBOOK_POD, False),
        (services.DASHBOARD_PORT, MODEL, {"app.kubernetes.io/name": "kubeflow-notebooks"}, False),
        # Pods labelled as the gateway, elsewhere than the gateway's namespace.
        (services.DASHBOARD_PORT, "team-a", GATEWAY_POD, False),
        (services.DASHBOARD_PORT, MODEL, GATEWAY_POD, False),
        # KFAM: nobody (the dashboard calls it over localhost).
        (services.KFAM_PORT, ISTIO_MODEL, GATEWAY_POD, False),
        (services.KFAM_PORT, "team-a", NOTEBOOK_POD, False),
        # The profile controller's metrics: anyone; its probes: nobody.
        (services.CONTROLLER_METRICS_PORT, "monitoring", {"app": "prometheus"}, True),
        (services.CONTROLLER_METRICS_PORT, "team-a", NOTEBOOK_POD, True),
        (services.CONTROLLER_PROBE_PORT, ISTIO_MODEL, GATEWAY_POD, False),
        (services.CONTROLLER_PROBE_PORT, "team-a", NOTEBOOK_POD, False),
        # A port nothing in the pod serves.
        (9999, ISTIO_MODEL, GATEWAY_POD, False),
    ],
)
def test_who_reaches_which_port(ctx, kube, port, ns, labels, expected):
    settle(ctx, state())

    assert allowed(_policy(kube), port, ns, labels) is expected


def test_every_port_the_policy_opens_is_served_and_not_kfams(ctx, kube):
    settle(ctx, state())

    served = {
        services.DASHBOARD_PORT,
        services.KFAM_PORT,
        services.CONTROLLER_METRICS_PORT,
        services.CONTROLLER_PROBE_PORT,
    }
    opened = {p["port"] for rule in _policy(kube)["spec"]["ingress"] for p in rule["ports"]}
    assert opened == {services.DASHBOARD_PORT, services.CONTROLLER_METRICS_PORT}
    assert opened <= served
    # Every rule names its ports: none opens the whole pod.
    assert all(rule.get("ports") for rule in _policy(kube)["spec"]["ingress"])


def test_a_gateway_in_the_charms_own_model(ctx, kube):
    metadata = gateway_metadata(namespace=MODEL)
    settle(ctx, state(relations={peers(), gateway_relation(metadata)}))

    policy = _policy(kube)
    (gateway_rule,) = [r for r in policy["spec"]["ingress"] if "from" in r]
    # A podSelector alone: pods of the policy's own namespace.
    assert gateway_rule["from"] == [{"podSelector": {"matchLabels": CHARM.GATEWAY_POD_LABELS}}]
    assert allowed(policy, services.DASHBOARD_PORT, MODEL, GATEWAY_POD)
    assert not allowed(policy, services.DASHBOARD_PORT, ISTIO_MODEL, GATEWAY_POD)


def test_before_istio_says_the_gateway_is_taken_to_run_in_this_model(ctx, kube):
    settle(ctx, state(relations={peers()}))

    policy = _policy(kube)
    assert allowed(policy, services.DASHBOARD_PORT, MODEL, GATEWAY_POD)
    assert not allowed(policy, services.KFAM_PORT, MODEL, GATEWAY_POD)


def test_the_gateway_moving_rewrites_the_policy(ctx, kube):
    out = settle(ctx, state(relations={peers(), gateway_relation(gateway_metadata())}))
    assert allowed(_policy(kube), services.DASHBOARD_PORT, ISTIO_MODEL, GATEWAY_POD)

    (relation,) = [r for r in out.relations if r.endpoint == "gateway-metadata"]
    moved = testing.Relation(
        "gateway-metadata",
        interface="gateway_metadata",
        remote_app_name="istio",
        id=relation.id,
        remote_app_data={"metadata": gateway_metadata(namespace="gateway-ns")},
    )
    others = {r for r in out.relations if r.id != relation.id}
    ctx.run(ctx.on.relation_changed(moved), dataclasses.replace(out, relations=others | {moved}))

    policy = _policy(kube)
    assert allowed(policy, services.DASHBOARD_PORT, "gateway-ns", GATEWAY_POD)
    assert not allowed(policy, services.DASHBOARD_PORT, ISTIO_MODEL, GATEWAY_POD)


def test_the_charm_selects_the_pods_the_istio_charm_labels():
    # Both sides of the selector, from their own sources: a label changed in one
    # charm and not the other would shut the dashboard out.
    assert CHARM.GATEWAY_POD_LABELS.items() <= GATEWAY_POD.items()


# --- profile namespaces --------------------------------------------------------------------


def test_contributor_policies_trust_the_header_only_from_the_gateway_or_pipelines_ui(ctx, kube):
    profile_crd(kube)
    istio_authorization_policy_crd(kube)
    from lightkube.generic_resource import create_global_resource
    from lightkube.models.meta_v1 import ObjectMeta

    profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
    kube.client().create(
        profile(
            metadata=ObjectMeta(name="team-a"), spec={"owner": {"kind": "User", "name": "a@b"}}
        )
    )
    namespace(kube, "team-a")
    ctx.run(
        ctx.on.action(
            "add-contributor",
            params={"profile": "team-a", "user": "bob@example.com", "role": "edit"},
        ),
        state(),
    )

    policy = kube.get("AuthorizationPolicy", ctx.action_results["binding"], "team-a")
    assert policy is not None
    assert policy["spec"].get("action", "ALLOW") == "ALLOW"
    kfp_ui = f"cluster.local/ns/{MODEL}/sa/kfp"
    for rule in policy["spec"]["rules"]:
        # Every rule needs a source identity, and only these: the header alone lets no one in.
        sources = [f["source"] for f in rule["from"]]
        assert sources == [{"principals": [GATEWAY_PRINCIPAL, kfp_ui]}]
        assert set(rule) == {"from", "when"}
