"""A settled update-status hook stays light: no lightkube, no cryptography, nothing written.

Each case runs in a fresh interpreter, because this test session itself
imports lightkube and cryptography. The model is settled first with the
cluster writes stubbed out (so lightkube is never imported), with
certificates made beforehand by the test (so cryptography is not either);
with a user's gateway certificate, its check is stubbed while settling.
"""

from __future__ import annotations

import json

import pytest
from charm_loader import run_fresh
from cryptography import x509

from kubeflow_charms import certificates

SCRIPT = r"""
import json, sys, time, resource, dataclasses
import ops
from ops import testing
from unit.istio.helpers import CHARM, checks_up, route, auth_relation, state, with_relations
from kubeflow_charms import kubernetes

given = json.loads(sys.stdin.read())
secret = testing.Secret(tracked_content=given["bundle"], owner="app", label="istiod-certificates")
config, secrets = {"external-hostname": "kf.example.com"}, {secret}
if sys.argv[1].startswith("tls"):
    user = testing.Secret(tracked_content=given["tls"])
    config["tls-secret-id"], secrets = user.id, {secret, user}
    check = CHARM.gateway.check_tls
    not_after = CHARM.dt.datetime.fromisoformat(given["not-after"])
    CHARM.gateway.check_tls = lambda cert, key: not_after
base = with_relations(
    state(config=config, secrets=secrets),
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
if sys.argv[1].startswith("tls"):
    CHARM.gateway.check_tls = check
if sys.argv[1] == "tls-changed":
    # The user put another certificate in the secret: it is checked, with cryptography.
    changed = dataclasses.replace(
        user, tracked_content=given["other"], latest_content=given["other"]
    )
    out = dataclasses.replace(out, secrets={s for s in out.secrets if s.id != user.id} | {changed})
settled_applies = len(applied)
parsed = []
parse = CHARM.routes.from_istio_ingress_route
CHARM.routes.from_istio_ingress_route = lambda *a, **k: parsed.append(1) or parse(*a, **k)
before = {"lightkube": "lightkube" in sys.modules, "cryptography": "cryptography" in sys.modules}
# Count what the hook asks Pebble, by request.
asks = []
for name in ("can_connect", "get_services", "get_plan", "get_checks"):
    original = getattr(ops.Container, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
        asks.append(_name)
        return _original(self, *args, **kwargs)
    setattr(ops.Container, name, record)
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
    "pebble_asks": asks,
    "relations_unchanged": again.relations == out.relations,
    "status": f"{again.unit_status.name}: {again.unit_status.message}",
    "seconds": elapsed,
    "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@pytest.fixture(scope="module")
def content() -> str:
    bundle = certificates.new_bundle("test CA", ["istiod.kubeflow.svc"])
    ca = certificates.generate_ca("user CA")
    pairs = [certificates.generate_serving(*ca, ["kf.example.com"]) for _ in range(2)]
    tls, other = ({"tls-cert": cert + ca[0], "tls-key": key} for cert, key in pairs)
    not_after = x509.load_pem_x509_certificate(pairs[0][0].encode()).not_valid_after_utc
    return json.dumps(
        {
            "bundle": bundle.to_content(),
            "tls": tls,
            "other": other,
            "not-after": not_after.isoformat(),
        }
    )


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
    # The leader is settled: Pebble is asked whether istiod runs and is ready, and
    # nothing is read back from the plan.
    assert outcome["pebble_asks"] == ["get_services", "get_checks"]


def test_settled_update_status_with_a_user_certificate_does_not_check_it_again(content):
    outcome = _run("tls", content)

    assert outcome["before"] == {"lightkube": False, "cryptography": False}
    assert outcome["applies"] == 0
    assert outcome["cryptography"] is False
    assert outcome["relations_unchanged"] is True
    assert outcome["status"] == "active: https://kf.example.com"


def test_a_changed_user_certificate_is_checked_with_cryptography(content):
    # The control: new secret content is parsed, the pair and the chain checked.
    outcome = _run("tls-changed", content)

    assert outcome["cryptography"] is True
    assert outcome["status"] == "active: https://kf.example.com"


def test_renewal_due_is_what_loads_cryptography(content):
    # The control: the same hook with a certificate to renew does load it.
    outcome = _run("due", content)

    assert outcome["cryptography"] is True
    assert outcome["lightkube"] is False  # the same CA: the cluster objects do not change
