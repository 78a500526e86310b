"""A settled update-status hook stays light: no pydantic, charm libraries, nothing written.

It runs in a fresh interpreter, because this test session itself imports
them all. The relations are built here and handed over as plain data.
Settling imports the database request's models and the route's library, so
the settled hook is watched at its imports: loading the charm imports
nothing heavy, and the hook asks for no heavy module, even one loaded
already.
"""

from __future__ import annotations

import json

from charm_loader import run_fresh
from ops import testing
from unit.mlflow.helpers import db_relation, s3_relation

from kubeflow_interfaces import dashboard_links, istio_ingress_route, kubernetes_manifests

SCRIPT = r"""
import builtins, importlib, json, sys
import ops
from ops import testing
from unit.mlflow.helpers import CHARM, container

HEAVY_ROOTS = {"pydantic", "lightkube", "lightkube_extensions", "charmlibs", "dpcharmlibs",
               "cryptography", "httpx", "jinja2", "boto3"}
HEAVY_OWN = {"kubeflow_interfaces._databag", "kubeflow_interfaces._s3_models"}

def is_heavy(name):
    return name.split(".")[0] in HEAVY_ROOTS or name in HEAVY_OWN

loaded = sorted(m for m in sys.modules if is_heavy(m))
given = json.loads(sys.stdin.read())
relations = {testing.Relation(**r) for r in given["relations"]}
secrets = {testing.Secret(**s) for s in given["secrets"]}
base = testing.State(
    leader=True,
    containers={container()},
    relations={testing.PeerRelation("mlflow-peers"), *relations},
    secrets=secrets,
    model=testing.Model(name="kubeflow"),
)
ctx = testing.Context(CHARM.MlflowCharm, app_name="mlflow")
out = ctx.run(ctx.on.config_changed(), base)
out = ctx.run(ctx.on.update_status(), out)
asked = []
real_import, real_import_module = builtins.__import__, importlib.import_module
def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
    module = real_import(name, globals, locals, fromlist, level)
    full = module.__name__ if level else name
    asked.extend([full, *(f"{full}.{item}" for item in fromlist or ())])
    return module
def watched_import_module(name, package=None):
    module = real_import_module(name, package)
    asked.append(module.__name__)
    return module
pebble_writes = []
for name in ("push", "add_layer", "replan", "restart", "start", "stop", "exec"):
    original = getattr(ops.Container, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
        pebble_writes.append(_name)
        return _original(self, *args, **kwargs)
    setattr(ops.Container, name, record)
builtins.__import__, importlib.import_module = watched_import, watched_import_module
try:
    again = ctx.run(ctx.on.update_status(), out)
finally:
    builtins.__import__, importlib.import_module = real_import, real_import_module
print(json.dumps({
    "loaded": loaded,
    "asked_heavy": sorted({m for m in asked if is_heavy(m)}),
    "relations_unchanged": again.relations == out.relations,
    "stored_unchanged": again.stored_states == out.stored_states,
    "secrets_unchanged": again.secrets == out.secrets,
    "plans_unchanged": all(again.get_container(c.name).plan == c.plan for c in out.containers),
    "pebble_writes": pebble_writes,
    "published": sorted(r.endpoint for r in out.relations if r.local_app_data),
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
}))
"""


def _plain(relation: testing.Relation) -> dict:
    return {
        "endpoint": relation.endpoint,
        "interface": relation.interface,
        "remote_app_name": relation.remote_app_name,
        "remote_app_data": dict(relation.remote_app_data),
    }


def _plain_secret(secret: testing.Secret) -> dict:
    return {"id": secret.id, "tracked_content": dict(secret.tracked_content), "owner": None}


def test_settled_update_status_imports_nothing_heavy_and_writes_nothing():
    db, db_secret = db_relation()
    storage, storage_secret = s3_relation()
    route = istio_ingress_route.relation_for_requirer("istio-ingress-route")
    links = testing.Relation(
        "dashboard-links", interface=dashboard_links.INTERFACE, remote_app_name="dashboard"
    )
    secrets = kubernetes_manifests.relation_for_requirer("secrets")
    defaults = kubernetes_manifests.relation_for_requirer("pod-defaults")
    given = {
        "relations": [_plain(r) for r in (db, storage, route, links, secrets, defaults)],
        "secrets": [_plain_secret(db_secret), _plain_secret(storage_secret)],
    }
    outcome = run_fresh(SCRIPT, stdin=json.dumps(given))

    assert outcome["loaded"] == []  # loading the charm imports nothing heavy
    assert outcome["published"] == sorted(
        [
            "dashboard-links",
            "istio-ingress-route",
            "mlflow-peers",
            "object-storage",
            "pod-defaults",
            "relational-db",
            "secrets",
        ]
    )
    assert outcome["asked_heavy"] == []
    assert outcome["relations_unchanged"] is True
    assert outcome["stored_unchanged"] is True
    assert outcome["secrets_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    assert outcome["status"] == "active: "
