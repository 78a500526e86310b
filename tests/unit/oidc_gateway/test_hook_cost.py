"""A settled hook stays light: the ecosystem libraries load only where they are needed.

A settled update-status loads none of them: not the oauth library (nor
jsonschema under it), not the route and forward-auth libraries. A relation
change on oauth loads the oauth library to read Dex, but with the route and
forward-auth data already as wanted, not those two. Each case runs in a
fresh interpreter: this test session imports them all itself.
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path

from charm_loader import load_charm
import ops
from ops import testing

charm = load_charm("oidc-gateway")
import oauth2_proxy as proxy
from kubeflow_interfaces import istio_ingress_route

origin = "https://kubeflow.example.com"
dex = testing.Secret({"secret": "dex-issued-secret"})
cookie = proxy.generate_cookie_secret()
provider = proxy.Provider(
    id="dex", display_name="dex", issuer_url=f"{origin}/dex", client_id="gateway",
    client_secret="dex-issued-secret", scopes="openid profile email groups",
    login_url=f"{origin}/dex/auth", redeem_url="http://dex:5556/dex/token",
    profile_url="http://dex:5556/dex/userinfo", jwks_url="http://dex:5556/dex/keys",
)
settings = proxy.ProxySettings(
    provider=provider, cookie_secret=cookie, redirect_url=f"{origin}/oauth2/callback",
    cookie_secure=True, groups_header="kubeflow-groups",
)
etc = Path(tempfile.mkdtemp())
for f in proxy.workload_files(settings):
    path = etc / f.path.removeprefix("/etc/oauth2-proxy/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f.content)
# Dex's databag in the oauth interface's wire format, our registration beside it.
oauth = testing.Relation(
    "oauth",
    interface="oauth",
    remote_app_name="dex",
    remote_app_data={
        "issuer_url": f"{origin}/dex",
        "authorization_endpoint": f"{origin}/dex/auth",
        "token_endpoint": "http://dex:5556/dex/token",
        "introspection_endpoint": "http://dex:5556/dex/token/introspect",
        "userinfo_endpoint": "http://dex:5556/dex/userinfo",
        "jwks_endpoint": "http://dex:5556/dex/keys",
        "scope": "openid profile email groups",
        "jwt_access_token": "False",
        "client_id": "gateway",
        "client_secret_id": dex.id,
    },
    local_app_data={
        "redirect_uri": f"{origin}/oauth2/callback",
        "scope": "openid profile email groups",
        "grant_types": json.dumps(["authorization_code", "refresh_token"]),
        "audience": "[]",
        "token_endpoint_auth_method": "client_secret_basic",
    },
)
route = istio_ingress_route.relation_for_requirer(
    external_host="kubeflow.example.com",
    tls_enabled=True,
    local_app_data={"config": sys.argv[2]},  # as the charm wrote it in an earlier hook
)
# The forward-auth data as the charm wrote it in an earlier hook.
forward_auth = testing.Relation(
    "forward-auth",
    interface="forward_auth",
    remote_app_name="istio",
    remote_app_data={"ingress_app_names": '["kubeflow-dashboard"]'},
    local_app_data={
        "decisions_address": "http://oidc-gateway.kubeflow.svc.cluster.local:4180",
        "app_names": '["kubeflow-dashboard"]',
        "headers": '["kubeflow-userid", "kubeflow-groups"]',
        "kubeflow_user_header": '"kubeflow-userid"',
        "kubeflow_user_prefix": '""',
    },
)
container = testing.Container(
    "oauth2-proxy",
    can_connect=True,
    layers={"oauth2-proxy": proxy.pebble_layer()},
    service_statuses={"oauth2-proxy": proxy.ops.pebble.ServiceStatus.ACTIVE},
    mounts={"config": testing.Mount(location="/etc/oauth2-proxy", source=etc)},
    check_infos={
        testing.CheckInfo(name, level=level, status=proxy.ops.pebble.CheckStatus.UP)
        for name, level in (
            (proxy.ALIVE_CHECK, proxy.ops.pebble.CheckLevel.ALIVE),
            (proxy.READY_CHECK, proxy.ops.pebble.CheckLevel.READY),
        )
    },
)
state = testing.State(
    leader=True,
    model=testing.Model(name="kubeflow"),
    relations={oauth, route, forward_auth},
    secrets={dex, testing.Secret({"cookie-secret": cookie}, owner="app", label="cookie-secret")},
    containers={container},
    opened_ports={testing.TCPPort(4180)},
)
ctx = testing.Context(charm.OidcGatewayCharm, app_name="oidc-gateway")
if sys.argv[1] == "update-status":
    event = ctx.on.update_status()
else:
    event = ctx.on.relation_changed(oauth)
# Count what the hook asks Pebble, by request.
asks = []
for name in ("can_connect", "get_services", "get_plan", "get_checks"):
    original = getattr(ops.Container, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
        asks.append(_name)
        return _original(self, *args, **kwargs)
    setattr(ops.Container, name, record)
out = ctx.run(event, state)
print(json.dumps({
    "pebble_asks": asks,
    "unchanged": all(
        out.get_relation(r.id).local_app_data == r.local_app_data for r in (route, forward_auth)
    ),
    "oauth library": "charmlibs.interfaces.oauth" in sys.modules,
    "route library": "charmlibs.interfaces.istio_ingress_route" in sys.modules,
    "forward-auth library": "charmlibs.interfaces.forward_auth" in sys.modules,
    "jsonschema": "jsonschema" in sys.modules,
    "status": f"{out.unit_status.name}: {out.unit_status.message}",
}))
"""


def _run(hook: str) -> dict[str, object]:
    from kubeflow_interfaces import istio_ingress_route

    route = istio_ingress_route.config_json(
        app="oidc-gateway", prefix="/oauth2", port=4180, listener_port=443
    )
    return run_fresh(SCRIPT, hook, route)


def test_settled_update_status_loads_no_ecosystem_library():
    outcome = _run("update-status")

    # Pebble is asked once whether it answers and the proxy runs: the status
    # reuses what the hook found.
    assert outcome.pop("pebble_asks") == ["can_connect", "get_services", "get_checks"]
    assert outcome == {
        "unchanged": True,
        "oauth library": False,
        "route library": False,
        "forward-auth library": False,
        "jsonschema": False,
        "status": "active: login via dex at https://kubeflow.example.com",
    }


def test_a_relation_change_loads_the_oauth_library_to_read_dex_and_no_other():
    # The control: the same settled model, a hook whose inputs may have changed.
    outcome = _run("relation-changed")

    outcome.pop("pebble_asks")
    assert outcome == {
        "unchanged": True,
        "oauth library": True,
        "route library": False,
        "forward-auth library": False,
        "jsonschema": True,
        "status": "active: login via dex at https://kubeflow.example.com",
    }
