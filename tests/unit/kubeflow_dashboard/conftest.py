"""Fixtures for the kubeflow-dashboard charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    ALICE,
    APP,
    CHARM,
    istio_authorization_policy_crd,
    namespace,
    profile_crd,
)


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


@pytest.fixture
def cluster(kube: FakeKubernetes) -> FakeKubernetes:
    """A cluster with the Profile CRD and profile `team-a` (owner alice) and its namespace."""
    profile_crd(kube)
    istio_authorization_policy_crd(kube)
    from lightkube.generic_resource import create_global_resource
    from lightkube.models.meta_v1 import ObjectMeta

    profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
    kube.client().create(
        profile(
            metadata=ObjectMeta(name="team-a"), spec={"owner": {"kind": "User", "name": ALICE}}
        )
    )
    namespace(kube, "team-a")
    return kube
