"""Every config option, valid and invalid: Blocked naming the option, nothing configured."""

from __future__ import annotations

import ops
import pytest
import yaml
from charm_loader import charm_dir
from ops import testing
from unit.kubeflow_dashboard.helpers import dashboard_config, settle, state

VALID = [
    ("registration-flow", True),
    ("workload-identity", "kubeflow-user@my-project.iam.gserviceaccount.com"),
    ("additional-links", "[{text: Docs, link: 'https://example.com', location: documentation}]"),
    ("additional-links", ""),
    ("menu-order", "[Notebooks, Pipelines]"),
    ("menu-order", "- Notebooks\n"),
    ("notebook-controller-principal", "cluster.local/ns/notebooks/sa/notebook-controller"),
    ("kfp-ui-principal", "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"),
    ("kfp-ui-principal", ""),
]

INVALID = [
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
    ("notebook-controller-principal", "kubeflow-notebooks"),
    ("notebook-controller-principal", "cluster.local/ns/Bad_NS/sa/x"),
    ("kfp-ui-principal", "cluster.local/ns/kubeflow/sa/"),
    ("kfp-ui-principal", "spiffe://cluster.local/ns/kubeflow/sa/ml-pipeline-ui"),
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
        "registration-flow": True,
        "workload-identity": "kubeflow-user@my-project.iam.gserviceaccount.com",
    }
    out = settle(ctx, state(config=config))
    controller = out.get_container("profile-controller").plan.services["profile-controller"]
    assert (
        "-workload-identity=kubeflow-user@my-project.iam.gserviceaccount.com"
        in controller.command.split()
    )
    env = out.get_container("dashboard").plan.services["dashboard"].environment
    assert env["REGISTRATION_FLOW"] == "true"


def test_the_user_header_is_no_option_of_the_dashboard(ctx, kube):
    # It comes from the login over the route; see test_charm.
    out = settle(ctx, state())
    env = out.get_container("dashboard").plan.services["dashboard"].environment
    assert (env["USERID_HEADER"], env["USERID_PREFIX"]) == ("kubeflow-userid", "")
    meta = yaml.safe_load((charm_dir("kubeflow-dashboard") / "charmcraft.yaml").read_text())
    assert not {"userid-header", "userid-prefix"} & set(meta["config"]["options"])


@pytest.mark.parametrize(("option", "value"), INVALID, ids=[f"{o}={v!r}" for o, v in INVALID])
def test_invalid_option_blocks_naming_it_and_changes_nothing(ctx, kube, option, value):
    out = ctx.run(ctx.on.config_changed(), state(config={option: value}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {option}:"), out.unit_status
    assert out.app_status == out.unit_status
    assert kube.made() == {}
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
            config={"menu-order": "Notebooks"},
            containers=out.containers,
            relations=out.relations,
            model=out.model,
        ),
    )
    assert bad.unit_status == ops.BlockedStatus(
        "invalid config: menu-order: must be a YAML list of link texts"
    )
    assert len(kube.writes) == writes
    env = bad.get_container("dashboard").plan.services["dashboard"].environment
    assert env["USERID_HEADER"] == "kubeflow-userid"
