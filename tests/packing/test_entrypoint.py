"""Every charm's entrypoint is executable, in the repository and once staged.

charmcraft's generated `dispatch` script ends in `exec ./src/charm.py`
(charmcraft 3.5.3, charmcraft/const.py: DISPATCH_CONTENT), and its charm
builder hard-links the project's files into the charm as they are
(charmcraft/charm_builder.py: handle_generic_paths), so a `src/charm.py`
without its execute bit fails every hook with "Permission denied". The
entrypoint is the plugin's default `src/charm.py` (charmcraft/parts/plugins/
_charm.py: CharmPluginProperties.charm_entrypoint) unless a charm sets
`charm-entrypoint`, which none does.
"""

from __future__ import annotations

import ast
import os
import runpy
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import ops
import pytest
import yaml
from charm_loader import CHARMS, ROOT, TEST_CHARMS, charm_dir, charm_names, load_charm

sys.path.insert(0, str(ROOT / "tools"))
import stage

ALL_CHARMS = sorted(
    p.parent.name for base in (CHARMS, TEST_CHARMS) for p in base.glob("*/charmcraft.yaml")
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _index_mode(path: Path) -> str:
    """The mode git records for a file ("100755" for an executable one)."""
    relative = path.relative_to(ROOT).as_posix()
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--stage", "--", relative],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out, f"{relative} is not committed"
    return out.split()[0]


def _in_git_checkout() -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.returncode == 0 and found.stdout.strip() == "true"


def test_every_charm_is_checked():
    assert "route-probe" in ALL_CHARMS
    assert len(ALL_CHARMS) > 1


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_no_charm_moves_its_entrypoint(charm: str):
    meta = yaml.safe_load((charm_dir(charm) / "charmcraft.yaml").read_text())
    part = meta["parts"]["charm"]
    assert part.get("charm-entrypoint", stage.ENTRYPOINT) == stage.ENTRYPOINT


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_entrypoint_is_executable_in_the_repository(charm: str):
    entrypoint = charm_dir(charm) / stage.ENTRYPOINT
    assert entrypoint.read_text().startswith("#!/usr/bin/env python3\n"), entrypoint
    assert os.access(entrypoint, os.X_OK), f"{entrypoint} is not executable"
    if _in_git_checkout():
        # What a clone gets: the mode committed, not this checkout's.
        assert _index_mode(entrypoint) == "100755", (
            f"{entrypoint} is committed without its execute bit: "
            f"git update-index --chmod=+x {entrypoint.relative_to(ROOT)}"
        )


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_entrypoint_is_executable_once_staged(charm: str, tmp_path: Path):
    staged = stage.stage(charm, tmp_path)
    assert _mode(staged / stage.ENTRYPOINT) == 0o755
    for path in [staged, *staged.rglob("*")]:
        if path.is_dir():
            assert _mode(path) == 0o755, path
        elif path != staged / stage.ENTRYPOINT:
            assert _mode(path) in (0o644, 0o755), path


@pytest.mark.parametrize("charm", charm_names())
def test_entrypoint_only_hands_the_charm_class_to_ops(charm: str):
    """`src/charm.py` only imports the charm's class from its module and runs it.

    Python compiles a script from source on every run and caches only the
    modules it imports, so whatever code the entrypoint holds, every hook
    compiles again: the charm lives in `src/<name>_charm.py`.
    """
    module = load_charm(charm)
    classes = [
        name
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, ops.CharmBase)
        if obj.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"{module.__name__}: {classes}"
    name = classes[0]
    entrypoint = CHARMS / charm / stage.ENTRYPOINT
    tree = ast.parse(entrypoint.read_text())
    assert ast.get_docstring(tree), entrypoint
    code = ast.unparse(ast.Module(body=tree.body[1:], type_ignores=[]))
    assert code == (
        f"import ops\nfrom {module.__name__} import {name}\n"
        f"if __name__ == '__main__':\n    ops.main({name})"
    )
    assert runpy.run_path(str(entrypoint), run_name="entrypoint")[name] is getattr(module, name)


def test_staging_makes_the_entrypoint_executable_whatever_its_source_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    charms = tmp_path / "charms"
    shutil.copytree(CHARMS / "minio", charms / "minio")
    source = charms / "minio"
    (source / stage.ENTRYPOINT).chmod(0o600)
    (source / "charmcraft.yaml").chmod(0o666)
    (source / "src").chmod(0o700)
    monkeypatch.setattr(stage, "CHARMS", charms)

    staged = stage.stage("minio", tmp_path / "out")

    assert _mode(staged / stage.ENTRYPOINT) == 0o755
    assert _mode(staged / "charmcraft.yaml") == 0o644
    assert _mode(staged / "src") == 0o755
    assert all(_mode(p) == 0o644 for p in (staged / "lib").rglob("*.py"))


def test_staging_keeps_other_executables_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    charms = tmp_path / "charms"
    shutil.copytree(CHARMS / "minio", charms / "minio")
    script = charms / "minio" / "src" / "helper.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    monkeypatch.setattr(stage, "CHARMS", charms)

    staged = stage.stage("minio", tmp_path / "out")

    assert _mode(staged / "src" / "helper.sh") == 0o755


def test_staging_refuses_a_charm_without_its_entrypoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    charms = tmp_path / "charms"
    shutil.copytree(CHARMS / "minio", charms / "minio")
    (charms / "minio" / stage.ENTRYPOINT).rename(charms / "minio" / "src" / "main.py")
    monkeypatch.setattr(stage, "CHARMS", charms)

    with pytest.raises(SystemExit, match=r"no entrypoint src/charm\.py"):
        stage.stage("minio", tmp_path / "out")
