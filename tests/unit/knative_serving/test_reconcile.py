"""The knative-serving charm's reconcile: workloads, objects, statuses, drift, removal."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.knative_serving.helpers import (
    APP,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    MODEL,
    running,
    service,
    settled,
    state,
)
from unit.knative_serving.helpers import knative_cluster as cluster
from unit.knative_serving.helpers import workloads as wl

from kubeflow_interfaces import knative_serving as ks

CONFIGMAPS = (
    "config-autoscaler",
    "config-network",
    "config-istio",
    "config-domain",
    "config-features",
    "config-deployment",
    "config-defaults",
    "config-gc",
    "config-leader-election",
    "config-logging",
    "config-observability",
    "config-tracing",
)


def _knative_relation() -> testing.Relation:
    return testing.Relation("knative-serving", interface=ks.INTERFACE)


def test_the_leader_runs_the_control_plane_and_applies_every_object(ctx, kube):
    out = settled(ctx)
    assert out.unit_status == ops.ActiveStatus("Knative Serving 1.16.2, routes *.example.com")
    for workload in wl.WORKLOADS:
        assert running(out, workload), workload.service
        env = service(out, workload).environment
        assert env["SYSTEM_NAMESPACE"] == MODEL
    assert service(out, wl.CONTROLLER).environment["POD_NAME"] == f"{APP}-0"
    assert len(kube.of_kind("CustomResourceDefinition")) == 13  # and Istio's Gateway
    for name in CONFIGMAPS:
        assert kube.get("ConfigMap", name, MODEL) is not None, name
    for name in ("activator", "autoscaler", "net-istio-controller"):
        assert kube.get("Deployment", name, MODEL) is not None, name
    for name in ("activator-service", "autoscaler", "webhook", "net-istio-webhook"):
        assert kube.get("Service", name, MODEL) is not None, name
    svc = kube.get("Service", "webhook", MODEL)
    assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-0"}
    assert kube.get("Gateway", cluster.LOCAL_GATEWAY, MODEL) is not None
    assert kube.get("Service", cluster.LOCAL_GATEWAY, GATEWAY_NAMESPACE) is not None


def test_config_istio_names_our_gateway_and_the_local_one(ctx, kube):
    settled(ctx)
    data = kube.get("ConfigMap", "config-istio", MODEL)["data"]
    # net-istio's old format, `gateway.` / `local-gateway.` + `<namespace>.<name>`: the
    # Service's host (knative-extensions/net-istio knative-v1.16.0
    # pkg/reconciler/ingress/config/istio.go:38,41,275-300).
    assert data == {
        f"gateway.{GATEWAY_NAMESPACE}.{GATEWAY_NAME}": (
            f"istio-ingressgateway.{GATEWAY_NAMESPACE}.svc.cluster.local"
        ),
        f"local-gateway.{MODEL}.knative-local-gateway": (
            f"knative-local-gateway.{GATEWAY_NAMESPACE}.svc.cluster.local"
        ),
    }


def test_the_options_reach_the_config_maps(ctx, kube):
    settled(
        ctx,
        config={
            "domain": "models.example.org",
            "enable-scale-to-zero": False,
            "scale-to-zero-grace-period": "1m",
            "stable-window": "120s",
            "panic-window-percentage": "20",
            "target-burst-capacity": "0",
            "queue-proxy-image": "registry.local/queue:1",
        },
    )
    assert kube.get("ConfigMap", "config-domain", MODEL)["data"] == {"models.example.org": ""}
    assert kube.get("ConfigMap", "config-autoscaler", MODEL)["data"] == {
        "enable-scale-to-zero": "false",
        "scale-to-zero-grace-period": "1m",
        "stable-window": "120s",
        "panic-window-percentage": "20",
        "target-burst-capacity": "0",
    }
    deployment = kube.get("ConfigMap", "config-deployment", MODEL)["data"]
    assert deployment["queue-sidecar-image"] == "registry.local/queue:1"


def test_placement_options_reach_the_activator_and_autoscaler_only(ctx, kube):
    selector = {"kubeflow.org/pool": "system"}
    toleration = [{"key": "pool", "operator": "Equal", "value": "system", "effect": "NoSchedule"}]
    settled(
        ctx,
        config={
            "data-path-node-selector": json.dumps(selector),
            "data-path-tolerations": json.dumps(toleration),
        },
    )
    for name in ("activator", "autoscaler"):
        pod = kube.get("Deployment", name, MODEL)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == selector and pod["tolerations"] == toleration
    pod = kube.get("Deployment", "net-istio-controller", MODEL)["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod


def test_the_data_path_runs_under_its_own_accounts(ctx, kube):
    settled(ctx)
    accounts = {
        name: kube.get("Deployment", name, MODEL)["spec"]["template"]["spec"]["serviceAccountName"]
        for name in ("activator", "autoscaler", "net-istio-controller")
    }
    assert accounts == {
        "activator": cluster.activator_account(APP),
        "autoscaler": cluster.controller_account(APP),
        "net-istio-controller": cluster.controller_account(APP),
    }
    assert APP not in accounts.values()


def test_knative_serving_is_published_once_applied(ctx, kube):
    relation = _knative_relation()
    out = ctx.run(ctx.on.config_changed(), state(relations={relation}))
    data = out.get_relation(relation.id).local_app_data
    assert ks.KnativeServing.from_databag(dict(data)) == ks.KnativeServing(
        namespace=MODEL,
        local_gateway=f"{MODEL}/knative-local-gateway",
        local_gateway_service=f"knative-local-gateway.{GATEWAY_NAMESPACE}.svc.cluster.local",
        domain="example.com",
        version="1.16.2",
    )


def test_without_the_gateway_nothing_is_applied_or_published(ctx, kube):
    relation = _knative_relation()
    out = ctx.run(ctx.on.config_changed(), state(gateway=False, relations={relation}))
    assert out.unit_status == ops.BlockedStatus(
        "add the gateway-metadata relation to istio: Knative routes through its gateway"
    )
    assert kube.get("ConfigMap", "config-istio", MODEL) is None
    assert not any(running(out, w) for w in wl.WORKLOADS)
    assert not out.get_relation(relation.id).local_app_data


def test_an_empty_gateway_relation_waits(ctx, kube):
    empty = testing.Relation("gateway-metadata", interface="gateway_metadata")
    out = ctx.run(ctx.on.config_changed(), state(gateway=False, relations={empty}))
    assert out.unit_status == ops.WaitingStatus("waiting for istio's gateway-metadata")
    assert not running(out, wl.CONTROLLER)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("not json", "gateway-metadata: metadata is not JSON"),
        (
            '{"namespace": "Bad NS", "gateway_name": "g", '
            '"deployment_name": "d", "service_account": "s"}',
            "gateway-metadata: namespace 'Bad NS' is not a namespace name",
        ),
        (
            '{"namespace": "istio", "gateway_name": "Bad Name!", '
            '"deployment_name": "d", "service_account": "s"}',
            "gateway-metadata: gateway_name 'Bad Name!' is not a gateway name",
        ),
        (
            '{"namespace": "istio", "gateway_name": "g", '
            '"deployment_name": "Not_A_Service", "service_account": "s"}',
            "gateway-metadata: deployment_name 'Not_A_Service' is not a Service name",
        ),
    ],
)
def test_a_malformed_gateway_blocks_and_changes_nothing(ctx, kube, data, words):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = testing.Relation(
        "gateway-metadata", interface="gateway_metadata", remote_app_data={"metadata": data}
    )
    broken = dataclasses.replace(
        out, relations={r for r in out.relations if r.endpoint != "gateway-metadata"} | {bad}
    )
    after = ctx.run(ctx.on.relation_changed(bad), broken)
    assert after.unit_status == ops.BlockedStatus(words)
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert after.get_container(c).layers == out.get_container(c).layers


def test_a_follower_runs_nothing(ctx, kube):
    leader = settled(ctx)
    follower = ctx.run(ctx.on.update_status(), dataclasses.replace(leader, leader=False))
    assert not any(running(follower, w) for w in wl.WORKLOADS)
    assert follower.unit_status == ops.ActiveStatus(
        "standby: the control plane runs on the leader"
    )
    checks = follower.get_container(wl.CONTROLLER.container).plan.checks
    assert checks[wl.CONTROLLER.check].startup.value == "disabled"


def test_a_new_leader_points_the_webhook_services_at_itself(ctx, kube):
    first = settled(ctx)
    new_ctx = testing.Context(ctx.charm_spec.charm_type, app_name=APP, unit_id=1)
    follower = new_ctx.run(
        new_ctx.on.config_changed(),
        dataclasses.replace(state(leader=False), secrets=first.secrets, relations=first.relations),
    )
    assert not running(follower, wl.CONTROLLER)
    out = new_ctx.run(new_ctx.on.leader_elected(), dataclasses.replace(follower, leader=True))
    assert all(running(out, w) for w in wl.WORKLOADS)
    for name in ("webhook", "net-istio-webhook"):
        svc = kube.get("Service", name, MODEL)
        assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-1"}


def test_a_settled_update_status_writes_nothing(ctx, kube):
    out = settled(ctx)
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == out.unit_status
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states
    assert again.secrets == out.secrets
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert again.get_container(c).layers == out.get_container(c).layers


def test_deleted_objects_are_restored_by_update_status(ctx, kube):
    out = settled(ctx)
    kube.delete("ConfigMap", "config-autoscaler", MODEL)
    kube.delete("Deployment", "activator", MODEL)
    kube.delete("Secret", "webhook-certs", MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("ConfigMap", "config-autoscaler", MODEL) is not None
    assert kube.get("Deployment", "activator", MODEL) is not None
    assert kube.get("Secret", "webhook-certs", MODEL) is not None


def test_knatives_own_webhook_fields_are_left_alone(ctx, kube):
    """Knative's webhook sets rules and caBundle itself; the charm's apply keeps them."""
    out = settled(ctx)
    name = "validation.webhook.serving.knative.dev"

    def knative_sets(configuration):
        hook = configuration["webhooks"][0]
        hook["rules"] = [
            {
                "apiGroups": ["serving.knative.dev"],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["services"],
            }
        ]
        hook["clientConfig"]["caBundle"] = "Y2E="
        return configuration

    kube.edit("ValidatingWebhookConfiguration", name, None, knative_sets)
    ctx.run(ctx.on.upgrade_charm(), out)  # a forced apply
    hook = kube.get("ValidatingWebhookConfiguration", name)["webhooks"][0]
    assert hook["rules"][0]["resources"] == ["services"]
    assert hook["clientConfig"]["caBundle"] == "Y2E="


def test_upgrade_charm_reapplies_without_touching_the_data_path(ctx, kube):
    """The activator and autoscaler run outside the charm's pod: an upgrade leaves them be."""
    out = settled(ctx)
    before = {
        name: kube.get("Deployment", name, MODEL)["metadata"]
        for name in ("activator", "autoscaler", "net-istio-controller")
    }
    ctx.run(ctx.on.upgrade_charm(), out)
    for name, metadata in before.items():
        now = kube.get("Deployment", name, MODEL)["metadata"]
        assert now["resourceVersion"] == metadata["resourceVersion"], name
        assert now["generation"] == metadata["generation"], name


def test_a_gateway_in_another_namespace_gets_the_local_gateway_service(ctx, kube):
    from charmlibs.interfaces.gateway_metadata import GatewayMetadata
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    kube.client().create(Namespace(metadata=ObjectMeta(name="istio-system")))
    metadata = GatewayMetadata(
        namespace="istio-system",
        gateway_name="kubeflow-gateway",
        deployment_name="istio-ingressgateway",
        service_account="istio-ingressgateway",
    )
    relation = testing.Relation(
        "gateway-metadata",
        interface="gateway_metadata",
        remote_app_data={"metadata": metadata.model_dump_json()},
    )
    out = settled(ctx, gateway=False, relations={relation})
    assert kube.get("Service", cluster.LOCAL_GATEWAY, "istio-system") is not None
    assert kube.get("Service", cluster.LOCAL_GATEWAY, MODEL) is None
    data = kube.get("ConfigMap", "config-istio", MODEL)["data"]
    assert data["gateway.istio-system.kubeflow-gateway"] == (
        "istio-ingressgateway.istio-system.svc.cluster.local"
    )
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.get("Service", cluster.LOCAL_GATEWAY, "istio-system") is None


def test_removal_prunes_everything_but_the_crds(ctx, kube):
    out = settled(ctx)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.get("ConfigMap", "config-autoscaler", MODEL) is None
    assert kube.get("Deployment", "activator", MODEL) is None
    assert kube.get("Service", "webhook", MODEL) is None
    assert kube.get("Secret", "webhook-certs", MODEL) is None
    assert (
        kube.get("ValidatingWebhookConfiguration", "validation.webhook.serving.knative.dev")
        is None
    )
    assert kube.get("ClusterRole", f"{APP}-{MODEL}-admin") is None
    assert kube.get("Gateway", cluster.LOCAL_GATEWAY, MODEL) is None
    assert kube.get("CustomResourceDefinition", "services.serving.knative.dev") is not None


BAD_OPTIONS = [
    ("domain", ""),
    ("domain", "Not A Domain"),
    ("scale-to-zero-grace-period", "0s"),
    ("scale-to-zero-grace-period", "soon"),
    ("stable-window", "5s"),
    ("stable-window", "2h"),
    ("stable-window", "6500ms"),
    ("panic-window-percentage", "0.5"),
    ("panic-window-percentage", "many"),
    ("target-burst-capacity", "-2"),
    ("target-burst-capacity", "lots"),
    ("activator-image", ""),
    ("autoscaler-image", "Not An Image"),
    ("net-istio-controller-image", "registry.example/image:"),
    ("queue-proxy-image", " "),
    ("data-path-node-selector", "[1]"),
    ("data-path-tolerations", '[{"operator": "Sometimes"}]'),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_a_bad_option_blocks_naming_it_and_changes_nothing(ctx, kube, option, value):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={option: value}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert bad.unit_status.message.startswith(f"{option}: ")
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert bad.get_container(c).layers == out.get_container(c).layers


def test_every_option_is_tested_with_a_bad_value():
    import yaml
    from charm_loader import charm_dir

    meta = yaml.safe_load((charm_dir("knative-serving") / "charmcraft.yaml").read_text())
    names = set(meta["config"]["options"]) - {"enable-scale-to-zero"}  # a boolean: Juju checks
    assert names == {option for option, _ in BAD_OPTIONS}


def test_the_config_is_written_while_knatives_config_webhook_is_down(ctx, kube, monkeypatch):
    """An upgrade rewrites the ConfigMaps before the webhook runs again: no webhook gates them.

    Knative's config webhooks select ConfigMaps by `app.kubernetes.io/name` and
    `app.kubernetes.io/component` and refuse writes when unreachable (failurePolicy
    Fail; knative/serving knative-v1.16.2 config/core/webhooks/configmap-validation.yaml).
    """
    import httpx
    import yaml

    out = settled(ctx)
    answer = kube.handle

    def webhook_down(request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PUT", "PATCH") and "/configmaps" in request.url.path:
            labels = (yaml.safe_load(request.content) or {}).get("metadata", {}).get("labels")
            if "app.kubernetes.io/component" in (labels or {}):
                message = 'failed calling webhook "config.webhook.serving.knative.dev"'
                return httpx.Response(500, json={"kind": "Status", "message": message})
        return answer(request)

    monkeypatch.setattr(kube, "handle", webhook_down)
    upgraded = ctx.run(ctx.on.upgrade_charm(), out)
    assert upgraded.unit_status == out.unit_status
    assert all(running(upgraded, w) for w in wl.WORKLOADS)


def test_a_failed_apply_keeps_what_kserve_was_told(ctx, kube, monkeypatch):
    """Withdrawing would switch KServe to RawDeployment and restart it over a passing error."""
    import httpx

    relation = _knative_relation()
    out = ctx.run(ctx.on.config_changed(), state(relations={relation}))
    published = dict(out.get_relation(relation.id).local_app_data)
    assert published
    answer = kube.handle

    def api_down(request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PUT", "PATCH"):
            return httpx.Response(503, json={"kind": "Status", "message": "unavailable"})
        return answer(request)

    monkeypatch.setattr(kube, "handle", api_down)
    again = ctx.run(ctx.on.upgrade_charm(), out)
    assert dict(again.get_relation(relation.id).local_app_data) == published
    assert again.unit_status.name != "active"
