"""The webhooks' certificates, with real crypto: made, renewed at 2/3 of life, rotated."""

from __future__ import annotations

import dataclasses
import datetime as dt

import ops
import pytest
from ops import testing
from unit.katib.helpers import service, state
from unit.katib.helpers import workloads as wl
from webhook_charms import at, ca_bundles, certificates_secret, pushed, stored_bundle

from kubeflow_charms import certificates


def _ca_bundles(kube) -> set[str]:
    """The caBundle of every Katib webhook, decoded."""
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    return ca_bundles(kube, [(kind, "katib.kubeflow.org") for kind in kinds])


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
    assert "katib-controller.kubeflow.svc" in sans.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert.encode())
    assert cert.issuer == ca.subject


def _settled(ctx) -> testing.State:
    return ctx.run(ctx.on.config_changed(), ctx.run(ctx.on.config_changed(), state()))


def test_renewal_comes_exactly_at_two_thirds_of_the_serving_life(ctx, kube, monkeypatch):
    settled = _settled(ctx)
    before = stored_bundle(settled)
    due = certificates.renewal_time(before.not_before, before.not_after)

    at(monkeypatch, due - dt.timedelta(seconds=1))
    writes = list(kube.writes)
    early = ctx.run(ctx.on.update_status(), settled)
    assert stored_bundle(early).serial == before.serial
    assert kube.writes == writes

    at(monkeypatch, due)
    out = ctx.run(ctx.on.update_status(), early)
    after = stored_bundle(out)
    assert after.serial != before.serial and after.ca_serial == before.ca_serial
    # The same hook: the controller restarts with the new certificate ...
    assert service(out, wl.CONTROLLER).environment[wl.TLS_SERIAL] == after.serial
    assert _pushed(ctx, out, wl.CERT_FILE) == after.tls_cert
    # ... and the webhooks carry the CA that signed it (unchanged here).
    assert _ca_bundles(kube) == {after.ca_cert}
    assert out.unit_status == ops.ActiveStatus()


def test_a_ca_due_for_renewal_is_replaced_and_the_ca_bundle_follows(ctx, kube, monkeypatch):
    settled = _settled(ctx)
    before = stored_bundle(settled)
    at(monkeypatch, certificates.renewal_time(before.ca_not_before, before.ca_not_after))
    out = ctx.run(ctx.on.update_status(), settled)
    after = stored_bundle(out)
    assert after.ca_serial != before.ca_serial
    assert _ca_bundles(kube) == {after.ca_cert}


def test_rotate_certificates_gives_a_new_ca_and_the_ca_bundle_in_the_same_hook(ctx, kube):
    settled = _settled(ctx)
    before = stored_bundle(settled)
    out = ctx.run(ctx.on.action("rotate-certificates"), settled)
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
    follower = state(leader=False)
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action("rotate-certificates"), follower)
    assert kube.writes == []


def test_the_leader_removes_an_old_revision(ctx, kube):
    rotated = ctx.run(ctx.on.action("rotate-certificates"), _settled(ctx))
    settled = ctx.run(ctx.on.update_status(), rotated)
    out = ctx.run(ctx.on.secret_remove(certificates_secret(settled), revision=1), settled)
    assert ctx.removed_secret_revisions == [1]
    assert out.unit_status == ops.ActiveStatus()


def test_a_follower_reads_the_leaders_certificates_and_makes_none(ctx, kube):
    leader = _settled(ctx)
    secret = certificates_secret(leader)
    follower = dataclasses.replace(state(leader=False), secrets={secret})
    out = ctx.run(ctx.on.config_changed(), follower)
    assert certificates_secret(out).latest_content == secret.latest_content
