"""A settled update-status hook stays light: no pydantic, lightkube, cryptography, nothing written.

It runs in a fresh interpreter, because this test session itself imports
them all. The relations are built here and handed over as plain data: the
gateway's metadata and the dispatcher's service-accounts. Settling makes
the certificates (cryptography) and applies the objects (lightkube,
jinja2), so the settled hook is watched at its imports: loading the charm
imports nothing heavy, and the hook asks for no heavy module, even one
loaded already.
"""

from __future__ import annotations

import json

from charm_loader import run_fresh
from ops import testing
from unit.kserve.helpers import gateway_relation

from kubeflow_interfaces import kubernetes_manifests

SCRIPT = r"""
import builtins, importlib, json, sys
import ops
from ops import testing
from unit.kserve.helpers import CHARM, workloads as wl
from kubeflow_charms import kubernetes

HEAVY_ROOTS = {"pydantic", "lightkube", "lightkube_extensions", "charmlibs", "dpcharmlibs",
               "cryptography", "httpx", "jinja2"}
HEAVY_OWN = {"kubeflow_interfaces._databag", "kubeflow_interfaces._s3_models",
             "kubeflow_interfaces.ingress"}

def is_heavy(name):
    return name.split(".")[0] in HEAVY_ROOTS or name in HEAVY_OWN

loaded = sorted(m for m in sys.modules if is_heavy(m))
applied = []
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)

given = json.loads(sys.stdin.read())
relations = {testing.Relation(**r) for r in given["relations"]}
secrets = {testing.Secret(**s) for s in given["secrets"]}
base = testing.State(
    leader=True,
    containers={testing.Container(w.container, can_connect=True) for w in wl.WORKLOADS},
    relations={testing.PeerRelation("kserve-peers"), *relations},
    secrets=secrets,
    model=testing.Model(name="kubeflow"),
)
ctx = testing.Context(CHARM.KServeCharm, app_name="kserve")
out = ctx.run(ctx.on.config_changed(), base)
out = ctx.run(ctx.on.config_changed(), out)
out = ctx.run(ctx.on.update_status(), out)
first_applies = len(applied)
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
for name in ("push", "add_layer", "replan", "restart", "start", "stop"):
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
    "first_applies": first_applies,
    "applies": len(applied) - first_applies,
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


def test_settled_update_status_imports_nothing_heavy_and_writes_nothing():
    accounts = kubernetes_manifests.relation_for_requirer("service-accounts", namespaces=["alice"])
    given = {"relations": [_plain(r) for r in (accounts, gateway_relation())], "secrets": []}
    outcome = run_fresh(SCRIPT, stdin=json.dumps(given))

    assert outcome["loaded"] == []  # loading the charm imports nothing heavy
    assert outcome["first_applies"] == 5  # the four base scopes, then the runtimes
    assert outcome["published"] == sorted(["kserve-peers", "service-accounts"])
    assert outcome["asked_heavy"] == []
    assert outcome["applies"] == 0
    assert outcome["relations_unchanged"] is True
    assert outcome["stored_unchanged"] is True
    assert outcome["secrets_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    assert outcome["status"] == "active: RawDeployment, hosts *.example.com"
