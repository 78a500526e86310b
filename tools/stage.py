#!/usr/bin/env python3
"""Stage charms for `charmcraft pack`: each charm's tree plus the `lib/` modules it uses.

A charm imports relation libraries from the repository's `lib/` package. A
packed charm runs with `lib/` and `src/` on its Python path, so staging
copies `charms/<name>/` to `<out>/<name>/` and adds, under `lib/`, exactly
the library modules its code imports (and what those import in turn).

Modes are set, not copied: the entrypoint `src/charm.py` is made 0755
whatever its mode in the checkout (charmcraft's `dispatch` script executes
it directly), other files 0644 (0755 if executable in the source) and
directories 0755.

    python tools/stage.py [--out build] [CHARM ...]
"""

from __future__ import annotations

import argparse
import ast
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARMS = ROOT / "charms"
# Test charms (tests/charms) are staged the same way, for the integration tests.
TEST_CHARMS = ROOT / "tests" / "charms"
LIB = ROOT / "lib"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".tox", "build", "*.charm")
# The charm plugin's default `charm-entrypoint` (charmcraft 3.5.3,
# charmcraft/parts/plugins/_charm.py: CharmPluginProperties), which the
# generated `dispatch` runs as `exec ./src/charm.py` (charmcraft/const.py:
# DISPATCH_CONTENT). No charm here overrides it (tests/packing checks).
ENTRYPOINT = "src/charm.py"
EXECUTABLE = 0o755
REGULAR = 0o644


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name a Python file imports, lazily or not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def lib_modules(sources: Iterable[Path]) -> set[Path]:
    """The `lib/` files the sources need, following imports between lib modules."""
    needed: set[Path] = set()
    queue = list(sources)
    while queue:
        for name in imported_modules(queue.pop()):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                base = LIB.joinpath(*parts[:depth])
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.is_file() and candidate not in needed:
                        needed.add(candidate)
                        queue.append(candidate)
    return needed


def normalise_modes(tree: Path, entrypoint: str = ENTRYPOINT) -> None:
    """Give a staged tree sane modes, the entrypoint executable whatever its source mode."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(EXECUTABLE)
        elif path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            path.chmod(EXECUTABLE)
        else:
            path.chmod(REGULAR)
    charm = tree / entrypoint
    if not charm.is_file():
        raise SystemExit(f"{tree.name}: no entrypoint {entrypoint}")
    charm.chmod(EXECUTABLE)


def stage(name: str, out: Path) -> Path:
    """Copy one charm and the library modules it uses into `out/<name>`."""
    candidates = [base / name for base in (CHARMS, TEST_CHARMS)]
    source = next((c for c in candidates if (c / "charmcraft.yaml").is_file()), None)
    if source is None:
        raise SystemExit(f"no charm named {name!r} in {CHARMS} or {TEST_CHARMS}")
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_SKIP)
    for module in sorted(lib_modules((source / "src").rglob("*.py"))):
        destination = target / "lib" / module.relative_to(LIB)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, destination)
    normalise_modes(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Stage the named charms, or all of them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("charms", nargs="*", help="charm names (default: every charm)")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="staging folder")
    args = parser.parse_args(argv)
    names = args.charms or sorted(p.parent.name for p in CHARMS.glob("*/charmcraft.yaml"))
    for name in names:
        target = stage(name, args.out)
        sys.stdout.write(f"staged {name} in {target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
