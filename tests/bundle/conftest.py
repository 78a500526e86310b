"""Fixtures for the bundle simulation: a real S3 server behind MinIO, the figures report."""

from __future__ import annotations

import pytest

FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Lines for the end-of-run report (hooks run and time to settle)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("bundle simulation")
        for line in FIGURES:
            terminalreporter.write_line(line)
