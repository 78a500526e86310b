"""Fixtures for the resource dispatcher's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.resource_dispatcher.helpers import CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.ResourceDispatcherCharm)


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of the charm talks to; every object must pass."""
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []
