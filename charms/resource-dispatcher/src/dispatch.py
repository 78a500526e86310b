"""What to keep in each profile namespace: the related apps' objects, checked and planned.

Pure logic, no Kubernetes: the charm reads every relation's manifests, this
module refuses kinds an endpoint does not carry and objects that would give
a profile's users more than the dispatcher should hand out (see `danger`),
finds names two apps both claim, and says which apps' objects are applied.
An app that is refused or in a conflict is not applied at all: what it had
in the namespaces stays as it was until the problem is fixed.

An object without a namespace goes to every profile namespace; one pinned
to a namespace goes only there (and only while it is a profile namespace),
and there takes the place of an unpinned object of the same kind and name,
whichever app sends that one (the rule Canonical's dispatcher follows).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from kubeflow_interfaces.kubernetes_manifests import Manifest

# The one kind each endpoint carries: (apiVersion, kind).
ENDPOINT_KINDS: dict[str, tuple[str, str]] = {
    "secrets": ("v1", "Secret"),
    "pod-defaults": ("kubeflow.org/v1alpha1", "PodDefault"),
    "service-accounts": ("v1", "ServiceAccount"),
    "config-maps": ("v1", "ConfigMap"),
}
# A Secret of this type is filled by Kubernetes with a token of the service account
# its annotation names (kubernetes/api v0.32.3, core/v1/types.go:7434).
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 - a type name
# PodDefault fields holding containers the webhook adds to each pod it selects
# (kubeflow/kubeflow v1.10.0, components/admission-webhook: poddefault_types.go:43,47).
POD_DEFAULT_CONTAINERS = ("initContainers", "sidecars")


@dataclasses.dataclass(frozen=True)
class Offer:
    """What one app sent on one endpoint (objects, or why they cannot be read)."""

    endpoint: str
    app: str
    manifests: tuple[Manifest, ...] = ()
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Conflict:
    """Two apps sending an object of the same kind and name for the same namespace(s)."""

    kind: str
    name: str
    namespace: str | None  # None: both are for every profile namespace
    first: str
    second: str

    def __str__(self) -> str:
        where = f" for namespace {self.namespace}" if self.namespace else ""
        return f"{self.first} and {self.second} both send {self.kind} {self.name}{where}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which apps' objects to apply, and why the others are held back."""

    objects: dict[str, tuple[Manifest, ...]]  # app -> its objects, for the apps applied
    refused: dict[str, str]  # app -> why (invalid manifests or a wrong kind)
    conflicts: tuple[Conflict, ...]

    @property
    def held(self) -> set[str]:
        """Apps whose objects are not applied now."""
        return set(self.refused) | {a for c in self.conflicts for a in (c.first, c.second)}


def plan(offers: Iterable[Offer]) -> Plan:
    """Check every offer and decide what is applied."""
    objects: dict[str, list[Manifest]] = {}
    refused: dict[str, str] = {}
    for offer in offers:
        objects.setdefault(offer.app, [])
        if offer.error:
            refused[offer.app] = offer.error
            continue
        allowed = ENDPOINT_KINDS[offer.endpoint]
        wrong = sorted(
            {
                f"{m.body['apiVersion']} {m.kind}"
                for m in offer.manifests
                if (m.body["apiVersion"], m.kind) != allowed
            }
        )
        if wrong:
            refused[offer.app] = (
                f"{offer.app} sent {', '.join(wrong)} on {offer.endpoint} "
                f"(only {allowed[1]} is accepted there)"
            )
            continue
        dangers = [d for d in map(danger, offer.manifests) if d]
        if dangers:
            refused[offer.app] = dangers[0]
            continue
        objects[offer.app].extend(offer.manifests)
    owners: dict[tuple[str | None, str, str], str] = {}
    conflicts: list[Conflict] = []
    for app in sorted(objects):
        if app in refused:
            continue
        seen: set[tuple[str | None, str, str]] = set()
        for manifest in objects[app]:
            key = (manifest.namespace, manifest.kind, manifest.name)
            if key in seen:
                where = f" for namespace {key[0]}" if key[0] else ""
                refused[app] = f"{app} sent {manifest.kind} {manifest.name}{where} twice"
                break
            seen.add(key)
            other = owners.get(key)
            if other is not None and other != app:
                conflicts.append(Conflict(manifest.kind, manifest.name, key[0], other, app))
            owners.setdefault(key, app)
    held = set(refused) | {a for c in conflicts for a in (c.first, c.second)}
    return Plan(
        objects={a: tuple(m) for a, m in sorted(objects.items()) if a not in held},
        refused=refused,
        conflicts=tuple(conflicts),
    )


def danger(manifest: Manifest) -> str | None:
    """Why an object must not go to the profile namespaces, or None.

    - a Secret of type `kubernetes.io/service-account-token`: Kubernetes would
      put a token of the service account it names in every profile namespace,
      readable by the profile's users;
    - a PodDefault with a `hostPath` volume: the webhook adds its volumes to
      every pod it selects, so users' pods would mount the node's files;
    - a PodDefault whose init or sidecar container is privileged: it would run
      in users' pods with the node's devices and no isolation.

    The other kinds accepted (ServiceAccount, ConfigMap) grant nothing by
    themselves, and no kind with a pod template or rights (Role, RoleBinding)
    is accepted at all.
    """
    what = f"{manifest.app}'s {manifest.kind} {manifest.name}"
    body = manifest.body
    if manifest.kind == "Secret" and body.get("type") == SERVICE_ACCOUNT_TOKEN:
        return f"{what} is a service account token (type {SERVICE_ACCOUNT_TOKEN})"
    spec = body.get("spec")
    if manifest.kind != "PodDefault" or not isinstance(spec, dict):
        return None
    for volume in _dicts(spec.get("volumes")):
        if volume.get("hostPath") is not None:
            return f"{what} mounts a hostPath volume ({volume.get('name', '?')})"
    for field in POD_DEFAULT_CONTAINERS:
        for container in _dicts(spec.get(field)):
            context = container.get("securityContext")
            if isinstance(context, dict) and context.get("privileged") is True:
                return f"{what} adds a privileged container ({container.get('name', '?')})"
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list (anything else is left to the API server's schema check)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def render(result: Plan, app: str, namespace: str) -> str:
    """An applied app's objects for one namespace, as a YAML stream, each placed there.

    Its unpinned objects, less those an applied app pins to this namespace
    under the same kind and name, and its objects pinned to this namespace.
    """
    pinned_here = {
        (m.kind, m.name)
        for manifests in result.objects.values()
        for m in manifests
        if m.namespace == namespace
    }
    docs: list[dict[str, Any]] = []
    for manifest in sorted(result.objects.get(app, ()), key=lambda m: m.key):
        if manifest.namespace is None:
            if (manifest.kind, manifest.name) in pinned_here:
                continue
        elif manifest.namespace != namespace:
            continue
        body = dict(manifest.body)
        body["metadata"] = {**body["metadata"], "namespace": namespace}
        docs.append(body)
    return yaml.safe_dump_all(docs, sort_keys=True) if docs else ""


def scope(app: str, namespace: str) -> str:
    """The label value of one app's objects in one namespace (at most 63 characters).

    Neither app nor namespace names hold dots, so `app.namespace` is unambiguous;
    a pair too long for a label value is shortened with a hash.
    """
    value = f"{app}.{namespace}"
    if len(value) <= 63:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{app[:23]}.{namespace[:22]}.{digest}"


def problems(result: Plan) -> list[str]:
    """One message per problem, naming the apps."""
    out = [result.refused[app] for app in sorted(result.refused)]
    out += [str(conflict) for conflict in result.conflicts]
    return out


def hashable(result: Plan, namespaces: Sequence[str]) -> Mapping[str, str]:
    """Each (app, namespace) scope and its rendered objects: what the applied hash covers."""
    return {scope(app, ns): render(result, app, ns) for app in result.objects for ns in namespaces}
