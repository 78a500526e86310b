"""Routes for the platform: served, unauthenticated or behind the login, conflicts, fail closed."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from ops import testing
from unit.istio.helpers import (
    MODEL,
    auth_relation,
    file_text,
    istiod,
    replace_relation,
    route,
    route_config,
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
    """The fail-closed policy: without the login, all but the open routes is denied."""
    return kube.get("AuthorizationPolicy", "istio-ingressgateway-deny-unauthenticated", MODEL)


def _open_paths(*prefixes):
    return sorted([*prefixes, *(f"{p}/*" for p in prefixes)])


def _assert_denies_all_but(kube, *open_prefixes):
    policy = _deny(kube)
    assert policy is not None
    assert policy["spec"]["action"] == "DENY"
    (rule,) = policy["spec"]["rules"]
    expected = {"ports": ["8080", "8443"], "paths": ["/*"]}
    if open_prefixes:
        expected["notPaths"] = _open_paths(*open_prefixes)
    assert rule["to"][0]["operation"] == expected


def _moved(out, relation, app, prefix, **kw):
    """The relation asking for another prefix."""
    data = {"config": route_config(app, prefix, **kw)}
    return dataclasses.replace(out.get_relation(relation.id), remote_app_data=data)


# --- routes ---------------------------------------------------------------------------------


def test_each_route_is_served_and_told_its_host(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex", auth=False),
        route("dashboard", "/", auth=True, port=8082),
        route("kfp-ui", "/pipeline", auth=True, rewrite="/pipeline", port=3000),
        auth_relation(),
    )
    out = settle(ctx, base)

    assert kube.rejected == []
    served = virtual_services(kube)
    assert set(served) == {"/dex", "/", "/pipeline"}
    (vs,) = kube.of_kind("VirtualService")
    assert vs["metadata"]["name"] == "gateway-routes"
    assert vs["spec"]["gateways"] == ["kubeflow/kubeflow-gateway"]
    assert served["/"]["route"] == [
        {"destination": {"host": "dashboard.kubeflow.svc.cluster.local", "port": {"number": 8082}}}
    ]
    assert "rewrite" not in served["/dex"]  # no rewrite asked
    # Longer paths first, exact before prefix; the dashboard's catch-all last.
    uris = [m["uri"] for rule in vs["spec"]["http"] for m in rule["match"]]
    assert uris == [
        {"exact": "/pipeline"},
        {"exact": "/dex"},
        {"prefix": "/pipeline/"},
        {"prefix": "/dex/"},
        {"prefix": "/"},
    ]
    assert urls(out) == {"dex": BASE, "dashboard": BASE, "kfp-ui": BASE}
    for relation in out.relations:
        if getattr(relation, "endpoint", "").startswith("istio-ingress-route"):
            assert relation.local_app_data["tls_enabled"] == "False"
            assert relation.local_app_data["kubeflow_user_header"] == "kubeflow-userid"
            assert "kubeflow_user_prefix" not in relation.local_app_data  # empty: absent
    assert out.unit_status.name == "active"


def test_a_prefix_rewrite_keeps_the_segment_boundary(ctx, kube):
    settle(ctx, with_relations(state(), route("mlflow", "/mlflow", auth=False, rewrite="/")))
    (vs,) = kube.of_kind("VirtualService")
    rules = {json.dumps(r["match"][0]["uri"]): r["rewrite"] for r in vs["spec"]["http"]}
    # /mlflow/runs -> /runs, /mlflow -> /
    assert rules == {'{"exact": "/mlflow"}': {"uri": "/"}, '{"prefix": "/mlflow/"}': {"uri": "/"}}


def test_an_exact_route_is_served_exactly(ctx, kube):
    settle(ctx, with_relations(state(), route("probe", "/healthz", auth=False, exact=True)))
    (vs,) = kube.of_kind("VirtualService")
    assert [r["match"] for r in vs["spec"]["http"]] == [[{"uri": {"exact": "/healthz"}}]]
    _assert_denies_all_but_exact(kube, "/healthz")


def _assert_denies_all_but_exact(kube, path):
    (rule,) = _deny(kube)["spec"]["rules"]
    assert rule["to"][0]["operation"] == {
        "ports": ["8080", "8443"],
        "paths": ["/*"],
        "notPaths": [path],
    }


def test_login_check_guards_every_authenticated_path_and_only_those(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex", auth=False),
        route("oidc-gateway", "/oauth2", auth=False),
        route("dashboard", "/", auth=True),
        route("kfp-ui", "/pipeline", auth=True),
        auth_relation(address="http://oidc-gateway.kubeflow.svc.cluster.local:4180/oauth2/auth"),
    )
    out = settle(ctx, base)

    policy = _policy(kube)["spec"]
    assert policy["action"] == "CUSTOM"
    assert policy["provider"] == {"name": istiod.EXT_AUTHZ_PROVIDER}
    assert policy["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    operations = [rule["to"][0]["operation"] for rule in policy["rules"]]
    # Closed by default: one rule covers every path but the open routes,
    # /pipeline included, and paths no route claims (a notebook's, say).
    assert operations == [
        {"ports": ["8080", "8443"], "paths": ["/*"], "notPaths": _open_paths("/dex", "/oauth2")}
    ]
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    (provider,) = mesh["extensionProviders"]
    # As istio-ingress-k8s does, only the decision address's host and port are used.
    assert provider == {
        "name": istiod.EXT_AUTHZ_PROVIDER,
        "envoyExtAuthzHttp": {
            "service": "oidc-gateway.kubeflow.svc.cluster.local",
            "port": 4180,
            "includeRequestHeadersInCheck": [
                "accept",
                "authorization",
                "cookie",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
            ],
            "headersToUpstreamOnAllow": ["kubeflow-userid", "kubeflow-groups"],
            "headersToDownstreamOnDeny": ["content-type", "location", "set-cookie"],
        },
    }
    assert _deny(kube) is None


def test_open_routes_drop_the_clients_identity_headers(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex", auth=False),
        route("dashboard", "/", auth=True),
        auth_relation(headers=("x-user", "x-groups"), user_header="x-user", user_prefix="oidc:"),
    )
    out = settle(ctx, base)
    served = virtual_services(kube)
    assert served["/dex"]["headers"] == {"request": {"remove": ["x-groups", "x-user"]}}
    # Authenticated routes keep what the login's answer set (the strip filter ran first).
    assert "headers" not in served["/"]
    dashboard = next(r for r in out.relations if getattr(r, "remote_app_name", "") == "dashboard")
    assert dashboard.local_app_data["kubeflow_user_header"] == "x-user"
    assert dashboard.local_app_data["kubeflow_user_prefix"] == "oidc:"


def _strip_filter(kube):
    envoy_filter = kube.get("EnvoyFilter", "istio-ingressgateway-strip-identity-headers", MODEL)
    (patch,) = envoy_filter["spec"]["configPatches"]
    return envoy_filter, patch


def test_every_request_loses_the_clients_identity_headers_before_the_login_check(ctx, kube):
    # oauth2-proxy leaves a header out of its answer when the claim is empty (no groups,
    # say), and ext_authz only overwrites what the answer carries: so the client's copies
    # go first, on every route, and only the login's answer sets them again.
    base = with_relations(
        state(), route("dashboard", "/"), auth_relation(headers=("kubeflow-userid", "x-groups"))
    )
    settle(ctx, base)
    envoy_filter, patch = _strip_filter(kube)
    assert envoy_filter["spec"]["workloadSelector"] == {"labels": {"istio": "ingressgateway"}}
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"]["context"] == "GATEWAY"
    assert patch["patch"]["operation"] == "INSERT_FIRST"  # before ext_authz
    value = patch["patch"]["value"]
    assert value["name"] == "envoy.filters.http.lua"
    lua = value["typed_config"]["default_source_code"]["inline_string"]
    assert 'headers:remove("kubeflow-userid")' in lua
    assert 'headers:remove("x-groups")' in lua


def test_open_routes_drop_the_default_user_header_without_a_login(ctx, kube):
    settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    assert virtual_services(kube)["/dex"]["headers"] == {
        "request": {"remove": ["kubeflow-userid"]}
    }
    _, patch = _strip_filter(kube)
    lua = patch["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"]
    assert 'headers:remove("kubeflow-userid")' in lua


def test_a_login_that_does_not_set_the_user_header_is_refused(ctx, kube):
    base = with_relations(
        state(),
        route("dashboard", "/", auth=True),
        auth_relation(headers=("x-auth-request-user",)),
    )
    out = settle(ctx, base)
    assert out.unit_status == testing.BlockedStatus(
        "authenticated routes are not served: oidc-gateway does not pass kubeflow-userid upstream"
    )
    assert virtual_services(kube) == {}
    _assert_denies_all_but(kube)


def test_a_removed_route_is_pruned_and_its_answer_withdrawn(ctx, kube):
    dex = route("dex", "/dex", auth=False)
    mlflow = route("mlflow", "/mlflow", auth=False)
    out = settle(ctx, with_relations(state(), dex, mlflow))
    assert set(virtual_services(kube)) == {"/dex", "/mlflow"}

    gone = out.get_relation(mlflow.id)
    out = ctx.run(ctx.on.relation_broken(gone), out)
    assert set(virtual_services(kube)) == {"/dex"}
    rest = dataclasses.replace(out, relations={r for r in out.relations if r.id != gone.id})
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), rest)
    assert kube.writes == writes


def test_a_leader_scaled_away_prunes_no_route(charm, kube):
    # On Kubernetes the highest-numbered unit goes; Juju runs relation-departed
    # and relation-broken on it for each relation, and it still holds the lease.
    ctx = testing.Context(charm.IstioCharm, unit_id=1)
    dex = route("dex", "/dex", auth=False)
    out = settle(ctx, with_relations(state(planned_units=2), dex))
    assert set(virtual_services(kube)) == {"/dex"}
    leaving = dataclasses.replace(out, planned_units=1)
    writes = list(kube.writes)
    ctx.run(ctx.on.relation_departed(leaving.get_relation(dex.id), remote_unit=0), leaving)
    ctx.run(ctx.on.relation_broken(leaving.get_relation(dex.id)), leaving)
    assert set(virtual_services(kube)) == {"/dex"}
    assert kube.writes == writes


def test_the_last_route_going_prunes_the_virtual_service(ctx, kube):
    dex = route("dex", "/dex", auth=False)
    out = settle(ctx, with_relations(state(), dex))
    out = ctx.run(ctx.on.relation_broken(out.get_relation(dex.id)), out)
    assert kube.of_kind("VirtualService") == []
    assert ("delete", "VirtualService", "gateway-routes") in kube.writes


def test_a_changed_prefix_moves_the_route(ctx, kube):
    dex = route("dex", "/dex", auth=False)
    out = settle(ctx, with_relations(state(), dex))
    moved = _moved(out, dex, "dex", "/auth")
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert set(virtual_services(kube)) == {"/auth"}
    assert urls(out) == {"dex": BASE}


def test_invalid_config_blocks_naming_the_app(ctx, kube):
    bad = testing.Relation(
        "istio-ingress-route-unauthenticated",
        remote_app_name="broken",
        remote_app_data={"config": json.dumps({"model": "kubeflow", "http_routes": [{}]})},
    )
    out = settle(ctx, with_relations(state(), bad, route("dex", "/dex", auth=False)))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "route refused: broken (invalid istio-ingress-route config: http_routes.0"
    )
    assert set(virtual_services(kube)) == {"/dex"}
    assert urls(out)["broken"] is None


def test_not_json_blocks_naming_the_app(ctx, kube):
    bad = testing.Relation(
        "istio-ingress-route", remote_app_name="broken", remote_app_data={"config": "{nope"}
    )
    out = settle(ctx, with_relations(state(), bad))
    assert out.unit_status.message.startswith("route refused: broken (invalid")


# --- routes cannot open what must stay closed ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "auth", "exact", "reason"),
    [
        ("/", False, False, "an unauthenticated route may not claim /"),
        ("/notebook", True, False, "/notebook is reserved for the notebook controller's routes"),
        ("/notebook/alice/nb", False, False, "reserved for the notebook controller"),
        ("/notebook/x", True, True, "reserved for the notebook controller"),
        ("/dex/../notebook", False, False, "holds a dot segment"),
        ("/dex/./x", False, False, "holds a dot segment"),
        ("/dex%2Fnotebook", False, False, "percent-encoded separator or dot"),
        ("/dex%5c", False, False, "percent-encoded separator or dot"),
        ("/%2e%2e/notebook", False, False, "percent-encoded separator or dot"),
        ("/dex/*", False, False, "no wildcards"),
        ("/dex?x=1", False, False, "no wildcards, spaces, query or fragment"),
        ("/a//b", False, False, "holds an empty segment"),
        ("/bad%zz", False, False, "malformed percent-encoding"),
    ],
)
def test_paths_that_would_open_what_must_stay_closed_are_refused(
    ctx, kube, path, auth, exact, reason
):
    bad = route("intruder", path, auth=auth, exact=exact)
    out = settle(ctx, with_relations(state(), bad, route("dex", "/dex", auth=False)))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("route refused: intruder (")
    assert reason in out.unit_status.message
    assert set(virtual_services(kube)) == {"/dex"}
    assert urls(out)["intruder"] is None
    _assert_denies_all_but(kube, "/dex")


def test_an_open_root_route_no_longer_opens_everything(ctx, kube):
    # Before: an open / removed every AuthorizationPolicy, /notebook/... included.
    base = with_relations(
        state(), route("site", "/", auth=False), route("dashboard", "/jupyter"), auth_relation()
    )
    settle(ctx, base)
    policy = _policy(kube)["spec"]
    assert policy["rules"] == [
        {"to": [{"operation": {"ports": ["8080", "8443"], "paths": ["/*"]}}]}
    ]


def test_an_open_parent_of_an_authenticated_path_is_refused(ctx, kube):
    base = with_relations(
        state(),
        route("dex", "/dex", auth=False),
        route("dex-admin", "/dex/admin", auth=True),
        auth_relation(),
    )
    out = settle(ctx, base)
    assert out.unit_status == testing.BlockedStatus(
        "unauthenticated /dex of dex would open /dex/admin of dex-admin: neither route changed"
    )
    assert virtual_services(kube) == {}


def test_an_open_parent_arriving_after_the_authenticated_path_is_refused(ctx, kube):
    admin = route("kfp", "/pipeline/admin", auth=True)
    out = settle(ctx, with_relations(state(), admin, auth_relation()))
    assert set(virtual_services(kube)) == {"/pipeline/admin"}
    out = settle(ctx, with_relations(out, route("open", "/pipeline", auth=False)))
    assert out.unit_status.message == (
        "unauthenticated /pipeline of open would open /pipeline/admin of kfp: "
        "neither route changed"
    )
    assert set(virtual_services(kube)) == {"/pipeline/admin"}  # kept as it was
    assert urls(out)["open"] is None
    assert _policy(kube)["spec"]["rules"] == [
        {"to": [{"operation": {"ports": ["8080", "8443"], "paths": ["/*"]}}]}
    ]


def test_unsupported_listeners_and_filters_are_refused(ctx, kube):
    from charmlibs.interfaces import istio_ingress_route as lib

    listener = lib.Listener(port=8443, protocol=lib.ProtocolType.HTTP)
    config = lib.IstioIngressRouteConfig(
        model=MODEL,
        listeners=[listener],
        http_routes=[
            lib.HTTPRoute(
                name="r", listener=listener, backends=[lib.BackendRef(service="x", port=80)]
            )
        ],
    )
    odd = testing.Relation(
        "istio-ingress-route",
        remote_app_name="odd",
        remote_app_data={"config": config.model_dump_json()},
    )
    out = settle(ctx, with_relations(state(), odd, auth_relation()))
    assert out.unit_status.message == (
        "route refused: odd (listener port 8443 is not served (the gateway listens on 80 and 443))"
    )


# --- conflicts ------------------------------------------------------------------------------


def test_a_newcomer_cannot_take_a_served_path(ctx, kube):
    mlflow = route("mlflow", "/mlflow", auth=False)
    out = settle(ctx, with_relations(state(), mlflow))
    before = virtual_services(kube)["/mlflow"]

    intruder = route("intruder", "/mlflow", auth=False, port=9999)
    out = settle(ctx, with_relations(out, intruder))

    assert out.unit_status == testing.BlockedStatus(
        "/mlflow is claimed by intruder and mlflow: neither route changed"
    )
    assert out.app_status == out.unit_status
    assert virtual_services(kube) == {"/mlflow": before}  # as it was: mlflow's route
    assert urls(out) == {"mlflow": BASE, "intruder": None}

    # The newcomer moves elsewhere: both are served.
    moved = _moved(out, intruder, "intruder", "/intruder")
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert out.unit_status.name == "active"
    assert set(virtual_services(kube)) == {"/mlflow", "/intruder"}


def test_two_newcomers_on_one_path_get_nothing(ctx, kube):
    base = with_relations(
        state(),
        route("a", "/x", auth=False),
        route("b", "/x/", auth=False),  # the same PathPrefix, with a trailing slash
        route("c", "/c", auth=False),
    )
    out = settle(ctx, base)
    assert out.unit_status == testing.BlockedStatus(
        "/x is claimed by a and b: neither route changed"
    )
    assert set(virtual_services(kube)) == {"/c"}
    assert urls(out) == {"a": None, "b": None, "c": BASE}


def test_a_served_app_moving_onto_another_keeps_its_old_route(ctx, kube):
    a = route("a", "/a", auth=False)
    b = route("b", "/b", auth=False)
    out = settle(ctx, with_relations(state(), a, b))
    before = virtual_services(kube)

    moved = _moved(out, a, "a", "/b")
    out = ctx.run(ctx.on.relation_changed(moved), replace_relation(out, moved))
    assert out.unit_status.message == "/b is claimed by a and b: neither route changed"
    assert virtual_services(kube) == before  # both keep what they had
    assert urls(out) == {"a": BASE, "b": BASE}


# --- fail closed ------------------------------------------------------------------------------


def _mixed(*extra):
    return with_relations(
        state(), route("dex", "/dex", auth=False), route("dashboard", "/", auth=True), *extra
    )


def test_without_forward_auth_authenticated_routes_are_not_served(ctx, kube):
    out = settle(ctx, _mixed())
    assert set(virtual_services(kube)) == {"/dex"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex")
    assert urls(out) == {"dex": BASE, "dashboard": None}
    assert out.unit_status == testing.BlockedStatus(
        "authenticated routes are not served: relate forward-auth"
    )
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert "extensionProviders" not in mesh


def test_forward_auth_without_data_yet_waits(ctx, kube):
    silent = testing.Relation("forward-auth", remote_app_name="oidc-gateway")
    out = settle(ctx, _mixed(silent))
    assert set(virtual_services(kube)) == {"/dex"}
    assert out.unit_status == testing.WaitingStatus(
        "authenticated routes are not served: waiting for oidc-gateway"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"decisions_address": "ftp://x"}, "decisions_address must be an http(s) URL"),
        ({"decisions_address": "http://Not A Host/"}, "decisions_address must"),
        ({"decisions_address": "http://x:99999"}, "invalid port"),
        (
            {"decisions_address": "http://x", "headers": '["ok", "bad header"]'},
            "headers must be a list of header names",
        ),
        (
            {"decisions_address": "http://x", "app_names": '"x"'},
            "app_names must be a list of names",
        ),
        (
            {"decisions_address": "http://x", "kubeflow_user_header": '"a b"'},
            "kubeflow_user_header must be a header name",
        ),
    ],
)
def test_invalid_forward_auth_data_fails_closed(ctx, kube, data, problem):
    bad = testing.Relation("forward-auth", remote_app_name="oidc-gateway", remote_app_data=data)
    out = settle(ctx, _mixed(bad))
    assert set(virtual_services(kube)) == {"/dex"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex")
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "authenticated routes are not served: oidc-gateway sent invalid forward-auth data"
    )
    assert problem in out.unit_status.message


def test_losing_forward_auth_withdraws_authenticated_routes(ctx, kube):
    auth = auth_relation()
    out = settle(ctx, _mixed(auth))
    assert set(virtual_services(kube)) == {"/dex", "/"}
    assert _policy(kube) is not None
    assert _deny(kube) is None

    gone = out.get_relation(auth.id)
    out = ctx.run(ctx.on.relation_broken(gone), out)
    out = dataclasses.replace(out, relations={r for r in out.relations if r.id != auth.id})
    out = ctx.run(ctx.on.update_status(), out)
    assert set(virtual_services(kube)) == {"/dex"}
    assert _policy(kube) is None
    _assert_denies_all_but(kube, "/dex")
    assert urls(out)["dashboard"] is None
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert "extensionProviders" not in mesh


def test_only_unauthenticated_routes_need_no_forward_auth(ctx, kube):
    out = settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    assert out.unit_status == testing.ActiveStatus(f"{BASE} (no load-balancer address yet)")


def test_the_login_provider_is_told_which_apps_it_protects(ctx, kube):
    auth = auth_relation()
    out = settle(ctx, _mixed(auth, route("kfp-ui", "/pipeline")))
    assert json.loads(out.get_relation(auth.id).local_app_data["ingress_app_names"]) == [
        "dashboard",
        "kfp-ui",
    ]


# --- gateway metadata --------------------------------------------------------------------------


def test_gateway_metadata_names_the_gateway(ctx, kube):
    metadata = testing.Relation("gateway-metadata", remote_app_name="kubeflow-notebooks")
    out = settle(ctx, with_relations(state(), metadata))
    assert json.loads(out.get_relation(metadata.id).local_app_data["metadata"]) == {
        "namespace": MODEL,
        "gateway_name": "kubeflow-gateway",
        "deployment_name": "istio-ingressgateway",
        "service_account": "istio-ingressgateway",
    }


# --- ingress v2 ---------------------------------------------------------------------------------


def _v2(app: str, *, auth: bool = True, **kw):
    from kubeflow_interfaces import ingress

    endpoint = "ingress" if auth else "ingress-unauthenticated"
    return ingress.relation_for_provider(
        endpoint, name=app, remote_app_name=app, model=MODEL, **kw
    )


def _v2_url(out, relation):
    raw = out.get_relation(relation.id).local_app_data.get("ingress")
    return json.loads(raw)["url"] if raw else None


def test_ingress_v2_is_served_at_model_dash_app(ctx, kube):
    grafana = _v2("grafana", port=3000, strip_prefix=True)
    site = _v2("site", auth=False, port=8080)
    out = settle(ctx, with_relations(state(), grafana, site, auth_relation()))
    served = virtual_services(kube)
    assert set(served) == {"/kubeflow-grafana", "/kubeflow-site"}
    assert served["/kubeflow-grafana"]["route"] == [
        {"destination": {"host": "grafana.kubeflow.svc.cluster.local", "port": {"number": 3000}}}
    ]
    assert served["/kubeflow-grafana"]["rewrite"] == {"uri": "/"}  # strip-prefix
    assert "rewrite" not in served["/kubeflow-site"]
    assert _v2_url(out, grafana) == f"{BASE}/kubeflow-grafana"
    assert _v2_url(out, site) == f"{BASE}/kubeflow-site"
    # The open one is left out of the login check; the other is behind it.
    assert _policy(kube)["spec"]["rules"] == [
        {
            "to": [
                {
                    "operation": {
                        "ports": ["8080", "8443"],
                        "paths": ["/*"],
                        "notPaths": _open_paths("/kubeflow-site"),
                    }
                }
            ]
        }
    ]
    assert out.unit_status.name == "active"


def test_ingress_v2_behind_the_login_waits_for_it(ctx, kube):
    grafana = _v2("grafana", port=3000)
    out = settle(ctx, with_relations(state(), grafana))
    assert virtual_services(kube) == {}
    assert _v2_url(out, grafana) is None
    assert out.unit_status == testing.BlockedStatus(
        "authenticated routes are not served: relate forward-auth"
    )


def test_ingress_v2_with_a_scheme_the_gateway_cannot_speak_is_refused(ctx, kube):
    odd = _v2("odd", auth=False, scheme="h2c")
    out = settle(ctx, with_relations(state(), odd))
    assert out.unit_status == testing.BlockedStatus(
        "route refused: odd (scheme 'h2c' is not served (http only))"
    )
    assert _v2_url(out, odd) is None


def test_invalid_ingress_v2_data_is_refused_naming_the_field(ctx, kube):
    bad = testing.Relation(
        "ingress-unauthenticated",
        remote_app_name="bad",
        remote_app_data={"model": '"kubeflow"', "name": '"bad"', "port": '"eighty"'},
        remote_units_data={0: {"host": '"bad-0"'}},
    )
    out = settle(ctx, with_relations(state(), bad))
    assert out.unit_status.message == "route refused: bad (invalid ingress relation data (port))"


def test_ingress_v2_and_a_route_on_one_path_conflict(ctx, kube):
    grafana = _v2("grafana", auth=False)
    squatter = route("squatter", "/kubeflow-grafana", auth=False)
    out = settle(ctx, with_relations(state(), grafana, squatter))
    assert out.unit_status.message == (
        "/kubeflow-grafana is claimed by grafana and squatter: neither route changed"
    )
