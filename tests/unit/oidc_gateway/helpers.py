"""Building blocks of the oidc-gateway charm's unit-test states.

Dex's side of the `oauth` relation is written by the ecosystem library's own
provider (`OAuthProvider`), run in a small provider charm under ops.testing,
so the gateway reads exactly what a provider using that library publishes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import ops
import tomllib
import yaml
from charm_loader import load_charm
from charmlibs.interfaces.oauth import ClientConfig, OAuthProvider
from ops import testing

from kubeflow_interfaces import istio_ingress_route

CHARM = load_charm("oidc-gateway")
# The charm's workload module, as the charm imported it (the tests import it from here).
import oauth2_proxy  # noqa: E402, F401

APP = "oidc-gateway"
MODEL = "kubeflow"
CONTAINER = "oauth2-proxy"
GATEWAY_HOST = "kubeflow.example.com"
ORIGIN = f"https://{GATEWAY_HOST}"
# The applications istio routes behind the login, as it lists them on forward-auth.
PROTECTED_APPS = ["kubeflow-dashboard", "kubeflow-notebooks"]
CALLBACK = f"{ORIGIN}/oauth2/callback"
COOKIE_SECRET = base64.urlsafe_b64encode(b"0123456789abcdef0123456789abcdef").decode()
DEX_APP = "dex"
DEX_ISSUER = f"{ORIGIN}/dex"
DEX_ENDPOINTS = {
    "authorization_endpoint": f"{ORIGIN}/dex/auth",
    "token_endpoint": "http://dex.kubeflow.svc.cluster.local:5556/dex/token",
    "introspection_endpoint": "http://dex.kubeflow.svc.cluster.local:5556/dex/token/introspect",
    "userinfo_endpoint": "http://dex.kubeflow.svc.cluster.local:5556/dex/userinfo",
    "jwks_endpoint": "http://dex.kubeflow.svc.cluster.local:5556/dex/keys",
}
DEX_CLIENT_ID = "oidc-gateway-7f3a"
DEX_CLIENT_SECRET = "dex-issued-client-secret-4b1e9c0d"
EXTERNAL_ISSUER = "https://login.microsoftonline.com/0b9e7c1a-1111-2222-3333-444455556666/v2.0"
EXTERNAL_CLIENT_ID = "5d1c2a9e-aaaa-bbbb-cccc-ddddeeeeffff"
EXTERNAL_CLIENT_SECRET = "entra-client-secret~value.123"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"

PROVIDER_META = {
    "name": DEX_APP,
    "provides": {"oauth": {"interface": "oauth"}},
}


def _provider_charm(
    client: tuple[str, str] | None, ca_chain: list[str] | None, seen: list[Any]
) -> type[ops.CharmBase]:
    """A provider charm that publishes with the library, and records what it reads."""

    class Provider(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            self.oauth = OAuthProvider(self, "oauth")
            framework.observe(self.on.config_changed, self._publish)
            framework.observe(self.on["oauth"].relation_changed, self._read)
            framework.observe(self.oauth.on.client_created, self._record)
            framework.observe(self.oauth.on.client_changed, self._record)

        def _publish(self, _: ops.EventBase) -> None:
            relation = self.model.get_relation("oauth")
            assert relation is not None
            self.oauth.set_provider_info_in_relation_data(
                issuer_url=DEX_ISSUER,
                scope="openid profile email groups offline_access",
                ca_chain=ca_chain,  # type: ignore[arg-type] - the wire format is a list
                **DEX_ENDPOINTS,
            )
            if client is not None:
                self.oauth.set_client_credentials_in_relation_data(relation.id, *client)

        def _read(self, event: ops.RelationChangedEvent) -> None:
            seen.append(self.oauth.get_client_config(event.relation))

        def _record(self, event: ops.EventBase) -> None:
            seen.append(event.handle.kind)

    return Provider


def dex_published(
    *,
    client: tuple[str, str] | None = (DEX_CLIENT_ID, DEX_CLIENT_SECRET),
    ca_chain: list[str] | None = None,
    relation_id: int | None = None,
) -> tuple[dict[str, str], testing.Secret | None]:
    """What Dex's leader publishes on the relation, and its client secret as we see it."""
    charm = _provider_charm(client, ca_chain, [])
    ctx = testing.Context(charm, meta=PROVIDER_META)
    relation = testing.Relation("oauth", interface="oauth", remote_app_name=APP)
    if relation_id is not None:
        relation = dataclasses.replace(relation, id=relation_id)
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={relation}))
    databag = dict(out.get_relation(relation.id).local_app_data)
    if client is None:
        return databag, None
    (issued,) = [s for s in out.secrets if s.label == f"client_secret_{relation.id}"]
    # Granted to us: the gateway sees the provider's secret as a consumer.
    return databag, testing.Secret(dict(issued.tracked_content), id=issued.id)


def provider_reads(registration: dict[str, str]) -> ClientConfig | None:
    """The client configuration Dex's library reads from our registration."""
    seen: list[Any] = []
    ctx = testing.Context(_provider_charm(None, None, seen), meta=PROVIDER_META)
    relation = testing.Relation(
        "oauth", interface="oauth", remote_app_name=APP, remote_app_data=registration
    )
    ctx.run(ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation}))
    return seen[0]


def provider_sees(registration: dict[str, str], published: dict[str, str]) -> list[str]:
    """The events Dex's library emits when our registration changes on its side."""
    seen: list[Any] = []
    ctx = testing.Context(_provider_charm(None, None, seen), meta=PROVIDER_META)
    relation = testing.Relation(
        "oauth",
        interface="oauth",
        remote_app_name=APP,
        remote_app_data=registration,
        local_app_data=published,
    )
    ctx.run(ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation}))
    return [s for s in seen if isinstance(s, str)]


def registration(callback: str = CALLBACK) -> dict[str, str]:
    """Our registration as the library writes it on the wire."""
    return {
        "redirect_uri": callback,
        "scope": "openid profile email groups",
        "grant_types": json.dumps(["authorization_code", "refresh_token"]),
        "audience": "[]",
        "token_endpoint_auth_method": "client_secret_basic",
    }


def dex_relation(
    *,
    client: bool = True,
    registered: bool = True,
    ca_chain: list[str] | None = None,
    remote_app_data: dict[str, str] | None = None,
) -> tuple[testing.Relation, testing.Secret | None]:
    """The oauth relation as the gateway sees it, and Dex's client secret (when issued)."""
    relation = testing.Relation("oauth", interface="oauth", remote_app_name=DEX_APP)
    published, secret = dex_published(
        client=(DEX_CLIENT_ID, DEX_CLIENT_SECRET) if client else None,
        ca_chain=ca_chain,
        relation_id=relation.id,
    )
    relation = dataclasses.replace(
        relation,
        remote_app_data=published if remote_app_data is None else remote_app_data,
        local_app_data=registration() if registered else {},
    )
    return relation, secret


def route_relation(
    external_host: str | None = GATEWAY_HOST, *, tls_enabled: bool = True, **kwargs: Any
) -> testing.Relation:
    """The route to /oauth2 as istio answers it (None: not served yet)."""
    return istio_ingress_route.relation_for_requirer(
        external_host=external_host, tls_enabled=tls_enabled, remote_app_name="istio", **kwargs
    )


def forward_auth_relation(apps: list[str] | None = None, **kwargs: Any) -> testing.Relation:
    """The forward-auth relation as the gateway sees it: the apps istio routes.

    `ingress_app_names` is the requirer's key of the forward_auth interface
    (charmlibs-interfaces-forward-auth 1.0.0, `ForwardAuthRequirerConfig`).
    """
    data = {"ingress_app_names": json.dumps(PROTECTED_APPS if apps is None else apps)}
    return testing.Relation(
        "forward-auth",
        interface="forward_auth",
        remote_app_name="istio",
        remote_app_data=data,
        **kwargs,
    )


def cookie_secret(value: str = COOKIE_SECRET, *, owner: str | None = "app") -> testing.Secret:
    """The app's cookie-key secret (as a non-leader peer reads it: `owner=None`)."""
    return testing.Secret({"cookie-secret": value}, owner=owner, label="cookie-secret")  # type: ignore[arg-type]


def external_secret(content: dict[str, str] | None = None) -> testing.Secret:
    """A user secret granted to the gateway, as named by client-secret-id."""
    return testing.Secret(content or {"client-secret": EXTERNAL_CLIENT_SECRET})


def external_config(secret: testing.Secret, **extra: str) -> dict[str, str | int | float | bool]:
    return {
        "issuer-url": EXTERNAL_ISSUER,
        "client-id": EXTERNAL_CLIENT_ID,
        "client-secret-id": secret.id,
        **extra,
    }


def proxy_container(tmp_path: Path, *, can_connect: bool = True) -> testing.Container:
    """The workload container, its configuration directory on a mount that outlives a run."""
    etc = tmp_path / "etc-oauth2-proxy"
    etc.mkdir(parents=True, exist_ok=True)
    return testing.Container(
        CONTAINER,
        can_connect=can_connect,
        mounts={"config": testing.Mount(location="/etc/oauth2-proxy", source=etc)},
    )


def dex_state(tmp_path: Path, **kwargs: Any) -> testing.State:
    """A leader with Dex related and its client issued, the route's URL known, nothing run."""
    oauth, secret = dex_relation(registered=kwargs.pop("registered", True))
    defaults: dict[str, Any] = {
        "leader": True,
        "model": testing.Model(name=MODEL),
        "containers": {proxy_container(tmp_path)},
        "relations": {oauth, route_relation(), forward_auth_relation()},
        "secrets": {secret, cookie_secret()},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def external_state(tmp_path: Path, **kwargs: Any) -> testing.State:
    """A leader configured for an external provider, the route's URL known."""
    secret = external_secret()
    defaults: dict[str, Any] = {
        "leader": True,
        "model": testing.Model(name=MODEL),
        "config": external_config(secret),
        "containers": {proxy_container(tmp_path)},
        "relations": {route_relation(), forward_auth_relation()},
        "secrets": {secret, cookie_secret()},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


# --- reading what the charm wrote ------------------------------------------------------------


def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "etc-oauth2-proxy"


def written(tmp_path: Path, name: str) -> str:
    """A file the charm pushed under /etc/oauth2-proxy."""
    return (config_dir(tmp_path) / name).read_text()


def mode(tmp_path: Path, name: str) -> int:
    return (config_dir(tmp_path) / name).stat().st_mode & 0o777


def toml_config(tmp_path: Path) -> dict[str, Any]:
    return tomllib.loads(written(tmp_path, "oauth2-proxy.cfg"))


def alpha_config(tmp_path: Path) -> dict[str, Any]:
    return yaml.safe_load(written(tmp_path, "alpha-config.yaml"))


def stamps(tmp_path: Path) -> dict[Path, int]:
    """Every file under the configuration directory and when it was last written."""
    root = config_dir(tmp_path)
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


class Calls:
    """Records the charm's writes: Pebble, relation databags, secrets.

    Opened ports are compared on the output state instead: `Unit.set_ports`
    opens and closes only what differs.
    """

    WATCHED = (
        (ops.Container, "push"),
        (ops.Container, "make_dir"),
        (ops.Container, "add_layer"),
        (ops.Container, "replan"),
        (ops.Container, "restart"),
        (ops.Container, "start"),
        (ops.Container, "stop"),
        # Every databag write goes through `update` (item assignment and deletion too).
        (ops.model.RelationDataContent, "update"),
        (ops.Container, "remove_path"),
        (ops.Secret, "set_content"),
        (ops.Secret, "grant"),
        (ops.Secret, "remove_revision"),
        (ops.Application, "add_secret"),
        (ops.Unit, "add_secret"),
    )

    def __init__(self, monkeypatch: Any):
        self.log: list[str] = []
        for owner, name in self.WATCHED:
            original = getattr(owner, name)
            monkeypatch.setattr(owner, name, self._spy(f"{owner.__name__}.{name}", original))

    def _spy(self, label: str, original: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.log.append(label)
            return original(*args, **kwargs)

        return spy

    def count(self, label: str) -> int:
        return self.log.count(label)

    def clear(self) -> None:
        self.log.clear()
