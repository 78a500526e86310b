"""Route planning alone: conflicts keep what was served; ext_authz follows the longest prefix."""

from __future__ import annotations

from unit.istio.helpers import CHARM

gateway = CHARM.gateway


def _route(rid: int, app: str, prefix: str, *, auth: bool = False):
    return gateway.Route(
        relation_id=rid,
        app=app,
        prefix=prefix,
        rewrite=None,
        service=app,
        namespace="kubeflow",
        port=80,
        auth=auth,
    )


def test_distinct_prefixes_are_all_served():
    requests = {1: _route(1, "a", "/a/"), 2: _route(2, "b", "/b/")}
    plan = gateway.plan_routes(requests, {})
    assert plan.routes == requests and plan.conflicts == ()


def test_conflict_keeps_the_served_route_and_adds_nothing():
    served = {1: _route(1, "a", "/x/")}
    requests = {1: _route(1, "a", "/x/"), 2: _route(2, "b", "/x/")}
    plan = gateway.plan_routes(requests, served)
    assert plan.routes == served
    assert [c.message() for c in plan.conflicts] == [
        "prefix /x/ is claimed by a and b: neither route changed"
    ]


def test_a_kept_route_blocks_a_request_for_its_prefix():
    # a asks to move onto c's prefix; a keeps /a/ so b cannot have /a/ either.
    served = {1: _route(1, "a", "/a/"), 3: _route(3, "c", "/c/")}
    requests = {
        1: _route(1, "a", "/c/"),
        2: _route(2, "b", "/a/"),
        3: _route(3, "c", "/c/"),
    }
    plan = gateway.plan_routes(requests, served)
    assert plan.routes == served
    messages = sorted(c.message() for c in plan.conflicts)
    assert messages == [
        "prefix /a/ is claimed by a and b: neither route changed",
        "prefix /c/ is claimed by a and c: neither route changed",
    ]


def test_a_gone_relation_frees_its_prefix():
    served = {1: _route(1, "a", "/x/")}
    plan = gateway.plan_routes({2: _route(2, "b", "/x/")}, served)
    assert set(plan.routes) == {2} and plan.conflicts == ()


def test_auth_rules_close_everything_but_the_open_routes():
    routes = {
        1: _route(1, "dashboard", "/", auth=True),
        2: _route(2, "dex", "/dex/"),
        3: _route(3, "dex-admin", "/dex/admin/", auth=True),
        4: _route(4, "kfp", "/pipeline/", auth=True),
    }
    assert gateway.auth_rules(routes) == [
        {"paths": ["/*"], "notPaths": ["/dex/*"]},
        {"paths": ["/dex/admin/*"]},  # protected again under an open prefix
    ]
    # Closed by default: with only open routes, everything else still needs a login.
    assert gateway.auth_rules({2: routes[2]}) == [{"paths": ["/*"], "notPaths": ["/dex/*"]}]
    assert gateway.auth_rules({}) == [{"paths": ["/*"]}]
    # An open route at / leaves only the protected routes under it.
    everything_open = {5: _route(5, "site", "/"), 4: routes[4]}
    assert gateway.auth_rules(everything_open) == [{"paths": ["/pipeline/*"]}]


def test_virtual_service_names_are_unique():
    routes = {4: _route(4, "app", "/one/"), 7: _route(7, "app", "/two/"), 9: _route(9, "b", "/b/")}
    names = [name for name, _ in gateway.virtual_services(routes)]
    assert names == ["ingress-app", "ingress-app-7", "ingress-b"]


def test_served_routes_round_trip_and_garbage_is_forgotten():
    routes = {1: _route(1, "a", "/a/", auth=True), 2: _route(2, "b", "/b/")}
    assert gateway.load_routes(gateway.dump_routes(routes)) == routes
    assert gateway.load_routes(None) == {}
    assert gateway.load_routes("not json") == {}
    assert gateway.load_routes('[{"app": "a"}]') == {}


def test_base_url():
    assert (
        gateway.base_url(
            tls=True, external_hostname="kf.example.com", lb_address="1.2.3.4", namespace="kf"
        )
        == "https://kf.example.com"
    )
    assert gateway.base_url(
        tls=False, external_hostname="", lb_address="1.2.3.4", namespace="kf"
    ) == ("http://1.2.3.4")
    assert gateway.base_url(tls=False, external_hostname="", lb_address=None, namespace="kf") == (
        "http://istio-ingressgateway.kf.svc.cluster.local"
    )
