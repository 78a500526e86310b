"""Load the module that holds a charm's class, under a unique module name.

A charm's `src/charm.py` is only its entrypoint: it imports the charm class
from `src/<name>_charm.py` (dashes as underscores), which each charm names
after itself so one pytest process can import them all. That module is
loaded, with the charm's `src/` on `sys.path` for its own workload modules
(which have unique names too). A test charm that keeps its class in
`src/charm.py` itself is loaded from there under the same name.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHARMS = ROOT / "charms"
# Small charms that exist only to exercise the real ones in tests.
TEST_CHARMS = ROOT / "tests" / "charms"


def charm_dir(name: str) -> Path:
    """Where a charm lives: the project's charms first, then the test charms."""
    for base in (CHARMS, TEST_CHARMS):
        if (base / name / "charmcraft.yaml").is_file():
            return base / name
    raise FileNotFoundError(f"no charm named {name!r}")


def load_charm(name: str) -> ModuleType:
    """Import the module `<name>_charm` of charms/<name>/src, which holds the charm (cached)."""
    module_name = f"{name.replace('-', '_')}_charm"
    if module_name in sys.modules:
        return sys.modules[module_name]
    src = charm_dir(name) / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    if (src / f"{module_name}.py").is_file():
        return importlib.import_module(module_name)
    spec = importlib.util.spec_from_file_location(module_name, src / "charm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def charm_names() -> list[str]:
    """Every charm in the repository."""
    return sorted(p.parent.name for p in CHARMS.glob("*/charmcraft.yaml"))


def run_fresh(script: str, *args: str, stdin: str | None = None) -> dict[str, Any]:
    """Run `script` in a fresh interpreter (lib/ and tests/ importable) and read its result.

    A hook's cost is what a fresh process imports, which this test session,
    having imported everything already, cannot show. The script prints its
    result as JSON on its last line; a failing script fails the test.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT / "tests")])}
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
