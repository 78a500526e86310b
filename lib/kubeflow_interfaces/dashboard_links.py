"""The `kubeflow_dashboard_links` interface: links a UI adds to the central dashboard.

Wire format, the ecosystem's: each requirer (a UI charm) writes, in its
application databag, `dashboard_links`: a JSON list of objects with `text`,
`link`, `location` (`menu`, `external`, `quick` or `documentation`), `icon`,
`type` (usually `item`) and `desc`. The provider (the dashboard) writes
nothing. Links with an unknown location are dropped by the reader, not
refused, so a newer requirer does not break an older dashboard.

A link is six strings, checked here by hand rather than by a pydantic
model: the dashboard reads every related UI's links on every hook, and
importing pydantic would cost a settled hook about a third of `import ops`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import ops

if TYPE_CHECKING:
    from ops import testing

logger = logging.getLogger(__name__)

INTERFACE = "kubeflow_dashboard_links"
FIELD = "dashboard_links"
LOCATIONS = ("menu", "external", "quick", "documentation")


class InvalidLinksError(Exception):
    """A requirer's links do not parse."""


class InvalidLinkError(ValueError):
    """One link's data is not a link; `field` names the first wrong field ("" for the whole)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class DashboardLink:
    """One link on the dashboard; InvalidLinkError when a field is not as described."""

    text: str
    link: str
    location: Literal["menu", "external", "quick", "documentation"]
    icon: str = "icons:link"
    type: str = "item"
    desc: str = ""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if not isinstance(getattr(self, field.name), str):
                raise InvalidLinkError(f"{field.name} must be a string", field.name)
            if field.name == "location" and self.location not in LOCATIONS:
                raise InvalidLinkError(
                    f"location must be one of {', '.join(LOCATIONS)}", "location"
                )

    @classmethod
    def model_validate(cls, data: Any) -> DashboardLink:
        """A link from a JSON object; keys other than the fields are ignored."""
        if not isinstance(data, dict):
            raise InvalidLinkError("a link must be an object")
        fields = dataclasses.fields(cls)
        for field in fields:  # the first wrong field, in order, is the one named
            if field.name not in data and field.default is dataclasses.MISSING:
                raise InvalidLinkError(f"{field.name} is missing", field.name)
            if field.name in data and not isinstance(data[field.name], str):
                raise InvalidLinkError(f"{field.name} must be a string", field.name)
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})

    def model_dump(self) -> dict[str, str]:
        """The link as a JSON object, every field included."""
        return dataclasses.asdict(self)


class DashboardLinksProvider:
    """Provider side (the dashboard): every link every related app asks for."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "links"):
        self._charm = charm
        self._endpoint = endpoint

    def links(self) -> dict[str, list[DashboardLink]]:
        """Links by application name, in relation order; raises InvalidLinksError."""
        out: dict[str, list[DashboardLink]] = {}
        relations = sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)
        for relation in relations:
            if relation.app is None:
                continue
            raw = relation.data[relation.app].get(FIELD)
            if not raw:
                continue
            out[relation.app.name] = parse(raw, relation.app.name)
        return out


class DashboardLinksRequirer:
    """Requirer side (a UI charm): publish its links."""

    def __init__(
        self,
        charm: ops.CharmBase,
        links: list[DashboardLink],
        endpoint: str = "dashboard-links",
    ):
        self._charm = charm
        self._endpoint = endpoint
        self._links = links

    def publish(self) -> bool:
        """Write the links on every relation (leader only, only when changed)."""
        if not self._charm.unit.is_leader():
            return False
        wanted = dump(self._links)
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            databag = relation.data[self._charm.app]
            if databag.get(FIELD) != wanted:
                databag[FIELD] = wanted
                wrote = True
        return wrote


def dump(links: list[DashboardLink]) -> str:
    """The databag value for a list of links."""
    return json.dumps([link.model_dump() for link in links])


def parse(raw: str, app: str = "the requirer") -> list[DashboardLink]:
    """Links from a databag value; unknown locations are dropped with a warning."""
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidLinksError(f"{app}'s dashboard links are not JSON") from None
    if not isinstance(items, list):
        raise InvalidLinksError(f"{app}'s dashboard links are not a list")
    links = []
    for item in items:
        if isinstance(item, dict) and item.get("location") not in LOCATIONS:
            logger.warning("dropped a link of %s with location %r", app, item.get("location"))
            continue
        try:
            links.append(DashboardLink.model_validate(item))
        except InvalidLinkError:
            raise InvalidLinksError(f"{app} sent a dashboard link that does not parse") from None
    return links


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    links: list[DashboardLink],
    endpoint: str = "links",
    *,
    remote_app_name: str = "ui",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the dashboard sees it, with a UI's links."""
    from ops import testing

    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={FIELD: dump(links)},
        **kwargs,
    )
