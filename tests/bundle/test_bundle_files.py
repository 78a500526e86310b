"""Bad bundle and overlay files: one clear line naming the file and the problem.

`tox -e simulate -- --overlay FILE` is the first thing run on a new overlay,
so a missing file, a file that is not YAML or one shaped wrongly must say so
in a line, not in a traceback. `load_bundle` raises BundleError with that
line; `simulate.py` prints it and exits 2.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bundle.simulator import BUNDLE, BundleError, load_bundle

SIMULATE = Path(__file__).with_name("simulate.py")
MICROK8S = BUNDLE.parent / "overlays" / "microk8s.yaml"


def _file(tmp_path: Path, text: str, name: str = "overlay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SIMULATE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# What an overlay can get wrong, and the words that must be in the line about it.
BAD_OVERLAYS = [
    pytest.param("applications:\n  mysql: [unclosed\n", "not valid YAML", id="not-yaml"),
    pytest.param("- mysql\n- minio\n", "must be a mapping", id="a-list"),
    pytest.param("just words\n", "not a string", id="a-string"),
    pytest.param("application:\n  mysql: {}\n", "neither applications", id="misspelt-key"),
    pytest.param("applications: [mysql]\n", "applications must be a mapping", id="apps-a-list"),
    pytest.param("applications:\n  mysql: 3\n", "applications.mysql must be", id="app-a-number"),
    pytest.param(
        "applications:\n  mysql:\n    options: [a]\n", "options must be a mapping", id="options"
    ),
    pytest.param(
        "applications:\n  mysql:\n    options:\n      max-conections: 5\n",
        "mysql has no 'max-conections'",
        id="unknown-option",
    ),
    pytest.param(
        "applications:\n  mysql:\n    scale: two\n", "scale must be a whole number", id="scale"
    ),
    pytest.param("applications:\n  mysql:\n    trust: yes please\n", "trust must be", id="trust"),
    pytest.param(
        "applications:\n  extra:\n    options: {}\n",
        "not in the bundle and has no charm",
        id="new",
    ),
    pytest.param(
        "applications:\n  extra:\n    charm: postgresql-k8s\n",
        "'postgresql-k8s' is not a charm of this repository",
        id="foreign-charm",
    ),
    pytest.param("relations: mysql\n", "relations must be a list", id="relations-a-string"),
    pytest.param(
        "relations:\n  - [mysql, minio]\n", "must be a pair [app:endpoint", id="no-endpoints"
    ),
    pytest.param(
        "relations:\n  - [mysql:database, seldon:db]\n",
        "names 'seldon', which is not an application",
        id="unknown-app",
    ),
]


@pytest.mark.parametrize(("text", "words"), BAD_OVERLAYS)
def test_a_bad_overlay_is_named_with_its_problem(tmp_path: Path, text: str, words: str):
    overlay = _file(tmp_path, text)
    with pytest.raises(BundleError) as raised:
        load_bundle(BUNDLE, [MICROK8S, overlay])
    message = str(raised.value)
    assert message.startswith(f"{overlay}: ")
    assert words in message
    assert "\n" not in message


def test_a_missing_overlay_is_named(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    expected = f"^{re.escape(str(missing))}: cannot read the overlay: No such file"
    with pytest.raises(BundleError, match=expected):
        load_bundle(BUNDLE, [missing])


def test_an_overlay_that_is_a_folder_is_named(tmp_path: Path):
    with pytest.raises(BundleError, match=f"^{re.escape(str(tmp_path))}: cannot read the overlay"):
        load_bundle(BUNDLE, [tmp_path])


def test_an_overlay_that_is_not_text_is_named(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_bytes(b"\xff\xfe\x00binary")
    expected = f"^{re.escape(str(overlay))}: the overlay is not UTF-8 text$"
    with pytest.raises(BundleError, match=expected):
        load_bundle(BUNDLE, [overlay])


BAD_BUNDLES = [
    pytest.param("", "must be a mapping", id="empty"),
    pytest.param("bundle: kubernetes\n", "applications must be a mapping", id="no-apps"),
    pytest.param("applications: {}\n", "applications must be a mapping", id="apps-empty"),
    pytest.param("applications:\n  mysql:\n", "applications.mysql must be", id="app-empty"),
    pytest.param(
        "applications:\n  mysql:\n    scale: 1\n", "applications.mysql has no charm", id="no-charm"
    ),
    pytest.param("applications:\n  mysql: {charm: mysql\n", "not valid YAML", id="not-yaml"),
]


@pytest.mark.parametrize(("text", "words"), BAD_BUNDLES)
def test_a_bad_bundle_is_named_with_its_problem(tmp_path: Path, text: str, words: str):
    bundle = _file(tmp_path, text, "bundle.yaml")
    with pytest.raises(BundleError) as raised:
        load_bundle(bundle)
    message = str(raised.value)
    assert message.startswith(f"{bundle}: the bundle") or message.startswith(f"{bundle}: app")
    assert words in message
    assert "\n" not in message


def test_a_missing_bundle_is_named(tmp_path: Path):
    gone = tmp_path / "gone.yaml"
    with pytest.raises(BundleError, match=f"^{re.escape(str(gone))}: cannot read the bundle"):
        load_bundle(gone)


def test_good_files_still_load(tmp_path: Path):
    """Nulls remove an application and its relations; an empty overlay changes nothing."""
    empty = _file(tmp_path, "", "empty.yaml")
    assert load_bundle(BUNDLE, [empty]) == load_bundle(BUNDLE)
    removal = _file(tmp_path, yaml.safe_dump({"applications": {"minio": None}}), "no-minio.yaml")
    data = load_bundle(BUNDLE, [MICROK8S, removal])
    assert "minio" not in data["applications"]
    assert data["relations"]
    assert not any(end.startswith("minio:") for pair in data["relations"] for end in pair)


# --- the command: one line on stderr, exit 2, no traceback ------------------------------


@pytest.mark.parametrize(
    ("option", "text", "words"),
    [
        ("--overlay", None, "cannot read the overlay: No such file or directory"),
        ("--overlay", "applications:\n  mysql: [unclosed\n", "the overlay is not valid YAML"),
        ("--overlay", "- a list\n", "the overlay must be a mapping"),
        ("--bundle", None, "cannot read the bundle: No such file or directory"),
        ("--bundle", "applications: {}\n", "applications must be a mapping"),
    ],
    ids=[
        "missing-overlay",
        "overlay-not-yaml",
        "overlay-a-list",
        "missing-bundle",
        "bundle-empty",
    ],
)
def test_simulate_prints_one_line_and_exits_2(tmp_path: Path, option, text, words):
    path = tmp_path / "file.yaml"
    if text is not None:
        path.write_text(text)
    result = _simulate(option, str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {path}: ")
    assert words in result.stderr
