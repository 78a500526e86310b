"""What a first run of the tools does: `--help` touches nothing, aks-up.sh asks first.

Fake `az`, `juju`, `kubectl` (tests/tools/stubs) and `charmcraft` come first
on PATH and record every call, one line each, in a file; a tool that only
printed its help leaves that file absent. The Python interpreter aks-up.sh
runs (`PYTHON`) fakes tools/deploy.py, so its deploy step records its argv
instead of deploying.
"""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from charm_loader import ROOT

TOOLS = ROOT / "tools"
AKS_UP = TOOLS / "aks-up.sh"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"

# The fake az, juju and kubectl of tests/tools/stubs (they record their argv,
# one JSON list a line, and keep what they created in $STUB_STATE). The
# interpreter aks-up.sh runs (PYTHON) is real but for tools/deploy.py.
STUBS = Path(__file__).parent / "stubs"

RECORD_ONLY = 'printf \'["{name}"]\\n\' >> "$CALLS"\nexit 0\n'


def _fake(bin_dir: Path, name: str, script: str) -> Path:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    """Where the fakes record their calls (absent until one is called)."""
    return tmp_path / "calls"


@pytest.fixture
def env(tmp_path: Path, calls: Path) -> dict[str, str]:
    """An environment whose PATH finds the fakes before anything real."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)  # the stubs' interpreter
    _fake(bin_dir, "charmcraft", RECORD_ONLY.format(name="charmcraft"))
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{bin_dir}:{STUBS}:/usr/bin:/bin",
        "HOME": str(home),
        "CALLS": str(calls),
        "STUB_STATE": str(tmp_path / "state.json"),
        "STUB_REAL_PYTHON": sys.executable,
        "PYTHONDONTWRITEBYTECODE": "1",  # nothing written next to the stubs
        "PYTHON": str(STUBS / "deploy-python"),
        "PACK": "0",
        "LANG": "C.UTF-8",
    }


def _recorded(calls: Path) -> list[str]:
    if not calls.exists():
        return []
    return [" ".join(json.loads(line)) for line in calls.read_text().splitlines()]


def _aks_up(env: dict[str, str], *args: str, answer: str | None = None):
    """Run aks-up.sh; with `answer`, on a terminal that types it, else with no terminal."""
    if answer is None:
        return subprocess.run(
            ["bash", str(AKS_UP), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return subprocess.run(
            ["bash", str(AKS_UP), *args],
            env=env,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


# --- --help of every tool -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_aks_up_help_prints_usage_and_calls_nothing(env, calls, flag):
    result = _aks_up(env, flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: tools/aks-up.sh [--yes]")
    assert "--yes" in result.stdout and "LOCATION" in result.stdout
    assert _recorded(calls) == []


def test_aks_up_help_wins_over_yes(env, calls):
    result = _aks_up(env, "--yes", "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout
    assert _recorded(calls) == []


@pytest.mark.parametrize(
    ("tool", "extra"),
    [("deploy.py", []), ("pack.py", ["--out", "OUT"]), ("stage.py", ["--out", "OUT"])],
)
def test_python_tool_help_calls_nothing_and_writes_nothing(env, calls, tmp_path, tool, extra):
    out = tmp_path / "out"
    argv = [sys.executable, str(TOOLS / tool), *[str(out) if a == "OUT" else a for a in extra]]
    result = subprocess.run(
        [*argv, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    # The module's own description comes with it: what it needs, what it does.
    first_line = (TOOLS / tool).read_text().split('"""')[1].splitlines()[0]
    assert first_line in result.stdout
    assert _recorded(calls) == []
    assert not out.exists()


# --- aks-up.sh asks before it creates -----------------------------------------------


def test_aks_up_without_yes_and_without_a_terminal_does_nothing(env, calls):
    result = _aks_up(env)
    assert result.returncode == 1
    assert "stdin is not a terminal" in result.stderr
    assert "--yes" in result.stderr
    assert "Nothing was checked or created" in result.stderr
    assert _recorded(calls) == []


def test_aks_up_refuses_an_unknown_argument(env, calls):
    result = _aks_up(env, "--yse")
    assert result.returncode == 2
    assert "unknown argument: --yse" in result.stderr
    assert _recorded(calls) == []


# Only looks: which subscription, which juju, whether PyYAML is there.
CHECKS = [
    "juju version",
    "az account show",
    "az account show --query id --output tsv",
    f"az account set --subscription {SUBSCRIPTION}",
]


def test_aks_up_declined_on_the_terminal_creates_nothing(env, calls):
    result = _aks_up(env, answer="n")
    assert result.returncode == 1
    assert "Create them? [y/N]" in result.stderr
    assert "not confirmed; nothing was created" in result.stderr
    # What it would create was listed first.
    assert "AKS cluster      kubeflow-aks" in result.stdout
    assert "3 VMs" in result.stdout
    assert _recorded(calls) == CHECKS


def test_aks_up_with_no_answer_creates_nothing(env, calls):
    result = _aks_up(env, answer="")
    assert result.returncode == 1
    assert _recorded(calls) == CHECKS


def _created(lines: list[str]) -> list[str]:
    verbs = ("az group create", "az aks create", "az aks nodepool add", "juju bootstrap")
    return [line for line in lines if line.startswith(verbs)]


def test_aks_up_confirmed_on_the_terminal_goes_ahead(env, calls):
    result = _aks_up(env, answer="y")
    assert result.returncode == 0, result.stderr
    created = _created(_recorded(calls))
    assert created[0].startswith("az group create --name kubeflow --location eastus")
    assert created[1].startswith("az aks create --resource-group kubeflow --name kubeflow-aks")


def test_aks_up_with_yes_asks_nothing_and_creates_everything(env, calls):
    result = _aks_up(env, "--yes")
    assert result.returncode == 0, result.stderr
    assert "Create them?" not in result.stdout + result.stderr
    lines = _recorded(calls)
    created = _created(lines)
    assert [c.split(" --")[0] for c in created] == [
        "az group create",
        "az aks create",
        "az aks nodepool add",
        "az aks nodepool add",
        "az aks nodepool add",
        "az aks nodepool add",
        "juju bootstrap azure/eastus kubeflow-azure",
    ]
    assert any(line.startswith("juju add-model kubeflow kubeflow-aks") for line in lines)
    (deploy,) = [line for line in lines if "tools/deploy.py" in line]
    assert "--overlay " + str(ROOT / "bundle" / "overlays" / "aks.yaml") in deploy
    assert "--no-pack" in deploy  # PACK=0
