"""A settled update-status hook stays light: no lightkube, nothing written anywhere.

It runs in a fresh interpreter, because this test session itself imports
lightkube. The model is settled first with the cluster writes stubbed out
(so lightkube is never imported).
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import dataclasses, json, sys
import ops
from ops import testing
from unit.kubeflow_notebooks.helpers import CHARM, checks_up, links_relation, state
from kubeflow_charms import kubernetes

base = state()
base = dataclasses.replace(base, relations=set(base.relations) | {links_relation()})
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
again = ctx.run(ctx.on.update_status(), out)
plans = all(again.get_container(c.name).plan == c.plan for c in out.containers)
print(json.dumps({
    "before": before,
    "lightkube": "lightkube" in sys.modules,
    "first_applies": first,
    "applies": len(applied) - first,
    "relations_unchanged": again.relations == out.relations,
    "plans_unchanged": plans,
    "pebble_writes": pebble,
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
}))
"""


def test_settled_update_status_imports_no_lightkube_and_writes_nothing():
    outcome = run_fresh(SCRIPT)

    assert outcome["before"] is False
    assert outcome["first_applies"] == 2  # the settling hook applied both scopes
    assert outcome["applies"] == 0
    assert outcome["lightkube"] is False
    assert outcome["relations_unchanged"] is True
    assert outcome["plans_unchanged"] is True
    assert outcome["pebble_writes"] == []
    assert outcome["status"] == "active: "
