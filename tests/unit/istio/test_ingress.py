"""Routes for the platform: served, unauthenticated or behind ext_authz, conflicts, fail closed."""

from __future__ import annotations

import dataclasses

import yaml
from ops import testing
from unit.istio.helpers import (
    MODEL,
    auth_relation,
    file_text,
    istiod,
    replace_relation,
    route,
    settle,
    state,
    urls,
    virtual_services,
    with_relations,
)

BASE = "http://istio-ingressgateway.kubeflow.svc.cluster.local"


def _policy(kube):
    return kube.get("AuthorizationPolicy", "istio-ingressgateway-ext-authz", MODEL)


def _deny(kube):
    """The fail-closed policy: without the auth service, all but the open routes is denied."""
    return kube.get("AuthorizationPolicy", "istio-ingressgateway-deny-unauthenticated", MODEL)


def _assert_denies_all_but(kube, *open_prefixes):
    policy = _deny(kube)
    assert policy is not None
    assert policy["spec"]["action"] == "DENY"
    (rule,) = policy["spec"]["rules"]
    assert rule["to"][0]["operation"] == {
        "paths": ["/*"],
        "notPaths": [f"{p}*" for p in sorted(open_prefixes)],
    }


# --- routes ---------------------------------------------------------------------------------


def test_each_route_gets_a_virtual_service_and_a_url(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex/", auth=False, rewrite=None),
        route("dashboard", "/", auth=True, port=8082),
        route("kfp-ui", "/pipeline/", auth=True, rewrite="/pipeline/", port=3000),
        auth_relation(),
    )
    out = settle(ctx, base)

    assert kube.rejected == []
    served = virtual_services(kube)
    assert set(served) == {"/dex/", "/", "/pipeline/"}
    dashboard = served["/"]
    assert dashboard["metadata"]["name"] == "ingress-dashboard"
    assert dashboard["spec"]["gateways"] == ["kubeflow/kubeflow-gateway"]
    (http,) = dashboard["spec"]["http"]
    assert http["route"] == [
        {"destination": {"host": "dashboard.kubeflow.svc.cluster.local", "port": {"number": 8082}}}
    ]
    assert "rewrite" not in served["/dex/"]["spec"]["http"][0]  # no rewrite asked
    assert "rewrite" not in served["/pipeline/"]["spec"]["http"][0]  # rewrite to itself
    assert urls(out) == {
        "dex": f"{BASE}/dex/",
        "dashboard": f"{BASE}/",
        "kfp-ui": f"{BASE}/pipeline/",
    }
    assert out.unit_status.name == "active"


def test_rewrite_goes_to_the_destination(ctx, kube):
    settle(ctx, with_relations(state(), route("mlflow", "/mlflow/", auth=False, rewrite="/")))
    http = virtual_services(kube)["/mlflow/"]["spec"]["http"][0]
    assert http["rewrite"] == {"uri": "/"}


def test_ext_authz_guards_every_authenticated_path_and_only_those(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex/", auth=False),
        route("oidc-gateway", "/oauth2/", auth=False),
        route("dashboard", "/", auth=True),
        route("kfp-ui", "/pipeline/", auth=True),
        auth_relation(service="oidc-gateway", port=4180),
    )
    out = settle(ctx, base)

    policy = _policy(kube)["spec"]
    assert policy["action"] == "CUSTOM"
    assert policy["provider"] == {"name": istiod.EXT_AUTHZ_PROVIDER}
    assert policy["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    operations = [rule["to"][0]["operation"] for rule in policy["rules"]]
    # Closed by default: one rule covers every path but the open routes,
    # /pipeline/ included, and paths no route claims (a notebook's, say).
    assert operations == [{"paths": ["/*"], "notPaths": ["/dex/*", "/oauth2/*"]}]
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    (provider,) = mesh["extensionProviders"]
    assert provider == {
        "name": istiod.EXT_AUTHZ_PROVIDER,
        "envoyExtAuthzHttp": {
            "service": "oidc-gateway.kubeflow.svc.cluster.local",
            "port": 4180,
            "includeRequestHeadersInCheck": ["cookie", "authorization"],
            "headersToUpstreamOnAllow": ["kubeflow-userid", "kubeflow-groups"],
            "headersToDownstreamOnDeny": ["location", "set-cookie"],
        },
    }


def test_a_removed_route_is_pruned_and_its_url_withdrawn(ctx, kube):
    dex = route("dex", "/dex/", auth=False)
    mlflow = route("mlflow", "/mlflow/", auth=False)
    out = settle(ctx, with_relations(state(), dex, mlflow))
    assert set(virtual_services(kube)) == {"/dex/", "/mlflow/"}

    gone = out.get_relation(mlflow.id)
    out = ctx.run(ctx.on.relation_broken(gone), out)
    assert set(virtual_services(kube)) == {"/dex/"}
    assert ("delete", "VirtualService", "ingress-mlflow") in kube.writes
    rest = dataclasses.replace(out, relations={r for r in out.relations if r.id != gone.id})
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), rest)
    assert kube.writes == writes


def test_a_changed_prefix_moves_the_route(ctx, kube):
    dex = route("dex", "/dex/", auth=False)
    out = settle(ctx, with_relations(state(), dex))
    moved = dataclasses.replace(
        out.get_relation(dex.id), remote_app_data={**dex.remote_app_data, "prefix": "/auth/"}
    )
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert set(virtual_services(kube)) == {"/auth/"}
    assert urls(out) == {"dex": f"{BASE}/auth/"}


def test_invalid_request_blocks_naming_the_app(ctx, kube):
    bad = testing.Relation(
        "ingress",
        remote_app_name="broken",
        remote_app_data={
            "prefix": "no-slash",
            "service": "x",
            "namespace": "kubeflow",
            "port": "80",
        },
    )
    out = settle(ctx, with_relations(state(), bad, route("dex", "/dex/", auth=False)))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("invalid ingress request: broken")
    assert set(virtual_services(kube)) == {"/dex/"}
    assert urls(out)["broken"] is None


# --- conflicts ------------------------------------------------------------------------------


def test_a_newcomer_cannot_take_a_served_prefix(ctx, kube):
    dashboard = route("dashboard", "/", auth=False)
    out = settle(ctx, with_relations(state(), dashboard))
    before = virtual_services(kube)["/"]
    writes = list(kube.writes)

    intruder = route("intruder", "/", auth=False, port=9999)
    out = settle(ctx, with_relations(out, intruder))

    assert out.unit_status == testing.BlockedStatus(
        "prefix / is claimed by dashboard and intruder: neither route changed"
    )
    assert out.app_status == out.unit_status
    assert virtual_services(kube) == {"/": before}  # as it was: the dashboard's route
    assert [w for w in kube.writes[len(writes) :] if w[1] == "VirtualService"] == []
    assert urls(out) == {"dashboard": f"{BASE}/", "intruder": None}

    # The newcomer moves elsewhere: both are served.
    moved = dataclasses.replace(
        out.get_relation(intruder.id),
        remote_app_data={**intruder.remote_app_data, "prefix": "/intruder/"},
    )
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert out.unit_status.name == "active"
    assert set(virtual_services(kube)) == {"/", "/intruder/"}


def test_two_newcomers_on_one_prefix_get_nothing(ctx, kube):
    base = with_relations(
        state(),
        route("a", "/x/", auth=False),
        route("b", "/x/", auth=False),
        route("c", "/c/", auth=False),
    )
    out = settle(ctx, base)
    assert out.unit_status == testing.BlockedStatus(
        "prefix /x/ is claimed by a and b: neither route changed"
    )
    assert set(virtual_services(kube)) == {"/c/"}
    assert urls(out) == {"a": None, "b": None, "c": f"{BASE}/c/"}


def test_a_served_app_moving_onto_another_keeps_its_old_route(ctx, kube):
    a = route("a", "/a/", auth=False)
    b = route("b", "/b/", auth=False)
    out = settle(ctx, with_relations(state(), a, b))
    before = virtual_services(kube)

    moved = dataclasses.replace(
        out.get_relation(a.id), remote_app_data={**a.remote_app_data, "prefix": "/b/"}
    )
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert out.unit_status.message == "prefix /b/ is claimed by a and b: neither route changed"
    assert virtual_services(kube) == before  # both keep what they had
    assert urls(out) == {"a": f"{BASE}/a/", "b": f"{BASE}/b/"}


# --- fail closed ------------------------------------------------------------------------------


def _mixed(*extra):
    return with_relations(
        state(), route("dex", "/dex/", auth=False), route("dashboard", "/", auth=True), *extra
    )


def test_without_ingress_auth_authenticated_routes_are_not_served(ctx, kube):
    out = settle(ctx, _mixed())
    assert set(virtual_services(kube)) == {"/dex/"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex/")
    assert urls(out) == {"dex": f"{BASE}/dex/", "dashboard": None}
    assert out.unit_status == testing.BlockedStatus(
        "authenticated routes are not served: relate ingress-auth"
    )
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert "extensionProviders" not in mesh


def test_ingress_auth_without_data_yet_waits(ctx, kube):
    silent = testing.Relation("ingress-auth", remote_app_name="oidc-gateway")
    out = settle(ctx, _mixed(silent))
    assert set(virtual_services(kube)) == {"/dex/"}
    assert out.unit_status == testing.WaitingStatus(
        "authenticated routes are not served: waiting for oidc-gateway"
    )


def test_invalid_ingress_auth_data_fails_closed(ctx, kube):
    bad = testing.Relation(
        "ingress-auth",
        remote_app_name="oidc-gateway",
        remote_app_data={"service": "Not A Label", "namespace": "kubeflow", "port": "4180"},
    )
    out = settle(ctx, _mixed(bad))
    assert set(virtual_services(kube)) == {"/dex/"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex/")
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "authenticated routes are not served: oidc-gateway sent"
    )
    assert "service" in out.unit_status.message


def test_losing_ingress_auth_withdraws_authenticated_routes(ctx, kube):
    auth = auth_relation()
    out = settle(ctx, _mixed(auth))
    assert set(virtual_services(kube)) == {"/dex/", "/"}
    assert _policy(kube) is not None
    assert _deny(kube) is None

    gone = out.get_relation(auth.id)
    out = ctx.run(ctx.on.relation_broken(gone), out)
    out = dataclasses.replace(out, relations={r for r in out.relations if r.id != auth.id})
    out = ctx.run(ctx.on.update_status(), out)
    assert set(virtual_services(kube)) == {"/dex/"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex/")
    assert urls(out)["dashboard"] is None
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert "extensionProviders" not in mesh


def test_only_unauthenticated_routes_need_no_ingress_auth(ctx, kube):
    out = settle(ctx, with_relations(state(), route("dex", "/dex/", auth=False)))
    assert out.unit_status == testing.ActiveStatus(f"{BASE} (no load-balancer address yet)")
