"""What the unit tests of charms serving admission webhooks share.

Such a charm's leader keeps the webhooks' CA and serving certificate in a
secret of its own (`CertificateKeeper`), puts the CA into each webhook
configuration's caBundle and pushes the certificate into a controller's
container; its objects go to a fake cluster where Juju made the charm's
ServiceAccount.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing

from kubeflow_charms import certificates

LABEL = "webhook-certificates"


def fake_cluster(app: str, model: str) -> Iterator[FakeKubernetes]:
    """A fake cluster with the ServiceAccount Juju made for the charm; every object must pass."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    with routed_lightkube(FakeKubernetes()) as fake:
        fake.client().create(ServiceAccount(metadata=ObjectMeta(name=app, namespace=model)))
        yield fake
    assert fake.rejected == []


def certificates_secret(out: testing.State) -> testing.Secret:
    """The secret the leader keeps the webhooks' certificates in."""
    (secret,) = [s for s in out.secrets if s.label == LABEL]
    return secret


def stored_bundle(out: testing.State) -> certificates.CertificateBundle:
    """The certificates the leader keeps, as last written."""
    secret = certificates_secret(out)
    content = secret.latest_content or secret.tracked_content
    return certificates.CertificateBundle.from_content(content)


def ca_bundles(kube: FakeKubernetes, configurations: Iterable[tuple[str, str]]) -> set[str]:
    """The caBundle of every webhook of these (kind, name) configurations, decoded.

    Each configuration must be there.
    """
    found = set()
    for kind, name in configurations:
        configuration = kube.get(kind, name)
        assert configuration is not None, f"no {kind} {name}"
        for hook in configuration["webhooks"]:
            found.add(base64.b64decode(hook["clientConfig"]["caBundle"]).decode())
    return found


def pushed(ctx: testing.Context, out: testing.State, container: str, path: str) -> str:
    """A file the charm pushed into a container."""
    fs = out.get_container(container).get_filesystem(ctx)
    return (fs / path.lstrip("/")).read_text()


def at(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> None:
    """The certificates' clock says `when`."""
    monkeypatch.setattr(certificates, "_now", lambda: when)
