"""The ingress gateway's routes: who gets which prefix, what is served, at which URL.

Each application related on `ingress` asks for one route. Two applications
asking for one prefix conflict: neither gets its way, and both keep what
they were served before (a route that was never served stays unserved), so
a newcomer can never take a working route over. Routes that need a login
are served only while the ext_authz service is known (fail closed).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping

GATEWAY = "kubeflow-gateway"  # the Gateway every route binds to
GATEWAY_NAME = "istio-ingressgateway"  # its Deployment, Service and ServiceAccount
TLS_SECRET = "kubeflow-gateway-tls"  # noqa: S105 - a Secret's name


@dataclasses.dataclass(frozen=True, kw_only=True)
class Route:
    """A route as served: the relation it belongs to and what it asked for."""

    relation_id: int
    app: str
    prefix: str
    rewrite: str | None
    service: str
    namespace: str
    port: int
    auth: bool

    @property
    def host(self) -> str:
        """The destination's cluster DNS name."""
        return f"{self.service}.{self.namespace}.svc.cluster.local"

    def to_dict(self) -> dict[str, object]:
        """As kept in the peer databag."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Route:
        """From the peer databag; ValueError/TypeError/KeyError when malformed."""
        rewrite = data.get("rewrite")
        return cls(
            relation_id=int(str(data["relation_id"])),
            app=str(data["app"]),
            prefix=str(data["prefix"]),
            rewrite=None if rewrite is None else str(rewrite),
            service=str(data["service"]),
            namespace=str(data["namespace"]),
            port=int(str(data["port"])),
            auth=bool(data["auth"]),
        )


def dump_routes(routes: Mapping[int, Route]) -> str:
    """Served routes as peer databag text (stable order)."""
    return json.dumps([routes[i].to_dict() for i in sorted(routes)], sort_keys=True)


def load_routes(text: str | None) -> dict[int, Route]:
    """Served routes back from the peer databag; what does not parse is forgotten."""
    if not text:
        return {}
    try:
        items = json.loads(text)
        routes = [Route.from_dict(item) for item in items]
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {r.relation_id: r for r in routes}


@dataclasses.dataclass(frozen=True)
class Conflict:
    """Applications asking for one prefix."""

    prefix: str
    apps: tuple[str, ...]

    def message(self) -> str:
        """For the status."""
        names = " and ".join(self.apps)
        return f"prefix {self.prefix} is claimed by {names}: neither route changed"


@dataclasses.dataclass(frozen=True)
class RoutePlan:
    """The routes to serve, by relation id, and the conflicts that held some back."""

    routes: dict[int, Route]
    conflicts: tuple[Conflict, ...]


def plan_routes(requests: Mapping[int, Route], served: Mapping[int, Route]) -> RoutePlan:
    """Decide what each relation is served, from what it asks now and what it had.

    Requests for one prefix conflict. A relation in conflict keeps the route
    it was served before, if any; a request for the prefix such a kept route
    holds is in conflict too.
    """
    conflicted: set[int] = set()
    while True:
        claims: dict[str, set[int]] = {}
        for rid, route in requests.items():
            if rid not in conflicted:
                claims.setdefault(route.prefix, set()).add(rid)
            elif rid in served:
                claims.setdefault(served[rid].prefix, set()).add(rid)
        clashing = {rid for ids in claims.values() if len(ids) > 1 for rid in ids}
        if clashing <= conflicted:
            break
        conflicted |= clashing
    routes = {rid: r for rid, r in requests.items() if rid not in conflicted}
    routes |= {rid: served[rid] for rid in conflicted if rid in served}
    conflicts = []
    for prefix in sorted({requests[rid].prefix for rid in conflicted}):
        apps = {requests[rid].app for rid in conflicted if requests[rid].prefix == prefix}
        apps |= {
            served[rid].app for rid in conflicted if rid in served and served[rid].prefix == prefix
        }
        conflicts.append(Conflict(prefix, tuple(sorted(apps))))
    return RoutePlan(routes=routes, conflicts=tuple(conflicts))


def virtual_services(routes: Mapping[int, Route]) -> list[tuple[str, Route]]:
    """Each route with its VirtualService's name (`ingress-<app>`), in relation order.

    An application related twice gets the relation id in its second name.
    """
    named: list[tuple[str, Route]] = []
    taken: set[str] = set()
    for rid in sorted(routes):
        route = routes[rid]
        name = f"ingress-{route.app}"[:63].rstrip("-")
        if name in taken:
            name = f"ingress-{route.app}"[: 62 - len(str(rid))].rstrip("-") + f"-{rid}"
        taken.add(name)
        named.append((name, route))
    return named


def base_url(*, tls: bool, external_hostname: str, lb_address: str | None, namespace: str) -> str:
    """Where the gateway is reached, without a trailing slash."""
    scheme = "https" if tls else "http"
    host = external_hostname or lb_address or f"{GATEWAY_NAME}.{namespace}.svc.cluster.local"
    return f"{scheme}://{host}"


def auth_rules(routes: Mapping[int, Route]) -> list[dict[str, list[str]]]:
    """The requests that need a login: everything through the gateway but the open routes.

    Closed by default: a path no route claims (the notebook controller's own
    VirtualServices under `/notebook/`, say) needs a login too. Only the
    routes asked for without login (the identity provider, the OIDC
    callback) are left out, and a protected route under one of those is
    checked again, longest prefix first, as routing matches.
    """
    protected = sorted({r.prefix for r in routes.values() if r.auth})
    open_ = sorted({r.prefix for r in routes.values() if not r.auth})
    rules: list[dict[str, list[str]]] = []
    if "/" not in open_:
        rule = {"paths": ["/*"]}
        if open_:
            rule["notPaths"] = [f"{p}*" for p in open_]
        rules.append(rule)
    for prefix in protected:
        if not any(prefix != o and prefix.startswith(o) for o in open_):
            continue  # covered by the rule above
        rule = {"paths": [f"{prefix}*"]}
        skipped = [f"{p}*" for p in open_ if p != prefix and p.startswith(prefix)]
        if skipped:
            rule["notPaths"] = skipped
        rules.append(rule)
    return rules


def tls_context(cert: str, key: str) -> dict[str, str]:
    """The gateway Secret's data, base64."""
    return {
        "cert_b64": base64.b64encode(cert.encode()).decode(),
        "key_b64": base64.b64encode(key.encode()).decode(),
    }
