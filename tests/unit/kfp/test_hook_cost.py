"""A settled update-status hook stays light: no pydantic, lightkube, charmlibs, nothing written.

It runs in a fresh interpreter, because this test session itself imports
them all (the `kube` fixture is lightkube's). The relations are built here
(their test helpers use the pydantic models) and handed over as plain data.
The model has every relation kfp has in the bundle: the databases, the
bucket, the gateway's routes and metadata, the dashboard's links and the dispatcher
(which lists a profile namespace). There the model is settled with the
cluster writes and the token request stubbed out; the drift check finds no
cluster and forces nothing. Settling
imports the database request's models (the first request is written with
them), so the settled hook is watched at its imports: loading the charm
imports nothing heavy, and the hook asks for no heavy module, even one
loaded already.
"""

from __future__ import annotations

import json

from charm_loader import run_fresh
from ops import testing
from unit.kfp.helpers import gateway_relation, kfp_links, kfp_profiles, kfp_route
from unit.kfp.test_data import _db_relation, _s3_relation

from kubeflow_interfaces import dashboard_links, istio_ingress_route, kubernetes_manifests

SCRIPT = r"""
import builtins, importlib, json, sys, tempfile
import ops
from ops import testing
from unit.kfp.helpers import CHARM, workloads as wl
from kubeflow_charms import kubernetes

HEAVY_ROOTS = {"pydantic", "lightkube", "lightkube_extensions", "charmlibs", "dpcharmlibs",
               "cryptography", "httpx", "boto3", "jinja2"}
# Our own modules that import pydantic.
HEAVY_OWN = {"kubeflow_interfaces._databag", "kubeflow_interfaces._s3_models",
             "kubeflow_interfaces.ingress"}

def is_heavy(name):
    return name.split(".")[0] in HEAVY_ROOTS or name in HEAVY_OWN

loaded = sorted(m for m in sys.modules if is_heavy(m))

cluster = CHARM.kfp_cluster
applied, tokens, profiles_applied = [], [], []
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)
# Each profile namespace's objects: applied as asked, nothing to prune.
profile_workloads = CHARM.kfp_profile_workloads
profile_workloads.prune = lambda app, model, objects: 0
profile_workloads.apply_namespace = lambda app, model, ns, objects: profiles_applied.append(ns)
def request_token(account, namespace, now):
    tokens.append(now)
    return cluster.Token("issued-token", issued=now, expires=now + 3600)
cluster.request_token = request_token

given = json.loads(sys.stdin.read())
relations = {testing.Relation(**r) for r in given["relations"]}
secrets = {testing.Secret(**s) for s in given["secrets"]}
token_dir = wl.PERSISTENCE_AGENT_TOKEN_PATH.rpartition("/")[0]
mount = testing.Mount(location=token_dir, source=tempfile.mkdtemp())
containers = {
    testing.Container(
        w.container,
        can_connect=True,
        mounts={"tokens": mount} if w == wl.PERSISTENCE_AGENT else {},
    )
    for w in wl.WORKLOADS
}
base = testing.State(
    leader=True,
    containers=containers,
    relations={testing.PeerRelation(cluster.PEERS), *relations},
    secrets=secrets,
    model=testing.Model(name="kubeflow"),
)
ctx = testing.Context(CHARM.KfpCharm, app_name="kfp")
out = ctx.run(ctx.on.config_changed(), base)
out = ctx.run(ctx.on.update_status(), out)  # settles what the first hook started
first_applies, first_tokens = len(applied), len(tokens)
first_profiles = list(profiles_applied)
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
    "first_profiles": first_profiles,
    "profiles": profiles_applied[len(first_profiles):],
    "first_tokens": first_tokens,
    "applies": len(applied) - first_applies,
    "tokens": len(tokens) - first_tokens,
    "relations_unchanged": again.relations == out.relations,
    "stored_unchanged": again.stored_states == out.stored_states,
    "plans_unchanged": all(again.get_container(c.name).plan == c.plan for c in out.containers),
    "pebble_writes": pebble_writes,
    "published": sorted(r.endpoint for r in out.relations if r.local_app_data),
    "secrets_unchanged": again.secrets == out.secrets,
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
    db, db_secrets = _db_relation()
    store, store_secret = _s3_relation()
    route = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE)
    links = testing.Relation(
        kfp_links.DASHBOARD_LINKS,
        interface=dashboard_links.INTERFACE,
        remote_app_name="kubeflow-dashboard",
    )
    dispatcher = kubernetes_manifests.relation_for_requirer(
        kfp_profiles.CONFIG_MAPS, namespaces=["alice"]
    )
    given = {
        "relations": [
            _plain(r) for r in (db, store, route, links, dispatcher, gateway_relation())
        ],
        "secrets": [
            {"id": s.id, "tracked_content": dict(s.tracked_content), "owner": s.owner}
            for s in (*db_secrets, store_secret)
        ],
    }
    outcome = run_fresh(SCRIPT, stdin=json.dumps(given))

    assert outcome["loaded"] == []  # loading the charm imports nothing heavy
    # The settling hooks applied the six scopes and got the agent's token.
    assert (outcome["first_applies"], outcome["first_tokens"]) == (6, 1)
    # ... the objects of the one profile the dispatcher lists,
    assert outcome["first_profiles"] == ["alice"]
    # ... and answered every relation: databases and bucket asked, routes, links and
    # the profiles' ConfigMaps published.
    assert outcome["published"] == sorted(
        [
            kfp_links.DASHBOARD_LINKS,
            kfp_profiles.CONFIG_MAPS,
            kfp_route.ROUTE,
            "kfp-peers",  # what the leader applied, as digests
            "object-storage",
            "relational-db",
        ]
    )
    assert outcome["asked_heavy"] == []
    assert (outcome["applies"], outcome["tokens"]) == (0, 0)
    assert outcome["profiles"] == []
    assert outcome["relations_unchanged"] is True
    assert outcome["stored_unchanged"] is True
    assert outcome["secrets_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    assert outcome["status"] == "active: "
