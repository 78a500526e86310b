"""Upstream kinds checked against their own project's schemas, as the fake cluster does.

A CustomResourceDefinition a charm installs may be looser than the upstream
project's (ours for Istio leave `spec` open), so the fake cluster checks the
objects of every kind recorded under `tests/conformance/facts/schemas/`
against the upstream release's schema for it, whatever CRD serves it: each
file there (istio.yaml, and one per upstream project as charms start
writing its kinds) maps API groups to kinds, each kind a fact whose value
gives the versions its release serves and the structure of `spec` in the
notation of `conformance.schema_notation`.

A field the upstream schema lacks is an error here, as it is for a
server-side apply, which is how charms write: the apply is checked against
the kind's structural schema and an unknown field refuses it
(kubernetes/enhancements keps/sig-api-machinery/2885-server-side-unknown-
field-validation/README.md, "Apply Patch"). The status is not checked.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jsonschema
import yaml
from conformance import facts, schema_notation

SCHEMAS = facts.FACTS / "schemas"


@dataclasses.dataclass(frozen=True)
class UpstreamKind:
    """One upstream kind: where its schema was read, the versions served, its checker."""

    group: str
    kind: str
    versions: tuple[str, ...]
    source: facts.Source
    validator: Any = dataclasses.field(compare=False, repr=False)


def load(path: Any) -> dict[tuple[str, str], UpstreamKind]:
    """The kinds of one schemas file by (group, kind); ValueError names what is malformed."""
    raw = yaml.safe_load(path.read_text())
    wrong = facts.problems(raw)
    for group, kinds in (raw or {}).items():
        for kind, fact in (kinds or {}).items() if isinstance(kinds, dict) else ():
            wrong += [f"{group}.{kind}.{p}" for p in _value_problems(fact.get("value"))]
    if wrong:
        raise ValueError(f"{path.name}: " + "; ".join(wrong))
    loaded = {}
    for group, kinds in raw.items():
        for kind, fact in kinds.items():
            value = fact["value"]
            schema = {
                "type": "object",
                "properties": {
                    "spec": schema_notation.json_schema(value["spec"]),
                    "status": {"type": "object"},
                },
                "additionalProperties": False,
            }
            loaded[(group, kind)] = UpstreamKind(
                group=group,
                kind=kind,
                versions=tuple(value["versions"]),
                source=facts.Source(**{k: str(v) for k, v in fact["source"].items()}),
                validator=schema_notation.validator(schema),
            )
    return loaded


def _value_problems(value: Any) -> list[str]:
    if not isinstance(value, dict) or set(value) != {"versions", "spec"}:
        return ["value: needs exactly versions and spec"]
    versions = value["versions"]
    if (
        not isinstance(versions, list)
        or not versions
        or not all(isinstance(v, str) for v in versions)
    ):
        return ["value.versions: a list of versions"]
    return [f"value.{p}" for p in schema_notation.problems(value["spec"])]


@functools.cache
def registry() -> dict[tuple[str, str], UpstreamKind]:
    """Every upstream kind recorded, by (group, kind)."""
    kinds: dict[tuple[str, str], UpstreamKind] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        kinds.update(load(path))
    return kinds


def groups() -> set[str]:
    """The API groups some upstream schema is recorded for."""
    return {group for group, _ in registry()}


def kind_of(obj: dict[str, Any]) -> UpstreamKind | None:
    """The upstream kind an object is of, if its schema is recorded."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return registry().get((group, str(obj.get("kind", ""))))


def problem(obj: dict[str, Any]) -> str | None:
    """Why the upstream schema refuses this object, or None (also for kinds not recorded)."""
    upstream = kind_of(obj)
    if upstream is None:
        return None
    version = str(obj["apiVersion"]).rpartition("/")[2]
    if version not in upstream.versions:
        return (
            f"{upstream.kind} is served at {', '.join(upstream.versions)}, not {version} "
            f"({upstream.source})"
        )
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    error = jsonschema.exceptions.best_match(upstream.validator.iter_errors(body))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} at {path} ({upstream.source})"
