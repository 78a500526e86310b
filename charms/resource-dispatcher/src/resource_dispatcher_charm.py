"""The resource dispatcher: objects for every profile namespace, and the PodDefault webhook."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import dispatch
import namespace_watch
import ops
import watch_token
import webhook
from dispatch import ENDPOINT_KINDS, Offer, Plan
from namespace_watch import NamespaceWatch
from profiles import profile_namespaces
from webhook import Webhook

from kubeflow_charms import certificates
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    error_status,
    manifest_hash,
    render,
    render_digest,
)
from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import plan_has, service_running
from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces.kubernetes_manifests import InvalidManifestsError, ManifestsProvider

logger = logging.getLogger(__name__)

PEERS = "dispatcher-peers"
CERTS_LABEL = "webhook-certificates"
TEMPLATES = Path(__file__).parent / "templates"
# Peer app databag keys: what the leader applied last (names only, never objects).
HASH_KEY = "manifest-hash"
INPUTS_KEY = "manifest-inputs"  # the digest of what the objects in HASH_KEY were made from
OBJECTS_KEY = "owned-objects"  # the digest of the objects as listed after that apply
NAMESPACES_KEY = "namespaces"
APPS_KEY = "applied-apps"
# Scopes of the charm's own objects: a dot never appears in a namespace name.
CRDS_SCOPE = "dispatcher.crds"
WEBHOOK_SCOPE = "dispatcher.webhook"
RBAC_SCOPE = "dispatcher.rbac"
WATCH_SCOPE = "dispatcher.watch"
OWN_TEMPLATES = {
    CRDS_SCOPE: "crds.yaml.j2",
    WEBHOOK_SCOPE: "webhook.yaml.j2",
    RBAC_SCOPE: "rbac.yaml.j2",
    WATCH_SCOPE: "watch-rbac.yaml.j2",
}

CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
WEBHOOK_KINDS = (
    Kind("v1", "Service"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
)
RBAC_KINDS = (Kind("rbac.authorization.k8s.io/v1", "ClusterRole"),)
WATCH_KINDS = (
    Kind("v1", "ServiceAccount"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)
DISPATCHED_KINDS = (
    Kind("v1", "Secret"),
    Kind("v1", "ServiceAccount"),
    Kind("v1", "ConfigMap"),
    Kind("kubeflow.org/v1alpha1", "PodDefault", "poddefaults"),
)
OWNED_KINDS = CRD_KINDS + WEBHOOK_KINDS + RBAC_KINDS + DISPATCHED_KINDS


class ResourceDispatcherCharm(ops.CharmBase):
    """Keeps every profile namespace holding the related apps' objects."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # When this unit's watch token was issued and expires (seconds since the epoch),
        # and whether the last full reconcile left this unit active. Every input but the
        # cluster's objects, the services and what falls due with time (the watch's
        # token, the certificates) comes with an event of its own (config, relation and
        # secret changes, leadership, pebble-ready, the watch's notices), so an
        # update-status on a settled unit looks only at those.
        self._stored.set_default(watch_token_issued=0.0, watch_token_expires=0.0, settled=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._webhook_container = self.unit.get_container(webhook.CONTAINER)
        self._watch_container = self.unit.get_container(namespace_watch.CONTAINER)
        self._webhook = Webhook(self._webhook_container)
        self._watch = NamespaceWatch(self._watch_container)
        self._providers = {e: ManifestsProvider(self, e) for e in ENDPOINT_KINDS}
        self._plan: Plan | None = None
        self._certs = certificates.CertificateKeeper(
            self,
            label=CERTS_LABEL,
            ca_name=f"{self.app.name} webhook CA ({self.model.name})",
            dns_names=webhook.dns_names(self.app.name, self.model.name),
            description="webhook certificates",
        )
        self._kubernetes_error: KubernetesError | None = None
        self._watch_problem: ops.StatusBase | None = None

        on = self.on
        events: list[ops.BoundEvent] = [
            on.install,
            on.start,
            on.upgrade_charm,
            on.config_changed,
            on.leader_elected,
            on.update_status,
            on.secret_changed,
            on[webhook.CONTAINER].pebble_ready,
            on[namespace_watch.CONTAINER].pebble_ready,
            on[namespace_watch.CONTAINER].pebble_custom_notice,
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
        ]
        for endpoint in ENDPOINT_KINDS:
            events += [
                on[endpoint].relation_changed,
                on[endpoint].relation_departed,
                on[endpoint].relation_broken,
            ]
        for event in events:
            framework.observe(event, self._reconcile)
        framework.observe(on.remove, self._on_remove)
        framework.observe(on.rotate_certificates_action, self._on_rotate_certificates)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile -------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring the webhook, the watch and every profile namespace to what the inputs say."""
        if own_departure(self, event):
            # This unit is scaled away (a leader keeps its lease meanwhile): what
            # its relations put in the profile namespaces stays for the others.
            logger.info("this unit is leaving: it leaves the namespaces to the units that stay")
            return
        if isinstance(event, ops.UpdateStatusEvent) and self._stored.settled:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        self._reconciled = True
        if isinstance(event, ops.PebbleCustomNoticeEvent):
            logger.info(
                "woken by %s (%s)", event.notice.key, event.notice.last_data.get("name", "?")
            )
        bundle = self._certificates()
        if bundle is not None and self._webhook_container.can_connect():
            if self._webhook.configure(bundle):
                logger.info("the webhook (re)started with certificate %s", bundle.serial)
        if self.unit.is_leader() and bundle is not None:
            force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
            routine = isinstance(event, ops.UpdateStatusEvent)
            self._reconcile_cluster(bundle, force=force, routine=routine)
        if self._watch_container.can_connect():
            self._reconcile_watch()

    def _nothing_drifted(self) -> bool:
        """On a settled unit: services, check, what falls due, and (leader) the objects."""
        issued, expires = self._stored.watch_token_issued, self._stored.watch_token_expires
        if watch_token.renewal_due(issued, expires, time.time()):
            return False
        if not service_running(self._webhook_container, webhook.SERVICE):
            return False
        if not self._webhook.is_ready():
            return False
        if not service_running(self._watch_container, namespace_watch.SERVICE):
            return False
        bundle = self._certs.stored()
        if bundle is None:
            return False
        if not self.unit.is_leader():
            # The leader renews the certificates: the webhook here must run the latest.
            layer = webhook.pebble_layer(bundle.serial)
            return plan_has(self._webhook_container.get_plan(), layer)
        if bundle.renewal_due() is not None:
            return False
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return False
        stored = peer.data[self.app]
        return not self._owned(stored).drifted()

    def _reconcile_watch(self) -> None:
        """Give the watch a narrow token (renewed when due), then keep it running.

        The watch does not start before its token is in place: without it
        kubectl would find no credentials at all (the pod's token is not
        mounted in that container).
        """
        stored = self._stored
        now = time.time()
        issued, expires = stored.watch_token_issued, stored.watch_token_expires
        fresh = not watch_token.renewal_due(issued, expires, now)
        if not (fresh and watch_token.files_present(self._watch_container)):
            if not self._renew_watch_token(now):
                return
        if self._watch.configure():
            logger.info("started the profile namespace watch")

    def _renew_watch_token(self, now: float) -> bool:
        """Request a new token for the watch and write it for kubectl; whether it is in place."""
        ca = watch_token.charm_ca()
        if ca is None:
            self._watch_problem = ops.WaitingStatus(
                f"waiting for the cluster CA at {watch_token.CHARM_CA} in the charm container"
            )
            return False
        try:
            token = watch_token.request_token(self.app.name, self.model.name, now)
        except KubernetesError as e:
            logger.error("requesting the namespace watch's token failed: %s", e)
            if e.status == 404:
                self._watch_problem = ops.WaitingStatus(
                    "waiting for the leader to create the namespace watch's service account"
                )
            else:
                self._watch_problem = error_status(e, self.app.name)
            return False
        try:
            watch_token.write_files(self._watch_container, token, ca, self.model.name)
        except watch_token.TokenFilesError as e:
            logger.error("%s", e)
            self._watch_problem = ops.BlockedStatus(str(e))
            return False
        self._stored.watch_token_issued = token.issued
        self._stored.watch_token_expires = token.expires
        logger.info(
            "gave the namespace watch a new token of %s, valid until %s",
            watch_token.service_account(self.app.name),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.expires)),
        )
        if self._watch.is_running():
            self._watch.restart()
            logger.info("restarted the profile namespace watch with its new token")
        return True

    def _certificates(self) -> CertificateBundle | None:
        """The webhook's CA and serving certificate: made, or renewed when due, by the leader."""
        bundle = self._certs.current()
        if self._certs.changed and bundle is not None:
            logger.info("stored the webhook certificate (serial %s)", bundle.serial)
        return bundle

    def _offers(self) -> list[Offer]:
        """What every related app sends, endpoint by endpoint; reads only."""
        offers = []
        for endpoint, provider in self._providers.items():
            for relation in provider.relations:
                app = relation.app.name if relation.app else "?"
                try:
                    manifests = tuple(provider.manifests(relation))
                except InvalidManifestsError as e:
                    offers.append(Offer(endpoint, app, error=str(e)))
                    continue
                offers.append(Offer(endpoint, app, manifests))
        return offers

    def _current_plan(self) -> Plan:
        if self._plan is None:
            self._plan = dispatch.plan(self._offers())
        return self._plan

    def _reconcile_cluster(self, bundle: CertificateBundle, *, force: bool, routine: bool) -> None:
        """Leader: apply the CRD, the webhook and every app's objects in each profile namespace.

        A routine hook (update-status) checks what it would apply against what was
        applied last, with the namespaces known then, and does not talk to the
        cluster when they match: the namespace watch reports new namespaces.
        Objects are rendered only when their inputs differ from those of the
        objects applied last (their digest is kept beside the objects' hash).
        """
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return
        stored = peer.data[self.app]
        self._plan = plan = dispatch.plan(self._offers())
        previous_apps = set(json.loads(stored.get(APPS_KEY) or "[]"))
        related = {app for _, app in self._related_apps()}
        gone = sorted(previous_apps - related)
        context = self._own_context(bundle)
        owned = self._owned(stored)
        if routine and stored.get(HASH_KEY) and not force:
            force = owned.drifted()  # an object deleted or changed behind the charm's back
        settled = bool(stored.get(HASH_KEY)) and not force and not gone
        if routine and settled:
            known = json.loads(stored.get(NAMESPACES_KEY) or "[]")
            if _inputs_digest(context, plan, known) == stored.get(INPUTS_KEY):
                return
        try:
            namespaces = profile_namespaces()
            self._publish_namespaces(namespaces)
            digest = _inputs_digest(context, plan, namespaces)
            if settled and digest == stored.get(INPUTS_KEY):
                wanted = stored[HASH_KEY]  # the same inputs make the objects applied last
            else:
                own = self._own_manifests(context)
                wanted = _hash(own, plan, namespaces)
                if wanted != stored.get(HASH_KEY) or force or gone:
                    self._apply(own, plan, namespaces, gone)
                    owned.record()
                    logger.info(
                        "applied %d app(s)' objects in %d profile namespace(s)",
                        len(plan.objects),
                        len(namespaces),
                    )
        except KubernetesError as e:
            self._kubernetes_error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        applied = sorted((previous_apps | set(plan.objects)) - set(gone))
        _set(stored, HASH_KEY, wanted)
        _set(stored, INPUTS_KEY, digest)
        _set(stored, NAMESPACES_KEY, json.dumps(namespaces))
        _set(stored, APPS_KEY, json.dumps(applied) if applied else None)

    def _owned(self, stored: ops.RelationDataContent) -> OwnedObjects:
        return OwnedObjects(
            stored, OBJECTS_KEY, app=self.app.name, model=self.model.name, kinds=OWNED_KINDS
        )

    def _publish_namespaces(self, namespaces: list[str]) -> None:
        """Tell every requirer which profile namespaces exist (written only when changed)."""
        for provider in self._providers.values():
            provider.publish_namespaces(namespaces)

    def _related_apps(self) -> list[tuple[str, str]]:
        return [
            (endpoint, relation.app.name)
            for endpoint, provider in self._providers.items()
            for relation in provider.relations
            if relation.app is not None
        ]

    def _own_context(self, bundle: CertificateBundle) -> dict[str, Any]:
        return {
            "app": self.app.name,
            "namespace": self.model.name,
            "service": webhook.service_name(self.app.name),
            "port": webhook.PORT,
            "path": webhook.PATH,
            "webhook_name": f"{self.app.name}-{self.model.name}-poddefaults",
            "ca_bundle": base64.b64encode(bundle.ca_cert.encode()).decode(),
            "profile_label": namespace_watch.PROFILE_LABEL,
            "profile_value": namespace_watch.PROFILE_VALUE,
            "admission_review_versions": list(webhook.ADMISSION_REVIEW_VERSIONS),
            "watch_service_account": watch_token.service_account(self.app.name),
            "watch_cluster_name": f"{self.app.name}-{self.model.name}-namespace-watch",
        }

    @staticmethod
    def _own_manifests(context: dict[str, Any]) -> dict[str, str]:
        return {scope: render(TEMPLATES, [name], context) for scope, name in OWN_TEMPLATES.items()}

    def _apply(
        self, own: dict[str, str], plan: Plan, namespaces: list[str], gone: list[str]
    ) -> None:
        self._resources(CRDS_SCOPE, CRD_KINDS).reconcile(own[CRDS_SCOPE])
        self._resources(WEBHOOK_SCOPE, WEBHOOK_KINDS).reconcile(own[WEBHOOK_SCOPE])
        self._resources(RBAC_SCOPE, RBAC_KINDS).reconcile(own[RBAC_SCOPE])
        self._resources(WATCH_SCOPE, WATCH_KINDS).reconcile(own[WATCH_SCOPE])
        for app in plan.objects:
            for ns in namespaces:
                scope = dispatch.scope(app, ns)
                self._resources(scope, DISPATCHED_KINDS).reconcile(dispatch.render(plan, app, ns))
        for app in gone:
            for ns in namespaces:
                self._resources(dispatch.scope(app, ns), DISPATCHED_KINDS).delete()
            logger.info("removed %s's objects from the profile namespaces", app)

    def _resources(self, scope: str, kinds: tuple[Kind, ...]) -> Resources:
        return Resources(app=self.app.name, model=self.model.name, scope=scope, kinds=kinds)

    # --- remove ------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: remove the webhook, the users' role and what it put in namespaces.

        The PodDefault CRD stays: deleting it would delete the users' own PodDefaults.
        """
        if self.app.planned_units() > 0:
            return
        peer = self.model.get_relation(PEERS)
        apps = json.loads(peer.data[self.app].get(APPS_KEY) or "[]") if peer else []
        try:
            namespaces = profile_namespaces()
            for app in apps:
                for ns in namespaces:
                    self._resources(dispatch.scope(app, ns), DISPATCHED_KINDS).delete()
            self._resources(WEBHOOK_SCOPE, WEBHOOK_KINDS).delete()
            self._resources(RBAC_SCOPE, RBAC_KINDS).delete()
            self._resources(WATCH_SCOPE, WATCH_KINDS).delete()
        except KubernetesError as e:
            logger.error("deleting the Kubernetes objects failed: %s", e)

    # --- actions -----------------------------------------------------------------------

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # The status is the reconciled one, as after any hook.
        self._certs.remove_obsolete(event)
        self._reconcile(event)

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        if self._certs.refuse_rotation(event, peers=PEERS):
            return
        if not self._webhook_container.can_connect():
            event.fail("the webhook container is not reachable: try again later")
            return
        bundle = self._certs.rotate()
        logger.info("rotated the webhook's CA (serial %s)", bundle.ca_serial)
        self._webhook.configure(bundle)
        self._reconcile_cluster(bundle, force=True, routine=False)
        if self._kubernetes_error is not None:
            event.fail(
                f"the new certificates are in place but the webhook configuration was not "
                f"updated: {self._kubernetes_error}; the charm retries on its next hook"
            )
            return
        event.set_results(self._certs.results(bundle))

    # --- status ------------------------------------------------------------------------

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        statuses = self._workload_problems()
        if self.unit.is_leader():
            statuses += self._cluster_problems()
            statuses.append(ops.ActiveStatus(self._active_message()))
        else:
            statuses.append(ops.ActiveStatus())
        for status in statuses:
            event.add_status(status)
        # Only a hook that reconciled in full may say the unit is settled; any may say not.
        active = self._reconciled and all(isinstance(s, ops.ActiveStatus) for s in statuses)
        if self._stored.settled != active:
            self._stored.settled = active

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        for status in self._cluster_problems():
            event.add_status(status)
        event.add_status(ops.ActiveStatus(self._active_message()))

    def _workload_problems(self) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        if not self._webhook.can_connect():
            problems.append(ops.WaitingStatus("waiting for the poddefaults-webhook container"))
        elif self._certs.stored() is None:
            problems.append(ops.WaitingStatus("waiting for the leader to make the certificate"))
        elif not self._webhook.is_running():
            problems.append(ops.MaintenanceStatus("starting the PodDefault webhook"))
        elif not self._webhook.is_ready():
            problems.append(
                ops.WaitingStatus(
                    f"the PodDefault webhook is not ready yet (check {webhook.READY_CHECK})"
                )
            )
        if not self._watch.can_connect():
            problems.append(ops.WaitingStatus("waiting for the namespace-watch container"))
        elif self._watch_problem is not None:
            problems.append(self._watch_problem)
        elif not self._watch.is_running():
            problems.append(ops.MaintenanceStatus("starting the profile namespace watch"))
        return problems

    def _cluster_problems(self) -> list[ops.StatusBase]:
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return [ops.WaitingStatus("waiting for the peer relation")]
        problems: list[ops.StatusBase] = []
        if self._kubernetes_error is not None:
            problems.append(error_status(self._kubernetes_error, self.app.name))
        found = dispatch.problems(self._current_plan())
        if found:
            problems.append(ops.BlockedStatus(f"not dispatched: {'; '.join(found)}"))
        return problems

    def _active_message(self) -> str:
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return ""
        namespaces = json.loads(peer.data[self.app].get(NAMESPACES_KEY) or "[]")
        apps = len(self._current_plan().objects)
        return f"{apps} app(s) dispatched to {len(namespaces)} profile namespace(s)"


def _hash(own: dict[str, str], plan: Plan, namespaces: list[str]) -> str:
    parts: list[str] = [f"namespaces\0{','.join(namespaces)}"]
    parts += [f"{scope}\0{text}" for scope, text in sorted(own.items())]
    parts += [f"{s}\0{t}" for s, t in sorted(dispatch.hashable(plan, namespaces).items())]
    return manifest_hash(*parts)


def _inputs_digest(context: dict[str, Any], plan: Plan, namespaces: list[str]) -> str:
    """A digest of everything `_hash` covers is made from: the same digest, the same hash."""
    inputs = {"context": context, "objects": plan.objects, "namespaces": namespaces}
    return render_digest(TEMPLATES, sorted(OWN_TEMPLATES.values()), inputs)


def _set(databag: ops.RelationDataContent, key: str, value: str | None) -> None:
    """Write a key only when it changes; None removes it."""
    if value is None:
        if key in databag:
            del databag[key]
    elif databag.get(key) != value:
        databag[key] = value
