"""The oauth2-proxy workload: its configuration files, secret files and Pebble layer.

oauth2-proxy reads two files here: the TOML configuration (`--config`) for
the cookie, sign-in and logging settings, and the alpha YAML configuration
(`--alpha-config`) for what only that format can express: the identity
provider, a static upstream, and response headers with any name (the
user-id header, with an optional prefix). The cookie key and the client
secret are in files of their own, mode 0600 and owned by the proxy's user,
which the configuration files name; neither is on the command line, in the
Pebble plan or in a log line.

Nothing here sets status or reads config: the charm decides, this module does.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import secrets
from typing import Any

import ops
import yaml

from kubeflow_charms.pebble import plan_has

logger = logging.getLogger(__name__)

SERVICE = "oauth2-proxy"
PORT = 4180
PROXY_PREFIX = "/oauth2"
CALLBACK_PATH = f"{PROXY_PREFIX}/callback"
# Health endpoints, answered without a login. Under the proxy's own prefix
# rather than at the default /ping and /ready: the mesh asks about every path
# of an authenticated route, and a route at / would let those two through.
PING_PATH = f"{PROXY_PREFIX}/ping"
READY_PATH = f"{PROXY_PREFIX}/ready"
ALIVE_CHECK = "oauth2-proxy-alive"
READY_CHECK = "oauth2-proxy-ready"
# The upstream image is distroless, running as its `nonroot` user.
USER_ID = 65532
GROUP_ID = 65532

CONFIG_DIR = "/etc/oauth2-proxy"
CONFIG_FILE = f"{CONFIG_DIR}/oauth2-proxy.cfg"
ALPHA_CONFIG_FILE = f"{CONFIG_DIR}/alpha-config.yaml"
PROVIDER_CA_FILE = f"{CONFIG_DIR}/provider-ca.crt"
SECRETS_DIR = f"{CONFIG_DIR}/secrets"
COOKIE_SECRET_FILE = f"{SECRETS_DIR}/cookie-secret"
CLIENT_SECRET_FILE = f"{SECRETS_DIR}/client-secret"
COMMAND = f"/bin/oauth2-proxy --config={CONFIG_FILE} --alpha-config={ALPHA_CONFIG_FILE}"

# oauth2-proxy expands `$NAME` and `${NAME}` in the alpha configuration from its
# environment before it parses it, and reads `$$` as a `$`; a `$` before a digit it
# keeps as it is (it doubles that one itself first).
_EXPANDED_DOLLAR = re.compile(r"\$(?!\d)")

# oauth2-proxy takes an AES key of 16, 24 or 32 bytes, given as URL-safe
# base64 (padding optional); 32 bytes selects AES-256.
COOKIE_SECRET_BYTES = 32
_URLSAFE_BASE64 = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def generate_cookie_secret() -> str:
    """A new random cookie key: 32 bytes, URL-safe base64 (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(COOKIE_SECRET_BYTES)).decode()


def is_valid_cookie_secret(value: str) -> bool:
    """Whether oauth2-proxy decodes `value` to a 16, 24 or 32 byte key."""
    if not _URLSAFE_BASE64.match(value):
        return False
    body = value.rstrip("=")
    try:
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:  # a length no base64 text has
        return False
    return len(decoded) in (16, 24, 32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Provider:
    """The OIDC identity provider and this gateway's client at it."""

    id: str
    """The provider's id in oauth2-proxy's configuration, e.g. `dex`."""
    display_name: str
    issuer_url: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    scopes: str
    # Explicit endpoints skip OIDC discovery (set all four or none).
    login_url: str | None = None
    redeem_url: str | None = None
    profile_url: str | None = None
    jwks_url: str | None = None
    ca_chain: str = ""
    """PEM certificates to trust, beside the system's, when reaching the provider."""

    @property
    def skips_discovery(self) -> bool:
        """Whether the endpoints were given, so no discovery request is made."""
        return bool(self.login_url and self.redeem_url and self.jwks_url)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProxySettings:
    """Everything oauth2-proxy is configured with."""

    provider: Provider
    cookie_secret: str = dataclasses.field(repr=False)
    redirect_url: str
    cookie_secure: bool
    email_domains: tuple[str, ...] = ("*",)
    userid_header: str = "kubeflow-userid"
    userid_prefix: str = ""
    userid_claim: str = "email"
    groups_header: str = ""
    accept_bearer_tokens: bool = True
    """Allow a request with `Authorization: Bearer <ID token>` of the provider (or below)."""
    extra_jwt_issuers: tuple[str, ...] = ()
    """Other issuers whose bearer tokens are accepted, each `issuer=audience`."""


@dataclasses.dataclass(frozen=True)
class WorkloadFile:
    """A file the proxy reads."""

    path: str
    content: str = dataclasses.field(repr=False)
    secret: bool = False

    @property
    def permissions(self) -> int:
        """Secrets are for the proxy's user alone."""
        return 0o600 if self.secret else 0o644


def _toml_value(value: str | bool | tuple[str, ...]) -> str:
    # A JSON string (ASCII, escaped) is a valid TOML basic string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def render_config(settings: ProxySettings) -> str:
    """The TOML configuration file: cookie, sign-in and logging settings, no secret."""
    options: dict[str, str | bool | tuple[str, ...]] = {
        "proxy_prefix": PROXY_PREFIX,
        "ping_path": PING_PATH,
        "ready_path": READY_PATH,
        "redirect_url": settings.redirect_url,
        "reverse_proxy": True,
        "skip_provider_button": True,
        "email_domains": settings.email_domains,
        "cookie_secret_file": COOKIE_SECRET_FILE,
        "cookie_secure": settings.cookie_secure,
        "cookie_httponly": True,
        "cookie_samesite": "lax",
        "silence_ping_logging": True,
        # A request with a valid ID token as its bearer token is a session of its own
        # (the provider's claims, as for a login), for scripts and SDK clients.
        "skip_jwt_bearer_tokens": settings.accept_bearer_tokens,
    }
    if settings.accept_bearer_tokens and settings.extra_jwt_issuers:
        options["extra_jwt_issuers"] = settings.extra_jwt_issuers
    lines = ["# Written by the oidc-gateway charm: changes here are overwritten."]
    lines += [f"{key} = {_toml_value(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def _provider_entry(provider: Provider, userid_claim: str) -> dict[str, Any]:
    oidc: dict[str, Any] = {
        "issuerURL": provider.issuer_url,
        "userIDClaim": userid_claim,
        "emailClaim": "email",
        "groupsClaim": "groups",
        "audienceClaims": ["aud"],
    }
    entry: dict[str, Any] = {
        "id": provider.id,
        "provider": "oidc",
        "name": provider.display_name,
        "clientID": provider.client_id,
        "clientSecretFile": CLIENT_SECRET_FILE,
        "scope": provider.scopes,
        "code_challenge_method": "S256",
    }
    if provider.skips_discovery:
        oidc["skipDiscovery"] = True
        oidc["jwksURL"] = provider.jwks_url
        entry["loginURL"] = provider.login_url
        entry["redeemURL"] = provider.redeem_url
        if provider.profile_url:
            entry["profileURL"] = provider.profile_url
    if provider.ca_chain:
        entry["caFiles"] = [PROVIDER_CA_FILE]
        entry["useSystemTrustStore"] = True
    entry["oidcConfig"] = oidc
    return entry


def _claim_header(name: str, claim: str, prefix: str = "") -> dict[str, Any]:
    source: dict[str, Any] = {"claim": claim}
    if prefix:
        source["prefix"] = prefix
    return {"name": name, "values": [{"claimSource": source}]}


def _unexpanded(value: Any) -> Any:
    """`value` with every string written so that oauth2-proxy reads it back as it is."""
    if isinstance(value, str):
        return _EXPANDED_DOLLAR.sub("$$", value)
    if isinstance(value, dict):
        return {k: _unexpanded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unexpanded(v) for v in value]
    return value


def render_alpha_config(settings: ProxySettings) -> str:
    """The alpha YAML configuration: server, static upstream, headers, provider; no secret."""
    # The session's `email` holds the claim named by `userIDClaim` (with `emailClaim` left
    # at "email", oauth2-proxy v7.15.3 providers/providers.go fills the e-mail from it);
    # its `user` is always the token's opaque `sub`, which no profile is named after.
    headers = [_claim_header(settings.userid_header, "email", settings.userid_prefix)]
    if settings.groups_header:
        headers.append(_claim_header(settings.groups_header, "groups"))
    config: dict[str, Any] = {
        "server": {"bindAddress": f"0.0.0.0:{PORT}"},
        # Authorization only: an allowed request is answered 200 here, and the
        # mesh sends it on to the application with the headers below.
        "upstreamConfig": {
            "upstreams": [{"id": "static", "path": "/", "static": True, "staticCode": 200}]
        },
        "injectResponseHeaders": headers,
        "providers": [_provider_entry(settings.provider, settings.userid_claim)],
    }
    header = "# Written by the oidc-gateway charm: changes here are overwritten.\n"
    # A `$` in a value (the user-id prefix may hold one) must not be taken for a variable.
    return header + yaml.safe_dump(_unexpanded(config), sort_keys=False)


def workload_files(settings: ProxySettings) -> list[WorkloadFile]:
    """Every file the proxy reads, in the order they are written.

    The configuration files come first, so the directory they make is root's;
    the secrets then go in a directory of their own, the proxy user's alone.
    """
    files = [
        WorkloadFile(CONFIG_FILE, render_config(settings)),
        WorkloadFile(ALPHA_CONFIG_FILE, render_alpha_config(settings)),
    ]
    if settings.provider.ca_chain:
        files.append(WorkloadFile(PROVIDER_CA_FILE, settings.provider.ca_chain))
    files += [
        WorkloadFile(COOKIE_SECRET_FILE, settings.cookie_secret, secret=True),
        WorkloadFile(CLIENT_SECRET_FILE, settings.provider.client_secret, secret=True),
    ]
    return files


def pebble_layer() -> ops.pebble.Layer:
    """oauth2-proxy reading its configuration files, with liveness and readiness checks."""
    checks: dict[str, Any] = {}
    for name, level, path in (
        (ALIVE_CHECK, "alive", PING_PATH),
        (READY_CHECK, "ready", READY_PATH),
    ):
        checks[name] = {
            "override": "replace",
            "level": level,
            "period": "10s",
            "threshold": 3,
            "http": {"url": f"http://localhost:{PORT}{path}"},
        }
    return ops.pebble.Layer(
        {
            "summary": "oauth2-proxy",
            "services": {
                SERVICE: {
                    "override": "replace",
                    "summary": "oauth2-proxy, the mesh's OIDC relying party",
                    "command": COMMAND,
                    "startup": "enabled",
                    "user-id": USER_ID,
                    "group-id": GROUP_ID,
                    "on-check-failure": {ALIVE_CHECK: "restart"},
                }
            },
            "checks": checks,
        }
    )


class OAuth2Proxy:
    """oauth2-proxy under Pebble in the workload container."""

    def __init__(self, container: ops.Container):
        self._container = container

    def configure(self, settings: ProxySettings) -> bool:
        """Run the proxy with these settings, writing and restarting only what changed.

        Returns whether the proxy was started or restarted. The container must
        be reachable.
        """
        files_changed = False
        for file in workload_files(settings):
            files_changed |= self._push_if_changed(file)
        layer = pebble_layer()
        layer_changed = not plan_has(self._container.get_plan(), layer)
        if layer_changed:
            self._container.add_layer(SERVICE, layer, combine=True)
        if not self.is_running():
            self._container.replan()
        elif files_changed:
            # A restart reads the files again, and the service as the plan has it now.
            self._container.restart(SERVICE)
        elif layer_changed:
            self._container.replan()
        else:
            return False
        logger.info("oauth2-proxy (re)started with its current configuration")
        return True

    def is_running(self) -> bool:
        """Whether the proxy's service is up."""
        services = self._container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def is_ready(self) -> bool:
        """Whether the proxy's ready check passes."""
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP

    def _push_if_changed(self, file: WorkloadFile) -> bool:
        try:
            current = self._container.pull(file.path).read()
        except ops.pebble.PathError:
            current = None
        if current == file.content:
            return False
        owner = USER_ID if file.secret else None
        group = GROUP_ID if file.secret else None
        if file.secret and not self._container.exists(SECRETS_DIR):
            self._container.make_dir(
                SECRETS_DIR, make_parents=True, permissions=0o700, user_id=owner, group_id=group
            )
        self._container.push(
            file.path,
            file.content,
            make_dirs=True,
            permissions=file.permissions,
            user_id=owner,
            group_id=group,
        )
        return True
