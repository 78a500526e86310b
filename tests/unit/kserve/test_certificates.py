"""The webhooks' certificates, with real crypto: made, renewed at 2/3 of life, rotated."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from ops import testing
from unit.kserve.helpers import kserve_cluster as cluster
from unit.kserve.helpers import service, settled, state
from unit.kserve.helpers import workloads as wl
from webhook_charms import at, ca_bundles, pushed, stored_bundle

from kubeflow_charms import certificates


def _ca_bundles(kube) -> set[str]:
    """The caBundle of every KServe webhook, decoded; each configuration must be there."""
    return ca_bundles(
        kube,
        [("MutatingWebhookConfiguration", name) for name in cluster.MUTATING]
        + [("ValidatingWebhookConfiguration", name) for name in cluster.VALIDATING],
    )


def _pushed(ctx, out: testing.State, path: str) -> str:
    return pushed(ctx, out, wl.CONTROLLER.container, path)


def test_the_first_leader_hook_makes_them_and_serves_them(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    bundle = stored_bundle(out)
    assert _ca_bundles(kube) == {bundle.ca_cert}
    assert _pushed(ctx, out, wl.CERT_FILE) == bundle.tls_cert
    assert _pushed(ctx, out, wl.KEY_FILE) == bundle.tls_key
    assert service(out, wl.CONTROLLER).environment[wl.TLS_SERIAL] == bundle.serial
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kserve-webhook-server-service.kubeflow.svc" in sans.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert.encode())
    assert cert.issuer == ca.subject


def test_renewal_comes_at_two_thirds_of_the_serving_life_with_the_cabundle(ctx, kube, monkeypatch):
    before_state = settled(ctx)
    before = stored_bundle(before_state)
    due = certificates.renewal_time(before.not_before, before.not_after)

    at(monkeypatch, due - dt.timedelta(seconds=1))
    writes = list(kube.writes)
    early = ctx.run(ctx.on.update_status(), before_state)
    assert stored_bundle(early).serial == before.serial
    assert kube.writes == writes

    at(monkeypatch, due)
    out = ctx.run(ctx.on.update_status(), early)
    after = stored_bundle(out)
    assert after.serial != before.serial and after.ca_serial == before.ca_serial
    # The same hook: the controller restarts with the new certificate ...
    assert service(out, wl.CONTROLLER).environment[wl.TLS_SERIAL] == after.serial
    assert _pushed(ctx, out, wl.CERT_FILE) == after.tls_cert
    # ... and every webhook carries the CA that signed it.
    assert _ca_bundles(kube) == {after.ca_cert}
    assert out.unit_status.name == "active"


def test_a_ca_due_for_renewal_is_replaced_and_the_ca_bundles_follow_in_the_same_hook(
    ctx, kube, monkeypatch
):
    before_state = settled(ctx)
    before = stored_bundle(before_state)
    at(monkeypatch, certificates.renewal_time(before.ca_not_before, before.ca_not_after))
    out = ctx.run(ctx.on.update_status(), before_state)
    after = stored_bundle(out)
    assert after.ca_serial != before.ca_serial
    assert _ca_bundles(kube) == {after.ca_cert}
    assert service(out, wl.CONTROLLER).environment[wl.TLS_SERIAL] == after.serial


def test_rotate_certificates_gives_a_new_ca_and_the_ca_bundles_in_the_same_hook(ctx, kube):
    before_state = settled(ctx)
    before = stored_bundle(before_state)
    out = ctx.run(ctx.on.action("rotate-certificates"), before_state)
    after = stored_bundle(out)
    assert after.ca_serial != before.ca_serial and after.serial != before.serial
    assert _ca_bundles(kube) == {after.ca_cert}
    assert service(out, wl.CONTROLLER).environment[wl.TLS_SERIAL] == after.serial
    assert _pushed(ctx, out, wl.CERT_FILE) == after.tls_cert
    results = ctx.action_results
    assert results is not None
    assert results["ca-serial"] == after.ca_serial and results["serial"] == after.serial
    assert results["not-after"] == after.not_after.isoformat()
    assert results["next-renewal"] == after.next_renewal().isoformat()


def test_rotate_certificates_on_a_follower_fails_and_changes_nothing(ctx, kube):
    writes = list(kube.writes)
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action("rotate-certificates"), state(leader=False))
    assert kube.writes == writes


def test_rotate_certificates_with_a_bad_option_fails_and_changes_nothing(ctx, kube):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = dataclasses.replace(out, config={"url-scheme": "ftp"})
    with pytest.raises(testing.ActionFailed, match="url-scheme"):
        ctx.run(ctx.on.action("rotate-certificates"), bad)
    assert kube.writes == writes
