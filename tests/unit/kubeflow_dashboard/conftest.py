"""Fixtures for the kubeflow-dashboard charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.kubeflow_dashboard.helpers import APP, CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.KubeflowDashboardCharm, app_name=APP)


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of the charm talks to.

    Every object the charm sends must pass the real schemas (and CRs their CRD's):
    checked after each test.
    """
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []
