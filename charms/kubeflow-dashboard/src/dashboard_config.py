"""The charm's config options, and the dashboard's links as the dashboard reads them.

The central dashboard reads a ConfigMap with two JSON values: `links`
(`menuLinks`, `externalLinks`, `quickLinks`, `documentationItems`) and
`settings`. Links come from related UIs and from `additional-links`; they
are rendered in a stable order: the texts in `menu-order` first, in that
order, then the rest sorted by text.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from kubeflow_interfaces.dashboard_links import LOCATIONS, DashboardLink, InvalidLinkError

LINK_KEYS = frozenset({"text", "link", "location", "icon", "desc", "type"})
SECTIONS = {
    "menu": "menuLinks",
    "external": "externalLinks",
    "quick": "quickLinks",
    "documentation": "documentationItems",
}
_LINK = re.compile(r"^(/|https?://)\S*$")
_GCP_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
# A mesh identity: <trust domain>/ns/<namespace>/sa/<service account>.
_PRINCIPAL = re.compile(
    r"^[A-Za-z0-9._-]+"
    r"/ns/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    r"/sa/[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
)


def _yaml_list(text: str, what: str) -> list[Any]:
    if not text.strip():
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"must be a YAML list of {what}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"must be a YAML list of {what}")
    return data


def parse_links(text: str) -> list[DashboardLink]:
    """Links from `additional-links`; ValueError says which one is wrong and why."""
    links = []
    for number, item in enumerate(_yaml_list(text, "links"), start=1):
        where = f"link {number}"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be a map with text, link and location")
        unknown = sorted(str(k) for k in set(item) - LINK_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown keys: {', '.join(unknown)}")
        if item.get("location") not in LOCATIONS:
            raise ValueError(f"{where}: location must be one of {', '.join(LOCATIONS)}")
        try:
            link = DashboardLink.model_validate(item)
        except InvalidLinkError as e:
            field = e.field or "link"
            raise ValueError(f"{where}: {field} must be a string") from None
        if not link.text.strip():
            raise ValueError(f"{where}: text must not be empty")
        if not _LINK.match(link.link):
            raise ValueError(f"{where}: link must be a path starting with / or an http(s) URL")
        links.append(link)
    return links


def parse_order(text: str) -> tuple[str, ...]:
    """Link texts from `menu-order`; ValueError when it is not a list of distinct strings."""
    items = _yaml_list(text, "link texts")
    if not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError("must be a YAML list of link texts")
    if len(set(items)) != len(items):
        raise ValueError("lists a link text twice")
    return tuple(items)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """The charm's config options, validated; errors name the option."""

    registration_flow: bool = False
    workload_identity: str = ""
    additional_links: str = ""
    menu_order: str = ""
    notebook_controller_principal: str = ""
    kfp_ui_principal: str = ""

    def __post_init__(self):
        if self.workload_identity and not _GCP_ACCOUNT.match(self.workload_identity):
            raise ValueError(
                "workload-identity: must be a GCP service account "
                "(name@project.iam.gserviceaccount.com) or empty"
            )
        for option in ("notebook-controller-principal", "kfp-ui-principal"):
            value = getattr(self, option.replace("-", "_"))
            if value and not _PRINCIPAL.match(value):
                raise ValueError(
                    f"{option}: must be a mesh identity "
                    "(cluster.local/ns/<namespace>/sa/<service account>) or empty"
                )
        for option, parse in (("additional-links", parse_links), ("menu-order", parse_order)):
            try:
                parse(getattr(self, option.replace("-", "_")))
            except ValueError as e:
                raise ValueError(f"{option}: {e}") from None

    @property
    def links(self) -> list[DashboardLink]:
        """The links `additional-links` adds."""
        return parse_links(self.additional_links)

    @property
    def order(self) -> tuple[str, ...]:
        """The link texts `menu-order` puts first."""
        return parse_order(self.menu_order)


def _entry(link: DashboardLink) -> dict[str, str]:
    if link.location in ("menu", "external"):
        return {"type": link.type, "link": link.link, "text": link.text, "icon": link.icon}
    return {"text": link.text, "desc": link.desc, "link": link.link}


def dashboard_links(links: Iterable[DashboardLink], order: tuple[str, ...]) -> dict[str, Any]:
    """The `links` document: each section in a stable order, duplicates dropped."""
    rank = {text: i for i, text in enumerate(order)}
    unique: dict[tuple[str, str, str], DashboardLink] = {}
    for link in links:
        unique.setdefault((link.location, link.text, link.link), link)
    ordered = sorted(
        unique.values(),
        key=lambda li: (rank.get(li.text, len(rank)), li.text.casefold(), li.text, li.link),
    )
    return {
        section: [_entry(li) for li in ordered if li.location == location]
        for location, section in SECTIONS.items()
    }


def links_json(document: dict[str, Any]) -> str:
    """The ConfigMap value: stable, indented JSON."""
    return json.dumps(document, indent=2) + "\n"


SETTINGS = json.dumps({"DASHBOARD_FORCE_IFRAME": True})
