"""The `ingress-auth` interface: the external authorization service the mesh asks per request.

Wire format (application databags, every value a string):

- provider (the OIDC gateway): `service`, `namespace`, `port` (where the
  auth service answers HTTP), `include-request-headers` (JSON list: the
  request headers the mesh forwards to it, e.g. `cookie`, `authorization`),
  `headers-to-upstream` (JSON list: headers of its answer the mesh copies
  onto an allowed request, e.g. `kubeflow-userid`), and
  `headers-to-downstream` (JSON list: headers of a denial passed back to the
  browser, e.g. `location`, `set-cookie`).
- requirer (the mesh): nothing.

A requirer must fail closed: without valid data from the provider it serves
no route that needs a login.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import ops
from pydantic import Field, field_validator

from kubeflow_interfaces import _databag

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "ingress-auth"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")


class InvalidIngressAuthDataError(Exception):
    """The other side's databag does not parse."""


class IngressAuthData(_databag.Databag):
    """Where the auth service is, and which headers pass through it."""

    service: str
    namespace: str
    port: int = Field(ge=1, le=65535)
    include_request_headers: list[str] = Field(default_factory=list)
    headers_to_upstream: list[str] = Field(default_factory=list)
    headers_to_downstream: list[str] = Field(default_factory=list)

    _lists = field_validator(
        "include_request_headers", "headers_to_upstream", "headers_to_downstream", mode="before"
    )(_databag.json_list)

    @field_validator("service", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("must be a DNS label")
        return value

    @field_validator("include_request_headers", "headers_to_upstream", "headers_to_downstream")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        bad = [h for h in value if not _HEADER.match(h)]
        if bad:
            raise ValueError(f"not header names: {bad}")
        return [h.lower() for h in value]

    @property
    def target(self) -> str:
        """The auth service's cluster DNS name."""
        return f"{self.service}.{self.namespace}.svc.cluster.local"


class IngressAuthProvider:
    """Provider side (the OIDC gateway): publish where it answers."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "ingress-auth"):
        self._charm = charm
        self._endpoint = endpoint

    def publish(self, data: IngressAuthData) -> bool:
        """Write the data on every relation (leader only). Returns whether it wrote."""
        if not self._charm.unit.is_leader():
            return False
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            wrote |= _databag.write(
                relation.data[self._charm.app], data.dump(), IngressAuthData.keys()
            )
        return wrote


class IngressAuthRequirer:
    """Requirer side (the mesh): read the auth service's data."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "ingress-auth"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one."""
        return self._charm.model.get_relation(self._endpoint)

    def data(self) -> IngressAuthData | None:
        """The provider's data, None while it has sent none.

        Raises InvalidIngressAuthDataError when it does not parse.
        """
        relation = self.relation
        if relation is None or relation.app is None or not relation.data[relation.app]:
            return None
        return _databag.load(
            IngressAuthData, relation.data[relation.app], InvalidIngressAuthDataError, INTERFACE
        )


# --- helpers for charm tests -------------------------------------------------


def relation_for_requirer(
    endpoint: str = "ingress-auth",
    *,
    service: str = "oidc-gateway",
    namespace: str = "kubeflow",
    port: int = 4180,
    remote_app_name: str = "oidc-gateway",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the mesh sees it, with the auth service's data."""
    from ops import testing

    data = IngressAuthData(
        service=service,
        namespace=namespace,
        port=port,
        include_request_headers=["cookie", "authorization"],
        headers_to_upstream=["kubeflow-userid", "kubeflow-groups"],
        headers_to_downstream=["location", "set-cookie"],
    )
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=data.dump(),
        **kwargs,
    )


def relation_for_provider(
    endpoint: str = "ingress-auth", *, remote_app_name: str = "istio", **kwargs: Any
) -> testing.Relation:
    """A relation as the auth provider sees it (the mesh sends nothing)."""
    from ops import testing

    return testing.Relation(
        endpoint, interface=INTERFACE, remote_app_name=remote_app_name, **kwargs
    )
