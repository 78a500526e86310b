"""A settled update-status hook stays light: the oauth library (and jsonschema) stay unloaded.

Each case runs in a fresh interpreter: this test session imports the library
itself (the test helpers run its provider side).
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path

from charm_loader import load_charm
from ops import testing

charm = load_charm("oidc-gateway")
import oauth2_proxy as proxy
from kubeflow_interfaces import ingress

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
route = ingress.relation_for_requirer(url=f"{origin}/oauth2/", remote_app_name="istio")
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
    relations={oauth, route},
    secrets={dex, testing.Secret({"cookie-secret": cookie}, owner="app", label="cookie-secret")},
    containers={container},
    opened_ports={testing.TCPPort(4180)},
)
ctx = testing.Context(charm.OidcGatewayCharm, app_name="oidc-gateway")
if sys.argv[1] == "update-status":
    event = ctx.on.update_status()
else:
    event = ctx.on.relation_changed(oauth)
out = ctx.run(event, state)
print(json.dumps({
    "oauth library": "charmlibs.interfaces.oauth" in sys.modules,
    "jsonschema": "jsonschema" in sys.modules,
    "status": f"{out.unit_status.name}: {out.unit_status.message}",
}))
"""


def _run(hook: str) -> dict[str, object]:
    return run_fresh(SCRIPT, hook)


def test_settled_update_status_does_not_load_the_oauth_library():
    assert _run("update-status") == {
        "oauth library": False,
        "jsonschema": False,
        "status": "active: login via dex at https://kubeflow.example.com",
    }


def test_a_relation_change_loads_it_to_read_dex():
    # The control: the same settled model, a hook whose inputs may have changed.
    assert _run("relation-changed") == {
        "oauth library": True,
        "jsonschema": True,
        "status": "active: login via dex at https://kubeflow.example.com",
    }
