"""tools/check_images.py: it lists every image the bundle and the tests use, and checks each.

The list is compared with what PyYAML reads from the same files, so an image
added to the bundle, an overlay, a charm or the integration tests that the
tool would miss fails here. The registry is a fake `skopeo` first on PATH
that records its argv and answers as the real one does.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from charm_loader import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_images

TOOL = ROOT / "tools" / "check_images.py"
BUNDLE_FILES = [
    ROOT / "bundle" / "bundle.yaml",
    *sorted((ROOT / "bundle" / "overlays").glob("*.yaml")),
]
CHARM_FILES = sorted(
    [
        *(ROOT / "charms").glob("*/charmcraft.yaml"),
        *(ROOT / "tests" / "charms").glob("*/charmcraft.yaml"),
    ]
)
TEST_FILES = sorted((ROOT / "tests" / "integration").glob("*.py"))

# An image index as `skopeo inspect --raw` prints it (OCI image-spec,
# image-index.md: `manifests[].platform.{os,architecture}`).
INDEX = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
    '"manifests":[{"platform":{"os":"linux","architecture":"amd64"}},'
    '{"platform":{"os":"linux","architecture":"arm64"}}]}'
)
ARM_ONLY = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
    '"manifests":[{"platform":{"os":"linux","architecture":"arm64"}}]}'
)
# What skopeo prints when a tag is not there: the registry's MANIFEST_UNKNOWN
# error (distribution-spec, spec.md, error codes), after skopeo's own prefix.
UNKNOWN = (
    'level=fatal msg="Error parsing image name \\"docker://$3\\": '
    'reading manifest: manifest unknown"'
)

FAKE_SKOPEO = f"""\
#!/bin/sh
echo "$*" >> "$CALLS"
ref="${{3#docker://}}"
if [ "$ref" = "$MISSING" ]; then echo '{UNKNOWN}' >&2; exit 1; fi
if [ "$ref" = "$ARM_ONLY" ]; then echo '{ARM_ONLY}'; exit 0; fi
if [ "$ref" = "$FLAKY" ] && [ ! -e "$CALLS.flaked" ]; then
  : > "$CALLS.flaked"; echo 'level=fatal msg="pinging container registry: i/o timeout"' >&2; exit 1
fi
echo '{INDEX}'
"""


# --- what the list must hold, read with PyYAML -----------------------------------


def _option_refs(value) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return []
    listed = yaml.safe_load(value)
    return [str(item) for item in listed] if isinstance(listed, list) else [value.strip()]


def expected_images() -> set[str]:
    refs: set[str] = set()
    for path in BUNDLE_FILES:
        for spec in (yaml.safe_load(path.read_text()).get("applications") or {}).values():
            spec = spec or {}
            refs |= {ref for ref in (spec.get("resources") or {}).values() if isinstance(ref, str)}
            for name, value in (spec.get("options") or {}).items():
                if name.endswith(("-image", "-images")):
                    refs |= set(_option_refs(value))
    for path in CHARM_FILES:
        document = yaml.safe_load(path.read_text())
        for resource in (document.get("resources") or {}).values():
            if resource.get("type") == "oci-image":
                refs.add(resource["upstream-source"])
        for name, option in ((document.get("config") or {}).get("options") or {}).items():
            if name.endswith(("-image", "-images")):
                refs |= set(_option_refs(option.get("default")))
    # In the tests: anything that looks like registry.host/path:tag in the text.
    pattern = re.compile(
        r"""["']([a-z0-9-]+(?:\.[a-z0-9-]+)+/[a-z0-9._/-]+:[A-Za-z0-9_.-]+)["']"""
    )
    for path in TEST_FILES:
        refs |= set(pattern.findall(path.read_text()))
    return refs


def test_the_list_holds_every_image_of_the_bundle_the_charms_and_the_tests():
    listed = set(check_images.collect())
    assert listed == expected_images()
    # The ones that matter most are there (not an empty comparison).
    assert "mysql:8.4" in listed
    assert "docker.io/istio/proxyv2:1.29.6" in listed  # pulled by the gateway, not a resource
    assert "docker.io/ealen/echo-server:0.9.2" in listed  # deployed by the tests only


def test_every_resource_of_the_bundle_is_a_charm_upstream_source():
    """The bundle's resources and the charms' upstream-source agree (bundle.yaml says so)."""
    uses = check_images.collect()
    for ref, places in uses.items():
        files = {use.file for use in places}
        if "bundle/bundle.yaml" in files and any("resource" in use.where for use in places):
            assert any(f.startswith("charms/") for f in files), (ref, files)


@pytest.mark.parametrize(
    "path", BUNDLE_FILES + CHARM_FILES, ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_the_yaml_reader_agrees_with_pyyaml(path: Path):
    assert check_images.load_yaml(path.read_text()) == yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    "text",
    [
        "a: &anchor 1\nb: *anchor\n",
        "a: >\n  folded\n  text\n",
        "a: {b: 1}\n",
        "a:\n  b: 1\n    c: 2\n",
    ],
)
def test_the_yaml_reader_refuses_what_it_does_not_read(text: str):
    with pytest.raises(check_images.YamlSubsetError):
        check_images.load_yaml(text)


def test_only_qualified_references_count_in_test_code(tmp_path: Path):
    (tmp_path / "tests" / "integration").mkdir(parents=True)
    module = tmp_path / "tests" / "integration" / "test_x.py"
    module.write_text(
        'A = "quay.io/org/app:1.0"\n'
        'B = "mysql:database"  # an endpoint, not an image\n'
        'C = "latest/stable"\n'
        'D = "localhost:5000/img@sha256:' + "a" * 64 + '"\n'
        'E = "example.com/no-tag"\n'
    )
    found = [ref for ref, _ in check_images.module_images(module, tmp_path)]
    assert found == ["quay.io/org/app:1.0", "localhost:5000/img@sha256:" + "a" * 64]


# --- checking, against a fake skopeo ------------------------------------------------


@pytest.fixture
def fake_skopeo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    skopeo = bin_dir / "skopeo"
    skopeo.write_text(FAKE_SKOPEO)
    skopeo.chmod(skopeo.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(calls))
    for name in ("MISSING", "ARM_ONLY", "FLAKY"):
        monkeypatch.setenv(name, "")
    return calls


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, check=False
    )


def test_every_image_is_asked_for_once_and_all_exist(fake_skopeo: Path):
    done = _run("--jobs", "3")
    assert done.returncode == 0, done.stderr
    calls = sorted(fake_skopeo.read_text().splitlines())
    assert calls == sorted(f"inspect --raw docker://{ref}" for ref in check_images.collect())
    assert f"all {len(calls)} images exist" in done.stdout


def test_a_missing_tag_fails_naming_the_image_and_where_it_is_used(
    fake_skopeo: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MISSING", "ghcr.io/dexidp/dex:v2.45.1")
    done = _run()
    assert done.returncode == 1
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("  ghcr.io/dexidp/dex")]
    assert line.endswith('reading manifest: manifest unknown"')  # skopeo's own words
    assert "used by charms/dex/charmcraft.yaml: dex resource oci-image" in done.stderr
    assert "used by bundle/bundle.yaml: dex resource oci-image" in done.stderr
    assert done.stderr.count("manifest unknown") == 1  # the only one missing
    # The registry's answer is final: asked once, not retried.
    asked = fake_skopeo.read_text().splitlines()
    assert asked.count("inspect --raw docker://ghcr.io/dexidp/dex:v2.45.1") == 1


def test_an_image_without_the_runners_platform_fails(
    fake_skopeo: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ARM_ONLY", "mysql:8.4")
    done = _run()
    assert done.returncode == 1
    assert "mysql:8.4: no linux/amd64 image (has linux/arm64)" in done.stderr


def test_a_passing_fault_is_tried_again(fake_skopeo: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLAKY", "mysql:8.4")
    result = check_images.check("mysql:8.4", "skopeo", "linux/amd64", pause=0)
    assert result.ok, result.detail
    assert fake_skopeo.read_text().splitlines() == ["inspect --raw docker://mysql:8.4"] * 2


@pytest.mark.parametrize("args", [["--list"], ["--help"]])
def test_listing_and_help_ask_no_registry(fake_skopeo: Path, args: list[str]):
    done = _run(*args)
    assert done.returncode == 0, done.stderr
    assert not fake_skopeo.exists()
    if args == ["--list"]:
        assert (
            "    charms/istio/charmcraft.yaml: istio option proxy-image (default)" in done.stdout
        )


def test_without_skopeo_it_says_how_to_get_it(tmp_path: Path):
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(TOOL)], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 2
    assert "skopeo is not installed" in done.stderr
