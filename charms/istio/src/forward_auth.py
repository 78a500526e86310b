"""The login check in front of authenticated routes, from the `forward_auth` relation.

The provider (the OIDC gateway, or Canonical's oauth2-proxy-k8s) writes, in
its application databag, JSON-encoded as charmlibs-interfaces-forward-auth
does: `decisions_address` (the URL of its decision endpoint), `app_names`
and `headers` (the headers of its answer passed upstream on an allowed
request). Like istio-ingress-k8s, the gateway takes the service host and
port of the decisions address and asks it about every request to an
authenticated route, through Istio's `envoyExtAuthzHttp` extension provider.

Two keys of ours, which Canonical's charms neither write nor read, say which
of those headers names the user and what prefix its value has:
`kubeflow_user_header` and `kubeflow_user_prefix`. Without them the user
header is `kubeflow-userid` with no prefix, as Canonical's Kubeflow charms
assume.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from kubeflow_interfaces import istio_ingress_route

DECISIONS_ADDRESS = "decisions_address"
APP_NAMES = "app_names"
HEADERS = "headers"
# Ours, on the same databag: the same keys, and defaults, as on istio_ingress_route.
USER_HEADER = istio_ingress_route.USER_HEADER_KEY
USER_PREFIX = istio_ingress_route.USER_PREFIX_KEY
DEFAULT_USER_HEADER = istio_ingress_route.DEFAULT_USER_HEADER
INGRESS_APP_NAMES = "ingress_app_names"  # what the requirer (the gateway) writes

# The wire format says nothing of these: what the gateway sends to the decision
# service (credentials, and where the browser was going so that a login can send it
# back), and which headers of a denial reach the browser (the redirect to the
# identity provider and the cookie set with it).
INCLUDE_REQUEST_HEADERS = (
    "accept",  # oauth2-proxy answers 401, not a redirect, to a script's request
    "authorization",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
)
HEADERS_TO_DOWNSTREAM_ON_DENY = ("content-type", "location", "set-cookie")

_HEADER = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_PRINTABLE = re.compile(r"^[\x21-\x7e]{0,64}$")


@dataclasses.dataclass(frozen=True)
class LoginCheck:
    """Where the gateway asks about a request, and what the answer passes upstream."""

    host: str
    port: int
    headers: tuple[str, ...]
    user_header: str
    user_prefix: str


def _value(data: Mapping[str, str], key: str) -> object:
    """A databag value as the forward-auth library reads it: JSON when it parses."""
    raw = data.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse(data: Mapping[str, str]) -> LoginCheck | None:
    """The provider's data; None while it has sent no decisions address.

    ValueError names what does not parse.
    """
    address = _value(data, DECISIONS_ADDRESS)
    if address is None:
        return None
    if not isinstance(address, str):
        raise ValueError("decisions_address must be a URL")
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("decisions_address must be an http(s) URL")
    if not _HOST.match(parts.hostname):
        raise ValueError("decisions_address must name a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("decisions_address has an invalid port") from None
    apps = _value(data, APP_NAMES)
    if apps is not None and (
        not isinstance(apps, list) or not all(isinstance(a, str) for a in apps)
    ):
        raise ValueError("app_names must be a list of names")
    headers = _value(data, HEADERS) or []
    if not isinstance(headers, list) or not all(
        isinstance(h, str) and _HEADER.match(h) for h in headers
    ):
        raise ValueError("headers must be a list of header names")
    user_header = _value(data, USER_HEADER)
    if user_header is None:
        user_header = DEFAULT_USER_HEADER
    if not isinstance(user_header, str) or not _HEADER.match(user_header):
        raise ValueError(f"{USER_HEADER} must be a header name")
    user_prefix = _value(data, USER_PREFIX)
    if user_prefix is None:
        user_prefix = ""
    if not isinstance(user_prefix, str) or not _PRINTABLE.match(user_prefix):
        raise ValueError(f"{USER_PREFIX} must be at most 64 printable characters")
    return LoginCheck(
        host=parts.hostname,
        port=port,
        headers=tuple(dict.fromkeys(h.lower() for h in headers)),
        user_header=user_header.lower(),
        user_prefix=user_prefix,
    )
