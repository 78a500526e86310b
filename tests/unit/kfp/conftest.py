"""Fixtures for the kfp charm's unit tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.kfp.helpers import CHARM

MODEL = "kubeflow"
APP = "kfp"


ISTIO_CRDS = Path(__file__).parents[3] / "charms/istio/src/templates/crds.yaml.j2"


def istio_crds() -> list[dict]:
    """The Istio CustomResourceDefinitions, as the istio charm applies them."""
    text = jinja2.Template(ISTIO_CRDS.read_text()).render()
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster with Istio's kinds, and the ServiceAccount Juju made for the charm."""
    from lightkube import codecs
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    with routed_lightkube(FakeKubernetes()) as istio:
        for crd in istio_crds():
            istio.client().create(codecs.from_dict(crd))
    # A cluster that starts with them, as one istio was deployed to: not the charm's writes.
    cluster = FakeKubernetes(objects=dict(istio.objects), revision=istio.revision, uids=istio.uids)
    with routed_lightkube(cluster) as fake:
        fake.client().create(ServiceAccount(metadata=ObjectMeta(name=APP, namespace=MODEL)))
        yield fake
    assert fake.rejected == []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The time the charm reads; a test moves it by changing the one item."""
    now = [time.time()]  # the fake API dates its tokens' expiry by the real clock
    monkeypatch.setattr(sys.modules["kfp_cluster"], "_now", lambda: now[0])
    return now


@pytest.fixture
def ctx(clock: list[float]) -> testing.Context:
    """The charm, as the application `kfp`, on the test's clock."""
    return testing.Context(CHARM.KfpCharm, app_name=APP)
