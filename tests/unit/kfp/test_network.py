"""Who may reach the kfp pod: the NetworkPolicy, and the mesh's rule for the user header."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.kfp.helpers import GATEWAY_PRINCIPAL, gateway_relation, workloads
from unit.kfp.test_cluster import APP, MODEL, _settle, _state
from unit.kfp.test_data import _db_relation, _s3_relation

wl = workloads
HEADER_TRUSTING = (wl.API_SERVER, wl.UI)


def _ingress(kube) -> list[dict]:
    policy = kube.get("NetworkPolicy", f"{APP}-ingress", MODEL)
    assert policy is not None
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": APP}}
    return policy["spec"]["ingress"]


def _ports(rule: dict) -> set[int]:
    return {p["port"] for p in rule["ports"]}


def test_ui_and_envoy_only_from_the_gateway_pods(ctx, kube):
    _settle(ctx, _state())
    from_gateway, from_anywhere = _ingress(kube)
    assert _ports(from_gateway) == {wl.Ports.UI, wl.Ports.ENVOY}
    # The gateway runs in this model: no namespace selector, only its pods' labels.
    assert from_gateway["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}
            }
        }
    ]
    # Pipeline steps in profile namespaces call the API server and MLMD.
    assert "from" not in from_anywhere
    assert _ports(from_anywhere) == {wl.Ports.API_HTTP, wl.Ports.API_GRPC, wl.Ports.MLMD}


def test_gateway_in_another_namespace_is_selected_there(ctx, kube):
    metadata = {"namespace": "istio-system", "service_account": "gw"}
    gateway = testing.Relation(
        "gateway-metadata", remote_app_data={"metadata": json.dumps(metadata)}
    )
    _settle(ctx, _state(relations={testing.PeerRelation("kfp-peers"), gateway}))
    peer = _ingress(kube)[0]["from"][0]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "istio-system"}
    }
    policy = kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL)
    assert policy["spec"]["rules"][0]["from"] == [
        {"source": {"principals": ["cluster.local/ns/istio-system/sa/gw"]}}
    ]


def test_only_the_gateway_may_send_the_user_header(ctx, kube):
    _settle(ctx, _state())
    policy = kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL)
    assert policy is not None
    spec = policy["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": APP}}
    assert spec["action"] == "ALLOW"
    gateway, others = spec["rules"]
    assert gateway["from"] == [{"source": {"principals": [GATEWAY_PRINCIPAL]}}]
    assert gateway["to"] == [{"operation": {"ports": [str(wl.Ports.UI), str(wl.Ports.ENVOY)]}}]
    assert "from" not in others
    ports = {str(wl.Ports.API_HTTP), str(wl.Ports.API_GRPC), str(wl.Ports.MLMD)}
    assert set(others["to"][0]["operation"]["ports"]) == ports
    assert others["when"] == [{"key": "request.headers[kubeflow-userid]", "notValues": ["*"]}]


def test_without_the_gateway_header_trusting_workloads_do_not_start(ctx, kube):
    out = _settle(ctx, _ready(gateway=False))
    assert out.unit_status == ops.BlockedStatus(
        "add the gateway-metadata relation to istio: only its gateway may send the user "
        "header to the UI and API server"
    )
    for workload in HEADER_TRUSTING:
        assert out.get_container(workload.container).plan.services == {}, workload.service
    # Nothing of Istio's is applied before istio is related; the NetworkPolicy is.
    assert kube.of_kind("AuthorizationPolicy") == []
    assert kube.get("NetworkPolicy", f"{APP}-ingress", MODEL) is not None


def test_gateway_not_told_yet_is_waiting(ctx, kube):
    out = _settle(ctx, _ready(testing.Relation("gateway-metadata")))
    assert out.unit_status == ops.WaitingStatus("waiting for istio's gateway-metadata")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("not json", "metadata is not JSON"),
        ('{"namespace": "Bad_NS", "service_account": "gw"}', "is not a namespace name"),
        ('{"namespace": "istio", "service_account": ""}', "is not a service account name"),
    ],
)
def test_bad_gateway_metadata_is_blocked_and_changes_nothing(ctx, kube, metadata, problem):
    out = _settle(ctx, _state())
    before = kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL)
    gateway = next(r for r in out.relations if r.endpoint == "gateway-metadata")
    bad = dataclasses.replace(gateway, remote_app_data={"metadata": metadata})
    state = dataclasses.replace(out, relations=(out.relations - {gateway}) | {bad})
    again = ctx.run(ctx.on.relation_changed(bad), state)
    assert isinstance(again.unit_status, ops.BlockedStatus)
    assert problem in again.unit_status.message
    # The policy stays as it was: a bad answer from istio opens nothing.
    assert kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL) == before


def test_gateway_broken_stops_the_header_trusting_workloads(ctx, kube):
    out = _settle(ctx, _ready())
    for workload in HEADER_TRUSTING:
        assert out.get_container(workload.container).plan.services, workload.service
    gateway = next(r for r in out.relations if r.endpoint == "gateway-metadata")
    broken = ctx.run(ctx.on.relation_broken(gateway), out)
    assert "add the gateway-metadata relation" in broken.unit_status.message


def test_policies_come_back_when_deleted(ctx, kube):
    out = _settle(ctx, _state())
    kube.delete("AuthorizationPolicy", f"{APP}-user-header", MODEL)
    kube.delete("NetworkPolicy", f"{APP}-ingress", MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL) is not None
    assert kube.get("NetworkPolicy", f"{APP}-ingress", MODEL) is not None


def _ready(*relations: testing.Relation, gateway: bool = True) -> testing.State:
    """A leader with the database and the object store, and `relations`."""
    db, db_secrets = _db_relation()
    store, store_secret = _s3_relation()
    return _state(
        relations={testing.PeerRelation("kfp-peers"), db, store, *relations},
        secrets={*db_secrets, store_secret},
        gateway=gateway,
    )


def test_gateway_relation_helper_matches_the_bundle_istio():
    relation = gateway_relation()
    data = json.loads(relation.remote_app_data["metadata"])
    assert GATEWAY_PRINCIPAL == (
        f"cluster.local/ns/{data['namespace']}/sa/{data['service_account']}"
    )
