"""Fixtures for the kserve charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.kserve.helpers import APP, CHARM, MODEL


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """A fake cluster with the ServiceAccount Juju made for the charm; every object must pass."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    with routed_lightkube(FakeKubernetes()) as fake:
        fake.client().create(ServiceAccount(metadata=ObjectMeta(name=APP, namespace=MODEL)))
        yield fake
    assert fake.rejected == []


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, as the application `kserve`."""
    return testing.Context(CHARM.KServeCharm, app_name=APP)
