"""Every charm has its upstream facts written down, each with where it was read."""

from __future__ import annotations

import pytest
from charm_loader import charm_names
from conformance import facts


@pytest.mark.parametrize("charm", charm_names())
def test_every_charm_has_cited_facts(charm):
    path = facts.FACTS / f"{charm}.yaml"
    assert path.is_file(), f"{charm}: no tests/conformance/facts/{charm}.yaml"
    loaded = facts.load(charm)
    assert loaded, charm
    # Every workload container of the charm is covered.
    import yaml
    from charm_loader import CHARMS

    meta = yaml.safe_load((CHARMS / charm / "charmcraft.yaml").read_text())
    containers = set(meta.get("containers") or {})
    assert containers <= set(loaded), f"{charm}: no facts for {sorted(containers - set(loaded))}"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "non-empty map of workloads"),
        ({"w": {"image": {"value": "x"}}}, "needs value and source"),
        (
            {
                "w": {
                    "image": {"value": "x", "source": {"repo": "a/b", "ref": "main", "path": "p"}}
                }
            },
            "not a release tag or commit",
        ),
        (
            {"w": {"image": {"value": "x", "source": {"repo": "ab", "ref": "v1.0", "path": "p"}}}},
            "not owner/name",
        ),
        (
            {"w": {"image": {"value": "x", "source": {"repo": "a/b"}}}},
            "exactly repo, ref and path",
        ),
    ],
)
def test_a_fact_without_a_pinned_source_is_refused(raw, problem):
    assert any(problem in p for p in facts.problems(raw))
