"""The integration workflow installs the charm plugin's build packages before it packs.

It packs with `--destructive-mode` as the runner's user. craft-parts then
runs a plain `apt-get install` for the plugin's build packages, which only
root may do, unless every one is installed already, when it skips the step
(craft-parts 2.9.1, the version charmcraft 3.5.3's uv.lock holds,
craft_parts/packages/deb.py: Ubuntu.install_packages).
"""

from __future__ import annotations

import shlex

import yaml
from charm_loader import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "integration.yaml"
# What the charm plugin asks for on a deb-based base (charmcraft 3.5.3,
# charmcraft/parts/plugins/_charm.py: CharmPlugin.get_build_packages).
CHARM_PLUGIN_BUILD_PACKAGES = {
    "python3-dev",
    "python3-pip",
    "python3-setuptools",
    "python3-venv",
    "python3-wheel",
    "libffi-dev",
    "libyaml-dev",
}


def _steps() -> list[dict]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


def _apt_installed(run: str) -> set[str]:
    """The packages `sudo apt-get install` commands in a step's script install."""
    installed: set[str] = set()
    for command in run.replace("\\\n", " ").splitlines():
        words = shlex.split(command)
        if words[:3] == ["sudo", "apt-get", "install"]:
            installed |= {w for w in words[3:] if not w.startswith("-")}
    return installed


def test_apt_installed_reads_a_continued_command():
    run = "sudo apt-get update\nsudo apt-get install -y \\\n  a b \\\n  c\napt-get install d\n"
    assert _apt_installed(run) == {"a", "b", "c"}


def test_build_packages_are_installed_before_packing():
    steps = _steps()
    packing = [i for i, step in enumerate(steps) if "tools/pack.py" in step.get("run", "")]
    assert packing, "the integration workflow no longer packs with tools/pack.py"
    installed: set[str] = set()
    for step in steps[: packing[0]]:
        installed |= _apt_installed(step.get("run", ""))
    missing = sorted(CHARM_PLUGIN_BUILD_PACKAGES - installed)
    assert not missing, f"not installed with sudo before packing: {missing}"
