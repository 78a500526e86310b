"""A settled update-status hook stays light: no lightkube, no route library, nothing written.

It runs in a fresh interpreter, because this test session itself imports
both. The model is settled first with the cluster writes stubbed out (so
lightkube is never imported), and the route's config as the charm wrote it
in an earlier hook (so the route library is not either).
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import dataclasses, json, sys
import ops
from ops import testing
from unit.kubeflow_notebooks.helpers import (
    CHARM, PEERS, checks_up, links_relation, route_relation, state,
)
from kubeflow_charms import kubernetes

route = route_relation(local_app_data={"config": sys.stdin.read()})
base = state(relations={testing.PeerRelation(PEERS), route, links_relation()})
ctx = testing.Context(CHARM.NotebooksCharm)
applied = []
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)
out = checks_up(ctx.run(ctx.on.config_changed(), base))
first = len(applied)
before = "lightkube" in sys.modules
pebble = []
for name in ("push", "add_layer", "replan", "restart", "start", "stop"):
    original = getattr(ops.Container, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
        pebble.append(_name)
        return _original(self, *args, **kwargs)
    setattr(ops.Container, name, record)
asked = []
get_services = ops.Container.get_services
def count_services(self, *names):
    asked.append(self.name)
    return get_services(self, *names)
ops.Container.get_services = count_services
again = ctx.run(ctx.on.update_status(), out)
plans = all(again.get_container(c.name).plan == c.plan for c in out.containers)
print(json.dumps({
    "before": before,
    "lightkube": "lightkube" in sys.modules,
    "charmlibs": sorted(m for m in sys.modules if m.startswith("charmlibs")),
    "pydantic": "pydantic" in sys.modules,
    "first_applies": first,
    "applies": len(applied) - first,
    "relations_unchanged": again.relations == out.relations,
    "plans_unchanged": plans,
    "pebble_writes": pebble,
    "services_asked": sorted(asked),
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
}))
"""


def test_settled_update_status_imports_no_lightkube_and_writes_nothing():
    from kubeflow_interfaces import istio_ingress_route

    route = istio_ingress_route.config_json(
        app="kubeflow-notebooks", prefix="/jupyter", port=5000, rewrite="/"
    )
    outcome = run_fresh(SCRIPT, stdin=route)

    assert outcome["before"] is False
    assert outcome["first_applies"] == 2  # the settling hook applied both scopes
    assert outcome["applies"] == 0
    assert outcome["lightkube"] is False
    assert outcome["charmlibs"] == []
    assert outcome["pydantic"] is False  # neither the links nor the config need it
    assert outcome["relations_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    # Each container's Pebble is asked for its service once: the status reuses
    # what the reconcile found.
    assert outcome["services_asked"] == ["jupyter-web-app", "notebook-controller"]
    assert outcome["status"] == "active: "
