"""What every interface module shares: databag models, loading and writing.

Databags hold strings. A model's fields map to keys with dashes
(`s3_uri_style` is `s3-uri-style`); lists travel as JSON text; fields left
unset are not written. Loading names the fields that did not parse.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import ops
from pydantic import BaseModel, ConfigDict, ValidationError

from kubeflow_interfaces._bags import write

__all__ = ["Databag", "json_list", "load", "write"]

T = TypeVar("T", bound="Databag")


class Databag(BaseModel):
    """Base of every databag model."""

    model_config = ConfigDict(
        alias_generator=lambda name: name.replace("_", "-"),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def dump(self) -> dict[str, str]:
        """Serialise to databag strings, dashed keys, unset fields left out."""
        out: dict[str, str] = {}
        for key, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if isinstance(value, bool):
                out[key] = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                out[key] = json.dumps(value)
            else:
                out[key] = str(value)
        return out

    @classmethod
    def keys(cls) -> set[str]:
        """Every databag key this model owns."""
        return {field.alias or name for name, field in cls.model_fields.items()}


def json_list(value: Any) -> Any:
    """Databag lists arrive as JSON text; a bare string is one element."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return [value] if value else []
        return decoded if isinstance(decoded, list) else [value]
    return value


def load(
    model: type[T],
    data: ops.RelationDataContent | dict[str, str],
    error: type[Exception],
    interface: str,
) -> T:
    """Parse a databag; `error` names the fields that did not parse."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        fields = ", ".join(sorted({str(err["loc"][0]) for err in e.errors() if err["loc"]}))
        raise error(f"invalid {interface} relation data ({fields or 'unknown field'})") from e
