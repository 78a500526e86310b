"""The kserve charm: KServe v0.14.1's controllers, RawDeployment or Serverless, and its objects.

The leader makes the webhook certificates (`CertificateKeeper`), applies the
CRDs, RBAC, `inferenceservice-config` (which needs istio's gateway) and
webhooks (`kserve_cluster`), runs both controllers (Pebble services in their
own containers), then applies the serving runtimes once the KServe
controller serves its webhooks, and hands every profile the ServiceAccount
`kserve-models` (`kserve_profiles`). Other units keep the controllers
stopped. A settled unit's update-status looks only at what can drift.

Related to knative-serving, once that charm says Knative Serving is in
place, the default deployment mode is Serverless, KServe's ingress config
names Knative's local gateway, and the controller restarts with Knative's
namespace and version in its environment (`kserve_workloads`); without the
relation, RawDeployment as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

import kserve_cluster
import kserve_profiles
import kserve_workloads as wl
import ops
from kserve_cluster import PEERS
from kserve_config import KServeConfig

from kubeflow_charms import certificates, gateway_identity
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.controllers import (
    reconcile_events,
    rotate_webhook_certificates,
    settled_as_left,
)
from kubeflow_charms.gateway_identity import InvalidGatewayMetadataError
from kubeflow_charms.kubernetes import error_status
from kubeflow_charms.pebble import keep_stopped, service_running, start_when_changed
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.knative_serving import (
    InvalidKnativeServingError,
    KnativeServing,
    KnativeServingRequirer,
)

logger = logging.getLogger(__name__)

GATEWAY = "gateway-metadata"
KNATIVE = "knative-serving"
SERVICE_ACCOUNTS = kserve_profiles.SERVICE_ACCOUNTS
CERTS_LABEL = "webhook-certificates"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def read_gateway(
    charm: ops.CharmBase, *, broken: bool = False
) -> tuple[tuple[str, str] | None, ops.StatusBase | None]:
    """The gateway's namespace and name (istio's gateway-metadata), or why there is none.

    `gateway_identity.read` checks the namespace; the name, which KServe's
    `ingressGateway` needs too, is read here from the same JSON.
    """
    missing = f"add the {GATEWAY} relation to istio: KServe's ingress config names its gateway"
    try:
        gateway, problem = gateway_identity.read(
            charm, missing=missing, endpoint=GATEWAY, broken=broken
        )
    except InvalidGatewayMetadataError as e:
        return None, ops.BlockedStatus(f"{GATEWAY}: {e}")
    if gateway is None:
        return None, problem
    relation = charm.model.get_relation(GATEWAY)
    assert relation is not None and relation.app is not None  # read found its data
    name = json.loads(relation.data[relation.app][gateway_identity.KEY]).get("gateway_name")
    if not isinstance(name, str) or not _NAME.match(name):
        return None, ops.BlockedStatus(f"{GATEWAY}: gateway_name {name!r} is not a gateway name")
    return (gateway.namespace, name), None


def read_knative(
    charm: ops.CharmBase, *, broken: bool = False
) -> tuple[KnativeServing | None, ops.BlockedStatus | None]:
    """Knative Serving, once its charm says it is in place (None: RawDeployment), or why not.

    Malformed data blocks, naming the relation and the keys.
    """
    if broken:
        return None, None
    try:
        return KnativeServingRequirer(charm, KNATIVE).get(), None
    except InvalidKnativeServingError as e:
        return None, ops.BlockedStatus(f"{KNATIVE}: {e}")


def _mode(config: KServeConfig, knative: KnativeServing | None) -> str:
    """The active status: the default deployment mode and the InferenceServices' hosts."""
    if knative is None:
        return f"RawDeployment, hosts *.{config.ingress_domain}"
    return f"Serverless (Knative {knative.version}), hosts <name>.<namespace>.{knative.domain}"


class KServeCharm(ops.CharmBase):
    """KServe: the controllers (leader only), CRDs, runtimes, config, webhooks and roles."""

    # The digest of the layer and files each container was last given (container: digest).
    _applied = ops.StoredState()
    # Whether the last full reconcile left this unit active, and (leader) when the
    # certificates fall due: an update-status on a settled unit looks only at what can
    # drift without an event of its own.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._applied.set_default(digests={})
        self._settled.set_default(active=False, next_renewal=0.0, message="")
        self._still_settled = False
        self._reconciled = False
        self._config_error: str | None = None
        self._gateway: tuple[tuple[str, str] | None, ops.StatusBase | None] | None = None
        self._knative: tuple[KnativeServing | None, ops.BlockedStatus | None] | None = None
        self._certs = certificates.CertificateKeeper(
            self,
            label=CERTS_LABEL,
            ca_name=f"{self.app.name} webhook CA ({self.model.name})",
            dns_names=certificates.service_dns_names(wl.WEBHOOK_SERVICE, self.model.name),
            description="KServe's admission webhook certificates",
        )
        self._cluster = kserve_cluster.KServeCluster(self)
        on = self.on
        for event in (
            *reconcile_events(self, peers=PEERS, containers=(w.container for w in wl.WORKLOADS)),
            on[GATEWAY].relation_created,
            on[GATEWAY].relation_changed,
            on[GATEWAY].relation_broken,
            on[KNATIVE].relation_changed,
            on[KNATIVE].relation_broken,
            on[SERVICE_ACCOUNTS].relation_created,
            on[SERVICE_ACCOUNTS].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on[SERVICE_ACCOUNTS].relation_broken, self._on_accounts_broken)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.rotate_certificates_action, self._on_rotate_certificates)
        framework.observe(on.remove, self._cluster.remove)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile ---------------------------------------------------------------------

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether the services, certificates and objects are as left."""
        return settled_as_left(
            self.unit,
            wl.WORKLOADS,
            next_renewal=self._settled.next_renewal,
            drifted=self._cluster.drifted,
        )

    def _load(self) -> KServeConfig | None:
        try:
            return self.load_config(KServeConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    def _record(self) -> ops.RelationDataContent | None:
        peer = self.model.get_relation(PEERS)
        return peer.data[self.app] if peer is not None else None

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        config = self._load()
        broken = event.relation.name if isinstance(event, ops.RelationBrokenEvent) else None
        self._gateway = read_gateway(self, broken=broken == GATEWAY)
        self._knative = read_knative(self, broken=broken == KNATIVE)
        if (
            config is None
            or isinstance(self._gateway[1], ops.BlockedStatus)
            or self._knative[1] is not None
        ):
            return  # bad input changes nothing
        self._reconciled = True
        self._apply(
            config,
            force=isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent)),
            routine=isinstance(event, ops.UpdateStatusEvent),
            restarted=isinstance(event, ops.PebbleReadyEvent),
        )

    def _apply(
        self,
        config: KServeConfig,
        *,
        force: bool,
        routine: bool,
        restarted: bool = False,
        bundle: CertificateBundle | None = None,
    ) -> None:
        if not self.unit.is_leader():
            for workload in wl.WORKLOADS:
                self._stop(workload)
            return
        if self.model.get_relation(PEERS) is None:
            return  # the peer relation keeps what was applied: it comes with the first hooks
        kserve_profiles.publish(self, config.storage_secret, self._record())
        bundle = bundle or self._certs.current()
        if bundle is None:
            return
        if self._certs.changed:
            logger.info("stored new webhook certificates (serial %s)", bundle.serial)
        renewal = bundle.next_renewal().timestamp()
        if self._settled.next_renewal != renewal:
            self._settled.next_renewal = renewal
        gateway = self._gateway[0] if self._gateway else None
        knative = self._knative[0] if self._knative else None
        if gateway is None:
            # The controller cannot start without its ingress config, which names the gateway.
            for workload in wl.WORKLOADS:
                self._stop(workload)
            return
        self._cluster.reconcile_base(
            config,
            bundle,
            gateway_namespace=gateway[0],
            gateway_name=gateway[1],
            knative=knative,
            force=force or self._certs.changed,
            routine=routine,
        )
        if not self._cluster.base_applied:
            return
        for workload in wl.WORKLOADS:
            self._configure(workload, bundle, knative, restarted=restarted)
        controller = self.unit.get_container(wl.CONTROLLER.container)
        self._cluster.reconcile_runtimes(
            config,
            controller_running=bool(service_running(controller, wl.CONTROLLER.service)),
            force=force or self._certs.changed,
            routine=routine,
        )

    def _configure(
        self,
        workload: wl.Workload,
        bundle: CertificateBundle,
        knative: KnativeServing | None,
        *,
        restarted: bool,
    ):
        """Leader: write the certificate, (re)start the controller when its layer changed."""
        container = self.unit.get_container(workload.container)
        layer = wl.layer(
            workload,
            leader=True,
            namespace=self.model.name,
            serial=bundle.serial,
            knative=(knative.namespace, knative.version) if knative else None,
        )

        def push() -> None:
            if workload is wl.CONTROLLER:
                owner = {"user_id": wl.UID, "group_id": wl.GID, "make_dirs": True}
                container.push(wl.CERT_FILE, bundle.tls_cert, permissions=0o644, **owner)
                container.push(wl.KEY_FILE, bundle.tls_key, permissions=0o600, **owner)

        if start_when_changed(
            container,
            workload.service,
            layer,
            digest=hashlib.sha256(json.dumps(layer, sort_keys=True).encode()).hexdigest(),
            digests=self._digests,
            restarted=restarted,
            push=push,
        ):
            logger.info("started %s", workload.service)

    def _stop(self, workload: wl.Workload) -> None:
        """Not the leader (or no gateway yet): the controller and its check stay stopped."""
        container = self.unit.get_container(workload.container)
        layer = wl.layer(workload, leader=False, namespace=self.model.name, serial="")
        if keep_stopped(container, workload.service, workload.check, layer, self._digests):
            logger.info("stopped %s", workload.service)

    def _on_accounts_broken(self, event: ops.RelationBrokenEvent) -> None:
        kserve_profiles.revoke(self, event, self._record())

    def _digests(self) -> dict[str, str]:
        """The digest each container was last given, kept in stored state."""
        return self._applied.digests

    # --- certificates ------------------------------------------------------------------

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        self._certs.remove_obsolete(event)

    def _load_for_rotation(self) -> KServeConfig | None:
        """The options, and Knative's data read: malformed data refuses the action too."""
        config = self._load()
        self._knative = read_knative(self)
        return config if self._knative[1] is None else None

    def _rotation_problem(self) -> str | None:
        if self._config_error is not None:
            return self._config_error
        return self._knative[1].message if self._knative and self._knative[1] else None

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        def apply(config: KServeConfig, bundle: CertificateBundle) -> None:
            self._gateway = read_gateway(self)
            self._reconciled = True
            self._apply(config, force=True, routine=False, bundle=bundle)

        rotate_webhook_certificates(
            event,
            self._certs,
            self._cluster,
            peers=PEERS,
            containers=[self.unit.get_container(w.container) for w in wl.WORKLOADS],
            load=self._load_for_rotation,
            problem=self._rotation_problem,
            apply=apply,
        )

    # --- status ------------------------------------------------------------------------

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            event.add_status(ops.ActiveStatus(self._settled.message))
            return
        statuses = self._statuses()
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)
        active = [s for s in statuses if isinstance(s, ops.ActiveStatus)]
        message = active[0].message if active and len(active) == len(statuses) else ""
        if self._reconciled and self._settled.message != message:
            self._settled.message = message

    def _statuses(self) -> list[ops.StatusBase]:
        if self._config_error is None:
            config = self._load()
        else:
            config = None
        if config is None:
            return [ops.BlockedStatus(self._config_error or "")]
        _, gateway_problem = self._gateway or read_gateway(self)
        knative, knative_problem = self._knative or read_knative(self)
        out = [p for p in (gateway_problem, knative_problem) if p is not None]
        leader = self.unit.is_leader()
        for workload in wl.WORKLOADS:
            running = service_running(
                self.unit.get_container(workload.container), workload.service
            )
            if running is None:
                out.append(ops.WaitingStatus(f"waiting for the {workload.container} container"))
            elif leader and not running and gateway_problem is None:
                out.append(ops.MaintenanceStatus(f"starting {workload.service}"))
        if not leader:
            return [*out, ops.ActiveStatus("standby: the controllers run on the leader")]
        if self.model.get_relation(PEERS) is None:
            out.append(ops.WaitingStatus("waiting for the peer relation"))
        elif self._certs.stored() is None:
            out.append(ops.WaitingStatus("waiting for the webhook certificates"))
        if self._cluster.error is not None:
            out.append(error_status(self._cluster.error, self.app.name))
        elif self._cluster.runtimes_waiting:
            out.append(
                ops.WaitingStatus("waiting for the KServe controller to apply the runtimes")
            )
        out.append(ops.ActiveStatus(_mode(config, knative)))
        return out

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(ops.ActiveStatus())
