"""What to keep in each profile namespace: the related apps' objects, checked and planned.

Pure logic, no Kubernetes: the charm reads every relation's manifests, this
module refuses kinds an endpoint does not carry, finds names two apps both
claim, and says which apps' objects are applied. An app that is refused or
in a conflict is not applied at all: what it had in the namespaces stays
as it was until the problem is fixed.
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
}


@dataclasses.dataclass(frozen=True)
class Offer:
    """What one app sent on one endpoint (objects, or why they cannot be read)."""

    endpoint: str
    app: str
    manifests: tuple[Manifest, ...] = ()
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which apps' objects to apply, and why the others are held back."""

    objects: dict[str, tuple[Manifest, ...]]  # app -> its objects, for the apps applied
    refused: dict[str, str]  # app -> why (invalid manifests or a wrong kind)
    conflicts: tuple[tuple[str, str, str, str], ...]  # (kind, name, app, other app)

    @property
    def held(self) -> set[str]:
        """Apps whose objects are not applied now."""
        return set(self.refused) | {a for c in self.conflicts for a in c[2:]}


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
        objects[offer.app].extend(offer.manifests)
    owners: dict[tuple[str, str], str] = {}
    conflicts: list[tuple[str, str, str, str]] = []
    for app in sorted(objects):
        if app in refused:
            continue
        seen: set[tuple[str, str]] = set()
        for manifest in objects[app]:
            key = (manifest.kind, manifest.name)
            if key in seen:
                refused[app] = f"{app} sent {manifest.kind} {manifest.name} twice"
                break
            seen.add(key)
            other = owners.get(key)
            if other is not None and other != app:
                conflicts.append((manifest.kind, manifest.name, other, app))
            owners.setdefault(key, app)
    held = set(refused) | {a for c in conflicts for a in c[2:]}
    return Plan(
        objects={a: tuple(m) for a, m in sorted(objects.items()) if a not in held},
        refused=refused,
        conflicts=tuple(conflicts),
    )


def render(manifests: Sequence[Manifest], namespace: str) -> str:
    """The objects as a YAML stream, each placed in `namespace`."""
    docs: list[dict[str, Any]] = []
    for manifest in sorted(manifests, key=lambda m: m.key):
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
    out += [f"{a} and {b} both send {kind} {name}" for kind, name, a, b in result.conflicts]
    return out


def hashable(result: Plan, namespaces: Sequence[str]) -> Mapping[str, str]:
    """Each (app, namespace) scope and its rendered objects: what the applied hash covers."""
    return {
        scope(app, ns): render(manifests, ns)
        for app, manifests in result.objects.items()
        for ns in namespaces
    }
