"""The `ingress` interface: a route through the mesh's gateway to a requirer's service.

Wire format (application databags, every value a string):

- requirer: `prefix` (the URL path it is served under, `/` to `/.../`),
  `rewrite` (what the prefix becomes on the way to the service; default the
  prefix itself), `service`, `namespace`, `port`, and `auth` (`true` when
  the route needs a logged-in user, the default; `false` for what must be
  reachable before login, such as the identity provider and the OIDC
  callback).
- provider: `url`, the external URL of the route, once it is served.

The provider owns the routes; two requirers asking for one prefix are a
conflict it reports, and it serves neither.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import ops
from pydantic import Field, field_validator

from kubeflow_interfaces import _databag

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "ingress"
_PREFIX = re.compile(r"^/([A-Za-z0-9._~-]+/)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidIngressDataError(Exception):
    """The other side's databag does not parse."""


class IngressRequest(_databag.Databag):
    """What a requirer asks for."""

    prefix: str
    service: str
    namespace: str
    port: int = Field(ge=1, le=65535)
    rewrite: str | None = None
    auth: bool = True

    @field_validator("prefix", "rewrite")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.match(value):
            raise ValueError("must be a path that starts and ends with /")
        return value

    @field_validator("service", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("must be a DNS label")
        return value

    @property
    def target(self) -> str:
        """The service's cluster DNS name."""
        return f"{self.service}.{self.namespace}.svc.cluster.local"


class IngressResponse(_databag.Databag):
    """What the provider answers."""

    url: str | None = None


class IngressProvider:
    """Provider side (the mesh): read each route asked for, publish its URL."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "ingress"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def request(self, relation: ops.Relation) -> IngressRequest | None:
        """The route asked for, None while the requirer has said nothing yet.

        Raises InvalidIngressDataError when the databag does not parse.
        """
        if relation.app is None or not relation.data[relation.app]:
            return None
        return _databag.load(
            IngressRequest, relation.data[relation.app], InvalidIngressDataError, INTERFACE
        )

    def publish(self, relation: ops.Relation, url: str | None) -> bool:
        """Publish the route's URL (None withdraws it); leader only. Returns whether it wrote."""
        wanted = IngressResponse(url=url).dump()
        return _databag.write(relation.data[self._charm.app], wanted, IngressResponse.keys())


class IngressRequirer:
    """Requirer side: ask for a route, read its URL back."""

    def __init__(
        self,
        charm: ops.CharmBase,
        endpoint: str = "ingress",
        *,
        prefix: str,
        port: int,
        rewrite: str | None = None,
        auth: bool = True,
        service: str | None = None,
    ):
        self._charm = charm
        self._endpoint = endpoint
        self.request = IngressRequest(
            prefix=prefix,
            rewrite=rewrite,
            service=service or charm.app.name,
            namespace=charm.model.name,
            port=port,
            auth=auth,
        )

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one."""
        return self._charm.model.get_relation(self._endpoint)

    def publish_request(self) -> bool:
        """Write the request (leader only, only what changed). Returns whether it wrote."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return False
        return _databag.write(
            relation.data[self._charm.app], self.request.dump(), IngressRequest.keys()
        )

    @property
    def url(self) -> str | None:
        """The external URL, once the provider serves the route."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        try:
            response = _databag.load(
                IngressResponse, relation.data[relation.app], InvalidIngressDataError, INTERFACE
            )
        except InvalidIngressDataError:
            return None
        return response.url


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    endpoint: str = "ingress",
    *,
    prefix: str = "/app/",
    service: str = "app",
    namespace: str = "kubeflow",
    port: int = 8080,
    rewrite: str | None = "/",
    auth: bool = True,
    remote_app_name: str = "app",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the provider sees it, with a route asked for."""
    from ops import testing

    request = IngressRequest(
        prefix=prefix, service=service, namespace=namespace, port=port, rewrite=rewrite, auth=auth
    )
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=request.dump(),
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = "ingress",
    *,
    url: str | None = "http://10.0.0.1/app/",
    remote_app_name: str = "istio",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as a requirer sees it, once the provider served the route."""
    from ops import testing

    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=IngressResponse(url=url).dump(),
        **kwargs,
    )
