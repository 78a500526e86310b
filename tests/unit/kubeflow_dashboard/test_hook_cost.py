"""A settled update-status hook does not import lightkube or ecosystem libraries, writes nothing.

It runs in a fresh interpreter, because this test session itself imports
them. The model is settled first with the cluster writes stubbed out, the
route's config as the charm wrote it in an earlier hook and the gateway's
metadata as istio's library writes it (made here, before the run).
"""

from __future__ import annotations

import json

from charm_loader import run_fresh

SCRIPT = r"""
import json, sys
import ops
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    APP, CHARM, checks_up, gateway_relation, route_relation, link, peers, state, ui,
    with_relations,
)
from kubeflow_charms import kubernetes

given = json.loads(sys.stdin.read())
base = with_relations(
    state(
        config={"additional-links": "[{text: Docs, link: /docs/, location: documentation}]"},
        relations={peers(), gateway_relation(metadata=given["metadata"])},
    ),
    ui("notebooks", link("Notebooks")),
    route_relation(local_app_data={"config": given["route"]}),
)
ctx = testing.Context(CHARM.KubeflowDashboardCharm, app_name=APP)
applied = []
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)
out = checks_up(ctx.run(ctx.on.config_changed(), base))
first = list(applied)
before = "lightkube" in sys.modules
asked = []
get_services = ops.Container.get_services
def count_services(self, *names):
    asked.append(self.name)
    return get_services(self, *names)
ops.Container.get_services = count_services
again = ctx.run(ctx.on.update_status(), out)
print(json.dumps({
    "before": before,
    "lightkube": "lightkube" in sys.modules,
    "charmlibs": sorted(m for m in sys.modules if m.startswith("charmlibs")),
    "pydantic": "pydantic" in sys.modules,
    "first_applies": first,
    "applies": len(applied) - len(first),
    "relations_unchanged": again.relations == out.relations,
    "containers_unchanged": again.containers == out.containers,
    "services_asked": sorted(asked),
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
}))
"""


def test_settled_update_status_imports_no_lightkube_and_writes_nothing():
    from unit.kubeflow_dashboard.helpers import gateway_metadata

    from kubeflow_interfaces import istio_ingress_route

    route = istio_ingress_route.config_json(
        app="kubeflow-dashboard", prefix="/", port=8082, listener_port=443
    )
    given = {"route": route, "metadata": gateway_metadata()}
    outcome = run_fresh(SCRIPT, stdin=json.dumps(given))

    assert outcome["before"] is False
    assert outcome["first_applies"] == ["crds", "dashboard"]
    assert outcome["applies"] == 0
    assert outcome["lightkube"] is False
    assert outcome["charmlibs"] == []
    assert outcome["pydantic"] is False  # neither the links nor the config need it
    assert outcome["relations_unchanged"] is True
    assert outcome["containers_unchanged"] is True
    # Each container's Pebble is asked for its service once: the status reuses
    # what the reconcile found.
    assert outcome["services_asked"] == ["dashboard", "kfam", "profile-controller"]
    assert outcome["status"] == "active: https://kf.example.com/"
