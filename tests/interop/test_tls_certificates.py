"""`tls-certificates`: the library's provider, in a tiny CA charm, against our istio charm.

The CA charm signs with `TLSCertificatesProvidesV4` from
charmlibs-interfaces-tls-certificates, as self-signed-certificates and other
CA charms do; istio requests the gateway's certificate with the same
library's requirer. The test stays at the edges of istio: the relation data
in, the certificate served by the gateway out.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import ClassVar

import ops
import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from charmlibs.interfaces import tls_certificates as tls
from ops import testing
from unit.istio.helpers import CHARM, FILES, settle, state

HOST = "kubeflow.example.com"
CA_META = {"name": "ca", "provides": {"certificates": {"interface": "tls-certificates"}}}


class TinyCA(ops.CharmBase):
    """Signs every outstanding request with one CA, through the library's provider."""

    ca_key: ClassVar[tls.PrivateKey | None] = None
    ca: ClassVar[tls.Certificate | None] = None
    issued: ClassVar[list[tls.Certificate]] = []

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.certificates = tls.TLSCertificatesProvidesV4(self, "certificates")
        framework.observe(self.on["certificates"].relation_changed, self._sign)

    def _sign(self, _: ops.EventBase) -> None:
        cls = type(self)
        assert cls.ca is not None and cls.ca_key is not None
        for request in self.certificates.get_outstanding_certificate_requests():
            csr = request.certificate_signing_request
            cert = tls.Certificate.generate(csr, cls.ca, cls.ca_key, dt.timedelta(days=10))
            self.certificates.set_relation_certificate(
                tls.ProviderCertificate(
                    relation_id=request.relation_id,
                    certificate=cert,
                    certificate_signing_request=csr,
                    ca=cls.ca,
                    chain=[cert, cls.ca],
                )
            )
            cls.issued.append(cert)


@pytest.fixture
def ca() -> Iterator[type[TinyCA]]:
    key = tls.PrivateKey.generate()
    attributes = tls.CertificateRequestAttributes(common_name="tiny CA", is_ca=True)
    TinyCA.ca_key = key
    TinyCA.ca = tls.Certificate.generate_self_signed_ca(attributes, key, dt.timedelta(days=30))
    TinyCA.issued = []
    yield TinyCA
    TinyCA.ca_key = TinyCA.ca = None
    TinyCA.issued = []


@pytest.fixture
def kube(tmp_path) -> Iterator[FakeKubernetes]:
    """The fake cluster istio applies its objects to, and its container's folders on disk."""
    FILES["root"] = tmp_path
    try:
        with routed_lightkube(FakeKubernetes()) as fake:
            yield fake
    finally:
        FILES.clear()


def _tls_secrets(kube: FakeKubernetes) -> list[dict]:
    return [s for s in kube.of_kind("Secret") if s.get("type") == "kubernetes.io/tls"]


def test_istio_gets_the_gateway_certificate_from_the_library_provider(
    ca: type[TinyCA], kube: FakeKubernetes
):
    istio = testing.Context(CHARM.IstioCharm)
    ours = testing.Relation("certificates", interface="tls-certificates", remote_app_name="ca")
    base = state(config={"external-hostname": HOST})
    base = dataclasses.replace(base, relations=set(base.relations) | {ours})
    out = istio.run(istio.on.relation_created(ours), base)
    out = settle(istio, out)
    assert _tls_secrets(kube) == []  # nothing to serve HTTPS with yet
    request = dict(out.get_relation(ours.id).local_app_data)
    assert "certificate_signing_requests" in request

    # The CA charm reads istio's request and signs it.
    ca_ctx = testing.Context(TinyCA, meta=CA_META)
    theirs = testing.Relation(
        "certificates",
        interface="tls-certificates",
        remote_app_name="istio",
        remote_app_data=request,
    )
    signed = ca_ctx.run(
        ca_ctx.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}),
    )
    (cert,) = ca.issued
    assert cert.common_name == HOST

    # istio reads the answer: the gateway serves the certificate it was given.
    answered = dataclasses.replace(
        out.get_relation(ours.id),
        remote_app_data=dict(signed.get_relation(theirs.id).local_app_data),
    )
    out = istio.run(
        istio.on.relation_changed(answered, remote_unit=0),
        dataclasses.replace(
            out, relations={r for r in out.relations if r.id != ours.id} | {answered}
        ),
    )

    (secret,) = _tls_secrets(kube)
    served = base64.b64decode(secret["data"]["tls.crt"]).decode()
    assert served.startswith(str(cert).strip())
    assert "PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"]).decode()
    assert out.unit_status.name == "active"
