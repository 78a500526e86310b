"""Fixtures for the katib charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.katib.helpers import APP, CHARM


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of the charm talks to; every object must pass."""
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, as the application `katib`."""
    return testing.Context(CHARM.KatibCharm, app_name=APP)
