"""Every compiled dependency of every charm is installed from a wheel when it is packed.

How charmcraft 3.5 installs a charm's dependencies (charmcraft 3.5.3,
charmcraft/charm_builder.py: CharmBuilder._install_dependencies, without
`charm-strict-dependencies`; the pip command for step 1 comes from
charmcraft/utils/package.py: get_pip_command):

1. `pip install <charm-binary-python-packages>`: those entries alone, with
   wheels allowed for them and their dependencies;
2. `charm-python-packages` from source (no charm here uses it);
3. `pip install --no-binary=:all: --requirement=requirements.txt`: everything
   not yet installed is built from its sdist. pip keeps what step 1 installed
   only where every requirement in the closure accepts that version.

Building from source needs the package's compiler: bcrypt, cryptography,
pydantic-core and rpds-py need Rust, which the build environment does not
have. So each charm's `charm-binary-python-packages` must name every
compiled distribution of its requirements' closure, and each must come out
of step 1 at a version step 3 keeps. Step 1 takes the newest version its
entry allows, seeing no other constraint unless the package that sets it is
declared too. So for every declared package and every requirement on it in
the closure (requirements.txt's lines included), the entry caps the version
at least as tightly as that requirement, or the requiring package is itself
declared (pip then resolves both at once): pydantic pins pydantic-core to one
version, so pydantic is declared with pydantic-core; ops caps PyYAML at 6.*,
so ops is declared with PyYAML.

The closure and what is compiled are read from this test environment's
installed distributions (the packing env installs the `unit` group, which
holds every charm's requirements; tests/packing/test_packing.py checks the
ranges match): a distribution is compiled when the wheel it was installed
from is tagged for a platform (its `.dist-info/WHEEL` has a `Tag:` that does
not end in `-none-any`, as the wheel spec, PEP 427, defines them). No
network, no resolver: the env is built fresh from the same ranges in CI, so
a new release that adds a compiled dependency fails here as it would fail
packing. Markers are evaluated for the charms' base, Ubuntu 24.04's
CPython 3.12 on amd64 and arm64 (their platforms), not for this interpreter.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field

import pytest
import yaml
from charm_loader import CHARMS, TEST_CHARMS, charm_dir
from packaging.requirements import Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ALL_CHARMS = sorted(
    p.parent.name for base in (CHARMS, TEST_CHARMS) for p in base.glob("*/charmcraft.yaml")
)
REQUIREMENTS = "requirements.txt"
# The charms' base is ubuntu@24.04 (python3 3.12) on amd64 and arm64.
_TARGETS = [
    {
        "python_version": "3.12",
        "python_full_version": "3.12.3",
        "implementation_name": "cpython",
        "implementation_version": "3.12.3",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
    }
    for machine in ("x86_64", "aarch64")
]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(
        req.marker.evaluate({**target, "extra": extra})
        for target in _TARGETS
        for extra in (extras or {""})
    )


@dataclass
class Closure:
    """A charm's installed dependencies, and who requires each of them how."""

    direct: dict[str, Requirement] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)  # requirements.txt as written
    dists: dict[str, md.Distribution] = field(default_factory=dict)
    # dependency -> [(requiring distribution or requirements.txt, requirement)]
    required_by: dict[str, list[tuple[str, Requirement]]] = field(default_factory=dict)


def _requirements(charm: str) -> list[str]:
    lines = (charm_dir(charm) / REQUIREMENTS).read_text().splitlines()
    return [line for line in map(str.strip, lines) if line and line[0] != "#"]


def closure(charm: str) -> Closure:
    """Follow the charm's requirements through the installed distributions' metadata."""
    found = Closure()
    queue: list[tuple[str, Requirement]] = []
    for line in _requirements(charm):
        req = Requirement(line)
        found.direct[canonicalize_name(req.name)] = req
        found.lines[canonicalize_name(req.name)] = line
        queue.append((REQUIREMENTS, req))
    extras: dict[str, frozenset[str]] = {}
    while queue:
        requirer, req = queue.pop()
        if not _applies(req, extras.get(requirer, frozenset())):
            continue
        name = canonicalize_name(req.name)
        found.required_by.setdefault(name, []).append((requirer, req))
        wanted = extras.get(name, frozenset()) | frozenset(req.extras)
        if name in found.dists and wanted == extras[name]:
            continue
        extras[name] = wanted
        try:
            found.dists[name] = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"{charm}: {name} (required by {requirer}) is not installed here")
        queue.extend((name, Requirement(r)) for r in found.dists[name].requires or [])
    return found


def wheel_tags(dist: md.Distribution) -> list[str]:
    """The tags of the wheel a distribution was installed from."""
    wheel = dist.read_text("WHEEL")
    assert wheel, f"{dist.metadata['Name']} was not installed from a wheel: cannot tell"
    return [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line[:4] == "Tag:"]


def is_compiled(dist: md.Distribution) -> bool:
    """Whether the distribution's wheel is for one platform (has compiled code)."""
    tags = wheel_tags(dist)
    assert tags, dist.metadata["Name"]
    return any(not tag.endswith("-none-any") for tag in tags)


# --- how tightly a specifier caps a version from above -----------------------


def _bump(release: tuple[int, ...]) -> Version:
    return Version(".".join(map(str, (*release[:-1], release[-1] + 1))))


def _cap(spec: Specifier) -> tuple[Version, bool] | None:
    """The highest version one clause allows, as (version, inclusive); None: no cap."""
    op, version = spec.operator, spec.version
    if op in (">=", ">", "!="):
        return None
    if op == "<":
        return Version(version), False
    if op == "<=":
        return Version(version), True
    if op == "==" and version.endswith(".*"):
        return _bump(Version(version[:-2]).release), False
    if op == "~=":
        return _bump(Version(version).release[:-1]), False
    return Version(version), True  # == or ===: one version


def _lowest_cap(specs: SpecifierSet) -> tuple[Version, bool] | None:
    caps = [c for c in map(_cap, specs) if c is not None]
    return min(caps, key=lambda c: (c[0], c[1])) if caps else None


def caps_as_tightly(entry: SpecifierSet, requirement: SpecifierSet) -> bool:
    """Whether the newest version `entry` allows is one `requirement` accepts too.

    pip's step 1 takes the newest version the entry allows; any lower bound
    of the requirement is then met unless it lies above every release.
    """
    for clause in requirement:
        if clause.operator in (">=", ">"):
            continue
        exact = clause.operator in ("===", "!=") or (
            clause.operator == "==" and not clause.version.endswith(".*")
        )
        if exact:
            if clause not in set(entry):
                return False
            continue
        wanted, entry_cap = _cap(clause), _lowest_cap(entry)
        assert wanted is not None
        if entry_cap is None:
            return False
        (limit, limit_inclusive), (have, have_inclusive) = wanted, entry_cap
        if have > limit or (have == limit and have_inclusive and not limit_inclusive):
            return False
    return True


def test_caps_as_tightly():
    def check(entry: str, requirement: str) -> bool:
        return caps_as_tightly(SpecifierSet(entry), SpecifierSet(requirement))

    assert check(">=2.6,<3", "<3.0.0,>=2")
    assert check("<3", "<=3")
    assert not check("<=3", "<3")
    assert check(">=6,<6.5", "==6.*")
    assert not check(">=6", "==6.*")
    assert check("<7", "==6.*")
    assert check("<2", "~=1.0")
    assert not check("<2", "~=1.4.5")
    assert not check("", "==2.41.5")
    assert check("==2.41.5", "==2.41.5")
    assert not check(">=1", "!=1.2")
    assert check(">=1", ">=2")
    assert check("", "")


# --- what each charm declares -------------------------------------------------


def _charm_part(charm: str) -> dict:
    return yaml.safe_load((charm_dir(charm) / "charmcraft.yaml").read_text())["parts"]["charm"]


def declared(charm: str) -> dict[str, Requirement]:
    """The charm's `charm-binary-python-packages`, by canonical name."""
    entries = [Requirement(e) for e in _charm_part(charm).get("charm-binary-python-packages", [])]
    by_name = {canonicalize_name(e.name): e for e in entries}
    assert len(by_name) == len(entries), f"{charm}: a package is declared twice"
    return by_name


def needed(charm: str) -> dict[str, str]:
    """The entries the rules above ask for: what a failing check suggests."""
    found = closure(charm)
    entries = {n: found.lines.get(n, n) for n, d in found.dists.items() if is_compiled(d)}
    grown = True
    while grown:
        grown = False
        for name in list(entries):
            entry = SpecifierSet(str(found.direct[name].specifier) if name in found.direct else "")
            for requirer, req in found.required_by[name]:
                if requirer == REQUIREMENTS or requirer in entries:
                    continue
                if not caps_as_tightly(entry, req.specifier):
                    entries[requirer] = found.lines.get(requirer, requirer)
                    grown = True
    return dict(sorted(entries.items()))


def _suggestion(charm: str) -> str:
    lines = "".join(f"      - {entry}\n" for entry in needed(charm).values())
    return f"\nfor example:\n    charm-binary-python-packages:\n{lines}"


def test_every_charm_is_checked():
    assert "route-probe" in ALL_CHARMS
    assert {"dex", "istio", "minio"} <= set(ALL_CHARMS)


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_dependencies_install_as_the_reasoning_above_says(charm: str):
    part = _charm_part(charm)
    assert part["plugin"] == "charm"
    assert not part.get("charm-strict-dependencies", False)
    assert not part.get("charm-python-packages")
    assert part.get("charm-requirements") == [REQUIREMENTS]


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_every_compiled_dependency_is_a_binary_package(charm: str):
    found = closure(charm)
    compiled = {name for name, dist in found.dists.items() if is_compiled(dist)}
    missing = sorted(compiled - set(declared(charm)))
    assert not missing, (
        f"{charm}: compiled dependencies that packing would build from source: {missing}"
        + _suggestion(charm)
    )


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_binary_packages_are_dependencies(charm: str):
    stale = sorted(set(declared(charm)) - set(closure(charm).dists))
    assert not stale, f"{charm}: declared but not among its dependencies: {stale}"


@pytest.mark.parametrize("charm", ALL_CHARMS)
def test_binary_packages_come_out_at_versions_the_requirements_keep(charm: str):
    found, entries = closure(charm), declared(charm)
    problems = []
    for name, entry in entries.items():
        for requirer, req in found.required_by.get(name, []):
            if requirer in entries or caps_as_tightly(entry.specifier, req.specifier):
                continue
            problems.append(f"{requirer} requires {req}, which the entry {entry} may exceed")
    assert not problems, f"{charm}: " + "; ".join(problems) + _suggestion(charm)


def test_a_missing_compiled_dependency_is_found(monkeypatch: pytest.MonkeyPatch):
    entries = _charm_part("dex")["charm-binary-python-packages"]
    without = [e for e in entries if canonicalize_name(Requirement(e).name) != "bcrypt"]
    monkeypatch.setitem(
        globals(), "_charm_part", lambda charm: {"charm-binary-python-packages": without}
    )
    with pytest.raises(AssertionError, match=r"build from source: \['bcrypt'\]"):
        test_every_compiled_dependency_is_a_binary_package("dex")


def test_known_compiled_distributions_are_seen_as_compiled():
    for name in ("pydantic-core", "cryptography", "bcrypt", "pyyaml"):
        assert is_compiled(md.distribution(name)), name
    for name in ("pydantic", "ops", "jinja2"):
        assert not is_compiled(md.distribution(name)), name


def test_a_pinned_compiled_dependency_needs_its_requirer(monkeypatch: pytest.MonkeyPatch):
    entries = _charm_part("dex")["charm-binary-python-packages"]
    without = [e for e in entries if canonicalize_name(Requirement(e).name) != "pydantic"]
    monkeypatch.setitem(
        globals(), "_charm_part", lambda charm: {"charm-binary-python-packages": without}
    )
    with pytest.raises(AssertionError, match=r"pydantic requires pydantic-core==") as failed:
        test_binary_packages_come_out_at_versions_the_requirements_keep("dex")
    assert "- pydantic>=2.6,<3" in str(failed.value)
