"""Node placement in config options: node selectors and tolerations, checked before use.

Charms that place pods on node pools take a node selector (an object of
label keys to values) and tolerations (a list of Kubernetes tolerations)
from their options, as JSON text or inside a larger placement object. The
checks here are the API server's for these fields, so a wrong value blocks
the charm with a message instead of failing later at pod creation: label
keys and values as `IsLabelKey` and `IsLabelValue` check them, the prefix
as `IsDNS1123Subdomain` (kubernetes/apimachinery pkg/api/validate/content,
kube.go and dns.go), and a toleration's fields as core/v1 defines them.

Errors are ValueErrors saying what is wrong within the value; `named`
prefixes the option's name. Only `json` and `re` are imported: a charm
loads its config in every hook, the settled one too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})

# A label key's name part and a label value: at most 63 characters, alphanumeric at both ends.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# A label key's prefix: a DNS subdomain (dot-separated DNS labels), at most 253 characters.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_SUBDOMAIN_MAX = 253


def is_label_key(key: Any) -> bool:
    """Whether `key` is a label key: an optional DNS subdomain prefix and `/`, then a name."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > _DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def is_label_value(value: Any) -> bool:
    """Whether `value` is a label value (a string; empty is one)."""
    return isinstance(value, str) and bool(_LABEL_VALUE.fullmatch(value))


def check_node_selector(data: Any) -> dict[str, str]:
    """A node selector read from JSON (or YAML): an object of label keys to values."""
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object of label keys to values")
    for key, value in data.items():
        if not is_label_key(key):
            raise ValueError(f"{key!r} is not a label key")
        if not is_label_value(value):
            raise ValueError(f"{key}: {value!r} is not a label value (a string)")
    return dict(data)


def check_toleration(where: str, item: Any) -> dict[str, Any]:
    """One toleration; `where` starts each error (e.g. `item 0`)."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be a JSON object")
    unknown = sorted(set(item) - TOLERATION_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    key = item.get("key", "")
    operator = item.get("operator", "Equal")
    value = item.get("value", "")
    effect = item.get("effect", "")
    seconds = item.get("tolerationSeconds")
    if key != "" and not is_label_key(key):
        raise ValueError(f"{where}.key: {key!r} is not a label key")
    if operator not in TOLERATION_OPERATORS:
        raise ValueError(f"{where}.operator: must be Exists or Equal")
    if not is_label_value(value):
        raise ValueError(f"{where}.value: {value!r} is not a label value")
    if operator == "Exists" and value:
        raise ValueError(f"{where}.value: must be empty with operator Exists")
    if key == "" and operator != "Exists":
        raise ValueError(f"{where}: a toleration without a key must use operator Exists")
    if effect not in TOLERATION_EFFECTS:
        raise ValueError(f"{where}.effect: must be NoSchedule, PreferNoSchedule or NoExecute")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ValueError(f"{where}.tolerationSeconds: must be an integer")
        if effect != "NoExecute":
            raise ValueError(f"{where}.tolerationSeconds: only with effect NoExecute")
    return dict(item)


def check_tolerations(data: Any) -> list[dict[str, Any]]:
    """Tolerations read from JSON (or YAML): a list; errors name the item by its index."""
    if not isinstance(data, list):
        raise ValueError("must be a JSON list of tolerations")
    return [check_toleration(f"item {i}", item) for i, item in enumerate(data)]


def parse_node_selector(text: str) -> dict[str, str]:
    """A node selector option: a JSON object of label keys to values; empty text is none."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("must be a JSON object of label keys to values") from None
    return check_node_selector(data)


def parse_tolerations(text: str) -> list[dict[str, Any]]:
    """A tolerations option: a JSON list of Kubernetes tolerations; empty text is none."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("must be a JSON list of tolerations") from None
    return check_tolerations(data)


def named(option: str, parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, its ValueError's message prefixed with the option's name."""
    try:
        return parse(text)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None
