"""kubeflow_charms.certificates: a CA, a serving certificate it signs, renewal, secret content."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import ops
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from ops import testing

from kubeflow_charms import certificates
from kubeflow_charms.certificates import CertificateBundle

NAMES = ["istiod.kubeflow.svc", "istiod.kubeflow.svc.cluster.local"]
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def bundle() -> CertificateBundle:
    return certificates.new_bundle("test CA", NAMES)


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _public_numbers_match(cert_pem: str, key_pem: str) -> bool:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_numbers() == _cert(cert_pem).public_key().public_numbers()  # type: ignore[union-attr]


def test_serving_certificate_is_signed_by_the_ca(bundle):
    ca, leaf = _cert(bundle.ca_cert), _cert(bundle.tls_cert)
    assert leaf.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert leaf.signature_hash_algorithm is not None
    public.verify(
        leaf.signature,
        leaf.tbs_certificate_bytes,
        padding.PKCS1v15(),
        leaf.signature_hash_algorithm,
    )
    leaf.verify_directly_issued_by(ca)
    assert _public_numbers_match(bundle.tls_cert, bundle.tls_key)
    assert _public_numbers_match(bundle.ca_cert, bundle.ca_key)


def test_chain_verifies_with_a_real_verifier(bundle):
    from cryptography.x509.verification import PolicyBuilder, Store

    store = Store([_cert(bundle.ca_cert)])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(NAMES[0]))
    chain = verifier.verify(_cert(bundle.tls_cert), [])
    assert chain[-1] == _cert(bundle.ca_cert)


def test_ca_and_leaf_extensions(bundle):
    ca, leaf = _cert(bundle.ca_cert), _cert(bundle.tls_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc


def test_bundle_records_serials_and_validity(bundle):
    ca, leaf = _cert(bundle.ca_cert), _cert(bundle.tls_cert)
    assert bundle.ca_serial == f"{ca.serial_number:X}"
    assert bundle.serial == f"{leaf.serial_number:X}"
    assert bundle.not_before == leaf.not_valid_before_utc
    assert bundle.not_after == leaf.not_valid_after_utc
    assert bundle.ca_not_after == ca.not_valid_after_utc
    assert (bundle.not_after - bundle.not_before).days == 365
    assert (bundle.ca_not_after - bundle.ca_not_before).days == 3650


def test_rotation_changes_keys_and_serials(bundle):
    rotated = certificates.new_bundle("test CA", NAMES)
    assert rotated.ca_key != bundle.ca_key and rotated.tls_key != bundle.tls_key
    assert rotated.ca_serial != bundle.ca_serial and rotated.serial != bundle.serial
    with pytest.raises(InvalidSignature):  # the old CA did not sign the new certificate
        _cert(rotated.tls_cert).verify_directly_issued_by(_cert(bundle.ca_cert))


def test_renewing_the_serving_certificate_keeps_the_ca(bundle):
    renewed = certificates.renew_serving(bundle, NAMES)
    assert renewed.ca_cert == bundle.ca_cert and renewed.ca_serial == bundle.ca_serial
    assert renewed.serial != bundle.serial and renewed.tls_key != bundle.tls_key
    _cert(renewed.tls_cert).verify_directly_issued_by(_cert(bundle.ca_cert))


def test_serving_certificate_never_outlives_its_ca():
    ca_cert, ca_key = certificates.generate_ca("short CA", validity=dt.timedelta(days=10))
    cert, _ = certificates.generate_serving(ca_cert, ca_key, NAMES, validity=dt.timedelta(days=90))
    assert _cert(cert).not_valid_after_utc == _cert(ca_cert).not_valid_after_utc


def test_serving_certificate_needs_a_name(bundle):
    with pytest.raises(ValueError, match="DNS name"):
        certificates.generate_serving(bundle.ca_cert, bundle.ca_key, [])


# --- renewal point -------------------------------------------------------------------------


def test_renewal_point_is_two_thirds_of_the_lifetime():
    end = T0 + dt.timedelta(days=300)
    assert certificates.renewal_time(T0, end) == T0 + dt.timedelta(days=200)
    assert not certificates.is_due(T0, end, T0 + dt.timedelta(days=199, hours=23))
    assert certificates.is_due(T0, end, T0 + dt.timedelta(days=200))
    assert certificates.is_due(T0, end, end + dt.timedelta(days=1))
    assert certificates.lifetime_fraction(T0, end, T0 + dt.timedelta(days=150)) == 0.5
    assert certificates.is_due(T0, end, T0 + dt.timedelta(days=150), fraction=0.5)


def _timed(bundle: CertificateBundle, **times: dt.datetime) -> CertificateBundle:
    content = bundle.to_content()
    content.update({k.replace("_", "-"): v.isoformat() for k, v in times.items()})
    return CertificateBundle.from_content(content)


def test_bundle_says_what_is_due(bundle):
    timed = _timed(
        bundle,
        ca_not_before=T0,
        ca_not_after=T0 + dt.timedelta(days=3000),
        not_before=T0,
        not_after=T0 + dt.timedelta(days=300),
    )
    assert timed.renewal_due(T0 + dt.timedelta(days=100)) is None
    assert timed.renewal_due(T0 + dt.timedelta(days=201)) == "serving"
    assert timed.renewal_due(T0 + dt.timedelta(days=2001)) == "ca"
    assert timed.next_renewal() == T0 + dt.timedelta(days=200)


# --- secret content ------------------------------------------------------------------------


def test_content_round_trips(bundle):
    content = bundle.to_content()
    assert set(content) >= {"ca-cert", "tls-cert", "tls-key", "not-after"}
    assert all(isinstance(v, str) for v in content.values())
    assert CertificateBundle.from_content(content) == bundle


def test_content_with_missing_keys_is_refused(bundle):
    content = bundle.to_content()
    del content["tls-key"]
    with pytest.raises(ValueError, match="tls-key"):
        CertificateBundle.from_content(content)
    with pytest.raises(ValueError, match="timestamp"):
        CertificateBundle.from_content({**bundle.to_content(), "not-after": "soon"})


def test_keys_stay_out_of_repr(bundle):
    text = repr(bundle)
    assert "PRIVATE KEY" not in text and bundle.serial in text


class _Charm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._store)

    def _store(self, event: ops.EventBase) -> None:
        secret, stored = certificates.load(self.model, "certs")
        bundle = BUNDLES.pop(0)
        certificates.store(self.app, bundle, label="certs", secret=secret)
        again = certificates.load(self.model, "certs")[1]
        assert again == bundle
        SEEN.append(stored)


BUNDLES: list[CertificateBundle] = []
SEEN: list[CertificateBundle | None] = []


def test_store_and_load_in_a_juju_secret(bundle):
    renewed = certificates.renew_serving(bundle, NAMES)
    BUNDLES[:] = [bundle, renewed]
    SEEN.clear()
    ctx = testing.Context(_Charm, meta={"name": "demo"})
    out = ctx.run(ctx.on.update_status(), testing.State(leader=True))
    (secret,) = out.secrets
    assert secret.label == "certs" and secret.owner == "app"
    assert secret.tracked_content == bundle.to_content()
    out = ctx.run(ctx.on.update_status(), out)
    (secret,) = out.secrets
    assert secret.latest_content == renewed.to_content()
    assert SEEN == [None, bundle]


def test_reading_timestamps_does_not_import_cryptography(bundle):
    script = (
        "import sys, datetime as dt\n"
        "from kubeflow_charms.certificates import CertificateBundle\n"
        f"b = CertificateBundle.from_content({bundle.to_content()!r})\n"
        "b.renewal_due(dt.datetime.now(dt.timezone.utc))\n"
        "print('cryptography' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


class _Keeper(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.keeper = certificates.CertificateKeeper(
            self, label="webhook-certs", ca_name="demo CA", dns_names=NAMES
        )
        framework.observe(self.on.update_status, self._on_update_status)
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on.secret_remove, self._on_secret_remove)
        self.seen: CertificateBundle | None = None

    def _on_update_status(self, _: ops.EventBase) -> None:
        self.seen = self.keeper.current()

    def _on_config_changed(self, _: ops.EventBase) -> None:
        self.seen = self.keeper.rotate()

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        self.keeper.remove_obsolete(event)


def _keep(state: testing.State, rotate: bool = False):
    ctx = testing.Context(_Keeper, meta={"name": "demo"})
    event = ctx.on.config_changed() if rotate else ctx.on.update_status()
    with ctx(event, state) as manager:
        out = manager.run()
        return manager.charm.seen, manager.charm.keeper.changed, out


def _secret(bundle: CertificateBundle) -> testing.Secret:
    return testing.Secret(bundle.to_content(), label="webhook-certs", owner="app")


def test_keeper_makes_the_bundle_once_on_the_leader():
    made, changed, out = _keep(testing.State(leader=True))
    assert made is not None and changed
    (secret,) = out.secrets
    assert secret.tracked_content == made.to_content()
    again, changed, _ = _keep(out)
    assert (again, changed) == (made, False)


def test_keeper_on_a_follower_reads_and_never_makes():
    assert _keep(testing.State())[:2] == (None, False)
    bundle = certificates.new_bundle("demo CA", NAMES)
    seen, changed, _ = _keep(testing.State(secrets={_secret(bundle)}))
    assert (seen, changed) == (bundle, False)


def test_keeper_renews_the_serving_certificate_at_two_thirds_and_keeps_the_ca():
    now = dt.datetime.now(dt.timezone.utc)
    old = certificates.new_bundle(
        "demo CA", NAMES, validity=dt.timedelta(days=3), now=now - dt.timedelta(days=2, hours=1)
    )
    renewed, changed, out = _keep(testing.State(leader=True, secrets={_secret(old)}))
    assert changed and renewed is not None
    assert (renewed.ca_serial, renewed.ca_cert) == (old.ca_serial, old.ca_cert)
    assert renewed.serial != old.serial
    assert out.get_secret(label="webhook-certs").latest_content == renewed.to_content()
    # A day earlier, before two thirds of that life, nothing is due.
    young = certificates.new_bundle(
        "demo CA", NAMES, validity=dt.timedelta(days=3), now=now - dt.timedelta(hours=23)
    )
    assert _keep(testing.State(leader=True, secrets={_secret(young)}))[:2] == (young, False)


def test_keeper_rotation_replaces_the_ca():
    old = certificates.new_bundle("demo CA", NAMES)
    rotated, changed, out = _keep(testing.State(leader=True, secrets={_secret(old)}), rotate=True)
    assert changed and rotated is not None and rotated.ca_serial != old.ca_serial
    assert out.get_secret(label="webhook-certs").latest_content == rotated.to_content()


def test_keeper_results_say_the_new_serials_and_dates():
    bundle = certificates.new_bundle("demo CA", NAMES)
    assert certificates.CertificateKeeper.results(bundle) == {
        "ca-serial": bundle.ca_serial,
        "serial": bundle.serial,
        "not-after": bundle.not_after.isoformat(),
        "next-renewal": bundle.next_renewal().isoformat(),
    }


@pytest.mark.parametrize(
    ("leader", "label", "removed"),
    [(True, "webhook-certs", [7]), (False, "webhook-certs", []), (True, "other", [])],
)
def test_keeper_removes_an_obsolete_revision_of_its_own_secret_on_the_leader(
    leader, label, removed
):
    secret = testing.Secret({"k": "v"}, label=label, owner="app")
    ctx = testing.Context(_Keeper, meta={"name": "demo"})
    state = testing.State(leader=leader, secrets={secret})
    ctx.run(ctx.on.secret_remove(secret, revision=7), state)
    assert ctx.removed_secret_revisions == removed


class _Rotator(_Keeper):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on["rotate"].action, self._on_rotate)

    def _on_rotate(self, event: ops.ActionEvent) -> None:
        if not self.keeper.refuse_rotation(event, peers="peers"):
            event.set_results(self.keeper.results(self.keeper.rotate()))


@pytest.mark.parametrize(
    ("leader", "peers", "failure"),
    [
        (False, True, "run rotate-certificates on the leader unit"),
        (True, False, "the charm is not set up yet: try again later"),
        (True, True, None),
    ],
)
def test_keeper_refuses_a_rotation_off_the_leader_or_before_set_up(leader, peers, failure):
    meta = {"name": "demo", "peers": {"peers": {"interface": "demo_peers"}}}
    ctx = testing.Context(_Rotator, meta=meta, actions={"rotate": {}})
    relations = {testing.PeerRelation("peers")} if peers else set()
    state = testing.State(leader=leader, relations=relations)
    if failure is None:
        out = ctx.run(ctx.on.action("rotate"), state)
        assert ctx.action_results is not None and ctx.action_results["ca-serial"]
        assert len(out.secrets) == 1
        return
    with pytest.raises(testing.ActionFailed, match=failure):
        ctx.run(ctx.on.action("rotate"), state)


def test_service_dns_names():
    assert certificates.service_dns_names("katib-controller", "kubeflow") == [
        "katib-controller.kubeflow.svc",
        "katib-controller.kubeflow.svc.cluster.local",
        "katib-controller.kubeflow",
        "katib-controller",
    ]
