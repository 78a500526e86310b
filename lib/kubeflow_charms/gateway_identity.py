"""The ingress gateway's mesh identity, from istio's `gateway-metadata` relation.

The provider (the ecosystem's `gateway_metadata` interface) puts one key in
its application databag, `metadata`: a JSON object with the gateway's
`namespace`, `gateway_name`, `deployment_name` and `service_account`. The
profile controller and KFAM need the gateway's identity, made of the
namespace and the service account, to let its requests into profile
namespaces.

The value is read here with `json` alone: a settled hook parses a few
hundred bytes and does not load the ecosystem library (and pydantic) to do
it. What is checked is what the identity is made of, both Kubernetes names;
the other keys are the provider's business.
"""

from __future__ import annotations

import dataclasses
import json
import re

import ops

ENDPOINT = "gateway-metadata"
KEY = "metadata"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class InvalidGatewayMetadataError(ValueError):
    """The provider's metadata cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class Gateway:
    """Where the gateway runs and as whom."""

    namespace: str
    service_account: str

    @property
    def principal(self) -> str:
        """The gateway's mesh identity (SPIFFE path) in the `cluster.local` trust domain."""
        return f"cluster.local/ns/{self.namespace}/sa/{self.service_account}"


def parse(text: str) -> Gateway:
    """The gateway from the `metadata` value; InvalidGatewayMetadataError when it is unusable."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidGatewayMetadataError(f"{KEY} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidGatewayMetadataError(f"{KEY} is not a JSON object")
    namespace, account = data.get("namespace"), data.get("service_account")
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        raise InvalidGatewayMetadataError(f"namespace {namespace!r} is not a namespace name")
    if not isinstance(account, str) or not _DNS_SUBDOMAIN.match(account):
        raise InvalidGatewayMetadataError(
            f"service_account {account!r} is not a service account name"
        )
    return Gateway(namespace=namespace, service_account=account)


def read(
    charm: ops.CharmBase, *, missing: str, endpoint: str = ENDPOINT, broken: bool = False
) -> tuple[Gateway | None, ops.StatusBase | None]:
    """The gateway istio names, or the status saying why there is none yet.

    `missing`: the Blocked message when there is no relation, or when it is
    being removed (`broken`). Waiting until istio writes its metadata.
    Raises InvalidGatewayMetadataError when istio's data cannot be used.
    """
    relation = charm.model.get_relation(endpoint)
    if relation is None or broken:
        return None, ops.BlockedStatus(missing)
    text = relation.data[relation.app].get(KEY) if relation.app else None
    if not text:
        return None, ops.WaitingStatus(f"waiting for istio's {endpoint}")
    return parse(text), None
