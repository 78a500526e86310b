"""Fixtures for the mlflow charm's unit tests."""

from __future__ import annotations

import pytest
from ops import testing
from unit.mlflow.helpers import APP, CHARM


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, as the application `mlflow`."""
    return testing.Context(CHARM.MlflowCharm, app_name=APP)
