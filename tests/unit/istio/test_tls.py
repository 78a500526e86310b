"""Certificates: the gateway's HTTPS, and istiod's own CA and serving certificate.

The gateway's certificate comes from a user secret or the certificates relation.
istiod's are the charm's own: rotated on demand, renewed at 2/3 of their life.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import ops
import pytest
from ops import testing
from unit.istio.helpers import (
    CHARM,
    MODEL,
    certificates_secret,
    file_text,
    istiod,
    replace_relation,
    route,
    settle,
    state,
    urls,
    with_relations,
)

from kubeflow_charms import certificates

HOST = "kubeflow.example.com"


@pytest.fixture(scope="module")
def user_ca() -> tuple[str, str]:
    return certificates.generate_ca("user CA")


@pytest.fixture(scope="module")
def user_cert(user_ca) -> tuple[str, str]:
    return certificates.generate_serving(*user_ca, [HOST])


@pytest.fixture(scope="module")
def bad_pairs(user_ca, user_cert) -> dict[str, tuple[tuple[str, str], str]]:
    """Each way a certificate and key can be wrong: the pair, and the message it gets."""
    cert, key = user_cert
    ca_cert, ca_key = user_ca
    _, other_key = certificates.generate_serving(ca_cert, ca_key, [HOST])
    other_ca, _ = certificates.generate_ca("another CA")
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    expired_cert, expired_key = certificates.generate_serving(
        ca_cert, ca_key, [HOST], validity=dt.timedelta(days=1), now=long_ago
    )
    expired_at = (long_ago - dt.timedelta(minutes=1)).replace(microsecond=0) + dt.timedelta(days=1)
    # PEM markers around bytes that are not DER: the markers alone pass for a certificate.
    damaged = "AAAA" + "Zm9v" * 40
    bogus_cert = f"-----BEGIN CERTIFICATE-----\n{damaged}\n-----END CERTIFICATE-----\n"
    bogus_key = f"-----BEGIN PRIVATE KEY-----\n{damaged}\n-----END PRIVATE KEY-----\n"
    return {
        "bogus cert": (
            (bogus_cert, key),
            "the certificate is not readable PEM (a damaged certificate?)",
        ),
        "bogus key": (
            (cert, bogus_key),
            "the key is not a readable, unencrypted PEM private key (a damaged key?)",
        ),
        "key of another certificate": (
            (cert, other_key),
            "the key does not match the certificate (the first in the chain)",
        ),
        "chain with the wrong CA": (
            (cert + other_ca, key),
            "certificate 1 of the chain is not signed by certificate 2 (the chain goes from "
            "the server's certificate to the root, in order)",
        ),
        "chain in the wrong order": (
            (ca_cert + cert, key),
            "the key does not match the certificate (the first in the chain)",
        ),
        "expired": (
            (expired_cert, expired_key),
            f"the certificate expired at {expired_at.isoformat()}",
        ),
    }


def _tls_secret(cert: str, key: str) -> testing.Secret:
    return testing.Secret(tracked_content={"tls-cert": cert, "tls-key": key})


def _gateway_tls(kube) -> tuple[dict, dict | None]:
    gateway = kube.get("Gateway", "kubeflow-gateway", MODEL)
    secret = kube.get("Secret", "kubeflow-gateway-tls", MODEL)
    return gateway, secret


def _webhook_ca(kube) -> str:
    (config,) = kube.of_kind("MutatingWebhookConfiguration")
    bundles = {h["clientConfig"]["caBundle"] for h in config["webhooks"]}
    assert len(bundles) == 1
    return base64.b64decode(bundles.pop()).decode()


def _bundle(out: testing.State) -> certificates.CertificateBundle:
    return certificates.CertificateBundle.from_content(certificates_secret(out).latest_content)


# --- the gateway's HTTPS ------------------------------------------------------------------


def test_https_from_a_user_secret(ctx, kube, user_cert):
    cert, key = user_cert
    secret = _tls_secret(cert, key)
    base = with_relations(
        state(config={"tls-secret-id": secret.id, "external-hostname": HOST}, secrets={secret}),
        route("dex", "/dex", auth=False),
    )
    out = settle(ctx, base)

    gateway, tls = _gateway_tls(kube)
    http, https = gateway["spec"]["servers"]
    assert http["port"]["number"] == 80 and http["tls"] == {"httpsRedirect": True}
    assert https["port"] == {"number": 443, "name": "https", "protocol": "HTTPS"}
    # The certificate reaches the proxy as files the kubelet mounts, not through istiod
    # (which would need the gateway to be able to list every Secret: see test_gateway_rbac).
    assert https["tls"] == {
        "mode": "SIMPLE",
        "serverCertificate": "/etc/istio/gateway-tls/tls.crt",
        "privateKey": "/etc/istio/gateway-tls/tls.key",
    }
    assert tls is not None and tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]).decode().strip() == cert.strip()
    assert base64.b64decode(tls["data"]["tls.key"]).decode().strip() == key.strip()
    assert urls(out) == {"dex": f"https://{HOST}"}
    assert out.unit_status == testing.ActiveStatus(f"https://{HOST}")
    assert kube.rejected == []


@pytest.mark.parametrize(
    "content",
    [
        {"tls-cert": "not a certificate", "tls-key": "x"},
        {"tls-cert": "", "tls-key": ""},
        {"cert": "x"},
    ],
)
def test_a_bad_user_secret_blocks_and_applies_nothing(ctx, kube, content):
    secret = testing.Secret(tracked_content=content)
    out = ctx.run(
        ctx.on.config_changed(), state(config={"tls-secret-id": secret.id}, secrets={secret})
    )
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("tls-secret-id: the secret needs tls-cert")
    assert kube.writes == []


@pytest.mark.parametrize(
    "case",
    [
        "bogus cert",
        "bogus key",
        "key of another certificate",
        "chain with the wrong CA",
        "chain in the wrong order",
        "expired",
    ],
)
def test_a_wrong_certificate_or_key_blocks_and_applies_nothing(ctx, kube, bad_pairs, case):
    (cert, key), message = bad_pairs[case]
    secret = _tls_secret(cert, key)
    out = ctx.run(
        ctx.on.config_changed(), state(config={"tls-secret-id": secret.id}, secrets={secret})
    )
    assert out.unit_status == testing.BlockedStatus(f"tls-secret-id: {message}")
    assert kube.writes == []


def test_a_wrong_key_for_a_served_certificate_changes_nothing(ctx, kube, user_cert, bad_pairs):
    secret = _tls_secret(*user_cert)
    out = settle(ctx, state(config={"tls-secret-id": secret.id}, secrets={secret}))
    writes, peer_data = list(kube.writes), out.get_relations("istio-peers")[0].local_app_data
    (_, wrong_key), message = bad_pairs["key of another certificate"]
    content = {"tls-cert": user_cert[0], "tls-key": wrong_key}
    changed = dataclasses.replace(secret, tracked_content=content, latest_content=content)
    out = ctx.run(ctx.on.secret_changed(changed), dataclasses.replace(out, secrets={changed}))
    assert out.unit_status == testing.BlockedStatus(f"tls-secret-id: {message}")
    assert kube.writes == writes
    assert out.get_relations("istio-peers")[0].local_app_data == peer_data
    _, tls = _gateway_tls(kube)
    assert tls is not None
    assert base64.b64decode(tls["data"]["tls.key"]).decode().strip() == user_cert[1].strip()


def test_https_with_a_chain_to_the_ca(ctx, kube, user_ca, user_cert):
    cert, key = user_cert
    secret = _tls_secret(cert + user_ca[0], key)
    out = settle(ctx, state(config={"tls-secret-id": secret.id}, secrets={secret}))
    _, tls = _gateway_tls(kube)
    assert tls is not None
    assert base64.b64decode(tls["data"]["tls.crt"]).decode() == cert.strip() + "\n" + user_ca[0]
    assert out.unit_status == testing.ActiveStatus(
        "https://istio-ingressgateway.kubeflow.svc.cluster.local (no load-balancer address yet)"
    )


def test_a_checked_pair_is_not_parsed_again_but_its_expiry_still_counts(
    ctx, kube, user_cert, monkeypatch
):
    secret = _tls_secret(*user_cert)
    out = settle(ctx, state(config={"tls-secret-id": secret.id}, secrets={secret}))
    peer = out.get_relations("istio-peers")[0]
    record = json.loads(peer.local_app_data[CHARM.TLS_CHECKED_KEY])
    checks: list[str] = []
    original = CHARM.gateway.check_tls
    monkeypatch.setattr(
        CHARM.gateway, "check_tls", lambda c, k: (checks.append(c), original(c, k))[1]
    )
    writes = list(kube.writes)

    again = ctx.run(ctx.on.update_status(), out)
    assert checks == [] and again.unit_status.name == "active"
    assert again.get_relations("istio-peers")[0].local_app_data == peer.local_app_data

    # The recorded expiry passes: blocked without parsing the certificate again.
    past = dict(record, **{"not-after": "2020-01-01T00:00:00+00:00"})
    aged = dataclasses.replace(
        peer,
        local_app_data={**peer.local_app_data, CHARM.TLS_CHECKED_KEY: json.dumps(past)},
    )
    out = ctx.run(ctx.on.update_status(), replace_relation(out, aged))
    assert checks == []
    assert out.unit_status == testing.BlockedStatus(
        "tls-secret-id: the certificate expired at 2020-01-01T00:00:00+00:00"
    )
    assert kube.writes == writes


def test_an_unreadable_user_secret_blocks(ctx, kube):
    missing = testing.Secret(tracked_content={"tls-cert": "x"})
    out = ctx.run(ctx.on.config_changed(), state(config={"tls-secret-id": missing.id}))
    assert out.unit_status == testing.BlockedStatus(
        "tls-secret-id: cannot read the secret; grant it to this application"
    )
    assert kube.writes == []


def test_back_to_http_when_the_secret_is_unset(ctx, kube, user_cert):
    secret = _tls_secret(*user_cert)
    out = settle(ctx, state(config={"tls-secret-id": secret.id}, secrets={secret}))
    out = settle(ctx, dataclasses.replace(out, config={}))
    gateway, tls = _gateway_tls(kube)
    assert [s["port"]["number"] for s in gateway["spec"]["servers"]] == [80]
    assert tls is None


def _certificates_relation(**kwargs) -> testing.Relation:
    return testing.Relation(
        "certificates",
        interface="tls-certificates",
        remote_app_name="self-signed-certificates",
        **kwargs,
    )


def _issue(out: testing.State, relation_id: int) -> tuple[testing.Relation, str]:
    """Act as the CA charm: sign the charm's request, answer on the relation."""
    from charmlibs.interfaces import tls_certificates as tls

    relation = out.get_relation(relation_id)
    assert isinstance(relation, testing.Relation)
    (request,) = json.loads(relation.local_app_data["certificate_signing_requests"])
    csr = tls.CertificateSigningRequest.from_string(request["certificate_signing_request"])
    ca_key = tls.PrivateKey.generate()
    attributes = tls.CertificateRequestAttributes(common_name="test CA", is_ca=True)
    ca = tls.Certificate.generate_self_signed_ca(attributes, ca_key, dt.timedelta(days=30))
    cert = tls.Certificate.generate(csr, ca, ca_key, dt.timedelta(days=10))
    answer = [
        {
            "certificate_signing_request": str(csr),
            "certificate": str(cert),
            "ca": str(ca),
            "chain": [str(cert), str(ca)],
        }
    ]
    answered = dataclasses.replace(relation, remote_app_data={"certificates": json.dumps(answer)})
    return answered, str(cert)


def test_https_from_the_certificates_relation(ctx, kube):
    relation = _certificates_relation()
    base = with_relations(
        state(config={"external-hostname": HOST}), relation, route("dex", "/dex", auth=False)
    )
    out = ctx.run(ctx.on.relation_created(relation), base)
    out = settle(ctx, out)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the gateway certificate from self-signed-certificates"
    )
    gateway, tls = _gateway_tls(kube)
    assert tls is None and len(gateway["spec"]["servers"]) == 1  # HTTP until the certificate comes

    answered, cert = _issue(out, relation.id)
    out = ctx.run(ctx.on.relation_changed(answered), replace_relation(out, answered))
    gateway, tls = _gateway_tls(kube)
    assert tls is not None
    served = base64.b64decode(tls["data"]["tls.crt"]).decode()
    assert served.startswith(cert.strip())
    assert "PRIVATE KEY" in base64.b64decode(tls["data"]["tls.key"]).decode()
    assert [s["port"]["number"] for s in gateway["spec"]["servers"]] == [80, 443]
    assert urls(out) == {"dex": f"https://{HOST}"}
    assert out.unit_status == testing.ActiveStatus(f"https://{HOST}")
    assert kube.rejected == []


def test_a_broken_chain_from_the_certificates_relation_blocks(ctx, kube, user_ca):
    relation = _certificates_relation()
    base = with_relations(state(config={"external-hostname": HOST}), relation)
    out = settle(ctx, ctx.run(ctx.on.relation_created(relation), base))
    writes = list(kube.writes)
    answered, cert = _issue(out, relation.id)
    # The chain runs from the leaf to the root, each signed by the next: read from
    # charmlibs-interfaces-tls-certificates 1.12.0, _tls_certificates.py, chain_has_valid_order.
    (answer,) = json.loads(answered.remote_app_data["certificates"])
    answer["chain"] = [cert, user_ca[0]]
    broken = dataclasses.replace(answered, remote_app_data={"certificates": json.dumps([answer])})
    out = ctx.run(ctx.on.relation_changed(broken), replace_relation(out, broken))
    assert out.unit_status == testing.BlockedStatus(
        "certificates relation with self-signed-certificates: certificate 1 of the chain is "
        "not signed by certificate 2 (the chain goes from the server's certificate to the "
        "root, in order)"
    )
    assert kube.writes == writes


def test_two_certificate_sources_block_naming_both(ctx, kube, user_cert):
    out = settle(ctx, state())
    writes = list(kube.writes)
    secret = _tls_secret(*user_cert)
    both = with_relations(
        dataclasses.replace(
            out, config={"tls-secret-id": secret.id}, secrets=set(out.secrets) | {secret}
        ),
        _certificates_relation(),
    )
    out = ctx.run(ctx.on.config_changed(), both)
    assert out.unit_status == testing.BlockedStatus(
        "two gateway certificates: tls-secret-id and the certificates relation with "
        "self-signed-certificates; remove one"
    )
    assert kube.writes == writes


# --- istiod's certificates --------------------------------------------------------------------


def test_rotate_certificates_replaces_ca_and_key_patches_the_webhook_and_restarts(
    ctx, kube, monkeypatch
):
    out = settle(ctx, state())
    old = _bundle(out)
    old_annotation = kube.get("Deployment", "istio-ingressgateway", MODEL)["spec"]["template"][
        "metadata"
    ]["annotations"]
    restarts: list[tuple[str, ...]] = []
    original = ops.Container.restart
    monkeypatch.setattr(
        ops.Container,
        "restart",
        lambda c, *names: (restarts.append(names), original(c, *names))[1],
    )

    out = ctx.run(ctx.on.action("rotate-certificates"), out)

    new = _bundle(out)
    results = ctx.action_results
    assert results is not None
    assert results["ca-serial"] == new.ca_serial != old.ca_serial
    assert results["serial"] == new.serial != old.serial
    assert results["not-after"] == new.not_after.isoformat()
    assert results["ca-not-after"] == new.ca_not_after.isoformat()
    assert "PRIVATE" not in json.dumps(results)
    assert new.ca_key != old.ca_key and new.tls_key != old.tls_key
    assert _webhook_ca(kube) == new.ca_cert
    assert file_text(ctx, out, "/var/run/secrets/istiod/tls/tls.key") == new.tls_key
    assert file_text(ctx, out, "/etc/cacerts/root-cert.pem") == new.ca_cert
    assert restarts == [(istiod.SERVICE,)]
    annotation = kube.get("Deployment", "istio-ingressgateway", MODEL)["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert (
        annotation["istio.kubeflow.org/ca-serial"]
        == new.ca_serial
        != old_annotation["istio.kubeflow.org/ca-serial"]
    )
    assert kube.rejected == []


def test_leader_removes_the_old_certificates_revision(ctx, kube):
    settled = ctx.run(
        ctx.on.update_status(), ctx.run(ctx.on.action("rotate-certificates"), settle(ctx, state()))
    )

    out = ctx.run(ctx.on.secret_remove(certificates_secret(settled), revision=1), settled)

    assert ctx.removed_secret_revisions == [1]
    assert out.unit_status == settled.unit_status
    assert out.unit_status.name == "active"


def test_a_non_leader_leaves_the_old_certificates_revision(ctx, kube):
    settled = settle(ctx, state())
    follower = dataclasses.replace(settled, leader=False)

    ctx.run(ctx.on.secret_remove(certificates_secret(settled), revision=1), follower)

    assert ctx.removed_secret_revisions == []


def test_rotate_certificates_on_a_non_leader_fails(ctx, kube):
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action("rotate-certificates"), state(leader=False))


def test_rotate_certificates_without_the_container_fails(ctx, kube):
    out = settle(ctx, state())
    c = out.get_container(istiod.CONTAINER)
    down = dataclasses.replace(out, containers={dataclasses.replace(c, can_connect=False)})
    with pytest.raises(testing.ActionFailed, match="istiod container"):
        ctx.run(ctx.on.action("rotate-certificates"), down)


def _aged(out: testing.State, **times: dt.timedelta) -> testing.State:
    """The state with the certificates secret's timestamps moved into the past."""
    secret = certificates_secret(out)
    now = dt.datetime.now(dt.timezone.utc)
    content = dict(secret.latest_content)
    content.update(
        {key.replace("_", "-"): (now + delta).isoformat() for key, delta in times.items()}
    )
    aged = dataclasses.replace(secret, tracked_content=content, latest_content=content)
    return dataclasses.replace(out, secrets=(set(out.secrets) - {secret}) | {aged})


def test_serving_certificate_renewed_at_two_thirds_keeps_the_ca(ctx, kube, monkeypatch):
    out = settle(ctx, state())
    old = _bundle(out)
    # 250 of 365 days gone: not yet due.
    young = _aged(out, not_before=-dt.timedelta(days=240), not_after=dt.timedelta(days=125))
    writes = list(kube.writes)
    out = ctx.run(ctx.on.update_status(), young)
    assert _bundle(out).serial == old.serial

    due = _aged(out, not_before=-dt.timedelta(days=250), not_after=dt.timedelta(days=115))
    restarts: list[str] = []
    original = ops.Container.restart
    monkeypatch.setattr(
        ops.Container, "restart", lambda c, *n: (restarts.extend(n), original(c, *n))[1]
    )
    out = ctx.run(ctx.on.update_status(), due)

    new = _bundle(out)
    assert new.serial != old.serial and new.tls_key != old.tls_key
    assert new.ca_serial == old.ca_serial and new.ca_cert == old.ca_cert
    assert (new.not_after - new.not_before).days == 365
    assert file_text(ctx, out, "/var/run/secrets/istiod/tls/tls.crt") == new.tls_cert
    assert restarts == [istiod.SERVICE]
    assert kube.writes == writes  # same CA: the webhook and the gateway stay as they are


def test_ca_renewed_at_two_thirds_replaces_everything(ctx, kube):
    out = settle(ctx, state())
    old = _bundle(out)
    due = _aged(out, ca_not_before=-dt.timedelta(days=2500), ca_not_after=dt.timedelta(days=1150))
    out = ctx.run(ctx.on.update_status(), due)
    new = _bundle(out)
    assert new.ca_serial != old.ca_serial and new.serial != old.serial
    assert _webhook_ca(kube) == new.ca_cert
    assert kube.rejected == []
