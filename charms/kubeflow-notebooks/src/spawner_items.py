"""The pydantic models of the spawner options that list items: affinities and tolerations.

Imported only when one of those options is set (see spawner_config).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Affinity(_Item):
    node_affinity: dict[str, Any] | None = Field(None, alias="nodeAffinity")
    pod_affinity: dict[str, Any] | None = Field(None, alias="podAffinity")
    pod_anti_affinity: dict[str, Any] | None = Field(None, alias="podAntiAffinity")


class AffinityOption(_Item):
    """A choice of node (or pod) affinity the form offers."""

    config_key: str = Field(alias="configKey", pattern=_KEY.pattern)
    display_name: str = Field(alias="displayName", min_length=1, max_length=128)
    affinity: _Affinity


class Toleration(_Item):
    """One toleration of a pod, as Kubernetes writes it."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    # An int64 in Kubernetes, which reads a negative one as 0: evict at once.
    toleration_seconds: int | None = Field(
        None, alias="tolerationSeconds", strict=True, ge=0, le=2**63 - 1
    )


class TolerationGroup(_Item):
    """A named set of tolerations the form offers."""

    group_key: str = Field(alias="groupKey", pattern=_KEY.pattern)
    display_name: str = Field(alias="displayName", min_length=1, max_length=128)
    tolerations: list[Toleration] = Field(min_length=1)
