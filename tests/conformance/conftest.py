"""Fixtures shared by the conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake cluster every lightkube Client of a charm talks to.

    Every object a charm sends must pass the real schemas (and CRs their CRD's):
    checked after each test.
    """
    with routed_lightkube(FakeKubernetes()) as fake:
        yield fake
    assert fake.rejected == []
