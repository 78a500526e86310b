"""Webhook certificates with real crypto: made, renewed at two thirds, rotated."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from ops import testing
from unit.kubeflow_trainer.helpers import state
from webhook_charms import at, ca_bundles, stored_bundle

CONFIGS = (
    ("ValidatingWebhookConfiguration", "validator.trainer.kubeflow.org"),
    ("MutatingWebhookConfiguration", "jobset-mutating-webhook-configuration"),
    ("ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration"),
)


def test_the_first_leader_hook_makes_a_certificate_for_both_services(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    bundle = stored_bundle(out)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubeflow-trainer-controller-manager.kubeflow.svc" in names.get_values_for_type(
        x509.DNSName
    )
    assert "jobset-webhook-service.kubeflow.svc" in names.get_values_for_type(x509.DNSName)
    assert ca_bundles(kube, CONFIGS) == {bundle.ca_cert}


def test_renewal_at_two_thirds_of_life_updates_every_ca_bundle_in_the_same_hook(
    ctx, kube, monkeypatch: pytest.MonkeyPatch
):
    out = ctx.run(ctx.on.config_changed(), state())
    out = ctx.run(ctx.on.update_status(), out)
    first = stored_bundle(out)
    due = first.ca_not_before + (first.ca_not_after - first.ca_not_before) * 2 / 3
    just_before = due - dt.timedelta(seconds=5)
    at(monkeypatch, just_before)
    same = ctx.run(ctx.on.update_status(), out)
    assert stored_bundle(same).ca_serial == first.ca_serial
    at(monkeypatch, due + dt.timedelta(seconds=1))
    renewed = ctx.run(ctx.on.update_status(), same)
    bundle = stored_bundle(renewed)
    assert bundle.ca_serial != first.ca_serial
    assert ca_bundles(kube, CONFIGS) == {bundle.ca_cert}
    env = renewed.get_container("trainer-controller").layers["trainer-controller"]
    assert env.services["trainer-controller"].environment["TLS_SERIAL"] == bundle.serial


def test_rotate_certificates_replaces_them_and_the_ca_bundles(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    first = stored_bundle(out)
    out = ctx.run(ctx.on.action("rotate-certificates"), out)
    bundle = stored_bundle(out)
    assert bundle.ca_serial != first.ca_serial
    assert ctx.action_results["ca-serial"] == bundle.ca_serial
    assert set(ctx.action_results) == {"ca-serial", "serial", "not-after", "next-renewal"}
    assert ca_bundles(kube, CONFIGS) == {bundle.ca_cert}


def test_rotate_certificates_on_a_follower_fails_with_a_message(ctx, kube):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("rotate-certificates"), dataclasses.replace(state(), leader=False))
    assert "leader" in failed.value.message
