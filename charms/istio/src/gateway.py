"""The ingress gateway: its names, the URL it is reached at, its TLS Secret's data."""

from __future__ import annotations

import base64
import datetime as dt
import itertools

GATEWAY = "kubeflow-gateway"  # the Gateway every route binds to
GATEWAY_NAME = "istio-ingressgateway"  # its Deployment, Service and ServiceAccount
TLS_SECRET = "kubeflow-gateway-tls"  # noqa: S105 - a Secret's name
TLS_MOUNT = "/etc/istio/gateway-tls"  # where the gateway's pods find it, as files


def base_url(*, tls: bool, external_hostname: str, lb_address: str | None, namespace: str) -> str:
    """Where the gateway is reached, without a trailing slash."""
    scheme = "https" if tls else "http"
    host = external_hostname or lb_address or f"{GATEWAY_NAME}.{namespace}.svc.cluster.local"
    return f"{scheme}://{host}"


def tls_context(cert: str, key: str) -> dict[str, str]:
    """The gateway Secret's data, base64."""
    return {
        "cert_b64": base64.b64encode(cert.encode()).decode(),
        "key_b64": base64.b64encode(key.encode()).decode(),
    }


def check_tls(cert: str, key: str) -> dt.datetime:
    """Check a certificate chain and its key: the leaf's expiry, or ValueError saying why not.

    The first certificate is the leaf, the key's pair; each certificate that
    follows signs the one before it. Imports `cryptography`: call it only when
    the certificate or key is new.
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        chain = x509.load_pem_x509_certificates(cert.encode())
    except ValueError:
        raise ValueError("the certificate is not readable PEM (a damaged certificate?)") from None
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "the key is not a readable, unencrypted PEM private key (a damaged key?)"
        ) from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        leaf_public = chain[0].public_key().public_bytes(*spki)
    except UnsupportedAlgorithm:
        raise ValueError("the certificate's key type is not supported") from None
    if private.public_key().public_bytes(*spki) != leaf_public:
        raise ValueError("the key does not match the certificate (the first in the chain)")
    for number, (child, issuer) in enumerate(itertools.pairwise(chain), start=1):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ValueError(
                f"certificate {number} of the chain is not signed by certificate {number + 1} "
                "(the chain goes from the server's certificate to the root, in order)"
            ) from None
    return chain[0].not_valid_after_utc
