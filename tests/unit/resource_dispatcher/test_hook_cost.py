"""A settled update-status hook stays light: no lightkube, no cryptography, nothing written.

The dispatcher does not list namespaces on update-status: the watch container
reports every profile namespace when it starts and each change after that,
and the charm restarts the watch if it stopped. So a settled update-status
compares the hash of what it would apply (with the namespaces known at the
last apply) with the one stored, and talks to nobody. Each case runs in a
fresh interpreter, because this test session itself imports lightkube.
"""

from __future__ import annotations

import json

import pytest
from charm_loader import run_fresh

from kubeflow_charms import certificates

SCRIPT = r"""
import json, pathlib, sys, time
from hook_calls import record
from ops import testing
from unit.resource_dispatcher.helpers import CHARM, offer, secret_object, state
from kubeflow_charms import kubernetes

content = json.loads(sys.stdin.read())
certs = testing.Secret(tracked_content=content, owner="app", label="webhook-certificates")
relation, manifests = offer("secrets", "minio", [secret_object("minio-credentials")])
base = state(relation, secrets={certs, manifests})
applied = []
kubernetes.Resources.reconcile = lambda self, text: applied.append(self.scope)
CHARM.profile_namespaces = lambda: ["team-a"]
ca = pathlib.Path(sys.argv[1]) / "ca.crt"
ca.write_text("-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n")
CHARM.watch_token.CHARM_CA = ca
tokens = []
def request_token(app, ns, now):
    tokens.append(now)
    return CHARM.watch_token.Token("issued-token", issued=now, expires=now + 86400)
CHARM.watch_token.request_token = request_token
ctx = testing.Context(CHARM.ResourceDispatcherCharm)
out = ctx.run(ctx.on.config_changed(), base)
first = len(applied)
CHARM.profile_namespaces = lambda: (_ for _ in ()).throw(AssertionError("listed namespaces"))
before = {"lightkube": "lightkube" in sys.modules, "cryptography": "cryptography" in sys.modules}
calls = record()
start = time.perf_counter()
again = ctx.run(ctx.on.update_status(), out)
print(json.dumps({
    **calls,
    "before": before,
    "lightkube": "lightkube" in sys.modules,
    "cryptography": "cryptography" in sys.modules,
    "first_applies": first,
    "applies": len(applied) - first,
    "tokens": len(tokens),
    "relations_unchanged": again.relations == out.relations,
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
    "seconds": time.perf_counter() - start,
}))
"""


@pytest.fixture(scope="module")
def content() -> str:
    bundle = certificates.new_bundle("test CA", ["resource-dispatcher-webhook.kubeflow.svc"])
    return json.dumps(bundle.to_content())


def test_settled_update_status_imports_neither_lightkube_nor_cryptography(content, tmp_path):
    outcome = run_fresh(SCRIPT, str(tmp_path), stdin=content)
    # Nothing logged above DEBUG but the warnings of a run outside a pod:
    # ops.testing's own, and the drift check's (it finds no cluster).
    assert not [m for m in outcome.pop("log") if m.startswith("INFO")]
    # The unit is settled: each container is asked whether its service runs, the
    # webhook whether it is ready; nothing is read back from the plans.
    assert outcome.pop("pebble") == ["get_services", "get_checks", "get_services"]
    # What the hook asks Juju: the certificates (due for renewal?) and the peer
    # relation (the drift check, which finds no cluster here, reads no digest). The
    # statuses the last full reconcile set stand.
    assert outcome.pop("tools") == ["secret-get", "secret-get", "relation-ids", "relation-list"]
    assert outcome["before"] == {"lightkube": False, "cryptography": False}
    # The CRD, the webhook, the users' PodDefault role, the watch's account, minio in team-a.
    assert outcome["first_applies"] == 5
    assert outcome["applies"] == 0
    # The watch's token was requested once, on the first hook; not again while fresh.
    assert outcome["tokens"] == 1
    assert outcome["lightkube"] is False
    assert outcome["cryptography"] is False
    assert outcome["relations_unchanged"] is True
    assert outcome["status"] == "active: 1 app(s) dispatched to 1 profile namespace(s)"
    assert outcome["seconds"] < 1.0
