"""Objects checked against a CustomResourceDefinition the way the API server checks them, offline.

Two steps, as kube-apiserver's apiextensions part takes them (read in
kubernetes/apiextensions-apiserver v0.34.1, "AX" below):

1. The CRD's schema itself: `structural_problems` finds what would make the
   API server refuse the CRD for not being structural (AX
   pkg/apiserver/schema/validation.go validateStructuralInvariants and
   validateNestedValueValidation) or for using what a CRD schema may not
   (AX pkg/apis/apiextensions/validation/validation.go: `$ref`, `id`,
   `definitions`, `dependencies`, `patternProperties`, `additionalItems`,
   `uniqueItems: true`, `additionalProperties` beside `properties` or false,
   list and map types on the wrong type, a map list's keys that are not
   required scalar properties of its items).
2. An object against a version's schema: `CustomResourceSchema.problems`
   and `.admit` do, in the API server's order,
   - drop a null field that is neither nullable nor defaulted (AX
     pkg/apiserver/schema/defaulting/prunenulls.go), fill in defaults;
   - report every field the schema does not know (outside
     `x-kubernetes-preserve-unknown-fields`, `additionalProperties` and an
     embedded resource's apiVersion/kind/metadata) as an error: the server
     would prune it silently, or refuse it under kubectl's
     `--validate=strict`; either way what a user's tool wrote would not be
     kept (AX pkg/apiserver/schema/pruning/algorithm.go);
   - check types, `required`, `enum`, bounds, lengths, `pattern`,
     `nullable`, `x-kubernetes-int-or-string` and the string formats the
     API server checks (AX pkg/apiserver/validation/formats.go: those it
     does not know it ignores, as here), with the jsonschema library
     (Draft 4, the base of OpenAPI v3.0);
   - `x-kubernetes-list-type: set|map` items unique (AX
     pkg/apiserver/schema/listtype/validation.go), an embedded resource's
     apiVersion and kind set, and the object's `metadata.name` a DNS-1123
     subdomain and its labels valid (AX pkg/registry/customresource/
     validator.go, ValidateObjectMetaAccessor with NameIsDNSSubdomain).

Not evaluated: `x-kubernetes-validations` (CEL rules; `cel_rules` lists
those on the paths an object sets, so a test can name what is left to the
cluster), ratcheting and transition rules on update, the formats isbn,
isbn10, isbn13, creditcard and rgbcolor (accepted as any string), the
1.34 formats k8s-short-name and k8s-long-name unless asked for, the
admission webhooks a controller installs, and metadata beyond the name
and labels (annotations' total size, finalizers, managed fields).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

_LIST_TYPES = ("atomic", "set", "map")
_MAP_TYPES = ("atomic", "granular")
# AX pkg/apis/apiextensions/validation/validation.go: keywords a CRD schema may not use.
FORBIDDEN_KEYWORDS = (
    "$ref",
    "id",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
)
# AX pkg/apiserver/schema/validation.go validateNestedValueValidation: what a node
# under allOf/anyOf/oneOf/not may not say, to be structural.
_NESTED_FORBIDDEN = (
    "type",
    "additionalProperties",
    "default",
    "title",
    "description",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
_JUNCTORS = ("allOf", "anyOf", "oneOf")
_EMBEDDED = ("apiVersion", "kind", "metadata")

# kubernetes/apimachinery pkg/util/validation/validation.go: DNS-1123 subdomain,
# label values and qualified names (label keys).
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def structural_problems(schema: Mapping[str, Any]) -> list[str]:
    """Where a CRD version's openAPIV3Schema is not structural or uses what a CRD may not."""
    return _structural(schema, "", "root")


def _structural(schema: Mapping[str, Any], path: str, level: str) -> list[str]:
    here = path or "/"
    problems = _keyword_problems(schema, here)
    problems += _type_problems(schema, here, level)
    problems += _object_problems(schema, here, level)
    problems += _list_and_map_type_problems(schema, here)
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None:
        problems += _metadata_schema_problems(
            metadata,
            f"{path}/metadata",
            level,
            schema.get("x-kubernetes-embedded-resource", False),
        )
    for name, sub in schema.get("properties", {}).items():
        problems += _structural(sub, f"{path}/{name}", "field")
    if isinstance(schema.get("items"), dict):
        problems += _structural(schema["items"], f"{path}/items", "item")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _structural(
            schema["additionalProperties"], f"{path}/additionalProperties", "field"
        )
    for junctor in _JUNCTORS:
        if junctor == "anyOf" and _is_int_or_string_any_of(schema):
            continue
        for i, sub in enumerate(schema.get(junctor, [])):
            problems += _nested(sub, f"{path}/{junctor}/{i}")
    if "not" in schema:
        problems += _nested(schema["not"], f"{path}/not")
    return problems


def _metadata_schema_problems(
    metadata: Mapping[str, Any], path: str, level: str, embedded: bool
) -> list[str]:
    """AX validateStructuralMetadataInvariants: ObjectMeta is the API server's own."""
    problems = []
    if (level == "root" or embedded) and metadata.get("type") != "object":
        problems.append(f"{path}: type must be object")
    if level == "root" and (
        set(metadata) - {"type", "default", "properties"}
        or set(metadata.get("properties", {})) - {"name", "generateName"}
    ):
        problems.append(f"{path}: must not specify anything other than name and generateName")
    return problems


def _keyword_problems(schema: Mapping[str, Any], here: str) -> list[str]:
    problems = [f"{here}: {key} is not supported" for key in FORBIDDEN_KEYWORDS if key in schema]
    if schema.get("uniqueItems") is True:
        problems.append(f"{here}: uniqueItems cannot be true")
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            problems.append(f"{here}: pattern is not a regular expression: {e}")
    return problems


def _type_problems(schema: Mapping[str, Any], here: str, level: str) -> list[str]:
    problems = []
    typ = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string", False)
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    if embedded and typ != "object":
        problems.append(f"{here}: type must be object if x-kubernetes-embedded-resource is true")
    elif not typ and not int_or_string and not preserve:
        problems.append(f"{here}: type must not be empty ({level})")
    if level == "root" and typ and typ != "object":
        problems.append(f"{here}: type must be object at the root")
    if int_or_string and (preserve or embedded):
        problems.append(f"{here}: x-kubernetes-int-or-string excludes preserve/embedded")
    if typ == "array" and "items" not in schema:
        problems.append(f"{here}: items must be specified")
    if isinstance(schema.get("items"), list):
        problems.append(f"{here}: items must be one schema")
    return problems


def _object_problems(schema: Mapping[str, Any], here: str, level: str) -> list[str]:
    problems = []
    additional = schema.get("additionalProperties")
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    if additional is False:
        problems.append(f"{here}: additionalProperties must not be false")
    if additional is not None and "properties" in schema:
        problems.append(f"{here}: additionalProperties and properties are mutually exclusive")
    if additional is not None and level == "root":
        problems.append(f"{here}: additionalProperties must not be used at the root")
    if additional is not None and embedded:
        problems.append(f"{here}: additionalProperties must not be used on an embedded resource")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    if embedded and not preserve and not schema.get("properties"):
        problems.append(f"{here}: an embedded resource needs properties or preserve-unknown")
    return problems


def _list_and_map_type_problems(schema: Mapping[str, Any], here: str) -> list[str]:
    """AX validation.go: list and map types, and a map list's keys (validateMapListKeysMapSet).

    x-kubernetes-list-type and -map-type: their values and the types they go with; a map
    list's keys: scalar properties of its items, each required or defaulted.
    """
    problems = []
    list_type = schema.get("x-kubernetes-list-type")
    map_type = schema.get("x-kubernetes-map-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if map_type is not None and (schema.get("type") != "object" or map_type not in _MAP_TYPES):
        problems.append(f"{here}: x-kubernetes-map-type must be atomic or granular on an object")
    if list_type is not None and (schema.get("type") != "array" or list_type not in _LIST_TYPES):
        problems.append(f"{here}: x-kubernetes-list-type must be atomic, set or map on an array")
    if keys and list_type != "map":
        problems.append(f"{here}: x-kubernetes-list-type must be map if list-map-keys is set")
    if list_type != "map":
        return problems
    items = schema["items"] if isinstance(schema.get("items"), dict) else {}
    if not keys:
        problems.append(f"{here}: x-kubernetes-list-map-keys must not be empty for a map list")
    if items.get("type") != "object":
        problems.append(f"{here}/items: type must be object in a map list")
    if len(set(keys)) != len(keys):
        problems.append(f"{here}: x-kubernetes-list-map-keys must not contain duplicates")
    for key in keys:
        prop = items.get("properties", {}).get(key)
        if prop is None:
            problems.append(f"{here}: list-map-key {key} must be a property of the items")
        elif prop.get("type") in ("array", "object"):
            problems.append(f"{here}: list-map-key {key} must be a scalar")
        elif key not in items.get("required", []) and "default" not in prop:
            problems.append(f"{here}: list-map-key {key} must be required or have a default")
    return problems


def _is_int_or_string_any_of(schema: Mapping[str, Any]) -> bool:
    return schema.get("anyOf") == [{"type": "integer"}, {"type": "string"}]


def _nested(schema: Mapping[str, Any], path: str) -> list[str]:
    problems = [f"{path}: {key} must be empty to be structural" for key in _NESTED_FORBIDDEN]
    problems = [p for p, key in zip(problems, _NESTED_FORBIDDEN, strict=True) if key in schema]
    if "metadata" in schema.get("properties", {}):
        problems.append(f"{path}/metadata: must not be specified in a nested context")
    for name, sub in schema.get("properties", {}).items():
        problems += _nested(sub, f"{path}/properties/{name}")
    for key in ("items", "not"):
        if isinstance(schema.get(key), dict):
            problems += _nested(schema[key], f"{path}/{key}")
    for junctor in _JUNCTORS:
        for i, sub in enumerate(schema.get(junctor, [])):
            problems += _nested(sub, f"{path}/{junctor}/{i}")
    return problems


def json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A structural schema as JSON Schema (Draft 4), with the Kubernetes extensions it implies.

    `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` adds
    null, formats the API server does not check are dropped; the other
    extensions are left out (pruning, defaults and list types are this
    module's walk, not JSON Schema's).
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("default", "nullable"):
            continue
        if key == "properties":
            out[key] = {k: json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in _JUNCTORS:
            out[key] = [json_schema(v) for v in value]
        elif key == "format":
            if _normalised(value) in _FORMATS:
                out[key] = _normalised(value)
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string") and "type" not in schema:
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


# --- formats (AX pkg/apiserver/validation/formats.go supportedVersionedFormats) -----------


def _normalised(name: str) -> str:
    # go-openapi's format names ignore dashes: date-time is datetime.
    return name.replace("-", "")


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
_SCALA_DURATION = re.compile(
    r"^\d+\s*(ns|nano|nanos|nanosecond|nanoseconds|us|micro|micros|microsecond|microseconds"
    r"|ms|milli|millis|millisecond|milliseconds|s|sec|secs|second|seconds|m|min|mins|minute"
    r"|minutes|h|hour|hours|d|day|days|w|wk|wks|week|weeks)$"
)
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
_UUIDS = {
    "uuid": r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid4": r"^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "uuid5": r"^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
}
_MAC = re.compile(
    r"^([0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\2[0-9A-Fa-f]{2}){4}((\2[0-9A-Fa-f]{2}){2})?"
    r"((\2[0-9A-Fa-f]{2}){12})?|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
    r"(\.[0-9A-Fa-f]{4})?((\.[0-9A-Fa-f]{4}){6})?)$"
)
_K8S_SHORT_NAME = re.compile(rf"^{_DNS1123_LABEL}$")


def _date_time(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return False
    return True


def _date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _ip(version: int):
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _uri(value: str) -> bool:
    # Go's net/url.ParseRequestURI: an absolute URI or an absolute path.
    if value.startswith("/"):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme))


def _email(value: str) -> bool:
    return bool(re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value))


def _any(_: str) -> bool:
    return True


_FORMATS: dict[str, Any] = {
    "bsonobjectid": lambda v: bool(re.fullmatch(r"[0-9a-fA-F]{24}", v)),
    "uri": _uri,
    "email": _email,
    "hostname": lambda v: len(v) <= 255 and bool(_HOSTNAME.match(v)),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "mac": lambda v: bool(_MAC.match(v)),
    **{name: (lambda v, p=p: bool(re.match(p, v, re.I))) for name, p in _UUIDS.items()},
    "isbn": _any,
    "isbn10": _any,
    "isbn13": _any,
    "creditcard": _any,
    "ssn": lambda v: bool(re.fullmatch(r"\d{3}[- ]?\d{2}[- ]?\d{4}", v)),
    "hexcolor": lambda v: bool(re.fullmatch(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", v)),
    "rgbcolor": _any,
    "byte": _byte,
    "password": _any,
    "date": _date,
    "duration": lambda v: bool(_GO_DURATION.match(v) or _SCALA_DURATION.match(v)),
    "datetime": _date_time,
}
# Introduced in Kubernetes 1.34 (the same file): checked only when asked for.
_FORMATS_1_34: dict[str, Any] = {
    "k8sshortname": lambda v: len(v) <= 63 and bool(_K8S_SHORT_NAME.match(v)),
    "k8slongname": lambda v: len(v) <= 253 and bool(_DNS1123_SUBDOMAIN.match(v)),
}


def _format_checker(kubernetes_version: tuple[int, int]) -> jsonschema.FormatChecker:
    formats = dict(_FORMATS)
    if kubernetes_version >= (1, 34):
        formats |= _FORMATS_1_34
    checker = jsonschema.FormatChecker(formats=())
    for name, check in formats.items():
        checker.checks(name)(lambda v, c=check: not isinstance(v, str) or c(v))
    return checker


# --- the CRD and its objects --------------------------------------------------------------


def _integer(_checker: Any, value: Any) -> bool:
    """An integer, or a float with an integral value, as kube-openapi takes it for `integer`.

    kubernetes/kube-openapi pkg/validation/validate/type.go (commit d427ff9e)
    typeValidator.Validate: `isFloatInt`, a JSON number like 1.0 where an
    integer is expected, is valid (the Trainer SDK writes quantities so).
    """
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", _integer),
)


class Rejected(Exception):  # noqa: N818 - the API server's answer, not a failure of this module
    """The API server would refuse the object (or lose some of it): every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def load_crds(path: Path) -> dict[str, dict[str, Any]]:
    """The CustomResourceDefinitions of a multi-document YAML file, by name."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "CustomResourceDefinition"}


class CustomResourceSchema:
    """One served version of a CRD, checking objects as the API server does on create."""

    def __init__(
        self,
        crd: Mapping[str, Any],
        version: str | None = None,
        *,
        kubernetes_version: tuple[int, int] = (1, 31),
    ):
        spec = crd["spec"]
        served = [v for v in spec["versions"] if v.get("served")]
        chosen = [v for v in served if version is None or v["name"] == version]
        if not chosen:
            raise ValueError(f"{crd['metadata']['name']} serves no version {version}")
        if version is None:
            chosen = [v for v in chosen if v.get("storage")] or chosen
        self.crd = crd
        self.version = chosen[0]["name"]
        self.api_version = f"{spec['group']}/{self.version}"
        self.kind = spec["names"]["kind"]
        self.namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        self.schema: dict[str, Any] = chosen[0]["schema"]["openAPIV3Schema"]
        problems = structural_problems(self.schema)
        if problems:
            raise ValueError(f"{crd['metadata']['name']} is not structural: {problems}")
        self._validator = _Validator(
            json_schema(self.schema), format_checker=_format_checker(kubernetes_version)
        )

    def admit(self, obj: Mapping[str, Any], *, type_meta: bool = True) -> dict[str, Any]:
        """What the API server would store for `obj`; Rejected with every reason if it refuses.

        With `type_meta` False, apiVersion and kind may be left out (the body
        of a request whose path names them), but must match when given.
        """
        stored = copy.deepcopy(dict(obj))
        problems = []
        given = (stored.get("apiVersion"), stored.get("kind"))
        if (type_meta or given != (None, None)) and given != (self.api_version, self.kind):
            problems.append(
                f"apiVersion/kind {stored.get('apiVersion')}/{stored.get('kind')} is not "
                f"{self.api_version}/{self.kind}"
            )
        problems += _metadata_problems(stored.get("metadata") or {}, "metadata")
        problems += _walk(stored, self.schema, "", root=True)
        problems += [_message(e) for e in self._validator.iter_errors(stored)]
        if problems:
            raise Rejected(problems)
        return stored

    def problems(self, obj: Mapping[str, Any], *, type_meta: bool = True) -> list[str]:
        """Every reason the API server would refuse `obj` (or drop part of it); [] when none."""
        try:
            self.admit(obj, type_meta=type_meta)
        except Rejected as e:
            return e.problems
        return []

    def is_valid(self, obj: Mapping[str, Any], *, type_meta: bool = True) -> bool:
        return not self.problems(obj, type_meta=type_meta)

    def cel_rules(self, obj: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The CEL rules (path, rule) on nodes `obj` sets, which this module does not evaluate."""
        return list(_rules(obj, self.schema, ""))


def _message(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<root>"
    return f"{path}: {error.message}"


def _metadata_problems(meta: Mapping[str, Any], path: str, *, named: bool = True) -> list[str]:
    """ObjectMeta's name and labels; an embedded resource's name may be left out.

    AX pkg/apiserver/schema/objectmeta/validation.go validateEmbeddedResource
    checks an embedded object's metadata as if named when it is not.
    """
    problems = []
    name = meta.get("name") or ""
    if named and not name and not meta.get("generateName"):
        problems.append(f"{path}.name: Required value")
    elif name and (len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name)):
        problems.append(f"{path}.name: {name!r} is not a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, short = key.rpartition("/")
        if (
            len(short) > 63
            or not _QUALIFIED_NAME.match(short)
            or (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)))
        ):
            problems.append(f"{path}.labels: {key!r} is not a qualified name")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"{path}.labels[{key}]: {value!r} is not a label value")
    return problems


def _child_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        return additional
    return None


def _walk(value: Any, schema: Mapping[str, Any], path: str, *, root: bool = False) -> list[str]:
    """Prune non-nullable nulls, apply defaults, find unknown fields and duplicate list items."""
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        return _walk_object(value, schema, path, root=root)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        problems = _list_type_problems(value, schema, path)
        for i, item in enumerate(value):
            problems += _walk(item, schema["items"], f"{path}[{i}]")
        return problems
    return []


def _walk_object(
    value: dict[str, Any], schema: Mapping[str, Any], path: str, *, root: bool
) -> list[str]:
    problems: list[str] = []
    embedded = root or schema.get("x-kubernetes-embedded-resource", False)
    if embedded and not root:
        problems += [
            f"{path}.{f}: must not be empty" for f in ("apiVersion", "kind") if not value.get(f)
        ]
        problems += _metadata_problems(
            value.get("metadata") or {}, f"{path}.metadata", named=False
        )
    for key in list(value):
        where = f"{path}.{key}" if path else key
        sub = _child_schema(schema, key)
        if sub is None:
            if not (embedded and key in _EMBEDDED) and not schema.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                problems.append(f'{where}: unknown field "{key}" (the API server prunes it)')
            continue
        if value[key] is None and not sub.get("nullable"):
            if "default" not in sub:
                del value[key]
                continue
            value[key] = copy.deepcopy(sub["default"])
        if not (embedded and key == "metadata"):  # ObjectMeta: the API server's own type
            problems += _walk(value[key], sub, where)
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
            problems += _walk(value[key], sub, f"{path}.{key}" if path else key)
    return problems


def _list_type_problems(items: list[Any], schema: Mapping[str, Any], path: str) -> list[str]:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list[Any] = []
        problems = []
        for i, item in enumerate(items):
            if item in seen:
                problems.append(f"{path}[{i}]: Duplicate value: {item!r}")
            seen.append(item)
        return problems
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        item_schema = schema["items"]
        seen_keys: list[tuple[Any, ...]] = []
        problems = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            defaults = {
                k: item_schema.get("properties", {}).get(k, {}).get("default") for k in keys
            }
            key = tuple(item.get(k, defaults[k]) for k in keys)
            if key in seen_keys:
                problems.append(
                    f"{path}[{i}]: Duplicate value: {dict(zip(keys, key, strict=True))}"
                )
            seen_keys.append(key)
        return problems
    return []


def _rules(value: Any, schema: Mapping[str, Any], path: str) -> Iterable[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield (path or "<root>", rule["rule"])
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _child_schema(schema, key)
            if sub is not None:
                yield from _rules(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _rules(item, schema["items"], f"{path}[{i}]")
