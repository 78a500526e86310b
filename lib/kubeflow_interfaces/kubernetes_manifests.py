"""The `kubernetes_manifests` interface: objects to keep in every user (profile) namespace.

Wire format (application databags):

- requirer (e.g. minio, kfp, mlflow): `manifests-secret-id`, the URI of a
  Juju secret granted to the relation whose content key `manifests` holds
  the objects as a YAML stream (or JSON list). Objects carry no namespace:
  the provider puts a copy in each profile namespace. A Secret's data can
  thus travel without ever being in clear in a databag. For the ecosystem's
  older requirers, a `kubernetes_manifests` key holding a JSON list of the
  objects in clear is read too.
- provider (the resource dispatcher): nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ops
import yaml

if TYPE_CHECKING:
    from ops import testing

SECRET_FIELD = "manifests-secret-id"  # noqa: S105 - a databag key
LEGACY_FIELD = "kubernetes_manifests"
CONTENT_KEY = "manifests"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InvalidManifestsError(Exception):
    """A requirer's manifests cannot be read or are not Kubernetes objects."""


@dataclass(frozen=True)
class Manifest:
    """One object to keep in every profile namespace."""

    app: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind."""
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        """The object's name."""
        return str(self.body["metadata"]["name"])

    @property
    def key(self) -> tuple[str, str, str]:
        """What two objects must not share in one namespace: apiVersion, kind, name."""
        return (str(self.body["apiVersion"]), self.kind, self.name)


def parse(text: str, app: str) -> list[Manifest]:
    """Objects from YAML (a stream or a list) or JSON; raises InvalidManifestsError."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        raise InvalidManifestsError(f"{app}'s manifests are not YAML") from None
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise InvalidManifestsError(f"{app} sent an object without apiVersion and kind")
        name = (doc.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidManifestsError(f"{app} sent a {doc['kind']} without a valid name")
        if (doc.get("metadata") or {}).get("namespace"):
            raise InvalidManifestsError(f"{app}'s {doc['kind']} {name} names a namespace")
        out.append(Manifest(app, doc))
    return out


class ManifestsProvider:
    """Provider side (the dispatcher): the objects every related app wants."""

    def __init__(self, charm: ops.CharmBase, endpoint: str):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def manifests(self, relation: ops.Relation) -> list[Manifest]:
        """One relation's objects; raises InvalidManifestsError."""
        if relation.app is None:
            return []
        app = relation.app.name
        data = relation.data[relation.app]
        if uri := data.get(SECRET_FIELD):
            try:
                content = self._charm.model.get_secret(id=uri).get_content(refresh=True)
            except (ops.SecretNotFoundError, ops.ModelError):
                raise InvalidManifestsError(f"{app}'s manifests secret cannot be read") from None
            return parse(content.get(CONTENT_KEY, ""), app)
        if raw := data.get(LEGACY_FIELD):
            try:
                return parse(json.dumps(json.loads(raw)), app)
            except json.JSONDecodeError:
                raise InvalidManifestsError(f"{app}'s manifests are not JSON") from None
        return []


class ManifestsRequirer:
    """Requirer side: hand over the objects, in a secret granted to each relation."""

    def __init__(self, charm: ops.CharmBase, endpoint: str):
        self._charm = charm
        self._endpoint = endpoint

    def publish(self, objects: list[dict[str, Any]]) -> bool:
        """Leader: make every relation's secret hold `objects`; only what changed is written."""
        if not self._charm.unit.is_leader():
            return False
        content = {CONTENT_KEY: yaml.safe_dump_all(objects, sort_keys=True)}
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            label = f"{self._endpoint}-{relation.id}"
            try:
                secret = self._charm.model.get_secret(label=label)
                if secret.get_content(refresh=True) != content:
                    secret.set_content(content)
                    wrote = True
            except ops.SecretNotFoundError:
                secret = self._charm.app.add_secret(content, label=label)
                secret.grant(relation)
                wrote = True
            uri = secret.id or secret.get_info().id
            databag = relation.data[self._charm.app]
            if databag.get(SECRET_FIELD) != uri:
                databag[SECRET_FIELD] = uri
                wrote = True
        return wrote

    def revoke(self, relation: ops.Relation) -> None:
        """Remove the secret of a relation that is going away."""
        try:
            self._charm.model.get_secret(
                label=f"{self._endpoint}-{relation.id}"
            ).remove_all_revisions()
        except ops.SecretNotFoundError:
            pass


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    objects: list[dict[str, Any]],
    endpoint: str = "secrets",
    *,
    remote_app_name: str = "minio",
    **kwargs: Any,
) -> tuple[testing.Relation, testing.Secret]:
    """A relation as the dispatcher sees it, and the secret holding the objects."""
    from ops import testing

    secret = testing.Secret(tracked_content={CONTENT_KEY: yaml.safe_dump_all(objects)})
    relation = testing.Relation(
        endpoint,
        interface="kubernetes_manifests",
        remote_app_name=remote_app_name,
        remote_app_data={SECRET_FIELD: secret.id},
        **kwargs,
    )
    return relation, secret
