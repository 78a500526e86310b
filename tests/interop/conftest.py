"""Interop tests: the ecosystem's own libraries on the other side of our real charms.

Each test runs one of our charms under `ops.testing` with a relation whose
other side is written or read by the ecosystem library that Canonical's
charms use for that interface (or, where no such library is published as a
package, by the interface's published wire format, cited in the test), and
checks that both sides reach their ready state.
"""

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
