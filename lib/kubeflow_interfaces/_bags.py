"""Writing a databag, without pydantic: a settled hook can call it without loading models."""

from __future__ import annotations

from collections.abc import Set

import ops


def write(databag: ops.RelationDataContent, wanted: dict[str, str], owned: Set[str]) -> bool:
    """Make `databag` hold `wanted` for the keys we own, writing only what changed.

    Returns whether anything was written.
    """
    changed = False
    for key in owned - wanted.keys():
        if key in databag:
            del databag[key]
            changed = True
    for key, value in wanted.items():
        if databag.get(key) != value:
            databag[key] = value
            changed = True
    return changed
