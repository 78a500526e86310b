"""The webhooks' certificates, with real crypto: in the Secrets Knative reads, renewed, rotated."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from ops import testing
from unit.knative_serving.helpers import MODEL, settled, state
from webhook_charms import at, stored_bundle

from kubeflow_charms import certificates

SECRETS = ("webhook-certs", "net-istio-webhook-certs")


def _served(kube) -> set[tuple[str, str, str]]:
    """(server-cert, server-key, ca-cert) of each webhook Secret, decoded."""
    found = set()
    for name in SECRETS:
        data = kube.get("Secret", name, MODEL)["data"]
        found.add(
            tuple(
                base64.b64decode(data[key]).decode()
                for key in ("server-cert.pem", "server-key.pem", "ca-cert.pem")
            )
        )
    return found


def test_the_first_leader_hook_writes_them_into_both_secrets(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    bundle = stored_bundle(out)
    assert _served(kube) == {(bundle.tls_cert, bundle.tls_key, bundle.ca_cert)}
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    # knative/pkg webhook/certificates/resources/certs.go: SANs from the Service's name.
    for service in ("webhook", "net-istio-webhook"):
        assert {service, f"{service}.{MODEL}", f"{service}.{MODEL}.svc"} <= names
    # Knative mints its own pair when the certificate ends within 24 hours
    # (knative/pkg webhook/certificates/certificates.go): ours lasts far longer, and
    # renews long before that.
    assert bundle.not_after - bundle.not_before > dt.timedelta(days=30)
    assert bundle.not_after - bundle.next_renewal() > dt.timedelta(days=2)


def test_renewal_writes_the_new_certificate_in_the_same_hook(ctx, kube, monkeypatch):
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
    assert after.serial != before.serial
    assert _served(kube) == {(after.tls_cert, after.tls_key, after.ca_cert)}
    assert out.unit_status.name == "active"


def test_rotate_certificates_writes_a_new_ca_into_the_secrets(ctx, kube):
    before_state = settled(ctx)
    before = stored_bundle(before_state)
    out = ctx.run(ctx.on.action("rotate-certificates"), before_state)
    after = stored_bundle(out)
    assert after.ca_serial != before.ca_serial and after.serial != before.serial
    assert _served(kube) == {(after.tls_cert, after.tls_key, after.ca_cert)}
    results = ctx.action_results
    assert results is not None
    assert results["ca-serial"] == after.ca_serial and results["serial"] == after.serial


def test_rotate_certificates_on_a_follower_fails_and_changes_nothing(ctx, kube):
    writes = list(kube.writes)
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action("rotate-certificates"), state(leader=False))
    assert kube.writes == writes


def test_rotate_certificates_with_a_bad_option_fails_and_changes_nothing(ctx, kube):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = dataclasses.replace(out, config={"stable-window": "1s"})
    with pytest.raises(testing.ActionFailed, match="stable-window"):
        ctx.run(ctx.on.action("rotate-certificates"), bad)
    assert kube.writes == writes
