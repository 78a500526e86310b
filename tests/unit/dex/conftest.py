"""Fixtures for the dex charm's unit tests."""

from __future__ import annotations

from types import ModuleType

import pytest
from ops import testing
from unit.dex.helpers import CHARM


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.DexCharm)
