"""Our compact notation for an upstream kind's `spec`, and the JSON Schema it stands for.

The facts under `facts/schemas/` record, for each upstream kind a charm
writes, the structure its release's API definitions give `spec`, in this
notation (a node is one of):

- a string, a leaf: its type, then tokens.
  Types: `string`, `integer`, `number`, `boolean`, `int-or-string`,
  `object` (any object: its fields are not checked), `duration` (a Go
  duration of at least 1ms, as CEL's `duration()` reads it),
  `enum V1 V2 ...` (one of these strings).
  Tokens: `LO..HI` (bounds of a number, either may be left out),
  `len:LO..HI` (bounds of a string's length), `nowildcard` (no `*` in it),
  `format:byte` (base64), `nullable` (null is allowed too),
  `pattern=REGEX` (the last token; the regex has no spaces).
- a list of one node: an array of it.
- a mapping with `$items`: an array of that node, with `$count: LO..HI`
  items.
- a mapping with `$values`: an object of any keys, each value that node;
  `$keys` (leaf tokens the keys must satisfy) and `$count` (bounds of the
  number of keys) are optional.
- any other mapping: an object with these fields and no other, with
  optionally
  `$required: [field, ...]`;
  `$oneOf: [[alternative, ...], ...]`: of each group, at most one
  alternative is set (an alternative is a field, or a list of fields that
  counts as set when any of them is); this is what a proto `oneof` and
  the CEL rules "only one of a, b" of the generated CRDs say;
  `$iff: {field: {other: value}}`: `field` is set if and only if `other`
  equals `value`.

`json_schema(node)` turns a node into JSON Schema (draft 2020-12) where every
object of known fields has `additionalProperties: false`; `validator(schema)`
checks with it, and with the two keywords of ours it uses (`x-at-most-one`,
`x-iff`) and the formats `byte` and `go-duration`. `problems(node)` says
what is malformed in a node.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema.validators

TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "int-or-string": {"type": ["integer", "string"]},
    "object": {"type": "object"},
    "duration": {"type": "string", "format": "go-duration"},
}
_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?)?\.\.(-?\d+(?:\.\d+)?)?$")
_COUNT = re.compile(r"^(\d+)?\.\.(\d+)?$")
_MARKS = {"$required", "$oneOf", "$iff", "$items", "$values", "$keys", "$count"}
# A Go duration, as time.ParseDuration reads it: CEL's duration() of a string calls it
# (google/cel-go v0.28.1, common/types/string.go:121). Its units, in nanoseconds.
_GO_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
_GO_DURATION = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def _bounds(text: str, pattern: re.Pattern[str]) -> tuple[float | None, float | None]:
    match = pattern.match(text)
    if not match:
        raise ValueError(f"not a range LO..HI: {text!r}")
    lo, hi = (None if g is None else float(g) for g in match.groups())
    return lo, hi


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _leaf(text: str) -> dict[str, Any]:
    """A leaf string as JSON Schema; ValueError names what is wrong."""
    words = text.split()
    if not words:
        raise ValueError("an empty leaf")
    kind, tokens = words[0], words[1:]
    if kind == "enum":
        if not tokens:
            raise ValueError("an enum without values")
        return {"type": "string", "enum": tokens}
    if kind not in TYPES:
        raise ValueError(f"unknown type {kind!r}")
    out: dict[str, Any] = dict(TYPES[kind])
    patterns: list[str] = []
    for token in tokens:
        _token(kind, token, out, patterns)
    if len(patterns) == 1:
        out["pattern"] = patterns[0]
    elif patterns:
        out["allOf"] = [{"pattern": p} for p in patterns]
    return out


def _token(kind: str, token: str, out: dict[str, Any], patterns: list[str]) -> None:
    """Apply one token of a leaf of this type to its schema `out` (patterns kept apart)."""
    if token.startswith("pattern="):
        patterns.append(token.removeprefix("pattern="))
        re.compile(patterns[-1])
    elif token.startswith("len:"):
        lo, hi = _bounds(token.removeprefix("len:"), _COUNT)
        out.update(_limits("minLength", lo, "maxLength", hi))
    elif _RANGE.match(token) and kind in ("integer", "number"):
        lo, hi = _bounds(token, _RANGE)
        out.update(_limits("minimum", lo, "maximum", hi))
    elif token == "nowildcard":
        patterns.append(r"^[^*]*$")
    elif token == "format:byte" and kind == "string":
        out["format"] = "byte"
    elif token == "nullable":
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    else:
        raise ValueError(f"unknown token {token!r} for {kind}")


def _limits(low: str, lo: float | None, high: str, hi: float | None) -> dict[str, Any]:
    out = {}
    if lo is not None:
        out[low] = _number(lo)
    if hi is not None:
        out[high] = _number(hi)
    return out


def _alternatives(group: Any) -> list[list[str]]:
    """A `$oneOf` group as lists of fields (a field alone is a list of one)."""
    if not isinstance(group, list) or len(group) < 2:
        raise ValueError(f"a $oneOf group lists two alternatives or more: {group!r}")
    out = []
    for alternative in group:
        fields = [alternative] if isinstance(alternative, str) else alternative
        if (
            not isinstance(fields, list)
            or not fields
            or not all(isinstance(f, str) for f in fields)
        ):
            raise ValueError(f"an alternative is a field or a list of fields: {alternative!r}")
        out.append(fields)
    return out


def _object(node: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in node.items() if not k.startswith("$")}
    if not fields:
        raise ValueError("an object without fields")
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: json_schema(sub) for name, sub in fields.items()},
        "additionalProperties": False,
    }
    if "$required" in node:
        required = node["$required"]
        if not isinstance(required, list) or not required or not set(required) <= set(fields):
            raise ValueError(f"$required names fields of the object: {required!r}")
        out["required"] = required
    groups = [_alternatives(g) for g in node.get("$oneOf", [])]
    for group in groups:
        unknown = {f for fields_ in group for f in fields_} - set(fields)
        if unknown:
            raise ValueError(f"$oneOf names fields the object lacks: {sorted(unknown)}")
    if groups:
        out["x-at-most-one"] = groups
    iff = node.get("$iff", {})
    for field, condition in iff.items():
        if field not in fields or not isinstance(condition, dict) or len(condition) != 1:
            raise ValueError(f"$iff: {field}: needs a field and one condition {{other: value}}")
        ((other, _value),) = condition.items()
        if other not in fields:
            raise ValueError(f"$iff: {field}: {other} is not a field of the object")
    if iff:
        out["x-iff"] = iff
    return out


def _collection(node: dict[str, Any]) -> dict[str, Any]:
    """A `$items` (array) or `$values` (map) node."""
    count = _bounds(str(node.get("$count", "..")), _COUNT)
    if "$items" in node:
        if set(node) - {"$items", "$count"}:
            raise ValueError(f"an $items node has only $items and $count: {sorted(node)}")
        out = {"type": "array", "items": json_schema(node["$items"])}
        out.update(_limits("minItems", count[0], "maxItems", count[1]))
        return out
    if set(node) - {"$values", "$keys", "$count"}:
        raise ValueError(f"a $values node has only $values, $keys and $count: {sorted(node)}")
    out = {"type": "object", "additionalProperties": json_schema(node["$values"])}
    out.update(_limits("minProperties", count[0], "maxProperties", count[1]))
    if "$keys" in node:
        keys = _leaf(f"string {node['$keys']}")
        keys.pop("type")
        out["propertyNames"] = keys
    return out


def json_schema(node: Any) -> dict[str, Any]:
    """The JSON Schema a node of our notation stands for; ValueError if it is malformed."""
    if isinstance(node, str):
        return _leaf(node)
    if isinstance(node, list):
        if len(node) != 1:
            raise ValueError(f"an array is a list of one node: {node!r}")
        return {"type": "array", "items": json_schema(node[0])}
    if not isinstance(node, dict):
        raise ValueError(f"a node is a string, a list or a mapping: {node!r}")
    unknown = {k for k in node if k.startswith("$")} - _MARKS
    if unknown:
        raise ValueError(f"unknown marks {sorted(unknown)}")
    if "$items" in node or "$values" in node:
        return _collection(node)
    if set(node) & {"$keys", "$count"}:
        raise ValueError("$keys and $count go with $items or $values")
    return _object(node)


def problems(node: Any, path: str = "spec") -> list[str]:
    """What is malformed in a node (and the nodes under it), each with its path."""
    try:
        json_schema(node)
    except (ValueError, re.error) as e:
        # Find the deepest node that is malformed, to name where.
        for sub_path, sub in _children(node, path):
            found = problems(sub, sub_path)
            if found:
                return found
        return [f"{path}: {e}"]
    return []


def _children(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, list) and len(node) == 1:
        yield f"{path}[]", node[0]
    elif isinstance(node, dict):
        for key, sub in node.items():
            if key in ("$items", "$values"):
                yield f"{path}{'[]' if key == '$items' else '{}'}", sub
            elif not key.startswith("$"):
                yield f"{path}.{key}", sub


# --- checking objects


def _at_most_one(validator: Any, groups: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for group in groups:
        set_ = [alt for alt in group if any(f in instance for f in alt)]
        if len(set_) > 1:
            names = " and ".join("/".join(alt) for alt in set_)
            yield jsonschema.ValidationError(f"only one of {names} may be set")


def _iff(validator: Any, rules: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for field, condition in rules.items():
        ((other, value),) = condition.items()
        if (field in instance) != (instance.get(other) == value):
            yield jsonschema.ValidationError(f"{field} is set if and only if {other} is {value}")


def _go_duration(value: object) -> bool:
    """A Go duration of at least 1ms, as the CEL rule `duration(self) >= duration('1ms')` asks."""
    if not isinstance(value, str):
        return True
    if not _GO_DURATION.match(value):
        return False
    sign = -1 if value.startswith("-") else 1
    nanos = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(value))
    return sign * nanos >= 1e6


def _byte(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("go-duration")(_go_duration)
_FORMATS.checks("byte")(_byte)
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-at-most-one": _at_most_one, "x-iff": _iff}
)


def validator(schema: dict[str, Any]) -> Any:
    """A validator for a schema `json_schema` made (our keywords and formats included)."""
    return _Validator(schema, format_checker=_FORMATS)
