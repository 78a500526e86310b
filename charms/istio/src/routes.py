"""Routes through the gateway: what each related application asks for, checked and planned.

Two interfaces ask for routes, each on an endpoint that needs a login and
one that does not:

- `istio_ingress_route` (`istio-ingress-route`, `istio-ingress-route-unauthenticated`):
  Gateway API shaped HTTP routes (PathPrefix and Exact matches, method and
  header matches, URLRewrite filters, weighted backends), as Canonical's
  Kubeflow charms send them;
- `ingress` v2 (`ingress`, `ingress-unauthenticated`): one route per
  application, served at `/{model}-{app}` as Canonical's istio-ingress-k8s
  serves it, the prefix stripped on request.

Both become one `Request` per relation. A request is refused as a whole,
with a reason, when it asks for what the gateway cannot serve or what would
open what must stay closed: an unauthenticated route at `/`, anything at or
under `/notebook` (the notebook controller's per-notebook routes), paths
with dot segments, percent-encoded separators or wildcards. Requests of
different relations that claim one path, or where an unauthenticated prefix
would be a parent of an authenticated path, conflict: neither changes, and a
relation in conflict keeps what it was served before, so a newcomer can
never take a working route over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Paths no route of a related application may claim: the notebook controller makes
# its own VirtualServices under /notebook/<namespace>/<name>/ on our gateway.
RESERVED_PREFIX = "/notebook"
# Listeners the gateway serves (its Gateway's servers): plain HTTP, and HTTPS with TLS.
LISTENER_PORTS = (80, 443)

_SEGMENT_CHARS = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# Percent-encoded characters that separate or walk path segments: / \ .
_ENCODED_SEPARATORS = {"2f", "5c", "2e"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(\*\.)?(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,4096}$")
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE")


class RefusedError(ValueError):
    """A route request the gateway will not serve; the message says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Match:
    """One path (and optional method and header) a route matches."""

    kind: str  # "prefix" (Gateway API PathPrefix, segment-wise) or "exact"
    path: str
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Backend:
    """A Service the route sends requests to."""

    host: str
    port: int
    weight: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class HttpRoute:
    """One HTTP route of a request."""

    name: str
    matches: tuple[Match, ...]
    backends: tuple[Backend, ...]
    hostnames: tuple[str, ...] = ()
    replace_prefix: str | None = None  # URLRewrite ReplacePrefixMatch
    replace_full: str | None = None  # URLRewrite ReplaceFullPath (exact matches only)
    rewrite_host: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """What one relation asks for."""

    relation_id: int
    endpoint: str
    app: str
    auth: bool
    routes: tuple[HttpRoute, ...]
    url_path: str = ""  # the path its URL is published with (ingress v2)

    @property
    def paths(self) -> frozenset[str]:
        """Every path it claims."""
        return frozenset(m.path for r in self.routes for m in r.matches)

    @property
    def open_prefixes(self) -> frozenset[str]:
        """The prefixes it opens without a login."""
        if self.auth:
            return frozenset()
        return frozenset(m.path for r in self.routes for m in r.matches if m.kind == "prefix")

    def to_dict(self) -> dict[str, Any]:
        """As kept in the peer databag."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        """Back from the peer databag; TypeError/KeyError/ValueError when malformed."""
        routes = []
        for r in data["routes"]:
            matches = tuple(
                Match(
                    kind=str(m["kind"]),
                    path=str(m["path"]),
                    method=m.get("method"),
                    headers=tuple((str(k), str(v)) for k, v in m.get("headers", ())),
                )
                for m in r["matches"]
            )
            backends = tuple(
                Backend(host=str(b["host"]), port=int(b["port"]), weight=b.get("weight"))
                for b in r["backends"]
            )
            routes.append(
                HttpRoute(
                    name=str(r["name"]),
                    matches=matches,
                    backends=backends,
                    hostnames=tuple(str(h) for h in r.get("hostnames", ())),
                    replace_prefix=r.get("replace_prefix"),
                    replace_full=r.get("replace_full"),
                    rewrite_host=r.get("rewrite_host"),
                )
            )
        return cls(
            relation_id=int(data["relation_id"]),
            endpoint=str(data["endpoint"]),
            app=str(data["app"]),
            auth=bool(data["auth"]),
            routes=tuple(routes),
            url_path=str(data.get("url_path", "")),
        )


def dump_requests(requests: Mapping[int, Request]) -> str:
    """Requests as peer databag text (stable order)."""
    return json.dumps([requests[i].to_dict() for i in sorted(requests)], sort_keys=True)


def load_requests(text: str | None) -> dict[int, Request]:
    """Requests back from the peer databag; what does not parse is forgotten."""
    if not text:
        return {}
    try:
        items = json.loads(text)
        requests = [Request.from_dict(item) for item in items]
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {r.relation_id: r for r in requests}


def digest(parts: Iterable[object]) -> str:
    """A short stable digest of what the routes were read from."""
    text = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- checks -------------------------------------------------------------------------


def check_path(path: str) -> str:
    """A path a route may match or rewrite to; RefusedError says what is wrong."""
    if not _SEGMENT_CHARS.match(path):
        raise RefusedError(
            f"path {path!r} must start with / and hold only URL path characters "
            "(no wildcards, spaces, query or fragment)"
        )
    encoded = {e.lower() for e in _PERCENT.findall(path)}
    if encoded & _ENCODED_SEPARATORS:
        raise RefusedError(f"path {path!r} holds a percent-encoded separator or dot")
    if re.search(r"%(?![0-9A-Fa-f]{2})", path):
        raise RefusedError(f"path {path!r} holds a malformed percent-encoding")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise RefusedError(f"path {path!r} holds a dot segment")
    if "//" in path:
        raise RefusedError(f"path {path!r} holds an empty segment")
    return path


def normalise_prefix(path: str) -> str:
    """A PathPrefix value as the gateway matches it: segment-wise, no trailing slash."""
    return path.rstrip("/") or "/"


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, segment-wise."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def check_request(request: Request) -> Request:
    """Refuse what no relation may ask for, whatever the others ask."""
    if not request.routes:
        raise RefusedError("no HTTP route asked for")
    for route in request.routes:
        if not request.auth and route.hostnames:
            # The login check sees paths only: a condition would open the path to all.
            raise RefusedError("an unauthenticated route may not be limited to hostnames")
        for match in route.matches:
            if not request.auth and (match.method or match.headers):
                raise RefusedError(
                    "an unauthenticated route may match by path only (no method or headers)"
                )
            if match.kind == "prefix" and match.path == "/" and not request.auth:
                raise RefusedError("an unauthenticated route may not claim /")
            if under(match.path, RESERVED_PREFIX) or (
                match.kind == "prefix" and match.path != "/" and under(RESERVED_PREFIX, match.path)
            ):
                raise RefusedError(
                    f"{match.path} is reserved for the notebook controller's routes"
                )
    return request


# --- istio_ingress_route --------------------------------------------------------------


def from_istio_ingress_route(
    config: Any, *, relation_id: int, endpoint: str, app: str, auth: bool
) -> Request:
    """A request from an `IstioIngressRouteConfig` (the ecosystem library's model)."""
    if getattr(config, "grpc_routes", None):
        raise RefusedError("gRPC routes are not served by this gateway")
    if not _DNS_LABEL.match(config.model):
        raise RefusedError(f"model {config.model!r} is not a namespace name")
    for listener in config.listeners:
        _check_listener(listener)
    routes = []
    for route in config.http_routes:
        _check_listener(route.listener)
        routes.append(_http_route(route, config.model))
    return check_request(
        Request(
            relation_id=relation_id, endpoint=endpoint, app=app, auth=auth, routes=tuple(routes)
        )
    )


def _check_listener(listener: Any) -> None:
    protocol = getattr(listener.protocol, "value", listener.protocol)
    if protocol != "HTTP":
        raise RefusedError(f"listener protocol {protocol} is not served (HTTP only)")
    if listener.port not in LISTENER_PORTS:
        raise RefusedError(
            f"listener port {listener.port} is not served (the gateway listens on 80 and 443)"
        )


def _http_route(route: Any, model: str) -> HttpRoute:
    name = str(route.name)
    if not route.backends:
        raise RefusedError(f"route {name!r} has no backend")
    backends = []
    for backend in route.backends:
        if not _DNS_LABEL.match(backend.service):
            raise RefusedError(f"backend {backend.service!r} is not a Service name")
        backends.append(
            Backend(
                host=f"{backend.service}.{model}.svc.cluster.local",
                port=backend.port,
                weight=backend.weight,
            )
        )
    hostnames = tuple(route.hostnames or ())
    for host in hostnames:
        if not _HOSTNAME.match(host):
            raise RefusedError(f"hostname {host!r} is not a DNS name")
    matches = tuple(_match(m) for m in (route.matches or [])) or (Match(kind="prefix", path="/"),)
    replace_prefix, replace_full, rewrite_host = _rewrite(name, route.filters or [], matches)
    return HttpRoute(
        name=name,
        matches=matches,
        backends=tuple(backends),
        hostnames=hostnames,
        replace_prefix=replace_prefix,
        replace_full=replace_full,
        rewrite_host=rewrite_host,
    )


def _rewrite(
    name: str, filters: list[Any], matches: tuple[Match, ...]
) -> tuple[str | None, str | None, str | None]:
    """A route's URLRewrite filters: (ReplacePrefixMatch, ReplaceFullPath, hostname)."""
    replace_prefix = replace_full = rewrite_host = None
    for f in filters:
        kind = getattr(f.type, "value", f.type)
        if kind != "URLRewrite":
            raise RefusedError(f"route {name!r}: {kind} filters are not served")
        spec = f.urlRewrite
        if spec.hostname is not None:
            if not _HOSTNAME.match(spec.hostname) or spec.hostname.startswith("*."):
                raise RefusedError(f"rewrite hostname {spec.hostname!r} is not a DNS name")
            rewrite_host = spec.hostname
        if spec.path is None:
            continue
        value = check_path(spec.path.value)
        if getattr(spec.path.type, "value", spec.path.type) == "ReplacePrefixMatch":
            replace_prefix = value
        elif any(m.kind != "exact" for m in matches):
            raise RefusedError(f"route {name!r}: ReplaceFullPath is served on Exact matches only")
        else:
            replace_full = value
    return replace_prefix, replace_full, rewrite_host


def _match(match: Any) -> Match:
    path_match = match.path
    kind, path = "prefix", "/"
    if path_match is not None:
        path_type = getattr(path_match.type, "value", path_match.type)
        if path_type == "RegularExpression":
            raise RefusedError("RegularExpression path matches are not served")
        path = check_path(path_match.value)
        if path_type == "PathPrefix":
            path = normalise_prefix(path)
        else:
            kind = "exact"
    method = getattr(match.method, "value", match.method)
    if method is not None and method not in _METHODS:
        raise RefusedError(f"method {method!r} is not an HTTP method")
    headers = []
    for header, value in sorted((match.headers or {}).items()):
        if not _HEADER_NAME.match(header) or not _HEADER_VALUE.match(value):
            raise RefusedError(f"header match {header!r} is not a valid header")
        headers.append((header.lower(), value))
    return Match(kind=kind, path=path, method=method, headers=tuple(headers))


# --- ingress v2 ---------------------------------------------------------------------


def from_ingress_v2(
    data: Any, *, relation_id: int, endpoint: str, app: str, auth: bool, path: str
) -> Request:
    """A request from an ingress v2 requirer's data, served at `path`."""
    if data.scheme != "http":
        raise RefusedError(f"scheme {data.scheme!r} is not served (http only)")
    if not _DNS_LABEL.match(data.model) or not _DNS_LABEL.match(data.name):
        raise RefusedError("model and name must be Kubernetes names")
    route = HttpRoute(
        name=data.name,
        matches=(Match(kind="prefix", path=check_path(path)),),
        backends=(
            Backend(host=f"{data.name}.{data.model}.svc.cluster.local", port=int(data.port)),
        ),
        replace_prefix="/" if data.strip_prefix else None,
    )
    return check_request(
        Request(
            relation_id=relation_id,
            endpoint=endpoint,
            app=app,
            auth=auth,
            routes=(route,),
            url_path=path,
        )
    )


# --- planning -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Conflict:
    """Applications whose requests overlap."""

    apps: tuple[str, ...]
    reason: str

    def message(self) -> str:
        """For the status."""
        return f"{self.reason}: neither route changed"


@dataclasses.dataclass(frozen=True)
class RoutePlan:
    """The requests to serve, by relation id, and the conflicts that held some back."""

    routes: dict[int, Request]
    conflicts: tuple[Conflict, ...]


def clash(a: Request, b: Request) -> str | None:
    """Why two relations' requests cannot both be served, or None."""
    shared = sorted(a.paths & b.paths)
    if shared:
        return f"{shared[0]} is claimed by {' and '.join(sorted({a.app, b.app}))}"
    for opener, other in ((a, b), (b, a)):
        if not other.auth:
            continue
        for prefix in sorted(opener.open_prefixes):
            for path in sorted(other.paths):
                if under(path, prefix):
                    return (
                        f"unauthenticated {prefix} of {opener.app} would open "
                        f"{path} of {other.app}"
                    )
    return None


def plan_routes(requests: Mapping[int, Request], served: Mapping[int, Request]) -> RoutePlan:
    """Decide what each relation is served, from what it asks now and what it had.

    Requests that clash are both held back. A relation held back keeps what
    it was served before, if anything, and that kept route can hold back
    others in turn.
    """
    conflicted: set[int] = set()
    found: dict[frozenset[int], str] = {}
    while True:
        current = {
            rid: served.get(rid) if rid in conflicted else request
            for rid, request in requests.items()
        }
        ids = sorted(rid for rid, r in current.items() if r is not None)
        clashing: set[int] = set()
        for i, a_id in enumerate(ids):
            for b_id in ids[i + 1 :]:
                a, b = current[a_id], current[b_id]
                assert a is not None and b is not None
                reason = clash(a, b)
                if reason is not None:
                    clashing |= {a_id, b_id}
                    found.setdefault(frozenset((a_id, b_id)), reason)
        if clashing <= conflicted:
            break
        conflicted |= clashing
    routes = {rid: r for rid, r in requests.items() if rid not in conflicted}
    routes |= {rid: served[rid] for rid in conflicted if rid in served}
    conflicts = sorted(
        {
            Conflict(tuple(sorted({requests[i].app for i in pair})), reason)
            for pair, reason in found.items()
        },
        key=lambda c: (c.reason, c.apps),
    )
    return RoutePlan(routes=routes, conflicts=tuple(conflicts))


# --- rendering ----------------------------------------------------------------------


def virtual_services(
    routes: Mapping[int, Request], strip_headers: Iterable[str]
) -> list[dict[str, Any]]:
    """The VirtualServices that serve the routes: one per set of hostnames.

    Every route of every application sharing hostnames is one VirtualService, its
    rules ordered as Gateway API orders matches (exact before prefix, longer
    paths first, more conditions first), since Istio matches rules in order and
    orders rules of separate VirtualServices only by creation time. Routes that
    need no login drop the client's copies of the identity headers.
    """
    strip = sorted({h.lower() for h in strip_headers})
    groups: dict[tuple[str, ...], list[tuple[tuple[Any, ...], int, dict[str, Any]]]] = {}
    order = 0
    for rid in sorted(routes):
        request = routes[rid]
        for route in request.routes:
            hosts = tuple(sorted(route.hostnames)) or ("*",)
            for key, rule in _rules(request, route, strip):
                groups.setdefault(hosts, []).append((key, order, rule))
                order += 1
    services = []
    for hosts in sorted(groups):
        suffix = "" if hosts == ("*",) else "-" + digest(hosts)[:8]
        rules = [rule for _, _, rule in sorted(groups[hosts], key=lambda e: (e[0], e[1]))]
        services.append({"name": f"gateway-routes{suffix}", "hosts": list(hosts), "http": rules})
    return services


def _rules(
    request: Request, route: HttpRoute, strip: list[str]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    out = []
    for match in route.matches:
        if match.kind == "exact":
            uris = [({"exact": match.path}, route.replace_full or route.replace_prefix)]
        elif match.path == "/":
            uris = [({"prefix": "/"}, _dir(route.replace_prefix))]
        else:
            # PathPrefix /a matches /a and /a/..., not /ab: two Istio matches.
            uris = [
                ({"prefix": match.path + "/"}, _dir(route.replace_prefix)),
                ({"exact": match.path}, route.replace_prefix),
            ]
        for uri, rewrite_uri in uris:
            condition: dict[str, Any] = {"uri": uri}
            if match.method:
                condition["method"] = {"exact": match.method}
            if match.headers:
                condition["headers"] = {name: {"exact": value} for name, value in match.headers}
            rule: dict[str, Any] = {"name": f"{request.app}-{route.name}", "match": [condition]}
            rewrite = {}
            if rewrite_uri is not None:
                rewrite["uri"] = rewrite_uri
            if route.rewrite_host:
                rewrite["authority"] = route.rewrite_host
            if rewrite:
                rule["rewrite"] = rewrite
            if not request.auth and strip:
                rule["headers"] = {"request": {"remove": strip}}
            rule["route"] = _destinations(route.backends)
            exact = "exact" in uri
            path = uri.get("exact") or uri.get("prefix") or "/"
            conditions = (1 if match.method else 0) + len(match.headers)
            out.append(((0 if exact else 1, -len(path), -conditions), rule))
    return out


def _dir(value: str | None) -> str | None:
    """A prefix rewrite for the `/a/` form of a match: keep the segment boundary."""
    if value is None:
        return None
    return value.rstrip("/") + "/"


def _destinations(backends: tuple[Backend, ...]) -> list[dict[str, Any]]:
    """The backends; several share the traffic in proportion to their weights (1 if unset)."""
    if len(backends) == 1:
        b = backends[0]
        return [{"destination": {"host": b.host, "port": {"number": b.port}}}]
    return [
        {"destination": {"host": b.host, "port": {"number": b.port}}, "weight": b.weight or 1}
        for b in backends
    ]


# The gateway's public listeners (templates/gateway.yaml.j2: the Service's 80 and 443
# go to these container ports). An AuthorizationPolicy on a gateway matches the port
# the gateway listens on.
PUBLIC_PORTS = ("8080", "8443")


def auth_rules(routes: Mapping[int, Request]) -> list[dict[str, list[str]]]:
    """The requests that need a login: everything through the public listeners but open routes.

    Closed by default: a path no route claims (the notebook controller's own
    VirtualServices under `/notebook/`, say) needs a login too. An open
    prefix can never be a parent of an authenticated path (such requests
    clash), so one rule says it all. Only the public listeners: a listener
    another charm adds on the gateway's pods for cluster-local traffic
    (Knative's local gateway on 8081, which only a ClusterIP Service
    reaches) is not asked to log in; identity headers are stripped there
    too.
    """
    open_paths: set[str] = set()
    for request in routes.values():
        if request.auth:
            continue
        for route in request.routes:
            for match in route.matches:
                open_paths.add(match.path)
                if match.kind == "prefix":
                    open_paths.add(match.path + "/*")
    rule: dict[str, list[str]] = {"ports": list(PUBLIC_PORTS), "paths": ["/*"]}
    if open_paths:
        rule["notPaths"] = sorted(open_paths)
    return [rule]


def strip_headers_lua(headers: Iterable[str]) -> str:
    """A Lua filter body that removes the headers from every request (names already checked)."""
    lines = [
        "function envoy_on_request(request_handle)",
        "  local headers = request_handle:headers()",
    ]
    lines += [f'  headers:remove("{h}")' for h in sorted({h.lower() for h in headers})]
    lines.append("end")
    return "\n".join(lines) + "\n"
