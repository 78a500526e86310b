"""Config: each bad value blocks naming the option and changes nothing."""

from __future__ import annotations

import dataclasses

import pytest
from ops import testing
from unit.mlflow.helpers import running, state


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": 65}, "workers"),
        ({"request-timeout": 0}, "request-timeout"),
        ({"request-timeout": 3601}, "request-timeout"),
        ({"artifact-bucket": "Bad_Bucket"}, "artifact-bucket"),
        ({"artifact-bucket": "ab"}, "artifact-bucket"),
        ({"artifact-path": "a/../b"}, "artifact-path"),
        ({"artifact-path": "a b"}, "artifact-path"),
        ({"artifact-path": "a//b"}, "artifact-path"),
        ({"default-experiment": " padded"}, "default-experiment"),
        ({"default-experiment": "x" * 257}, "default-experiment"),
        ({"default-experiment": "two\nlines"}, "default-experiment"),
    ],
)
def test_bad_values_block_naming_the_option_and_change_nothing(
    ctx: testing.Context, config: dict, option: str
):
    base = state(config=config)
    out = ctx.run(ctx.on.config_changed(), base)

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}: ")
    assert out.app_status == out.unit_status
    assert not running(out)
    assert out.relations == base.relations
    assert ctx.exec_history == {}


def test_a_bad_value_keeps_a_running_server_as_it_was(ctx: testing.Context):
    settled = ctx.run(ctx.on.config_changed(), state())
    plan = settled.get_container("mlflow-server").plan

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config={"workers": 100}))

    assert out.get_container("mlflow-server").plan == plan
    assert running(out)
    assert out.unit_status == testing.BlockedStatus("workers: must be a whole number from 1 to 64")


def test_good_values_are_accepted(ctx: testing.Context):
    config = {
        "workers": 64,
        "request-timeout": 3600,
        "artifact-bucket": "ml.artifacts-1",
        "artifact-path": "",
        "default-experiment": "Team A / churn",
    }
    out = ctx.run(ctx.on.config_changed(), state(config=config))

    assert out.unit_status == testing.ActiveStatus()
