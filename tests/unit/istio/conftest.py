"""Fixtures for the istio charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.istio.helpers import CHARM, FILES


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.IstioCharm)


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of the charm talks to.

    Every object the charm sends must pass the real schemas: checked after each test.
    """
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []


@pytest.fixture(autouse=True)
def container_files(tmp_path) -> Iterator[None]:
    """The istiod container's folders, on disk for the whole test."""
    FILES["root"] = tmp_path
    yield
    FILES.clear()
