"""Every config option, valid and invalid: Blocked naming the option, nothing configured."""

from __future__ import annotations

import ops
import pytest
from ops import testing
from unit.kubeflow_dashboard.helpers import dashboard_config, settle, state

VALID = [
    ("userid-header", "x-auth-request-email"),
    ("userid-prefix", "accounts.google.com:"),
    ("registration-flow", True),
    ("workload-identity", "kubeflow-user@my-project.iam.gserviceaccount.com"),
    ("additional-links", "[{text: Docs, link: 'https://example.com', location: documentation}]"),
    ("additional-links", ""),
    ("menu-order", "[Notebooks, Pipelines]"),
    ("menu-order", "- Notebooks\n"),
]

INVALID = [
    ("userid-header", "kubeflow userid"),
    ("userid-header", ""),
    ("userid-prefix", "with space"),
    ("workload-identity", "not-an-account"),
    ("additional-links", "{text: Docs}"),
    ("additional-links", "[{text: Docs, link: /docs/}]"),
    ("additional-links", "[{text: Docs, link: /docs/, location: sidebar}]"),
    ("additional-links", "[{text: Docs, link: 'ftp://x', location: menu}]"),
    ("additional-links", "[{text: Docs, link: /docs/, location: menu, colour: red}]"),
    ("additional-links", "[{text: '', link: /docs/, location: menu}]"),
    ("additional-links", "[{text: [a], link: /docs/, location: menu}]"),
    ("additional-links", "[not a map]"),
    ("additional-links", "[unclosed"),
    ("menu-order", "Notebooks"),
    ("menu-order", "[Notebooks, Notebooks]"),
    ("menu-order", "[1, {a: b}]"),
]


@pytest.mark.parametrize(("option", "value"), VALID, ids=[f"{o}={v!r}" for o, v in VALID])
def test_valid_option_settles_active(ctx, kube, option, value):
    out = settle(ctx, state(config={option: value}))
    assert out.unit_status.name == "active", out.unit_status
    assert out.app_status.name == "active"
    assert set(dashboard_config(kube)[0]) == {
        "menuLinks",
        "externalLinks",
        "quickLinks",
        "documentationItems",
    }


def test_options_reach_the_workloads(ctx, kube):
    config = {
        "userid-header": "x-user",
        "userid-prefix": "oidc:",
        "workload-identity": "kubeflow-user@my-project.iam.gserviceaccount.com",
    }
    out = settle(ctx, state(config=config))
    controller = out.get_container("profile-controller").plan.services["profile-controller"]
    assert "-userid-prefix=oidc:" in controller.command.split()
    assert (
        "-workload-identity=kubeflow-user@my-project.iam.gserviceaccount.com"
        in controller.command.split()
    )
    env = out.get_container("dashboard").plan.services["dashboard"].environment
    assert env["USERID_PREFIX"] == "oidc:"


@pytest.mark.parametrize(("option", "value"), INVALID, ids=[f"{o}={v!r}" for o, v in INVALID])
def test_invalid_option_blocks_naming_it_and_changes_nothing(ctx, kube, option, value):
    out = ctx.run(ctx.on.config_changed(), state(config={option: value}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {option}:"), out.unit_status
    assert out.app_status == out.unit_status
    assert kube.objects == {}
    for c in out.containers:
        assert c.plan.services == {}
    assert out.opened_ports == frozenset()


def test_bad_config_after_good_leaves_everything_as_it_was(ctx, kube):
    out = settle(ctx, state())
    writes = len(kube.writes)
    bad = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True,
            config={"userid-header": "bad header"},
            containers=out.containers,
            relations=out.relations,
            model=out.model,
        ),
    )
    assert bad.unit_status == ops.BlockedStatus(
        "invalid config: userid-header: must be an HTTP header name like kubeflow-userid"
    )
    assert len(kube.writes) == writes
    env = bad.get_container("dashboard").plan.services["dashboard"].environment
    assert env["USERID_HEADER"] == "kubeflow-userid"
