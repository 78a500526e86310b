"""KServe in Serverless mode: the knative-serving relation switches the default mode and gateway.

Knative Serving's data comes through our own interface
(kubeflow_interfaces.knative_serving). What the charm writes from it:
`inferenceservice-config`'s `deploy.defaultDeploymentMode` and `ingress`
keys (kserve/kserve v0.14.1 pkg/apis/serving/v1beta1/configmap.go:68-79,
177-200), and the KServe controller's environment: SYSTEM_NAMESPACE, which
its ingress reconciler reads for Knative's `config-domain`
(pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/
ingress_reconciler.go:608-625, knative.dev/pkg system/env.go), and
Knative's version, so that the controller restarts once Knative's CRDs are
in place (cmd/manager/main.go:165-176).
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from charm_loader import run_fresh
from ops import testing
from unit.kserve.helpers import GATEWAY_NAME, GATEWAY_NAMESPACE, MODEL, service, settled, state
from unit.kserve.helpers import workloads as wl
from unit.kserve.test_hook_cost import SCRIPT, _plain

from kubeflow_interfaces.knative_serving import KnativeServing

SERVING = KnativeServing(
    namespace="knative-serving",
    local_gateway="kubeflow/knative-local-gateway",
    local_gateway_service="knative-local-gateway.kubeflow.svc.cluster.local",
    domain="models.example.com",
    version="1.16.2",
)
SERVERLESS = ops.ActiveStatus(
    "Serverless (Knative 1.16.2), hosts <name>.<namespace>.models.example.com"
)
RAW = ops.ActiveStatus("RawDeployment, hosts *.example.com")


def knative_relation(data: dict[str, str] | None = None, **kwargs) -> testing.Relation:
    """The knative-serving charm's side, by default as it publishes SERVING."""
    return testing.Relation(
        "knative-serving",
        interface="kubeflow_knative_serving",
        remote_app_name="knative-serving",
        remote_app_data=SERVING.to_databag() if data is None else data,
        **kwargs,
    )


def _config(kube) -> dict:
    data = kube.get("ConfigMap", wl.CONFIGMAP, MODEL)["data"]
    return {key: json.loads(value) for key, value in data.items()}


def _environment(out: testing.State) -> dict:
    return dict(service(out, wl.CONTROLLER).environment)


@pytest.fixture
def restarts(monkeypatch) -> list[str]:
    """The services the charm restarts, by name."""
    seen: list[str] = []
    original = ops.Container.restart

    def restart(self, *names: str) -> None:
        seen.extend(names)
        original(self, *names)

    monkeypatch.setattr(ops.Container, "restart", restart)
    return seen


def _relate(ctx, out: testing.State, relation: testing.Relation) -> testing.State:
    """The relation arrives on a settled unit: created, then changed with its data."""
    out = dataclasses.replace(out, relations=set(out.relations) | {relation})
    return ctx.run(ctx.on.relation_changed(relation), out)


def test_with_knative_the_default_mode_is_serverless_through_its_local_gateway(ctx, kube):
    out = settled(ctx, relations={knative_relation()})
    assert out.unit_status == SERVERLESS
    config = _config(kube)
    # kubeflow/manifests v1.10.0 apps/kserve/kserve/kserve_kubeflow.yaml ships "Serverless".
    assert config["deploy"] == {"defaultDeploymentMode": "Serverless"}
    ingress = config["ingress"]
    assert ingress["ingressGateway"] == f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}"
    assert ingress["localGateway"] == "kubeflow/knative-local-gateway"
    assert ingress["localGatewayService"] == "knative-local-gateway.kubeflow.svc.cluster.local"
    assert (
        ingress["knativeLocalGatewayService"] == "knative-local-gateway.kubeflow.svc.cluster.local"
    )
    environment = _environment(out)
    assert environment["SYSTEM_NAMESPACE"] == "knative-serving"
    assert environment[wl.KNATIVE_VERSION] == "1.16.2"
    assert environment["POD_NAMESPACE"] == MODEL
    # The local model controller does not talk to Knative.
    assert "SYSTEM_NAMESPACE" not in service(out, wl.LOCALMODEL).environment


def test_knative_arriving_restarts_the_controller_once(ctx, kube, restarts):
    out = settled(ctx)
    assert out.unit_status == RAW
    assert "SYSTEM_NAMESPACE" not in _environment(out)

    relation = knative_relation()
    out = _relate(ctx, out, relation)
    assert restarts == [wl.CONTROLLER.service]
    assert _environment(out)["SYSTEM_NAMESPACE"] == "knative-serving"
    assert _config(kube)["deploy"] == {"defaultDeploymentMode": "Serverless"}
    assert out.unit_status == SERVERLESS

    writes = list(kube.writes)
    again = ctx.run(ctx.on.relation_changed(out.get_relation(relation.id)), out)
    assert restarts == [wl.CONTROLLER.service]  # the same data: no second restart
    assert kube.writes == writes
    assert again.unit_status == SERVERLESS


def test_a_knative_upgrade_restarts_the_controller(ctx, kube, restarts):
    out = settled(ctx, relations={knative_relation()})
    relation = next(r for r in out.relations if r.endpoint == "knative-serving")
    newer = dataclasses.replace(
        relation, remote_app_data=SERVING.to_databag() | {"version": "1.17.0"}
    )
    out = dataclasses.replace(out, relations=(set(out.relations) - {relation}) | {newer})
    out = ctx.run(ctx.on.relation_changed(newer), out)
    assert restarts == [wl.CONTROLLER.service]
    assert _environment(out)[wl.KNATIVE_VERSION] == "1.17.0"


def test_a_relation_without_data_yet_stays_raw_and_restarts_nothing(ctx, kube, restarts):
    out = settled(ctx)
    writes = list(kube.writes)
    out = _relate(ctx, out, knative_relation({}))
    assert out.unit_status == RAW
    assert restarts == []
    assert kube.writes == writes
    assert _config(kube)["deploy"] == {"defaultDeploymentMode": "RawDeployment"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            SERVING.to_databag() | {"local-gateway": "no-slash", "version": "latest"},
            "knative-serving: invalid local-gateway, version",
        ),
        (
            {k: v for k, v in SERVING.to_databag().items() if k != "domain"},
            "knative-serving: missing domain",
        ),
        (
            SERVING.to_databag() | {"local-gateway-service": "Not A Host"},
            "knative-serving: invalid local-gateway-service",
        ),
    ],
)
def test_malformed_knative_data_blocks_naming_the_keys_and_changes_nothing(
    ctx, kube, restarts, data, message
):
    out = settled(ctx, relations={knative_relation()})
    relation = next(r for r in out.relations if r.endpoint == "knative-serving")
    before = _config(kube)
    writes = list(kube.writes)
    bad = dataclasses.replace(relation, remote_app_data=data)
    bad_state = dataclasses.replace(out, relations=(set(out.relations) - {relation}) | {bad})
    after = ctx.run(ctx.on.relation_changed(bad), bad_state)
    assert after.unit_status == ops.BlockedStatus(message)
    assert kube.writes == writes
    assert _config(kube) == before
    assert restarts == []
    for workload in wl.WORKLOADS:
        c = workload.container
        assert after.get_container(c).layers == out.get_container(c).layers


def test_malformed_knative_data_refuses_rotate_certificates(ctx, kube):
    bad = knative_relation(SERVING.to_databag() | {"namespace": "Bad_Namespace"})
    writes = list(kube.writes)
    with pytest.raises(testing.ActionFailed, match="knative-serving: invalid namespace"):
        ctx.run(ctx.on.action("rotate-certificates"), state(relations={bad}))
    assert kube.writes == writes


def test_the_relation_broken_goes_back_to_raw_deployment(ctx, kube, restarts):
    out = settled(ctx, relations={knative_relation()})
    relation = next(r for r in out.relations if r.endpoint == "knative-serving")
    out = ctx.run(ctx.on.relation_broken(relation), out)
    assert out.unit_status == RAW
    config = _config(kube)
    assert config["deploy"] == {"defaultDeploymentMode": "RawDeployment"}
    # Back to Kubeflow's values, which RawDeployment does not use.
    assert config["ingress"]["localGateway"] == "knative-serving/knative-local-gateway"
    assert "knativeLocalGatewayService" not in config["ingress"]
    environment = _environment(out)
    assert "SYSTEM_NAMESPACE" not in environment
    assert wl.KNATIVE_VERSION not in environment
    assert restarts == [wl.CONTROLLER.service]  # so that it stops watching Knative Services


def test_a_settled_serverless_update_status_writes_nothing(ctx, kube, restarts):
    out = settled(ctx, relations={knative_relation()})
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == SERVERLESS
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states
    assert kube.writes == writes
    assert restarts == []
    for workload in wl.WORKLOADS:
        c = workload.container
        assert again.get_container(c).layers == out.get_container(c).layers


def test_a_settled_serverless_update_status_imports_nothing_heavy_in_a_fresh_process():
    from unit.kserve.helpers import gateway_relation

    given = {"relations": [_plain(r) for r in (gateway_relation(), knative_relation())]}
    outcome = run_fresh(SCRIPT, stdin=json.dumps(given | {"secrets": []}))
    assert outcome["loaded"] == []
    assert outcome["asked_heavy"] == []
    assert outcome["applies"] == 0
    assert outcome["relations_unchanged"] is True
    assert outcome["stored_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    assert outcome["status"] == f"active: {SERVERLESS.message}"
