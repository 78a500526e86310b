"""Fixtures for the kserve charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes
from ops import testing
from unit.kserve.helpers import APP, CHARM, MODEL
from webhook_charms import fake_cluster


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """A fake cluster with the ServiceAccount Juju made for the charm; every object must pass."""
    yield from fake_cluster(APP, MODEL)


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, as the application `kserve`."""
    return testing.Context(CHARM.KServeCharm, app_name=APP)
