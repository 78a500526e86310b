"""Fixtures for the mysql charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from ops import testing
from unit.mysql.helpers import CHARM
from workload.servers import s3_server


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.MySQLCharm)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server on 127.0.0.1 for the backup actions."""
    with s3_server() as endpoint:
        yield endpoint
