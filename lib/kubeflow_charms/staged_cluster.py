"""A leader's cluster objects in two groups: the base, then what waits for its controller.

A charm whose controller serves admission webhooks applies its base first:
the CustomResourceDefinitions (`manifests/crds.yaml`, applied as it is) and
the templated scopes after them (RBAC, config, the webhook Services and
configurations). Its second group, custom resources the controller's own
webhooks validate and fail closed on, waits until the controller runs.

Each group keeps two digests in the peer app databag: of its rendered
inputs, so a hook where they are those applied last renders nothing and
writes nothing, and of its objects as the API server lists them
(`OwnedObjects`), so update-status applies a group again when one of its
objects was deleted or changed behind the charm's back.

On removal the leader deletes the second group, then the base's scopes in
reverse, but not the CRDs: deleting them would delete every user's custom
resources with them. A redeploy adopts them.

lightkube, jinja2 and PyYAML are imported only on the paths that apply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import ops

from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    delete_all,
    render,
    render_digest,
)

logger = logging.getLogger(__name__)

BASE_HASH_KEY = "base-hash"
BASE_OBJECTS_KEY = "base-objects"
RUNTIMES_HASH_KEY = "runtimes-hash"
RUNTIMES_OBJECTS_KEY = "runtimes-objects"
CRDS = "crds"
RUNTIMES_SCOPE = "runtimes"

# scope: (templates, kinds), in the order they are applied; `CRDS` is the plain file.
Scopes = dict[str, tuple[tuple[str, ...], tuple[Kind, ...]]]


def json_documents(docs: Iterable[Mapping[str, Any]]) -> str:
    """Objects as one YAML text: JSON documents, keys sorted."""
    return "\n---\n".join(json.dumps(d, sort_keys=True) for d in docs) + "\n"


class StagedCluster(ops.Object):
    """The leader's side of the cluster: objects applied, kept, deleted.

    A charm's subclass names its peer relation, its manifests directory,
    its base scopes (`CRDS` first), the kinds of its second group, and what
    the log calls each group.
    """

    peers: ClassVar[str]
    manifests: ClassVar[Path]
    scopes: ClassVar[Scopes]
    runtime_kinds: ClassVar[tuple[Kind, ...]]
    base_label: ClassVar[str]
    runtimes_label: ClassVar[str]

    def __init__(self, charm: ops.CharmBase):
        super().__init__(charm, "cluster")
        self._charm = charm
        self.error: KubernetesError | None = None
        self.base_applied = False  # the base objects are in place (this hook or before)
        self.runtimes_waiting = False

    @classmethod
    def base_kinds(cls) -> tuple[Kind, ...]:
        """Every kind of the base, in the order of its scopes."""
        return tuple(kind for _, kinds in cls.scopes.values() for kind in kinds)

    @classmethod
    def render_scope(cls, scope: str, values: Mapping[str, Any]) -> str:
        """One base scope's manifests as YAML text."""
        if scope == CRDS:
            return (cls.manifests / "crds.yaml").read_text()
        return render(cls.manifests, cls.scopes[scope][0], values)

    def _stored(self) -> ops.RelationDataContent | None:
        """The leader's peer app databag; None on other units or before the relation."""
        peer = self.model.get_relation(self.peers)
        if not self._charm.unit.is_leader() or peer is None:
            return None
        return peer.data[self.model.app]

    def _owned(
        self, stored: ops.RelationDataContent, key: str, kinds: tuple[Kind, ...]
    ) -> OwnedObjects:
        return OwnedObjects(
            stored, key, app=self.model.app.name, model=self.model.name, kinds=kinds
        )

    def _resources(self, scope: str, kinds: tuple[Kind, ...]) -> Resources:
        return Resources(app=self.model.app.name, model=self.model.name, scope=scope, kinds=kinds)

    def apply_base(
        self, values: Callable[[], Mapping[str, Any]], *, force: bool, routine: bool
    ) -> None:
        """Leader: apply the base if changed, forced, or (on a routine hook) drifted.

        `values` gives the templates' parameters; it is called on the leader only.
        """
        stored = self._stored()
        if stored is None:
            return
        context = values()
        names = [name for templates, _ in self.scopes.values() for name in templates]
        wanted = render_digest(self.manifests, names, context)
        base = self._owned(stored, BASE_OBJECTS_KEY, self.base_kinds())
        try:
            if base.apply_when_wanted(
                BASE_HASH_KEY,
                wanted,
                lambda: [
                    (self._resources(scope, kinds), self.render_scope(scope, context))
                    for scope, (_, kinds) in self.scopes.items()
                ],
                force=force,
                routine=routine,
            ):
                logger.info("applied %s", self.base_label)
        except KubernetesError as e:
            self.error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        self.base_applied = True

    def apply_runtimes(
        self,
        wanted: str,
        text: Callable[[], str],
        *,
        controller_running: bool,
        force: bool,
        routine: bool,
    ) -> None:
        """Leader, once the base is in place and the controller runs: apply the second group.

        `wanted` is a digest of what the group is made from; `text` renders
        it, called only when applying.
        """
        stored = self._stored()
        if stored is None or not self.base_applied:
            return
        if not controller_running:
            self.runtimes_waiting = True
            return
        runtimes = self._owned(stored, RUNTIMES_OBJECTS_KEY, self.runtime_kinds)
        try:
            if runtimes.apply_when_wanted(
                RUNTIMES_HASH_KEY,
                wanted,
                lambda: [(self._resources(RUNTIMES_SCOPE, self.runtime_kinds), text())],
                force=force,
                routine=routine,
            ):
                logger.info("applied %s", self.runtimes_label)
        except KubernetesError as e:
            # Its webhook fails closed until the new controller serves it: the next hook retries.
            self.error = e
            logger.error("applying %s failed: %s", self.runtimes_label, e)

    def drifted(self) -> bool:
        """Leader: whether an object applied last was deleted or changed behind our back."""
        stored = self._stored()
        if stored is None:
            return False
        if not (stored.get(BASE_HASH_KEY) and stored.get(RUNTIMES_HASH_KEY)):
            return True
        return (
            self._owned(stored, BASE_OBJECTS_KEY, self.base_kinds()).drifted()
            or self._owned(stored, RUNTIMES_OBJECTS_KEY, self.runtime_kinds).drifted()
        )

    def remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: the leader deletes every object it made but the CRDs."""
        if not self._charm.unit.is_leader() or self.model.app.planned_units() > 0:
            return
        scopes = [self._resources(RUNTIMES_SCOPE, self.runtime_kinds)]
        scopes += [
            self._resources(scope, kinds)
            for scope, (_, kinds) in reversed(self.scopes.items())
            if scope != CRDS
        ]
        delete_all(self.model.app.name, scopes)
