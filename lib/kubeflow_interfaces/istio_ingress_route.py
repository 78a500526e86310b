"""The `istio_ingress_route` interface: a UI's route through the mesh's gateway.

The wire format is the ecosystem's, from the `charmlibs-interfaces-istio-ingress-route`
package (application databags, every value a string):

- requirer: `config`, an `IstioIngressRouteConfig` as JSON: the model, the
  gateway listeners, and HTTP routes in Gateway API shape (a PathPrefix
  match, an optional URLRewrite filter with ReplacePrefixMatch, the backend
  service and port).
- provider (the mesh): `external_host` and `tls_enabled` (`True` or
  `False`), once it serves the route.

Ours, on the provider's databag, which the ecosystem's charms neither write
nor read: `kubeflow_user_header`, the request header that carries the
logged-in user's id on every authenticated request, and
`kubeflow_user_prefix`, the text before the id in it. Plain strings; absent
means `kubeflow-userid` and no prefix. The login (the OIDC gateway) decides
them, and the mesh passes them on to every UI, so all read one setting.

Whether a route needs a login is not in the data: the mesh decides by the
endpoint the requirer is related to (`istio-ingress-route` or
`istio-ingress-route-unauthenticated`); requirers use `istio-ingress-route`.

This module builds and compares the requirer's config as plain data and
imports the ecosystem library only to validate and serialise a config it
writes, so a hook with nothing to change does not load it (its pydantic
models cost about as much to import as `ops`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any

import ops

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "istio_ingress_route"
ENDPOINT = "istio-ingress-route"
CONFIG_KEY = "config"
EXTERNAL_HOST_KEY = "external_host"
TLS_ENABLED_KEY = "tls_enabled"
USER_HEADER_KEY = "kubeflow_user_header"
USER_PREFIX_KEY = "kubeflow_user_prefix"
DEFAULT_USER_HEADER = "kubeflow-userid"
DEFAULT_USER_PREFIX = ""

HTTP_PORT = 80
HTTPS_PORT = 443

# "/" or "/a/b": a Gateway API path without a trailing slash or empty segments.
_PATH = re.compile(r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# An HTTP header name (an RFC 9110 token) and a prefix of printable ASCII without spaces.
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_USER_PREFIX = re.compile(r"^[\x21-\x7e]{0,128}$")
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


class InvalidRouteDataError(Exception):
    """The provider's databag does not parse."""


def check_path(name: str, value: str) -> str:
    """`value` if it is a route path (`/` or `/a/b`, no trailing slash); ValueError names it."""
    if not _PATH.match(value):
        raise ValueError(f"{name}: {value!r} must be / or a path like /app (no trailing /)")
    return value


def route_config(
    *,
    model: str,
    name: str,
    prefix: str,
    port: int,
    service: str,
    rewrite: str | None = None,
    tls_enabled: bool = False,
) -> dict[str, Any]:
    """The requirer's `config` as plain data: one listener, one HTTP route to one backend.

    The listener is port 443 once the gateway says TLS is enabled, 80 before,
    as Canonical's kubeflow-dashboard charm asks (`_ambient_mesh_ingress`).
    """
    listener = {"port": HTTPS_PORT if tls_enabled else HTTP_PORT, "protocol": "HTTP"}
    route: dict[str, Any] = {
        "name": name,
        "listener": listener,
        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
        "backends": [{"service": service, "port": port}],
    }
    if rewrite is not None:
        route["filters"] = [
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite}
                },
            }
        ]
    return {"model": model, "listeners": [listener], "http_routes": [route]}


def normalise(value: Any) -> Any:
    """`value` without the nulls and empty lists and maps a serialiser writes for defaults."""
    if isinstance(value, dict):
        pairs = ((k, normalise(v)) for k, v in value.items())
        return {k: v for k, v in pairs if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def same_config(written: str | None, wanted: dict[str, Any]) -> bool:
    """Whether the JSON in the databag says what `wanted` says."""
    if not written:
        return False
    try:
        return normalise(json.loads(written)) == normalise(wanted)
    except json.JSONDecodeError:
        return False


def dump_config(config: dict[str, Any]) -> str:
    """`config` validated by the ecosystem's model and serialised as its requirer does."""
    from charmlibs.interfaces.istio_ingress_route import IstioIngressRouteConfig

    return IstioIngressRouteConfig.model_validate(config).model_dump_json()


def _url_host(value: str) -> str:
    """`host[:port]` as it goes in a URL; InvalidRouteDataError if it is not one."""
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return f"[{address}]" if address.version == 6 else str(address)
    host, _, port = value.partition(":")
    if _HOSTNAME.match(host) and (not port or (port.isdigit() and 0 < int(port) < 65536)):
        return value
    raise InvalidRouteDataError(f"external_host {value!r} is not a host name or address")


class RouteRequirer:
    """Requirer side: ask for a route at `prefix`, read its URL and the user header back."""

    def __init__(
        self,
        charm: ops.CharmBase,
        endpoint: str = ENDPOINT,
        *,
        prefix: str,
        port: int,
        rewrite: str | None = None,
        service: str | None = None,
    ):
        """Raises ValueError when the prefix, rewrite, port or service is not valid."""
        self._charm = charm
        self._endpoint = endpoint
        self.prefix = check_path("prefix", prefix)
        self.rewrite = None if rewrite is None else check_path("rewrite", rewrite)
        if not 0 < port < 65536:
            raise ValueError(f"port: {port} is not a port number")
        self.port = port
        self.service = service or charm.app.name
        if not _DNS_LABEL.match(self.service):
            raise ValueError(f"service: {self.service!r} is not a Kubernetes service name")

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one."""
        return self._charm.model.get_relation(self._endpoint)

    def _remote(self) -> ops.RelationDataContent | dict[str, str]:
        relation = self.relation
        if relation is None or relation.app is None:
            return {}
        return relation.data[relation.app]

    @property
    def tls_enabled(self) -> bool:
        """Whether the gateway serves HTTPS (as the ecosystem's requirer reads it)."""
        return self._remote().get(TLS_ENABLED_KEY, "False") == "True"

    def config(self) -> dict[str, Any]:
        """The config this requirer asks for, as plain data."""
        return route_config(
            model=self._charm.model.name,
            name=self._charm.app.name,
            prefix=self.prefix,
            port=self.port,
            service=self.service,
            rewrite=self.rewrite,
            tls_enabled=self.tls_enabled,
        )

    def publish(self, config: dict[str, Any] | None = None) -> bool:
        """Write the config (leader only, only when it says something new). Whether it wrote.

        `config`: what to ask for, when it is more than this requirer's own
        (`config()`, the default): other route names, other routes.
        """
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return False
        databag = relation.data[self._charm.app]
        wanted = self.config() if config is None else config
        if same_config(databag.get(CONFIG_KEY), wanted):
            return False
        databag[CONFIG_KEY] = dump_config(wanted)
        return True

    @property
    def url(self) -> str | None:
        """The route's external URL, None until the provider serves it.

        Raises InvalidRouteDataError when the provider's host is not a host.
        """
        host = self._remote().get(EXTERNAL_HOST_KEY, "")
        if not host:
            return None
        scheme = "https" if self.tls_enabled else "http"
        return f"{scheme}://{_url_host(host)}{self.prefix}"

    @property
    def user_header(self) -> tuple[str, str]:
        """The user-id header and the prefix of its value, defaults until the provider says.

        Raises InvalidRouteDataError when either is not valid.
        """
        remote = self._remote()
        header = remote.get(USER_HEADER_KEY) or DEFAULT_USER_HEADER
        prefix = remote.get(USER_PREFIX_KEY) or DEFAULT_USER_PREFIX
        if not _HEADER.match(header):
            raise InvalidRouteDataError(f"{USER_HEADER_KEY} {header!r} is not a header name")
        if not _USER_PREFIX.match(prefix):
            raise InvalidRouteDataError(
                f"{USER_PREFIX_KEY} must be at most 128 printable characters without spaces"
            )
        return header, prefix


# --- helpers for charm tests -------------------------------------------------


def config_json(
    *,
    model: str = "kubeflow",
    app: str = "app",
    prefix: str = "/app",
    port: int = 8080,
    rewrite: str | None = None,
    service: str | None = None,
    listener_port: int = HTTP_PORT,
) -> str:
    """A requirer's `config` built with the ecosystem library's own models."""
    from charmlibs.interfaces.istio_ingress_route import (
        BackendRef,
        HTTPPathMatch,
        HTTPPathMatchType,
        HTTPRoute,
        HTTPRouteMatch,
        IstioIngressRouteConfig,
        Listener,
        PathModifier,
        PathModifierType,
        ProtocolType,
        URLRewriteFilter,
        URLRewriteSpec,
    )

    listener = Listener(port=listener_port, protocol=ProtocolType.HTTP)
    filters: list[Any] | None = None
    if rewrite is not None:
        modifier = PathModifier(type=PathModifierType.ReplacePrefixMatch, value=rewrite)
        filters = [URLRewriteFilter(urlRewrite=URLRewriteSpec(path=modifier))]
    route = HTTPRoute(
        name=app,
        listener=listener,
        matches=[
            HTTPRouteMatch(path=HTTPPathMatch(type=HTTPPathMatchType.PathPrefix, value=prefix))
        ],
        backends=[BackendRef(service=service or app, port=port)],
        filters=filters,
    )
    config = IstioIngressRouteConfig(model=model, listeners=[listener], http_routes=[route])
    return config.model_dump_json()


def relation_for_provider(
    endpoint: str = ENDPOINT,
    *,
    model: str = "kubeflow",
    app: str = "app",
    prefix: str = "/app",
    port: int = 8080,
    rewrite: str | None = None,
    remote_app_name: str = "app",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the mesh sees it: a requirer's config, as the ecosystem library writes it."""
    from ops import testing

    config = config_json(model=model, app=app, prefix=prefix, port=port, rewrite=rewrite)
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={CONFIG_KEY: config},
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = ENDPOINT,
    *,
    external_host: str | None = "10.0.0.1",
    tls_enabled: bool = False,
    user_header: str | None = None,
    user_prefix: str | None = None,
    remote_app_name: str = "istio",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as a UI sees it: the mesh's host (None: not served yet) and the user header."""
    from ops import testing

    data: dict[str, str] = {}
    if external_host is not None:
        data = {EXTERNAL_HOST_KEY: external_host, TLS_ENABLED_KEY: str(tls_enabled)}
    if user_header is not None:
        data[USER_HEADER_KEY] = user_header
    if user_prefix is not None:
        data[USER_PREFIX_KEY] = user_prefix
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=data,
        **kwargs,
    )
