"""The Dex workload: its config file, its Pebble layer and checks, its endpoints.

Nothing here reads config or sets status: the charm decides what Dex serves,
this module renders it and runs Dex with it, changing the container only
when something differs.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import ops
import yaml

from kubeflow_charms.pebble import plan_has

logger = logging.getLogger(__name__)

SERVICE = "dex"
HTTP_PORT = 5556
# Dex serves every path under its issuer's path; the mesh routes it there.
ISSUER_PATH = "/dex"
TELEMETRY_PORT = 5558
CONFIG_FILE = "/etc/dex/config.yaml"
COMMAND = f"/usr/local/bin/dex serve {CONFIG_FILE}"
# The image's `dex` user: the config file is this user's alone.
USER_ID = 1001
GROUP_ID = 1001
ALIVE_CHECK = "dex-alive"
READY_CHECK = "dex-ready"
# On the telemetry port: /healthz/live answers while the process serves,
# /healthz runs Dex's health checks (its storage among them).
ALIVE_PATH = "/healthz/live"
READY_PATH = "/healthz"
LOG_LEVELS = ("debug", "info", "warn", "error")
# The MySQL driver's TLS setting: encrypt when the server offers TLS, without
# verifying its certificate (the mysql charm serves a self-signed one, or none).
# Dex's default, an empty mode, would demand a certificate the system trusts.
MYSQL_SSL_MODE = "preferred"

# The grant types this Dex release serves that the oauth interface offers.
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
)
# The scopes Dex announces; it also takes `federated:id` and the cross-client
# `audience:server:client_id:<id>`, and refuses any other.
SCOPES = ("openid", "email", "groups", "profile", "offline_access")
EXTRA_SCOPES = ("federated:id",)
CROSS_CLIENT_SCOPE_PREFIX = "audience:server:client_id:"


def is_known_scope(scope: str) -> bool:
    """Whether Dex accepts this scope in an authorization request."""
    return (
        scope in SCOPES
        or scope in EXTRA_SCOPES
        or (scope.startswith(CROSS_CLIENT_SCOPE_PREFIX) and scope != CROSS_CLIENT_SCOPE_PREFIX)
    )


def service_url(app: str, model: str) -> str:
    """Dex inside the cluster: the application's Service, under the issuer's path."""
    return f"http://{app}.{model}.svc.cluster.local:{HTTP_PORT}{ISSUER_PATH}"


def endpoints(issuer: str, internal: str) -> dict[str, str]:
    """Dex's endpoints, for clients that run in the cluster.

    The browser is sent to the authorization endpoint, under the issuer;
    clients call the others themselves, through the Service (`internal`),
    which they reach whether or not the issuer's address is reachable from
    inside the cluster. Dex serves every path under the issuer's path on
    any address.
    """
    return {
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{internal}/token",
        "introspection_endpoint": f"{internal}/token/introspect",
        "userinfo_endpoint": f"{internal}/userinfo",
        "jwks_endpoint": f"{internal}/keys",
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class DexDatabase:
    """Where Dex keeps its state: a MySQL database and the user that owns it."""

    host: str
    port: int
    name: str
    user: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DexSettings:
    """Everything Dex's config file says, already checked."""

    issuer: str
    database: DexDatabase
    log_level: str = "info"
    connectors: tuple[dict[str, Any], ...] = ()
    static_passwords: tuple[dict[str, Any], ...] = ()
    static_clients: tuple[dict[str, Any], ...] = ()

    def __repr__(self) -> str:
        # The fields hold client secrets, connector secrets and hashes.
        return (
            f"DexSettings(issuer={self.issuer!r}, database={self.database!r}, "
            f"connectors={len(self.connectors)}, "
            f"static_passwords={len(self.static_passwords)}, "
            f"static_clients={len(self.static_clients)})"
        )


def render_config(settings: DexSettings) -> str:
    """Dex's config file, the database password in it: push it readable by Dex alone.

    Storage is the MySQL database every unit shares; Dex creates its tables.
    """
    database = settings.database
    config: dict[str, Any] = {
        "issuer": settings.issuer,
        "storage": {
            "type": "mysql",
            "config": {
                "host": database.host,
                "port": database.port,
                "database": database.name,
                "user": database.user,
                "password": database.password,
                "ssl": {"mode": MYSQL_SSL_MODE},
            },
        },
        "web": {"http": f"0.0.0.0:{HTTP_PORT}"},
        "telemetry": {"http": f"0.0.0.0:{TELEMETRY_PORT}"},
        "logger": {"level": settings.log_level, "format": "json"},
        "oauth2": {
            "responseTypes": ["code"],
            "grantTypes": list(GRANT_TYPES),
            "skipApprovalScreen": True,
        },
        "enablePasswordDB": bool(settings.static_passwords),
        "staticPasswords": list(settings.static_passwords),
        "staticClients": list(settings.static_clients),
        "connectors": list(settings.connectors),
    }
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _check(level: str, path: str) -> ops.pebble.CheckDict:
    return {
        "override": "replace",
        "level": level,
        "period": "10s",
        "threshold": 3,
        "http": {"url": f"http://localhost:{TELEMETRY_PORT}{path}"},
    }


def pebble_layer() -> ops.pebble.Layer:
    """Dex serving the charm's config file; restarted when it stops answering."""
    layer: ops.pebble.LayerDict = {
        "summary": "Dex identity provider",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "Dex OIDC provider",
                "command": COMMAND,
                "startup": "enabled",
                "user-id": USER_ID,
                "group-id": GROUP_ID,
                # The charm writes every value itself, secrets included:
                # Dex must not expand `$` in them as environment variables.
                "environment": {"DEX_EXPAND_ENV": "false"},
                "on-check-failure": {ALIVE_CHECK: "restart"},
            }
        },
        "checks": {
            ALIVE_CHECK: _check("alive", ALIVE_PATH),
            READY_CHECK: _check("ready", READY_PATH),
        },
    }
    return ops.pebble.Layer(layer)


class DexServer:
    """Dex under Pebble in the workload container."""

    def __init__(self, container: ops.Container):
        self._container = container
        # Set when `configure` found Dex running as wanted: for the rest of the
        # hook, the status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, config: str) -> bool:
        """Run Dex with this config file; push, replan or restart only what changed.

        Returns whether anything changed. The container must be reachable.
        """
        self._settled = False
        file_changed = self._push_if_changed(config)
        layer = pebble_layer()
        layer_changed = not plan_has(self._container.get_plan(), layer)
        if layer_changed:
            self._container.add_layer(SERVICE, layer, combine=True)
        running = self.is_running()
        if running and not (file_changed or layer_changed):
            self._settled = True
            return False
        if running and not layer_changed:
            # Dex reads its config file only when it starts.
            self._container.restart(SERVICE)
        else:
            # Starts a stopped Dex, restarts one whose layer changed.
            self._container.replan()
        logger.info("Dex (re)started with its current configuration")
        return True

    def _push_if_changed(self, config: str) -> bool:
        try:
            current = self._container.pull(CONFIG_FILE).read()
        except ops.pebble.PathError:
            current = None
        if current == config:
            return False
        self._container.push(
            CONFIG_FILE,
            config,
            make_dirs=True,
            permissions=0o600,
            user_id=USER_ID,
            group_id=GROUP_ID,
        )
        return True

    def can_connect(self) -> bool:
        """Whether the container's Pebble answers (known once `configure` found Dex settled)."""
        return self._settled or self._container.can_connect()

    def is_running(self) -> bool:
        """Whether the Dex service is up (known once `configure` found Dex settled)."""
        if self._settled:
            return True
        services = self._container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def is_ready(self) -> bool | None:
        """Whether Dex's ready check passes; None while Pebble has no result for it."""
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        if check is None:
            return None
        return check.status == ops.pebble.CheckStatus.UP
