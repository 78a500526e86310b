"""Route requests alone: checks, conflicts that keep what was served, rendering, the login rule."""

from __future__ import annotations

import dataclasses

import pytest
from unit.istio.helpers import CHARM

routes = CHARM.routes


def _request(rid: int, app: str, *paths: str, auth: bool = False, exact: bool = False):
    kind = "exact" if exact else "prefix"
    route = routes.HttpRoute(
        name="r",
        matches=tuple(routes.Match(kind=kind, path=p) for p in paths),
        backends=(routes.Backend(host=f"{app}.kubeflow.svc.cluster.local", port=80),),
    )
    return routes.Request(relation_id=rid, endpoint="e", app=app, auth=auth, routes=(route,))


def test_distinct_paths_are_all_served():
    requests = {1: _request(1, "a", "/a"), 2: _request(2, "b", "/b")}
    plan = routes.plan_routes(requests, {})
    assert plan.routes == requests and plan.conflicts == ()


def test_conflict_keeps_the_served_route_and_adds_nothing():
    served = {1: _request(1, "a", "/x")}
    requests = {1: _request(1, "a", "/x"), 2: _request(2, "b", "/x")}
    plan = routes.plan_routes(requests, served)
    assert plan.routes == served
    assert [c.message() for c in plan.conflicts] == [
        "/x is claimed by a and b: neither route changed"
    ]


def test_a_kept_route_blocks_a_request_for_its_path():
    # a asks to move onto c's path; a keeps /a so b cannot have /a either.
    served = {1: _request(1, "a", "/a"), 3: _request(3, "c", "/c")}
    requests = {1: _request(1, "a", "/c"), 2: _request(2, "b", "/a"), 3: _request(3, "c", "/c")}
    plan = routes.plan_routes(requests, served)
    assert plan.routes == served
    assert sorted(c.message() for c in plan.conflicts) == [
        "/a is claimed by a and b: neither route changed",
        "/c is claimed by a and c: neither route changed",
    ]


def test_a_gone_relation_frees_its_path():
    served = {1: _request(1, "a", "/x")}
    plan = routes.plan_routes({2: _request(2, "b", "/x")}, served)
    assert set(plan.routes) == {2} and plan.conflicts == ()


def test_an_open_prefix_may_not_be_the_parent_of_an_authenticated_path():
    assert routes.clash(_request(1, "dex", "/dex"), _request(2, "kfp", "/dex/x", auth=True)) == (
        "unauthenticated /dex of dex would open /dex/x of kfp"
    )
    # Segment-wise: /dexter is not under /dex; an authenticated parent is fine.
    assert routes.clash(_request(1, "dex", "/dex"), _request(2, "k", "/dexter", auth=True)) is None
    assert routes.clash(_request(1, "dex", "/dex"), _request(2, "d", "/", auth=True)) is None
    # An exact open path opens nothing below it.
    assert (
        routes.clash(_request(1, "p", "/p", exact=True), _request(2, "k", "/p/x", auth=True))
        is None
    )


def test_auth_rules_close_everything_but_the_open_routes():
    served = {
        1: _request(1, "dashboard", "/", auth=True),
        2: _request(2, "dex", "/dex"),
        3: _request(3, "health", "/healthz", exact=True),
    }
    assert routes.auth_rules(served) == [
        {"ports": ["8080", "8443"], "paths": ["/*"], "notPaths": ["/dex", "/dex/*", "/healthz"]}
    ]
    # Closed by default: with no routes at all everything still needs a login.
    assert routes.auth_rules({}) == [{"ports": ["8080", "8443"], "paths": ["/*"]}]


def test_weighted_backends_keep_their_weights():
    route = routes.HttpRoute(
        name="r",
        matches=(routes.Match(kind="prefix", path="/m"),),
        backends=(
            routes.Backend(host="a", port=1, weight=1),
            routes.Backend(host="b", port=1, weight=2),
        ),
    )
    request = routes.Request(relation_id=1, endpoint="e", app="m", auth=True, routes=(route,))
    (vs,) = routes.virtual_services({1: request}, [])
    # Istio shares traffic in proportion: weight/(sum of weights); nothing is rescaled.
    weights = [d["weight"] for d in vs["http"][0]["route"]]
    assert weights == [1, 2]


def test_routes_with_hostnames_get_their_own_virtual_service():
    route = routes.HttpRoute(
        name="r",
        matches=(routes.Match(kind="prefix", path="/m"),),
        backends=(routes.Backend(host="a", port=1),),
        hostnames=("ml.example.com",),
    )
    request = routes.Request(relation_id=1, endpoint="e", app="m", auth=True, routes=(route,))
    everywhere = _request(2, "x", "/x", auth=True)
    services = routes.virtual_services({1: request, 2: everywhere}, [])
    assert [(s["name"], s["hosts"]) for s in services] == [
        ("gateway-routes", ["*"]),
        (services[1]["name"], ["ml.example.com"]),
    ]
    assert services[1]["name"].startswith("gateway-routes-")


def test_requests_round_trip_and_garbage_is_forgotten():
    requests = {1: _request(1, "a", "/a", auth=True), 2: _request(2, "b", "/b")}
    assert routes.load_requests(routes.dump_requests(requests)) == requests
    assert routes.load_requests("not json") == {}
    assert routes.load_requests('[{"relation_id": 1}]') == {}
    assert routes.load_requests(None) == {}


@pytest.mark.parametrize(
    "path", ["/a/../b", "/a/.", "/%2F", "/%2e", "/a b", "/a*", "/a#b", "a", "/a//b", "/%G1"]
)
def test_paths_that_walk_or_hide_segments_are_refused(path):
    with pytest.raises(routes.RefusedError):
        routes.check_path(path)


@pytest.mark.parametrize("path", ["/", "/a", "/a/b-c_d.e~f", "/a%20b", "/model:v1", "/a/"])
def test_ordinary_paths_pass(path):
    assert routes.check_path(path) == path


def test_the_strip_filter_removes_each_identity_header_once():
    lua = routes.strip_headers_lua(["Kubeflow-Userid", "kubeflow-groups", "kubeflow-userid"])
    assert lua == (
        "function envoy_on_request(request_handle)\n"
        "  local headers = request_handle:headers()\n"
        '  headers:remove("kubeflow-groups")\n'
        '  headers:remove("kubeflow-userid")\n'
        "end\n"
    )


@pytest.mark.parametrize(
    ("match", "hostnames"),
    [
        ({"method": "GET"}, ()),
        ({"headers": (("x-a", "1"),)}, ()),
        ({}, ("a.example.com",)),
    ],
)
def test_unauthenticated_routes_match_by_path_only(match, hostnames):
    # The login check sees paths only: a conditional open route would leave the
    # same path open for every other method, header or host.
    route = routes.HttpRoute(
        name="r",
        matches=(routes.Match(kind="prefix", path="/open", **match),),
        backends=(routes.Backend(host="a", port=1),),
        hostnames=hostnames,
    )
    request = routes.Request(relation_id=1, endpoint="e", app="o", auth=False, routes=(route,))
    with pytest.raises(routes.RefusedError, match="unauthenticated route may"):
        routes.check_request(request)
    # Behind the login the same conditions are fine.
    assert routes.check_request(dataclasses.replace(request, auth=True))
