"""Upstream facts our charms must agree with, each with where it was read.

Each charm has `facts/<charm>.yaml`: a map of workloads, each a map of facts.
A fact is `{value: ..., source: {repo: owner/name, ref: tag-or-commit, path:
file[:line]}}`, optionally with a `note`. The value is what the upstream
release says (an image tag its manifests name, a flag its main.go defines, a
port its Service exposes, a working directory its Dockerfile sets); the
conformance tests render our Pebble layers, files and manifests and compare
them with it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

FACTS = Path(__file__).parent / "facts"
# A release tag (v1.10.0, 1.29.6, v2.45.1, 8.4.7, RELEASE.2025-...) or a commit: never a branch.
_REF = re.compile(r"^(v?\d+(\.\d+)*([-.+][\w.-]+)?|RELEASE\.[\w.-]+|[0-9a-f]{7,40})$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a fact was read."""

    repo: str
    ref: str
    path: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}:{self.path}"


@dataclasses.dataclass(frozen=True)
class Fact:
    """One upstream fact."""

    value: Any
    source: Source
    note: str = ""


def problems(raw: Any) -> list[str]:
    """What is wrong with a facts file's content: every fact needs a value and a source."""
    found = []
    if not isinstance(raw, dict) or not raw:
        return ["a facts file is a non-empty map of workloads"]
    for workload, facts in raw.items():
        if not isinstance(facts, dict) or not facts:
            found.append(f"{workload}: a non-empty map of facts")
            continue
        for name, fact in facts.items():
            where = f"{workload}.{name}"
            if not isinstance(fact, dict) or "value" not in fact or "source" not in fact:
                found.append(f"{where}: needs value and source")
                continue
            source = fact["source"]
            if not isinstance(source, dict) or set(source) != {"repo", "ref", "path"}:
                found.append(f"{where}: source needs exactly repo, ref and path")
                continue
            if not _REPO.match(str(source["repo"])):
                found.append(f"{where}: repo {source['repo']!r} is not owner/name")
            if not _REF.match(str(source["ref"])):
                found.append(f"{where}: ref {source['ref']!r} is not a release tag or commit")
            if not str(source["path"]).strip():
                found.append(f"{where}: empty path")
    return found


def load(charm: str) -> dict[str, dict[str, Fact]]:
    """A charm's facts by workload and name; ValueError names what is malformed."""
    raw = yaml.safe_load((FACTS / f"{charm}.yaml").read_text())
    wrong = problems(raw)
    if wrong:
        raise ValueError(f"{charm}.yaml: " + "; ".join(wrong))
    return {
        workload: {
            name: Fact(
                value=fact["value"],
                source=Source(**{k: str(v) for k, v in fact["source"].items()}),
                note=str(fact.get("note", "")),
            )
            for name, fact in facts.items()
        }
        for workload, facts in raw.items()
    }


def value(charm: str, workload: str, name: str) -> Any:
    """One fact's value."""
    return load(charm)[workload][name].value
