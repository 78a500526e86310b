"""Fixtures for the resource dispatcher's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.resource_dispatcher.helpers import CHARM, CLUSTER_CA


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.ResourceDispatcherCharm)


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of the charm talks to; every object must pass."""
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []


@pytest.fixture(autouse=True)
def cluster_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cluster CA where the charm container reads it (its own token volume)."""
    path = tmp_path / "pod-token" / "ca.crt"
    path.parent.mkdir()
    path.write_text(CLUSTER_CA)
    monkeypatch.setattr(CHARM.watch_token, "CHARM_CA", path)
    return path
