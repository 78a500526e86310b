"""A settled update-status hook stays light: no lightkube, no cryptography, nothing written.

Each case runs in a fresh interpreter, because this test session itself
imports lightkube and cryptography. The model is settled first with the
cluster writes stubbed out (so lightkube is never imported), with
certificates made beforehand by the test (so cryptography is not either).
"""

from __future__ import annotations

import json

import pytest
from charm_loader import run_fresh

from kubeflow_charms import certificates

SCRIPT = r"""
import json, sys, time, resource, dataclasses
from ops import testing
from unit.istio.helpers import CHARM, checks_up, route, auth_relation, state, with_relations
from kubeflow_charms import kubernetes

content = json.loads(sys.stdin.read())
secret = testing.Secret(tracked_content=content, owner="app", label="istiod-certificates")
base = with_relations(
    state(config={"external-hostname": "kf.example.com"}, secrets={secret}),
    route("dex", "/dex", auth=False),
    route("dashboard", "/", auth=True),
    auth_relation(),
)
ctx = testing.Context(CHARM.IstioCharm)
applied = []
original = kubernetes.Resources.reconcile
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)
out = checks_up(ctx.run(ctx.on.config_changed(), base))
if sys.argv[1] == "due":
    # The serving certificate reached 2/3 of its life: renewing needs cryptography.
    secret = [s for s in out.secrets if s.label == "istiod-certificates"][0]
    aged = dict(secret.latest_content, **{"not-before": "2000-01-01T00:00:00+00:00"})
    secret = dataclasses.replace(secret, tracked_content=aged, latest_content=aged)
    out = dataclasses.replace(out, secrets={secret})
settled_applies = len(applied)
parsed = []
parse = CHARM.routes.from_istio_ingress_route
CHARM.routes.from_istio_ingress_route = lambda *a, **k: parsed.append(1) or parse(*a, **k)
before = {"lightkube": "lightkube" in sys.modules, "cryptography": "cryptography" in sys.modules}
start = time.perf_counter()
again = ctx.run(ctx.on.update_status(), out)
elapsed = time.perf_counter() - start
print(json.dumps({
    "before": before,
    "lightkube": "lightkube" in sys.modules,
    "cryptography": "cryptography" in sys.modules,
    "tls_lib": "charmlibs.interfaces.tls_certificates" in sys.modules,
    "applies": len(applied) - settled_applies,
    "parsed": len(parsed),
    "first_applies": settled_applies,
    "relations_unchanged": again.relations == out.relations,
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
    "seconds": elapsed,
    "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@pytest.fixture(scope="module")
def content() -> str:
    bundle = certificates.new_bundle("test CA", ["istiod.kubeflow.svc"])
    return json.dumps(bundle.to_content())


def _run(case: str, content: str) -> dict[str, object]:
    return run_fresh(SCRIPT, case, stdin=content)


def test_settled_update_status_imports_neither_lightkube_nor_cryptography(content):
    outcome = _run("settled", content)

    assert outcome["before"] == {"lightkube": False, "cryptography": False}
    assert outcome["first_applies"] == 2  # the settling hook applied both scopes
    assert outcome["applies"] == 0
    assert outcome["parsed"] == 0  # the requests come from the peer databag, unparsed
    assert outcome["lightkube"] is False
    assert outcome["cryptography"] is False
    assert outcome["tls_lib"] is False
    assert outcome["relations_unchanged"] is True
    assert outcome["status"] == "active: http://kf.example.com"


def test_renewal_due_is_what_loads_cryptography(content):
    # The control: the same hook with a certificate to renew does load it.
    outcome = _run("due", content)

    assert outcome["cryptography"] is True
    assert outcome["lightkube"] is False  # the same CA: the cluster objects do not change
