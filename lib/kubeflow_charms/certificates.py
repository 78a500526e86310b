"""Certificates a charm makes for itself: a self-signed CA and a serving certificate.

A webhook or a control plane inside the cluster needs a certificate the API
server (or its clients) can verify: the charm makes a small CA, signs a
serving certificate for the Service's DNS names with it, and hands the CA
to whoever verifies (a webhook's `caBundle`).

The bundle lives in a Juju secret's content, PEM text plus the validity
timestamps, so a hook that only asks "is renewal due?" reads the stored
timestamps: `cryptography` is imported only by the functions that make
certificates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import ops

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

RENEW_AT = 2 / 3
"""Renew a certificate once this fraction of its lifetime has passed."""
CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
_KEYS = (
    "ca-cert",
    "ca-key",
    "tls-cert",
    "tls-key",
    "ca-serial",
    "serial",
    "ca-not-before",
    "ca-not-after",
    "not-before",
    "not-after",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CertificateBundle:
    """A CA, a serving certificate it signed, their keys and validity."""

    ca_cert: str
    ca_key: str = dataclasses.field(repr=False)
    tls_cert: str
    tls_key: str = dataclasses.field(repr=False)
    ca_serial: str
    serial: str
    ca_not_before: dt.datetime
    ca_not_after: dt.datetime
    not_before: dt.datetime
    not_after: dt.datetime

    def to_content(self) -> dict[str, str]:
        """The bundle as Juju secret content (string values, dashed keys)."""
        return {
            "ca-cert": self.ca_cert,
            "ca-key": self.ca_key,
            "tls-cert": self.tls_cert,
            "tls-key": self.tls_key,
            "ca-serial": self.ca_serial,
            "serial": self.serial,
            "ca-not-before": self.ca_not_before.isoformat(),
            "ca-not-after": self.ca_not_after.isoformat(),
            "not-before": self.not_before.isoformat(),
            "not-after": self.not_after.isoformat(),
        }

    @classmethod
    def from_content(cls, content: Mapping[str, str]) -> CertificateBundle:
        """Read a bundle back from secret content; ValueError when a key is missing or bad."""
        missing = [key for key in _KEYS if not content.get(key)]
        if missing:
            raise ValueError(f"certificate secret lacks {', '.join(missing)}")
        try:
            times = {
                key: _parse_time(content[key])
                for key in ("ca-not-before", "ca-not-after", "not-before", "not-after")
            }
        except ValueError:
            raise ValueError("certificate secret has an unreadable timestamp") from None
        return cls(
            ca_cert=content["ca-cert"],
            ca_key=content["ca-key"],
            tls_cert=content["tls-cert"],
            tls_key=content["tls-key"],
            ca_serial=content["ca-serial"],
            serial=content["serial"],
            ca_not_before=times["ca-not-before"],
            ca_not_after=times["ca-not-after"],
            not_before=times["not-before"],
            not_after=times["not-after"],
        )

    def renewal_due(
        self, now: dt.datetime | None = None, fraction: float = RENEW_AT
    ) -> Literal["ca", "serving"] | None:
        """What needs renewing now: the CA (and with it everything), the serving cert, or None."""
        now = now or _now()
        if is_due(self.ca_not_before, self.ca_not_after, now, fraction):
            return "ca"
        if is_due(self.not_before, self.not_after, now, fraction):
            return "serving"
        return None

    def next_renewal(self, fraction: float = RENEW_AT) -> dt.datetime:
        """When the first renewal falls due."""
        return min(
            renewal_time(self.ca_not_before, self.ca_not_after, fraction),
            renewal_time(self.not_before, self.not_after, fraction),
        )


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


# --- lifetime ------------------------------------------------------------------------


def lifetime_fraction(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> float:
    """How much of a certificate's lifetime has passed (0 at issue, 1 at expiry)."""
    total = (not_after - not_before).total_seconds()
    if total <= 0:
        return 1.0
    return (now - not_before).total_seconds() / total


def renewal_time(
    not_before: dt.datetime, not_after: dt.datetime, fraction: float = RENEW_AT
) -> dt.datetime:
    """The moment `fraction` of the lifetime has passed."""
    return not_before + (not_after - not_before) * fraction


def is_due(
    not_before: dt.datetime,
    not_after: dt.datetime,
    now: dt.datetime | None = None,
    fraction: float = RENEW_AT,
) -> bool:
    """Whether a certificate reached `fraction` of its lifetime."""
    return lifetime_fraction(not_before, not_after, now or _now()) >= fraction


# --- making certificates (imports cryptography) --------------------------------------


def _new_key() -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: RSAPrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _start(now: dt.datetime) -> dt.datetime:
    # A minute of slack for clocks a little behind ours; whole seconds, as X.509 keeps them.
    return (now - dt.timedelta(minutes=1)).replace(microsecond=0)


def generate_ca(
    common_name: str, *, validity: dt.timedelta = CA_VALIDITY, now: dt.datetime | None = None
) -> tuple[str, str]:
    """A self-signed CA certificate and its key, PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _start(now or _now())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def generate_serving(
    ca_cert: str,
    ca_key: str,
    dns_names: Sequence[str],
    *,
    validity: dt.timedelta = SERVING_VALIDITY,
    now: dt.datetime | None = None,
) -> tuple[str, str]:
    """A serving certificate for `dns_names` signed by the CA, and its key, PEM.

    The first name is the subject's common name. It never outlives the CA.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not dns_names:
        raise ValueError("a serving certificate needs at least one DNS name")
    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    signer = serialization.load_pem_private_key(ca_key.encode(), password=None)
    key = _new_key()
    start = _start(now or _now())
    end = min(start + validity, ca.not_valid_after_utc)
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0][:64])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def _facts(cert_pem: str) -> tuple[str, dt.datetime, dt.datetime]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return f"{cert.serial_number:X}", cert.not_valid_before_utc, cert.not_valid_after_utc


def new_bundle(
    ca_name: str,
    dns_names: Sequence[str],
    *,
    ca_validity: dt.timedelta = CA_VALIDITY,
    validity: dt.timedelta = SERVING_VALIDITY,
    now: dt.datetime | None = None,
) -> CertificateBundle:
    """A fresh CA and a serving certificate for `dns_names` signed by it."""
    ca_cert, ca_key = generate_ca(ca_name, validity=ca_validity, now=now)
    return _bundle(ca_cert, ca_key, dns_names, validity=validity, now=now)


def renew_serving(
    bundle: CertificateBundle,
    dns_names: Sequence[str],
    *,
    validity: dt.timedelta = SERVING_VALIDITY,
    now: dt.datetime | None = None,
) -> CertificateBundle:
    """A new serving certificate (and key) from the bundle's CA; the CA stays."""
    return _bundle(bundle.ca_cert, bundle.ca_key, dns_names, validity=validity, now=now)


def _bundle(
    ca_cert: str,
    ca_key: str,
    dns_names: Sequence[str],
    *,
    validity: dt.timedelta,
    now: dt.datetime | None,
) -> CertificateBundle:
    tls_cert, tls_key = generate_serving(ca_cert, ca_key, dns_names, validity=validity, now=now)
    ca_serial, ca_not_before, ca_not_after = _facts(ca_cert)
    serial, not_before, not_after = _facts(tls_cert)
    return CertificateBundle(
        ca_cert=ca_cert,
        ca_key=ca_key,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ca_serial=ca_serial,
        serial=serial,
        ca_not_before=ca_not_before,
        ca_not_after=ca_not_after,
        not_before=not_before,
        not_after=not_after,
    )


# --- in a Juju secret -----------------------------------------------------------------


def load(model: ops.Model, label: str) -> tuple[ops.Secret | None, CertificateBundle | None]:
    """The secret with this label and the latest bundle it holds, where they exist and parse.

    Owners track revisions too (Juju 3.3.1 and later), so this always moves to
    the latest revision: what the leader wrote last.
    """
    try:
        secret = model.get_secret(label=label)
        content = secret.get_content(refresh=True)
    except ops.SecretNotFoundError:
        return None, None
    try:
        return secret, CertificateBundle.from_content(content)
    except ValueError:
        return secret, None


def store(
    app: ops.Application,
    bundle: CertificateBundle,
    *,
    label: str,
    secret: ops.Secret | None = None,
    description: str = "certificates the charm made",
) -> ops.Secret:
    """Put the bundle in the app-owned secret `label` (made when missing); leader only."""
    if secret is None:
        return app.add_secret(bundle.to_content(), label=label, description=description)
    secret.set_content(bundle.to_content())
    return secret


# --- a charm's own certificates, kept in one secret -------------------------------------


class CertificateKeeper:
    """The certificates a charm makes for itself, made and renewed by the leader.

    Any unit reads them with `current()`; on the leader, `current()` also makes
    them when missing and renews what is due (the serving certificate alone,
    or the CA and everything with it), and `rotate()` replaces them all.
    `changed` says whether this hook stored a new bundle, so the charm knows
    its caBundle consumers need updating in the same hook.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        *,
        label: str,
        ca_name: str,
        dns_names: Sequence[str],
        description: str = "certificates the charm made",
    ):
        self._charm = charm
        self._label = label
        self._ca_name = ca_name
        self._dns_names = list(dns_names)
        self._description = description
        self._bundle: CertificateBundle | None = None
        self._read = False
        self.changed = False

    def current(self) -> CertificateBundle | None:
        """The bundle in force: made or renewed first when this unit leads and it is due."""
        secret, bundle = load(self._charm.model, self._label)
        self._bundle, self._read = bundle, True
        if not self._charm.unit.is_leader():
            return bundle
        if bundle is None:
            bundle = self._new()
        else:
            due = bundle.renewal_due()
            if due is None:
                return bundle
            bundle = self._new() if due == "ca" else renew_serving(bundle, self._dns_names)
        self._store(bundle, secret)
        return bundle

    def stored(self) -> CertificateBundle | None:
        """The bundle this hook read (read now if nothing read it yet); never makes one."""
        if not self._read:
            _, self._bundle = load(self._charm.model, self._label)
            self._read = True
        return self._bundle

    def rotate(self) -> CertificateBundle:
        """A new CA and serving certificate, stored in place of the old ones; leader only."""
        secret, _ = load(self._charm.model, self._label)
        bundle = self._new()
        self._store(bundle, secret)
        return bundle

    def refuse_rotation(self, event: ops.ActionEvent, *, peers: str) -> bool:
        """Fail a `rotate-certificates` action this unit cannot run yet; True when it did.

        Only the leader makes certificates, and only once the charm is set up
        (its peer relation `peers` exists).
        """
        if not self._charm.unit.is_leader():
            event.fail("run rotate-certificates on the leader unit")
            return True
        if self._charm.model.get_relation(peers) is None:
            event.fail("the charm is not set up yet: try again later")
            return True
        return False

    def remove_obsolete(self, event: ops.SecretRemoveEvent) -> None:
        """Leader, on secret-remove: drop the revision no unit reads any more (old keys).

        A secret of another label, where the event names one, is left alone.
        """
        if not self._charm.unit.is_leader():
            return
        if event.secret.label not in (None, self._label):
            return
        event.remove_revision()

    @staticmethod
    def results(bundle: CertificateBundle) -> dict[str, str]:
        """A `rotate-certificates` action's results: the new serials and dates."""
        return {
            "ca-serial": bundle.ca_serial,
            "serial": bundle.serial,
            "not-after": bundle.not_after.isoformat(),
            "next-renewal": bundle.next_renewal().isoformat(),
        }

    def _new(self) -> CertificateBundle:
        return new_bundle(self._ca_name, self._dns_names)

    def _store(self, bundle: CertificateBundle, secret: ops.Secret | None) -> None:
        store(
            self._charm.app,
            bundle,
            label=self._label,
            secret=secret,
            description=self._description,
        )
        self._bundle, self._read, self.changed = bundle, True, True


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names a client inside the cluster may use for a Service; the first is the CN."""
    return [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
    ]
