"""The `kubernetes_manifest` interface: objects to keep in every user (profile) namespace.

The wire format is the one Canonical's resource dispatcher and its requirers
speak (canonical/resource-dispatcher, the charm library
`resource_dispatcher.v0.kubernetes_manifests`, LIBPATCH 2), so their
requirers (kfp-profile-controller, mlflow-server, ...) relate to our
dispatcher and our requirers relate to theirs. The dispatcher provides one
endpoint per kind: `secrets`, `pod-defaults`, `service-accounts`,
`config-maps` (theirs also has `roles` and `role-bindings`, which ours does
not offer).

Requirer application databag, one of two forms:

- in a secret: `kubernetes_manifests` is the URI of a Juju secret granted to
  the relation and `is_secret` is `"true"`; the secret's content key
  `manifests` holds the objects as a JSON list. Our requirer writes only
  this form, for every kind, so a Secret's data is never in clear in a
  databag.
- in clear: without `is_secret: "true"`, `kubernetes_manifests` is the JSON
  list itself. Canonical's requirers on LIBPATCH 1 (before the secret form)
  write it, Secrets included; that is their charms' choice, and our provider
  reads it.

Each object is a Kubernetes object. Without `metadata.namespace` it goes to
every profile namespace; with it (a "pinned" object) only to that namespace,
while it is a profile namespace, and there it takes the place of an
unpinned object of the same kind and name.

Provider application databag (an addition of ours): `profile-namespaces`,
the JSON list of the profile namespaces that exist, sorted, written by the
dispatcher's leader on every relation of each endpoint, and rewritten only
when it changes. A requirer that wants one object per profile (its own
credentials, say) reads it and pins one object to each. Canonical's
requirers never read the provider's databag (their library's requirer only
writes `kubernetes_manifests` and `is_secret` to its own application
databag, LIBPATCH 2 at canonical/resource-dispatcher 8b65532), so the extra
key cannot upset them; Canonical's dispatcher writes no such key, so
`ManifestsRequirer.profile_namespaces()` is None when related to it.

What Canonical's dispatcher does with what our requirers send:

- LIBPATCH 2 (its main branch since d76732e and track/2.0 since cbfacae,
  January 2026): it reads the secret and gets every object, Secrets
  included, and applies each to the namespaces carrying its own
  `target_namespace_label` (`user.kubeflow.org/enabled=true` by default),
  not to the ones labelled `app.kubernetes.io/part-of=kubeflow-profile`.
- LIBPATCH 1 and older: it reads `kubernetes_manifests` as a JSON list; a
  secret URI is not JSON, so its hooks fail until it is refreshed to a
  revision with LIBPATCH 2. Nothing of ours reaches it, in clear or not.
- Its workload renders every object as a Jinja2 template (with `NAMESPACE`
  set), so values holding `{{`, `{%` or `{#` are changed or refused there.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ops

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "kubernetes_manifest"
MANIFESTS_FIELD = "kubernetes_manifests"
IS_SECRET_FIELD = "is_secret"  # noqa: S105 - a databag key
CONTENT_KEY = "manifests"
NAMESPACES_FIELD = "profile-namespaces"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class InvalidManifestsError(Exception):
    """A requirer's manifests cannot be read or are not Kubernetes objects."""


@dataclass(frozen=True)
class Manifest:
    """One object to keep in the profile namespaces (every one, or the one it names)."""

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
    def namespace(self) -> str | None:
        """The one namespace the object is pinned to, or None for every profile namespace."""
        return self.body["metadata"].get("namespace") or None

    @property
    def key(self) -> tuple[str, str, str]:
        """What two objects must not share in one namespace: apiVersion, kind, name."""
        return (str(self.body["apiVersion"]), self.kind, self.name)


def is_namespace_name(name: object) -> bool:
    """Whether `name` is a valid Kubernetes namespace name (an RFC 1123 label)."""
    return isinstance(name, str) and bool(_NAMESPACE.match(name))


def parse_namespaces(text: str, app: str) -> frozenset[str]:
    """Profile namespaces from the wire (a JSON list of names); raises InvalidManifestsError."""
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidManifestsError(f"{app}'s profile namespaces are not JSON") from None
    if not isinstance(names, list):
        raise InvalidManifestsError(f"{app}'s profile namespaces are not a list")
    bad = [n for n in names if not is_namespace_name(n)]
    if bad:
        raise InvalidManifestsError(
            f"{app} sent invalid profile namespace names: {', '.join(map(repr, bad[:3]))}"
        )
    return frozenset(names)


def parse(text: str, app: str) -> list[Manifest]:
    """Objects from the wire (a JSON list); raises InvalidManifestsError."""
    try:
        docs = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidManifestsError(f"{app}'s manifests are not JSON") from None
    if not isinstance(docs, list):
        raise InvalidManifestsError(f"{app}'s manifests are not a list")
    return [_manifest(doc, app) for doc in docs]


def _manifest(doc: Any, app: str) -> Manifest:
    if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
        raise InvalidManifestsError(f"{app} sent an object without apiVersion and kind")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or not isinstance(name, str) or not _NAME.match(name):
        raise InvalidManifestsError(f"{app} sent a {doc['kind']} without a valid name")
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or (namespace and not _NAMESPACE.match(namespace))
    ):
        raise InvalidManifestsError(f"{app}'s {doc['kind']} {name} names an invalid namespace")
    return Manifest(app, doc)


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
        """One relation's objects, from its secret or in clear; raises InvalidManifestsError."""
        if relation.app is None:
            return []
        app = relation.app.name
        data = relation.data[relation.app]
        value = data.get(MANIFESTS_FIELD)
        if data.get(IS_SECRET_FIELD) != "true":
            return parse(value, app) if value else []
        if not value:
            raise InvalidManifestsError(f"{app} says its manifests are in a secret but names none")
        try:
            content = self._charm.model.get_secret(id=value).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise InvalidManifestsError(f"{app}'s manifests secret cannot be read") from None
        text = content.get(CONTENT_KEY)
        return parse(text, app) if text else []

    def publish_namespaces(self, namespaces: Iterable[str]) -> None:
        """Leader: tell every relation on the endpoint which profile namespaces exist.

        Writes the sorted JSON list only where it differs from what is there, so
        an unchanged list writes nothing. Raises ValueError for an invalid name.
        """
        if not self._charm.unit.is_leader():
            return
        names = sorted(set(namespaces))
        bad = [n for n in names if not is_namespace_name(n)]
        if bad:
            raise ValueError(f"invalid namespace names: {bad!r}")
        value = json.dumps(names)
        for relation in self.relations:
            databag = relation.data[self._charm.app]
            if databag.get(NAMESPACES_FIELD) != value:
                databag[NAMESPACES_FIELD] = value


class ManifestsRequirer:
    """Requirer side: hand over the objects, in a secret granted to each relation."""

    def __init__(self, charm: ops.CharmBase, endpoint: str):
        self._charm = charm
        self._endpoint = endpoint

    def publish(
        self, objects: list[dict[str, Any]], record: MutableMapping[str, str] | None = None
    ) -> bool:
        """Leader: make every relation's secret hold `objects`; only what changed is written.

        `record` is where the leader notes, per relation, the digest of what
        its secret was last given and the secret's URI (the peer relation's
        app databag, so the next leader reads it too). Only this app writes
        its secrets, so a relation whose note matches `objects` and whose
        databag names that secret is left unread: a hook where nothing
        changed reads no secret.
        """
        if not self._charm.unit.is_leader():
            return False
        content = {CONTENT_KEY: json.dumps(objects, sort_keys=True)}
        digest = hashlib.sha256(content[CONTENT_KEY].encode()).hexdigest()
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            label = self._label(relation)
            databag = relation.data[self._charm.app]
            note = record.get(_record_key(label)) if record is not None else None
            if note is not None and _noted(note, digest, databag):
                continue
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
            for key, value in ((MANIFESTS_FIELD, uri), (IS_SECRET_FIELD, "true")):
                if databag.get(key) != value:
                    databag[key] = value
                    wrote = True
            if record is not None and note != f"{digest} {uri}":
                record[_record_key(label)] = f"{digest} {uri}"
        return wrote

    def profile_namespaces(self) -> frozenset[str] | None:
        """The profile namespaces the dispatcher(s) on the endpoint say exist.

        The union over the endpoint's relations; None when there is no relation
        or no dispatcher wrote the list (Canonical's dispatcher never does).
        Raises InvalidManifestsError when a list is not JSON, not a list, or
        holds a name that is not a valid namespace name.
        """
        found: set[str] | None = None
        for relation in self._charm.model.relations[self._endpoint]:
            if relation.app is None:
                continue
            text = relation.data[relation.app].get(NAMESPACES_FIELD)
            if text is None:
                continue
            found = (found or set()) | parse_namespaces(text, relation.app.name)
        return None if found is None else frozenset(found)

    def revoke(
        self, relation: ops.Relation, record: MutableMapping[str, str] | None = None
    ) -> None:
        """Remove the secret of a relation that is going away, and its note in `record`."""
        label = self._label(relation)
        try:
            self._charm.model.get_secret(label=label).remove_all_revisions()
        except ops.SecretNotFoundError:
            pass
        if record is not None and _record_key(label) in record:
            del record[_record_key(label)]

    def _label(self, relation: ops.Relation) -> str:
        return f"{self._endpoint}-{relation.id}"


def _record_key(label: str) -> str:
    return f"published-{label}"


def _noted(note: str, digest: str, databag: ops.RelationDataContent) -> bool:
    """Whether `note` says the secret holds `digest` and the databag names that secret."""
    noted_digest, _, uri = note.partition(" ")
    return (
        noted_digest == digest
        and bool(uri)
        and databag.get(MANIFESTS_FIELD) == uri
        and databag.get(IS_SECRET_FIELD) == "true"
    )


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    objects: list[dict[str, Any]],
    endpoint: str = "secrets",
    *,
    remote_app_name: str = "minio",
    **kwargs: Any,
) -> tuple[testing.Relation, testing.Secret]:
    """A relation as the dispatcher sees it (secret form), and the secret holding the objects."""
    from ops import testing

    secret = secret_for_provider(objects)
    relation = testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={MANIFESTS_FIELD: secret.id, IS_SECRET_FIELD: "true"},
        **kwargs,
    )
    return relation, secret


def secret_for_provider(objects: list[dict[str, Any]], **kwargs: Any) -> testing.Secret:
    """A requirer's secret holding `objects`, as the dispatcher reads it."""
    from ops import testing

    return testing.Secret(tracked_content={CONTENT_KEY: json.dumps(objects)}, **kwargs)


def relation_in_clear_for_provider(
    objects: list[dict[str, Any]],
    endpoint: str = "secrets",
    *,
    remote_app_name: str = "mlflow-server",
    **kwargs: Any,
) -> testing.Relation:
    """A relation from a requirer that sends its objects in clear (the older form)."""
    from ops import testing

    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={MANIFESTS_FIELD: json.dumps(objects)},
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = "secrets",
    *,
    remote_app_name: str = "resource-dispatcher",
    namespaces: Iterable[str] | None = None,
    **kwargs: Any,
) -> testing.Relation:
    """A relation as a requirer sees it.

    With `namespaces`, the dispatcher has written them as the profile
    namespaces (sorted, as it does); without, it has written nothing, as
    Canonical's dispatcher. `remote_app_data` in kwargs is kept, the list added.
    """
    from ops import testing

    data = dict(kwargs.pop("remote_app_data", {}))
    if namespaces is not None:
        data[NAMESPACES_FIELD] = json.dumps(sorted(set(namespaces)))
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=data,
        **kwargs,
    )
