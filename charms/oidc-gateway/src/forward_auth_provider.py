"""The gateway's side of `forward-auth`: where the mesh sends its checks, which headers pass.

The wire format is the ecosystem's `forward_auth` interface, as the
`charmlibs-interfaces-forward-auth` package writes and reads it
(application databags):

- provider (this gateway): `decisions_address`, the URL of the service
  that decides each request; `app_names`, a JSON list of the applications
  it protects; `headers`, a JSON list of the headers of its answer that the
  mesh copies onto an allowed request.
- requirer (the mesh): `ingress_app_names`, a JSON list of the applications
  it routes.

Ours, beside them, which the ecosystem's charms ignore: `kubeflow_user_header`
and `kubeflow_user_prefix`, the user-id header and the text before the id
in it, each a JSON string (the library decodes every value as JSON). The
mesh hands them on to every UI's route, so every UI reads the one setting.

What is wanted is compared with the databag as plain strings; the library,
which validates what it writes against the interface's schema, is imported
only when something is written.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import ops

from kubeflow_interfaces.istio_ingress_route import USER_HEADER_KEY, USER_PREFIX_KEY

logger = logging.getLogger(__name__)

DECISIONS_ADDRESS_KEY = "decisions_address"
APP_NAMES_KEY = "app_names"
HEADERS_KEY = "headers"
INGRESS_APP_NAMES_KEY = "ingress_app_names"


class InvalidRequestError(Exception):
    """The mesh's databag does not parse."""


def requested_apps(relation: ops.Relation) -> list[str]:
    """The applications the mesh routes, as it listed them ([] until it says).

    Raises InvalidRequestError when the list is not a JSON list of names.
    """
    if relation.app is None:
        return []
    text = relation.data[relation.app].get(INGRESS_APP_NAMES_KEY)
    if not text:
        return []
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidRequestError(f"{INGRESS_APP_NAMES_KEY} is not a JSON list of names")
    return list(dict.fromkeys(names))


class ForwardAuthProvider:
    """Publish the gateway's decisions address and headers on every forward-auth relation."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "forward-auth"):
        self._charm = charm
        self._endpoint = endpoint
        self._library: Any = None

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def publish(
        self,
        relation: ops.Relation,
        *,
        decisions_address: str,
        headers: list[str],
        user_header: str,
        user_prefix: str,
    ) -> bool:
        """Write what changed on one relation (leader only); whether anything was written.

        Raises InvalidRequestError, writing nothing, when the mesh's list of
        applications does not parse.
        """
        if not self._charm.unit.is_leader() or relation.app is None:
            return False
        apps = requested_apps(relation)
        databag = relation.data[self._charm.app]
        standard = {
            DECISIONS_ADDRESS_KEY: decisions_address,
            APP_NAMES_KEY: json.dumps(apps),
            HEADERS_KEY: json.dumps(headers),
        }
        ours = {USER_HEADER_KEY: json.dumps(user_header), USER_PREFIX_KEY: json.dumps(user_prefix)}
        wrote = False
        if any(databag.get(k) != v for k, v in standard.items()):
            self._write_standard(relation, decisions_address, apps, headers)
            wrote = True
        for key, value in ours.items():
            if databag.get(key) != value:
                databag[key] = value
                wrote = True
        if wrote:
            logger.info("published the forward-auth data on relation %d", relation.id)
        return wrote

    def _write_standard(
        self, relation: ops.Relation, decisions_address: str, apps: list[str], headers: list[str]
    ) -> None:
        """Write the interface's own keys through the library, which checks its schema."""
        from charmlibs.interfaces.forward_auth import ForwardAuthConfig
        from charmlibs.interfaces.forward_auth import ForwardAuthProvider as Library

        if self._library is None:
            # Made only here, in a hook that writes: its events are not ours to
            # handle (the charm reconciles on the relation's events itself).
            self._library = Library(self._charm, relation_name=self._endpoint)
        config = ForwardAuthConfig(
            decisions_address=decisions_address, app_names=apps, headers=headers
        )
        self._library.update_forward_auth_config(config, relation_id=relation.id)
