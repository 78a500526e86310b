"""What `charmcraft pack` would put in each charm covers everything its code imports.

Each charm is staged as `tools/stage.py` does for packing; then every module
the staged code imports (lazy imports included) must be the standard
library, a module inside the staged charm, or installed by the charm's
declared `requirements.txt` (directly or as a dependency of one).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
import tomllib
from charm_loader import CHARMS, ROOT, charm_names

sys.path.insert(0, str(ROOT / "tools"))
import stage

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    match = _NAME.match(line.strip())
    assert match, line
    return _canonical(match.group(0))


def _declared(charm: str) -> dict[str, str]:
    lines = (CHARMS / charm / "requirements.txt").read_text().splitlines()
    reqs = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {_requirement_name(line): line for line in reqs}


def _closure(names: set[str]) -> set[str]:
    """Distributions installed by `names`, following their requirements."""
    seen: set[str] = set()
    queue = list(names)
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            queue.append(_requirement_name(req))
    return seen


def _top_level_providers() -> dict[str, set[str]]:
    return {
        module: {_canonical(d) for d in dists}
        for module, dists in md.packages_distributions().items()
    }


@pytest.mark.parametrize("charm", charm_names())
def test_staged_charm_covers_its_imports(charm: str, tmp_path: Path):
    staged = stage.stage(charm, tmp_path)
    files = list((staged / "src").rglob("*.py")) + list((staged / "lib").rglob("*.py"))
    local = {p.stem for p in (staged / "src").glob("*.py")}
    local |= {p.name for p in (staged / "lib").glob("*") if p.is_dir()}
    installed = _closure(set(_declared(charm)))
    providers = _top_level_providers()

    missing = {}
    for path in files:
        for module in stage.imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in local or top == "__future__":
                continue
            dists = providers.get(top, set())
            if not dists & installed:
                missing.setdefault(top, set()).add(path.relative_to(staged).as_posix())
    assert not missing, f"{charm}: imports not packed or declared: {missing}"


@pytest.mark.parametrize("charm", charm_names())
def test_staged_charm_has_its_lib_modules(charm: str, tmp_path: Path):
    staged = stage.stage(charm, tmp_path)
    for path in (staged / "src").rglob("*.py"):
        for module in stage.imported_modules(path):
            if module.startswith("kubeflow_interfaces."):
                parts = module.split(".")
                as_module = staged / "lib" / Path(*parts).with_suffix(".py")
                as_package = staged / "lib" / Path(*parts) / "__init__.py"
                as_name = staged / "lib" / Path(*parts[:-1]).with_suffix(".py")
                assert as_module.exists() or as_package.exists() or as_name.exists(), module
    assert not list(staged.rglob("__pycache__"))


@pytest.mark.parametrize("charm", charm_names())
def test_declared_ranges_match_the_repository(charm: str):
    """A charm pins each dependency exactly as pyproject's `charm` group does."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    repo = {_requirement_name(r): r for r in groups["charm"] if isinstance(r, str)}
    for name, line in _declared(charm).items():
        assert name in repo, f"{charm} declares {name}, which pyproject's charm group lacks"
        assert line.replace(" ", "") == repo[name].replace(" ", ""), (charm, line, repo[name])


@pytest.mark.parametrize("charm", charm_names())
def test_charmcraft_packs_requirements(charm: str):
    import yaml

    meta = yaml.safe_load((CHARMS / charm / "charmcraft.yaml").read_text())
    part = meta["parts"]["charm"]
    assert "requirements.txt" in part.get("charm-requirements", [])
    assert meta["name"] == charm
    assert (CHARMS / charm / "src" / "charm.py").is_file()
