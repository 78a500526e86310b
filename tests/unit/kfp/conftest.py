"""Fixtures for the kfp charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube

MODEL = "kubeflow"
APP = "kfp"


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster, with the ServiceAccount Juju made for the charm's pods."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    with routed_lightkube(FakeKubernetes()) as fake:
        fake.client().create(ServiceAccount(metadata=ObjectMeta(name=APP, namespace=MODEL)))
        yield fake
    assert fake.rejected == []
