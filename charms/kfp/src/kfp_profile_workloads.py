"""What the leader runs in every profile namespace: the UI's artifact server, the visualizations.

Kubeflow Pipelines in multi-user mode expects two servers in each profile
namespace, which upstream's pipelines profile controller makes (Kubeflow
manifests v1.10.0, apps/pipeline/upstream/base/installs/multi-user/
pipelines-profile-controller/sync.py):

- `ml-pipeline-ui-artifact` (the UI's image): the UI, with
  ARTIFACTS_SERVICE_PROXY_ENABLED, sends a profile's artifact reads to
  `http://ml-pipeline-ui-artifact.<namespace>:80` (KFP 2.4.1 frontend/server/
  handlers/artifacts.ts), so they are made with that profile's own keys:
  the Secret `minio-credentials` the object store's charm puts in each
  profile namespace (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), referenced,
  never copied. The object store's address comes from object-storage.
- `ml-pipeline-visualizationserver`: the API server, multi-user, calls
  `http://ml-pipeline-visualizationserver.<namespace>:8888` for a run's
  visualizations (backend/src/apiserver/server/visualization_server.go).

Each is a Deployment and a Service, as the profile's `default-editor`, with
an Istio AuthorizationPolicy (profile.yaml.j2). Both callers run in the kfp
pod, as the application's ServiceAccount, which the mesh knows once the pod
has its sidecar (`kfp_mesh`). The artifact server is denied to every other
identity and to requests without a user's id; the profile's own policy
(the owner's and contributors' ids, from the gateway or the UI) does the
rest, as upstream, where that policy is all that guards it. The
visualization server lets in the API server, which calls it without a
user's id. Upstream's DestinationRule (ISTIO_MUTUAL towards the
visualization server) is left out: Istio's automatic mutual TLS already
uses it between two sidecars, and the policies need the caller's identity,
which only mutual TLS carries.

The resource dispatcher carries only Secrets, ConfigMaps, ServiceAccounts
and PodDefaults, so the leader (the charm is trusted) applies these itself
in every namespace the `config-maps` relation's dispatcher lists. They are
labelled as a set of their own (instance `<model>-<app>.profiles`, scope the
namespace: no Juju application name holds a dot), apart from the charm's
cluster objects, whose drift check they would otherwise upset. After
applying, objects of the set in namespaces no longer listed are deleted;
when the relation goes or the application is removed, all of them are.

What was applied is kept as a digest in the peer relation's app databag: a
hook where nothing changed renders nothing and writes nothing; on
update-status the objects are listed (`OwnedObjects`, metadata only) and
applied again when one was deleted or changed. A namespace where applying
fails does not stop the others; the status names it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import kfp_data
import kfp_route
import kfp_workloads as wl
import ops

from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    api_errors,
    error_status,
    render,
    render_digest,
)
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError
from kubeflow_interfaces.kubernetes_manifests import InvalidManifestsError, ManifestsRequirer

logger = logging.getLogger(__name__)

CONFIG_MAPS = "config-maps"  # the dispatcher's relation, which lists the profile namespaces
PEERS = "kfp-peers"
MANIFESTS = Path(__file__).parent / "manifests"
TEMPLATE = "profile.yaml.j2"
# Peer app databag: the digest of what was applied last, and of the objects as listed after.
HASH_KEY = "profile-workloads-hash"
OBJECTS_KEY = "profile-workloads-objects"
INSTANCE_LABEL = "app.kubernetes.io/instance"
SCOPE_LABEL = "kubernetes-resource-handler-scope"

# The images, as upstream's profile controller pins them (the release's own tag).
FRONTEND_IMAGE = "ghcr.io/kubeflow/kfp-frontend:2.4.1"
VISUALIZATION_IMAGE = "ghcr.io/kubeflow/kfp-visualization-server:2.4.1"
ARTIFACT_PORT = 3000  # the frontend image's CMD
ARTIFACT_SERVICE_PORT = 80  # where the UI's proxy sends (ARTIFACTS_SERVICE_PROXY_PORT)
VISUALIZATION_PORT = 8888  # fixed in the visualization server's code
SERVICE_ACCOUNT = "default-editor"  # the profile's editor, which the profile controller makes
CREDENTIALS_SECRET = "minio-credentials"  # noqa: S105 - an object name
ACCESS_KEY_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a key's name

KINDS = (
    Kind("apps/v1", "Deployment"),
    Kind("v1", "Service"),
    Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
)


def instance(app: str) -> str:
    """The application name the set is labelled under: `<app>.profiles`."""
    return f"{app}.profiles"


def principal(model: str, app: str) -> str:
    """The mesh identity of the charm's pods: Juju's ServiceAccount, named after the app."""
    return f"cluster.local/ns/{model}/sa/{app}"


def context(
    namespace: str,
    *,
    model: str,
    app: str,
    store: wl.ObjectStore,
    user_header: str = wl.USER_HEADER,
) -> dict[str, Any]:
    """The template's parameters for one namespace: the store's address, never its keys.

    `user_header`: the header the login puts the user's id in (`kfp_route.user_header`).
    """
    caller = principal(model, app)
    return {
        "namespace": namespace,
        "artifact": {
            "name": wl.UI_ARTIFACT_SERVICE,
            "image": FRONTEND_IMAGE,
            "port": ARTIFACT_PORT,
            "service_port": ARTIFACT_SERVICE_PORT,
        },
        "visualization": {
            "name": wl.VISUALIZATION_SERVICE,
            "image": VISUALIZATION_IMAGE,
            "port": VISUALIZATION_PORT,
            "service_port": VISUALIZATION_PORT,
        },
        "store": {"host": store.host, "port": store.port, "ssl": store.secure},
        "credentials": {
            "secret": CREDENTIALS_SECRET,
            "access_key": ACCESS_KEY_KEY,
            "secret_key": SECRET_KEY_KEY,
        },
        "service_account": SERVICE_ACCOUNT,
        "user_header": user_header,
        "ui_principal": caller,
        "api_principal": caller,
    }


def manifests(
    namespace: str,
    *,
    model: str,
    app: str,
    store: wl.ObjectStore,
    user_header: str = wl.USER_HEADER,
) -> str:
    """The objects of one profile namespace, as YAML."""
    values = context(namespace, model=model, app=app, store=store, user_header=user_header)
    return render(MANIFESTS, [TEMPLATE], values)


@dataclasses.dataclass(frozen=True)
class Applied:
    """What one apply did: the namespaces done, their objects, the namespaces that failed."""

    namespaces: tuple[str, ...] = ()
    objects: int = 0
    failed: dict[str, KubernetesError] = dataclasses.field(default_factory=dict)


class NotReadyError(Exception):
    """Why the objects cannot be applied now (the message says it, for an action)."""


class ProfileWorkloads(ops.Object):
    """The leader's per-profile servers: applied, kept, pruned, deleted."""

    def __init__(self, charm: ops.CharmBase):
        super().__init__(charm, "profile-workloads")
        self._charm = charm
        self.failed: dict[str, KubernetesError] = {}
        self.error: KubernetesError | None = None  # listing or pruning failed

    # --- inputs

    def namespaces(self) -> frozenset[str] | None:
        """The profile namespaces the dispatcher lists; None without the list.

        Raises InvalidManifestsError when the list does not parse.
        """
        if not self.model.relations[CONFIG_MAPS]:
            return None
        return ManifestsRequirer(self._charm, CONFIG_MAPS).profile_namespaces()

    def _owned(self, stored: Any) -> OwnedObjects:
        return OwnedObjects(
            stored,
            OBJECTS_KEY,
            app=instance(self.model.app.name),
            model=self.model.name,
            kinds=KINDS,
        )

    def drifted(self) -> bool:
        """Leader: whether an object applied last was deleted or changed behind our back."""
        peer = self.model.get_relation(PEERS)
        if not self._charm.unit.is_leader() or peer is None:
            return False
        stored = peer.data[self.model.app]
        return bool(stored.get(HASH_KEY)) and self._owned(stored).drifted()

    # --- reconcile

    def reconcile(
        self,
        event: ops.EventBase,
        store: wl.ObjectStore | None,
        user_header: str = wl.USER_HEADER,
    ) -> None:
        """Leader: apply when the inputs changed (or drifted, on update-status; forced on upgrade).

        Without the relation, its namespace list, the object store or the
        peer relation nothing is done (what was applied stays; the
        relation's going deletes it). A list that does not parse is the
        dispatcher data's problem, which `kfp_profiles` reports.
        """
        if not self._charm.unit.is_leader() or store is None:
            return
        peer = self.model.get_relation(PEERS)
        try:
            namespaces = self.namespaces()
        except InvalidManifestsError:
            return
        if peer is None or namespaces is None:
            return
        stored = peer.data[self.model.app]
        wanted = self._digest(sorted(namespaces), store, user_header)
        force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
        if stored.get(HASH_KEY) == wanted and not force:
            if not (isinstance(event, ops.UpdateStatusEvent) and self._owned(stored).drifted()):
                return
        self._apply(stored, sorted(namespaces), store, user_header, wanted)

    def resync(self, store: wl.ObjectStore | None, user_header: str = wl.USER_HEADER) -> Applied:
        """Apply every profile's objects again, whatever was kept (the action).

        Raises NotReadyError when they cannot be applied now.
        """
        if not self._charm.unit.is_leader():
            raise NotReadyError("run resync-profiles on the leader unit")
        if not self.model.relations[CONFIG_MAPS]:
            raise NotReadyError(f"no `{CONFIG_MAPS}` relation: no dispatcher lists the profiles")
        try:
            namespaces = self.namespaces()
        except InvalidManifestsError as e:
            raise NotReadyError(f"{CONFIG_MAPS}: {e}") from None
        if namespaces is None:
            raise NotReadyError("the dispatcher has not listed the profile namespaces")
        if store is None:
            raise NotReadyError("the object store is not known yet (object-storage)")
        peer = self.model.get_relation(PEERS)
        if peer is None:
            raise NotReadyError("the charm is not set up yet: try again later")
        stored = peer.data[self.model.app]
        ordered = sorted(namespaces)
        wanted = self._digest(ordered, store, user_header)
        return self._apply(stored, ordered, store, user_header, wanted)

    def _digest(self, namespaces: list[str], store: wl.ObjectStore, user_header: str) -> str:
        app, model = self.model.app.name, self.model.name
        values = context("", model=model, app=app, store=store, user_header=user_header)
        return render_digest(MANIFESTS, [TEMPLATE], {"namespaces": namespaces, **values})

    def _apply(
        self,
        stored: Any,
        namespaces: list[str],
        store: wl.ObjectStore,
        user_header: str,
        wanted: str,
    ) -> Applied:
        app, model = self.model.app.name, self.model.name
        rendered = {
            ns: manifests(ns, model=model, app=app, store=store, user_header=user_header)
            for ns in namespaces
        }
        try:
            objects = {ns: _load(text) for ns, text in rendered.items()}
            pruned = prune(app, model, objects)
        except KubernetesError as e:
            self.error = e
            logger.error("listing or pruning the profiles' objects failed: %s", e)
            return Applied(failed={"": e})
        done, count = [], 0
        for ns in namespaces:
            try:
                apply_namespace(app, model, ns, objects[ns])
            except KubernetesError as e:
                self.failed[ns] = e
                logger.error("applying the pipelines objects in profile %s failed: %s", ns, e)
                continue
            done.append(ns)
            count += len(objects[ns])
        if self.failed:
            # Kept as it was: the next hook tries again.
            return Applied(tuple(done), count, dict(self.failed))
        self._owned(stored).record()
        if stored.get(HASH_KEY) != wanted:
            stored[HASH_KEY] = wanted
        logger.info(
            "applied the pipelines objects in %d profile namespace(s), deleted %d",
            len(done),
            pruned,
        )
        return Applied(tuple(done), count)

    def remove_all(self) -> None:
        """Leader: delete every profile's objects (the relation or the application goes)."""
        if not self._charm.unit.is_leader():
            return
        try:
            pruned = prune(self.model.app.name, self.model.name, {})
        except KubernetesError as e:
            logger.error("deleting the profiles' pipelines objects failed: %s", e)
            return
        peer = self.model.get_relation(PEERS)
        if peer is not None:
            stored = peer.data[self.model.app]
            for key in (HASH_KEY, OBJECTS_KEY):
                if key in stored:
                    del stored[key]
        logger.info("deleted the pipelines objects of every profile (%d)", pruned)

    def remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: the leader deletes every profile's objects."""
        if self.model.app.planned_units() > 0:
            return
        self.remove_all()

    def on_resync(self, event: ops.ActionEvent) -> None:
        """The action `resync-profiles`: apply every profile's objects again, report how many."""
        store = kfp_data.read(self._charm).store if self._charm.unit.is_leader() else None
        try:
            header, _ = kfp_route.user_header(self._charm)
        except InvalidRouteDataError as e:
            event.fail(f"{kfp_route.ROUTE}: {e}")
            return
        try:
            applied = self.resync(store, header)
        except NotReadyError as e:
            event.fail(str(e))
            return
        if self.error is not None:
            event.fail(f"listing the profiles' objects failed: {self.error}")
            return
        event.set_results(summary(applied))
        if applied.failed:
            where = "; ".join(f"{ns}: {e}" for ns, e in sorted(applied.failed.items()))
            event.fail(f"applying failed in {len(applied.failed)} namespace(s): {where}")

    # --- status

    def status(self) -> ops.StatusBase | None:
        """What went wrong in this hook, naming the namespaces; None when nothing did."""
        app = self.model.app.name
        if self.error is not None:
            return _named(error_status(self.error, app), "profile namespaces")
        if not self.failed:
            return None
        first = sorted(self.failed)[0]
        status = error_status(self.failed[first], app)
        where = ", ".join(sorted(self.failed))
        return _named(status, f"profile namespace(s) {where}")


def _named(status: ops.StatusBase, where: str) -> ops.StatusBase:
    return type(status)(f"{where}: {status.message}")


# --- lightkube from here on


def _load(text: str) -> list[Any]:
    with api_errors():
        from lightkube import codecs

        _resources()  # the custom kinds must be known before their objects load
        return codecs.load_all_yaml(text)


def _resources() -> dict[Kind, Any]:
    from lightkube.codecs import resource_registry
    from lightkube.generic_resource import create_namespaced_resource

    types = {}
    for kind in KINDS:
        if kind.plural is None:
            types[kind] = resource_registry.load(kind.api_version, kind.kind)
        else:
            group, _, version = kind.api_version.rpartition("/")
            types[kind] = create_namespaced_resource(group, version, kind.kind, kind.plural)
    return types


def _labels(app: str, model: str, namespace: str) -> dict[str, str]:
    from lightkube_extensions.batch import create_charm_default_labels

    return create_charm_default_labels(instance(app), model, scope=namespace)


def apply_namespace(app: str, model: str, namespace: str, objects: list[Any]) -> None:
    """Apply one namespace's objects, labelled as the set's (server-side, forced)."""
    with api_errors():
        from lightkube import Client
        from lightkube_extensions.batch import KubernetesResourceManager

        manager = KubernetesResourceManager(
            labels=_labels(app, model, namespace),
            resource_types=set(_resources().values()),
            lightkube_client=Client(field_manager=app, namespace=model),
            logger=logger,
        )
        manager.apply(objects)


def prune(app: str, model: str, wanted: dict[str, list[Any]]) -> int:
    """Delete the set's objects that `wanted` (namespace: objects) does not hold; how many.

    The set is found by its instance label across all namespaces, so what an
    earlier leader applied in a namespace since gone from the list goes too.
    A kind the cluster does not serve (Istio's CRDs gone) holds nothing.
    """
    keep = {(obj.kind, ns, obj.metadata.name) for ns, objects in wanted.items() for obj in objects}
    selector = {INSTANCE_LABEL: _labels(app, model, "-")[INSTANCE_LABEL], SCOPE_LABEL: None}
    deleted = 0
    with api_errors():
        from lightkube import ApiError, Client

        client = Client(field_manager=app, namespace=model)
        for kind, resource in _resources().items():
            try:
                found = list(client.list(resource, namespace="*", labels=selector))
            except ApiError as e:
                if e.status.code == 404:
                    continue
                raise
            for obj in found:
                meta = obj.metadata
                if (kind.kind, meta.namespace, meta.name) in keep:
                    continue
                try:
                    client.delete(resource, meta.name, namespace=meta.namespace)
                except ApiError as e:
                    if e.status.code != 404:
                        raise
                deleted += 1
    return deleted


def summary(applied: Applied) -> dict[str, str]:
    """The action's results."""
    return {
        "namespaces": str(len(applied.namespaces)),
        "objects": str(applied.objects),
        "applied-in": json.dumps(list(applied.namespaces)),
    }
