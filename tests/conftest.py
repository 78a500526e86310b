"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from workload.servers import s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto) on 127.0.0.1 for the whole session; its URL."""
    with s3_server() as endpoint:
        yield endpoint
