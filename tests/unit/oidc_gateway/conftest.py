"""Fixtures for the oidc-gateway charm's unit tests."""

from __future__ import annotations

from types import ModuleType

import pytest
from ops import testing
from unit.oidc_gateway.helpers import APP, CHARM, Calls


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.OidcGatewayCharm, app_name=APP)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(monkeypatch)
