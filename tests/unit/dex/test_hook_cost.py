"""A settled update-status hook stays light: heavy modules load only when needed.

The oauth library (and jsonschema under it) loads only when there is an oauth
relation; bcrypt only when the admin password is generated; the route library
only when the route's config is written; the mysql_client library (and
pydantic under it) only while the database request is not yet written. Each
case runs in a fresh interpreter, because this test session imports them all.
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import json, sys, tempfile
from charm_loader import load_charm
from ops import testing

charm = load_charm("dex")
from kubeflow_interfaces import istio_ingress_route, mysql_client

case = sys.argv[1]
issuer = "http://10.64.140.43/dex"
# A hash made beforehand (cost 10): making it here would load bcrypt.
password_hash = sys.argv[2]
# The route's config as the charm wrote it in an earlier hook (made beforehand too).
route_config = sys.argv[3]
secrets = set()
if case != "first-run":
    secrets.add(
        testing.Secret(
            tracked_content={"password": "x" * 24, "hash": password_hash},
            owner="app",
            label="admin-credentials",
        )
    )
route = istio_ingress_route.relation_for_requirer(
    external_host="10.64.140.43",
    local_app_data={"config": route_config} if case != "first-run" else {},
)
request = {"resource": "dex", "request-id": "req-dex", "salt": "s" * 16}
database, database_secret = mysql_client.relation_for_requirer(
    database="dex",
    local_app_data={} if case == "first-run" else {
        "version": "v1", "requests": json.dumps([request])
    },
)
secrets.add(database_secret)
relations = {route, testing.PeerRelation("dex-peers"), database}
if case in ("oauth", "oauth-settled"):
    relations.add(
        testing.Relation(
            "oauth",
            remote_app_name="oidc-gateway",
            remote_app_data={
                "redirect_uri": "https://kubeflow.example.com/oauth2/callback",
                "scope": "openid email",
                "grant_types": '["authorization_code"]',
                "audience": "[]",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
    )
ctx = testing.Context(charm.DexCharm)
# /etc/dex kept between hooks, so the settled hook finds the config it wrote.
etc = tempfile.TemporaryDirectory()
state = testing.State(
    leader=True,
    relations=relations,
    secrets=secrets,
    containers={
        testing.Container(
            "dex",
            can_connect=True,
            mounts={"etc": testing.Mount(location="/etc/dex", source=etc.name)},
        )
    },
    model=testing.Model(name="kubeflow"),
)
heavy = (
    "charmlibs.interfaces.oauth",
    "charmlibs.interfaces.istio_ingress_route",
    "jsonschema",
    "bcrypt",
    "jinja2",
    "dpcharmlibs",
    "pydantic",
    "lightkube",
)
if case != "first-run":
    # Settle, then the hook that matters: update-status with nothing to change.
    state = ctx.run(ctx.on.config_changed(), state)
    if case == "oauth-settled":
        # Settling read the registration with the library: forget it was imported.
        for name in [m for m in sys.modules if m.startswith(heavy)]:
            del sys.modules[name]
    # Count what the settled hook asks Pebble, by request.
    import ops
    asks = []
    for name in ("can_connect", "get_services", "get_plan", "get_checks"):
        original = getattr(ops.Container, name)
        def record(self, *args, _name=name, _original=original, **kwargs):
            asks.append(_name)
            return _original(self, *args, **kwargs)
        setattr(ops.Container, name, record)
    out = ctx.run(ctx.on.update_status(), state)
    unchanged = out.relations == state.relations and out.secrets == state.secrets
else:
    out = ctx.run(ctx.on.config_changed(), state)
    unchanged = asks = None
print(json.dumps({
    **{name: name in sys.modules for name in heavy},
    "unchanged": unchanged,
    "pebble_asks": asks,
    "unit_status": f"{out.unit_status.name}: {out.unit_status.message}",
}))
"""


def _run(case: str) -> dict[str, object]:
    import bcrypt

    from kubeflow_interfaces import istio_ingress_route

    password_hash = bcrypt.hashpw(b"x" * 24, bcrypt.gensalt(rounds=10)).decode()
    route = istio_ingress_route.config_json(app="dex", prefix="/dex", port=5556)
    return run_fresh(SCRIPT, case, password_hash, route)


def test_settled_hook_without_oauth_relation_loads_neither_oauth_nor_bcrypt():
    outcome = _run("plain")

    # The leader is settled: Pebble is asked only whether Dex runs and is ready.
    assert outcome.pop("pebble_asks") == ["get_services", "get_checks"]
    assert outcome == {
        "charmlibs.interfaces.oauth": False,
        "charmlibs.interfaces.istio_ingress_route": False,
        "jsonschema": False,
        "bcrypt": False,
        "jinja2": False,
        "dpcharmlibs": False,
        "pydantic": False,
        "lightkube": False,
        "unchanged": True,
        "unit_status": "active: http://10.64.140.43/dex",
    }


def test_settled_hook_with_oauth_relation_loads_neither_the_route_library_nor_bcrypt():
    outcome = _run("oauth")

    # Settling in this process issued the client, which loaded the oauth library.
    assert outcome["charmlibs.interfaces.oauth"] is True
    assert outcome["charmlibs.interfaces.istio_ingress_route"] is False
    assert outcome["bcrypt"] is False
    assert outcome["unchanged"] is True


def test_settled_hook_with_oauth_relation_does_not_load_the_oauth_library():
    # The registration is taken from the leader's record, the client secret read through ops.
    outcome = _run("oauth-settled")

    outcome.pop("pebble_asks")
    assert outcome == {
        "charmlibs.interfaces.oauth": False,
        "charmlibs.interfaces.istio_ingress_route": False,
        "jsonschema": False,
        "bcrypt": False,
        "jinja2": False,
        "dpcharmlibs": False,
        "pydantic": False,
        "lightkube": False,
        "unchanged": True,
        "unit_status": "active: http://10.64.140.43/dex",
    }


def test_first_run_loads_bcrypt_to_hash_the_admin_password():
    # The control: generating the admin password does load bcrypt.
    outcome = _run("first-run")

    assert outcome["bcrypt"] is True
    assert outcome["charmlibs.interfaces.oauth"] is False
    # and the route's first config is validated and serialised by the library.
    assert outcome["charmlibs.interfaces.istio_ingress_route"] is True
    # The database request is not written yet: the mysql_client library is built to write it.
    assert outcome["dpcharmlibs"] is True
    # Dex keeps its state in MySQL: the charm never talks to Kubernetes.
    assert outcome["lightkube"] is False
