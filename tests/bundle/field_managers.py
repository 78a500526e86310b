"""Field managers for the fake cluster: server-side apply, updates and patches, as Kubernetes.

Every write records which manager owns which fields, in `metadata.managedFields`
(FieldsV1, one entry per manager and operation, as the API server encodes
them). The rules are those of sigs.k8s.io/structured-merge-diff v6
(merge/update.go, typed/{tofieldset,merge,remove,compare}.go) and of
k8s.io/apimachinery pkg/util/managedfields/internal (stripmeta.go,
structuredmerge.go, conflict.go, managedfieldsupdater.go, skipnonapplied.go):

- An apply owns exactly the fields its configuration sets. It merges the
  configuration into the live object; a field it owned before and no longer
  sets is removed, unless another manager owns it too. Changing a field
  another manager owns is a conflict (HTTP 409) unless forced; forced, the
  field moves to the applier.
- An update (create, PUT, merge or strategic merge patch) never conflicts:
  the fields it adds or changes become its own and leave every other
  manager; the fields it removes leave every manager.
- Not tracked: apiVersion, kind, metadata's server-set fields and `status`
  (reset on writes to the main resource).

Which lists and maps are granular comes from the schemas, as the API server's
type converter reads them (k8s.io/kube-openapi pkg/schemaconv/smd.go): the
Kubernetes OpenAPI definitions that `kubernetes-validate` ships for built-in
kinds, a CustomResourceDefinition's `openAPIV3Schema` for custom resources.
A list is keyed (`x-kubernetes-list-type: map` with its
`x-kubernetes-list-map-keys`, or failing that a patch strategy `merge` with a
merge key: containers by name, ports by containerPort and protocol, env by
name, volumes by name, webhooks by name...), a set of scalars, or atomic (the
default); a map is granular unless `x-kubernetes-map-type: atomic` (label
selectors). Fields no schema describes are granular maps and atomic lists.

Simplified, and said so: one API version per kind (no conversion); a list
item whose key field is missing is keyed without it (the API server keys it
with the field's default, `protocol: TCP` for ports); items are ordered as the configuration
orders them, with the live object's other items after their predecessors;
`managedFields` entries carry no `time` (so that an unchanged object stays
byte-for-byte the same); update managers are not capped at ten.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]  # FieldsV1 path elements: "f:name", 'k:{"name":"c"}', 'v:"x"'
Manager = tuple[str, str]  # (manager, operation)
Managed = dict[Manager, set[Path]]

APPLY = "Apply"
UPDATE = "Update"
ITEM = "\0item"  # the value of a list item's own entry: items differ only in their fields

# Not tracked (stripmeta.go; the status is reset on the main resource).
_IGNORED_ROOT = frozenset({"apiVersion", "kind", "status"})
_IGNORED_META = frozenset(
    {
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    }
)


@dataclass(frozen=True, eq=False)
class Type:
    """What field management needs to know of a schema node."""

    fields: dict[str, Any] | None = None  # declared fields and their schemas
    values: Any = None  # the schema of a map's values
    items: Any = None  # the schema of a list's items
    keys: tuple[str, ...] | None = None  # a keyed list's key fields
    scalar_set: bool = False  # a list of distinct scalars
    atomic: bool = False  # the whole value is one field
    unknown: bool = False  # no schema: undeclared keys, granular maps, atomic lists (UNKNOWN)
    patch_key: str | None = None  # strategic merge patch: merge this list by this key
    patch_merge: bool = False  # strategic merge patch: merge this list, do not replace it
    defs: Any = None  # the definitions `$ref`s point into

    def field(self, key: str) -> Type:
        """The type of a map's value at `key`."""
        if self.fields is not None and key in self.fields:
            return _type(self.fields[key], self.defs)
        if self.values is not None:
            return _type(self.values, self.defs)
        return UNKNOWN

    def declares(self, key: str) -> bool:
        return self.fields is not None and key in self.fields

    def item(self) -> Type:
        return _type(self.items, self.defs) if self.items is not None else UNKNOWN


UNKNOWN = Type(unknown=True)
_TYPES: dict[int, tuple[Any, Type]] = {}  # by id of the schema node, which is kept alive here


def _type(node: Any, defs: Any) -> Type:
    if not isinstance(node, dict):
        return UNKNOWN
    cached = _TYPES.get(id(node))
    if cached is not None:
        return cached[1]
    body = node
    ref = node.get("$ref")
    if ref and defs is not None:
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        body = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    kinds = body.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    typ: Type
    if "items" in body or "array" in kinds:
        keys, scalar_set, atomic = _list_kind(body)
        patch_merge = str(body.get("x-kubernetes-patch-strategy", "")).startswith("merge")
        typ = Type(
            items=body.get("items"),
            keys=keys,
            scalar_set=scalar_set,
            atomic=atomic,
            patch_key=body.get("x-kubernetes-patch-merge-key") if patch_merge else None,
            patch_merge=patch_merge,
            defs=defs,
        )
    elif (
        "properties" in body
        or isinstance(body.get("additionalProperties"), dict)
        or body.get("x-kubernetes-preserve-unknown-fields")
        or "object" in kinds
    ):
        values = body.get("additionalProperties")
        typ = Type(
            fields=body.get("properties"),
            values=values if isinstance(values, dict) else None,
            atomic=body.get("x-kubernetes-map-type") == "atomic",
            defs=defs,
        )
    else:
        typ = Type(atomic=True)
    _TYPES[id(node)] = (node, typ)
    return typ


def _list_kind(body: dict[str, Any]) -> tuple[tuple[str, ...] | None, bool, bool]:
    """(keys, scalar set, atomic), as kube-openapi's getListElementRelationship decides."""
    list_type = body.get("x-kubernetes-list-type")
    if list_type == "map":
        return tuple(body.get("x-kubernetes-list-map-keys") or ()), False, False
    if list_type == "set":
        return None, True, False
    if list_type is None and str(body.get("x-kubernetes-patch-strategy", "")).startswith("merge"):
        key = body.get("x-kubernetes-patch-merge-key")
        return ((key,), False, False) if key else (None, True, False)
    return None, False, True


# --- the schemas


@functools.cache
def _definitions(version: str) -> dict[str, Any]:
    """The Kubernetes OpenAPI definitions kubernetes-validate ships for `version` (e.g. 1.31)."""
    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    text = (folder / f"v{version}.0-local-strict" / "_definitions.json").read_text()
    return json.loads(text)["$defs"]


@functools.cache
def _kinds(version: str) -> dict[tuple[str, str], str]:
    """Each built-in (apiVersion, kind) and the name of its definition."""
    kinds = {}
    for name, definition in _definitions(version).items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            group, ver = gvk.get("group", ""), gvk["version"]
            kinds[(f"{group}/{ver}" if group else ver, gvk["kind"])] = name
    return kinds


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def builtin_type(version: str, api_version: str, kind: str) -> Type:
    """The type of a built-in kind (UNKNOWN for a kind the definitions lack)."""
    defs = _definitions(version)
    name = _kinds(version).get((api_version, kind))
    return _type(defs[name], defs) if name else UNKNOWN


_CUSTOM: dict[int, tuple[Any, Type]] = {}  # by id of the schema, which is kept alive here


def custom_type(version: str, schema: dict[str, Any] | None) -> Type:
    """The type of a custom resource from its version's openAPIV3Schema (metadata as built-in)."""
    cached = _CUSTOM.get(id(schema))
    if cached is not None:
        return cached[1]
    meta = {"metadata": {"$ref": OBJECT_META}}
    if schema:
        node = {**schema, "properties": {**(schema.get("properties") or {}), **meta}}
    else:
        node = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": meta}
    typ = _type(node, _definitions(version))
    _CUSTOM[id(schema)] = (schema, typ)
    return typ


# --- field sets


def _key_element(item: Any, keys: tuple[str, ...]) -> str:
    present = {k: item[k] for k in keys if isinstance(item, dict) and k in item}
    return "k:" + json.dumps(present, sort_keys=True, separators=(",", ":"))


def _value_element(item: Any) -> str:
    return "v:" + json.dumps(item, sort_keys=True, separators=(",", ":"))


def _is_scalar_list(value: list[Any]) -> bool:
    return all(not isinstance(v, (dict, list)) for v in value)


def fields(obj: dict[str, Any], typ: Type) -> dict[Path, Any]:
    """The fields an object sets, each with its value (ITEM for list items), as tracked."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in _IGNORED_ROOT:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = typ.field("metadata")
            for mkey, mvalue in value.items():
                if mkey not in _IGNORED_META:
                    _member(out, ("f:metadata", f"f:{mkey}"), mvalue, meta, mkey)
            continue
        _member(out, (f"f:{key}",), value, typ, key)
    return out


def _member(out: dict[Path, Any], path: Path, value: Any, parent: Type, key: str) -> None:
    """A map's field: walked, and a member itself when null, empty or not declared."""
    if value is None:
        out[path] = None
        return
    _walk(out, path, value, parent.field(key))
    if isinstance(value, dict) and not value:
        out[path] = value
    elif not parent.declares(key) and path not in out:
        out[path] = ITEM


def _walk(out: dict[Path, Any], path: Path, value: Any, typ: Type) -> None:
    if typ.atomic or not isinstance(value, (dict, list)):
        out[path] = value
        return
    if isinstance(value, dict):
        for key, child in value.items():
            _member(out, (*path, f"f:{key}"), child, typ, key)
        return
    if typ.keys is not None:
        item_type = typ.item()
        for item in value:
            item_path = (*path, _key_element(item, typ.keys))
            if isinstance(item, dict):
                for key, child in item.items():
                    _member(out, (*item_path, f"f:{key}"), child, item_type, key)
            out[item_path] = ITEM
    elif typ.scalar_set and _is_scalar_list(value):
        for item in value:
            out[(*path, _value_element(item))] = ITEM
    else:
        out[path] = value


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (True is not 1)."""
    if type(a) is not type(b):
        return (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and a == b
            and (not isinstance(a, bool) and not isinstance(b, bool))
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two objects' fields."""
    changed = {p for p, v in new.items() if p not in old or not _same(old[p], v)}
    removed = {p for p in old if p not in new}
    return changed, removed


# --- merging and removing


def merge(live: Any, config: Any, typ: Type) -> Any:
    """`config` merged into `live` as server-side apply merges (`live` is not changed)."""
    if typ.atomic or not isinstance(config, (dict, list)) or type(live) is not type(config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            if key in live:
                out[key] = merge(live[key], value, typ.field(key))
            else:
                out[key] = copy.deepcopy(value)
        return out
    assert isinstance(live, list)
    if typ.keys is not None:
        keys = typ.keys
        return _merge_items(live, config, lambda i: _key_element(i, keys), typ.item())
    if typ.scalar_set and _is_scalar_list(live) and _is_scalar_list(config):
        return _merge_items(live, config, _value_element, typ.item())
    return copy.deepcopy(config)


def _merge_items(live: list[Any], config: list[Any], element: Any, item: Type) -> list[Any]:
    """The configuration's items in its order, merged; the live object's others after theirs."""
    live_items = {element(i): i for i in live}
    out = [
        (e, merge(live_items[e], i, item) if e in live_items else copy.deepcopy(i))
        for e, i in ((element(i), i) for i in config)
    ]
    placed = [e for e, _ in out]
    previous: str | None = None
    for value in live:
        e = element(value)
        if e not in placed:
            at = placed.index(previous) + 1 if previous is not None else 0
            placed.insert(at, e)
            out.insert(at, (e, value))
        previous = e
    return [value for _, value in out]


def _trie(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node[""] = True
    return root


def _remove(value: Any, typ: Type, trie: dict[str, Any]) -> Any:
    """`value` without the fields and items in `trie`; a map or list emptied so goes too."""
    if typ.atomic:
        return value
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            sub = trie.get(f"f:{key}")
            kept = (
                child
                if sub is None
                else _GONE
                if "" in sub
                else _remove(child, typ.field(key), sub)
            )
            if kept is not _GONE:
                out[key] = kept
        return out if out or not value else _GONE
    if isinstance(value, list) and (typ.keys is not None or typ.scalar_set):
        return _remove_items(value, typ, trie)
    return value


def _remove_items(value: list[Any], typ: Type, trie: dict[str, Any]) -> Any:
    keys = typ.keys
    item = typ.item()
    kept_items = []
    for child in value:
        sub = trie.get(_key_element(child, keys) if keys is not None else _value_element(child))
        if sub is None:
            kept_items.append(child)
        elif "" not in sub:
            kept = _remove(child, item, sub)
            if kept is _GONE:  # its fields went, not the item: its keys stay
                kept = {k: child[k] for k in keys or () if k in child}
            kept_items.append(kept)
    return kept_items if kept_items or not value else _GONE


_GONE = object()


# --- the operations


class ConflictError(Exception):
    """An apply would change fields other managers own: the API server's 409."""

    def __init__(self, conflicts: dict[Manager, set[Path]], api_version: str):
        self.conflicts = conflicts
        pairs = sorted((m, path_string(p)) for m, paths in conflicts.items() for p in paths)
        if len(pairs) == 1:
            ((manager, path),) = pairs
            who = _manager(manager, api_version)
            message = f"Apply failed with 1 conflict: conflict with {who}: {path}"
        else:
            lines = []
            for manager in sorted({m for m, _ in pairs}):
                lines.append(f"conflicts with {_manager(manager, api_version)}:")
                lines += [f"- {p}" for m, p in pairs if m == manager]
            message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
        super().__init__(message)
        self.message = message


def _manager(manager: Manager, api_version: str) -> str:
    """A manager as conflict.go's printManager shows it (no time kept here)."""
    name, operation = manager
    return f'"{name}" using {api_version}' if operation == UPDATE else f'"{name}"'


def path_string(path: Path) -> str:
    """A path as structured-merge-diff prints it: .spec.containers[name="c"].image."""
    parts = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append(f".{rest}")
        elif kind == "k":
            keys = json.loads(rest)
            parts.append(
                "[" + ",".join(f"{k}={_scalar(v)}" for k, v in sorted(keys.items())) + "]"
            )
        else:
            parts.append(f"[={_scalar(json.loads(rest))}]")
    return "".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    managed: Managed,
    manager: str,
    typ: Type,
    *,
    force: bool,
) -> tuple[dict[str, Any], Managed, dict[Manager, set[Path]]]:
    """Server-side apply of `config` by `manager`: the new object, its managers, what it took.

    Raises ConflictError when the apply changes fields other managers own and is
    not forced; forced, the fields it took from other managers come third.
    """
    live = live or {}
    managed = {m: set(paths) for m, paths in managed.items()}
    live_fields = fields(live, typ)
    if live and not managed:
        # An object no apply ever touched: its fields are someone's (skipnonapplied.go).
        managed[("before-first-apply", UPDATE)] = set(live_fields)
    me = (manager, APPLY)
    last = managed.get(me, set())
    managed[me] = set(fields(config, typ))
    new = merge(live, config, typ)
    if last:
        owned = set().union(*managed.values())
        gone = last - owned
        if gone:
            new = _remove(new, typ, _trie(gone))
    changed, removed = _compare(live_fields, fields(new, typ))
    conflicts = {
        other: paths & changed
        for other, paths in managed.items()
        if other != me and paths & changed
    }
    if conflicts and not force:
        raise ConflictError(conflicts, str(config.get("apiVersion", "")))
    for other in managed:
        if other != me:
            managed[other] -= changed | removed
    return new, {m: paths for m, paths in managed.items() if paths}, conflicts


def update(
    live: dict[str, Any] | None,
    new: dict[str, Any],
    managed: Managed,
    manager: str,
    typ: Type,
) -> Managed:
    """The managers after `manager` wrote `new` over `live` (create, update, any other patch)."""
    if live and not managed:
        return {}  # an object whose fields nobody tracks stays so (skipnonapplied.go)
    changed, removed = _compare(fields(live or {}, typ), fields(new, typ))
    managed = {m: paths - changed - removed for m, paths in managed.items()}
    me = (manager, UPDATE)
    managed[me] = managed.get(me, set()) | changed
    return {m: paths for m, paths in managed.items() if paths}


# --- managedFields


def encode(managed: Managed, api_version: str) -> list[dict[str, Any]]:
    """`metadata.managedFields`, sorted as the API server sorts them (operation, manager)."""
    entries = []
    for (name, operation), paths in sorted(managed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        tree: dict[str, Any] = {}
        for path in sorted(paths):
            node = tree
            for element in path:
                node = node.setdefault(element, {})
            node["."] = {}
        entries.append(
            {
                "manager": name,
                "operation": operation,
                "apiVersion": api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": _collapse(tree),
            }
        )
    return entries


def _collapse(node: dict[str, Any]) -> dict[str, Any]:
    """A member with no children is `{}`; one with children keeps `".": {}` among them."""
    out = {}
    for key in sorted(node):
        if key == ".":
            continue
        child = _collapse(node[key])
        out[key] = child
    if "." in node and out:
        return {".": {}, **out}
    return out


def decode(entries: Any) -> Managed:
    """The managers of `metadata.managedFields` (entries of subresources are left out)."""
    managed: Managed = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or entry.get("subresource"):
            continue
        paths: set[Path] = set()
        _expand(entry.get("fieldsV1") or {}, (), paths)
        key = (str(entry.get("manager", "")), str(entry.get("operation", UPDATE)))
        managed.setdefault(key, set()).update(paths)
    return managed


def _expand(node: dict[str, Any], path: Path, out: set[Path]) -> None:
    children = [k for k in node if k != "."]
    if path and (not children or "." in node):
        out.add(path)
    for key in children:
        _expand(node[key], (*path, key), out)


# --- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, typ: Type) -> Any:
    """A strategic merge patch: as a merge patch, but lists with a merge key merge by it.

    Lists the schema gives a patch strategy `merge` and a merge key merge item
    by item (an item with `$patch: delete` removes its match); lists of
    scalars with that strategy take the new values; other lists are replaced.
    The other directives ($setElementOrder, $retainKeys,
    $deleteFromPrimitiveList) are not read: no client of ours sends them.
    """
    if not isinstance(patch, (dict, list)):
        return copy.deepcopy(patch)
    if isinstance(patch, dict):
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value, typ.field(key))
        return out
    if not isinstance(target, list) or not typ.patch_merge:
        return [i for i in copy.deepcopy(patch) if not _deletes(i)]
    if typ.patch_key is not None:
        key = typ.patch_key
        out_items = list(target)
        for item in patch:
            if not isinstance(item, dict):
                continue
            at = next(
                (
                    n
                    for n, i in enumerate(out_items)
                    if isinstance(i, dict) and i.get(key) == item.get(key)
                ),
                None,
            )
            if _deletes(item):
                if at is not None:
                    del out_items[at]
            elif at is None:
                out_items.append(copy.deepcopy(item))
            else:
                out_items[at] = strategic_merge_patch(out_items[at], item, typ.item())
        return out_items
    return list(target) + [i for i in patch if i not in target]


def _deletes(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") == "delete"
