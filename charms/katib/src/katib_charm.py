"""The katib charm: Katib's controller, UI and DB manager under Pebble, and its cluster objects.

Each hook reconciles everything from `_reconcile`: the leader asks for the
database and publishes the route and links (`katib_data`, `katib_route`,
`katib_links`), makes or renews the webhooks' certificates, applies the
cluster objects (`katib_cluster`) and runs the controller; every unit runs
the UI (once istio names its gateway) and the DB manager (once the database
is there). A settled unit's update-status looks only at what can drift.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import katib_cluster
import katib_data
import katib_links
import katib_route
import katib_workloads as wl
import ops
from katib_config import KatibConfig

from kubeflow_charms import certificates, gateway_identity
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.controllers import reconcile_events, settled_as_left
from kubeflow_charms.gateway_identity import Gateway, InvalidGatewayMetadataError
from kubeflow_charms.pebble import service_running, start_when_changed
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError
from kubeflow_interfaces.trial_kinds import InvalidTrialKindsError, TrialKind, TrialKindsRequirer

logger = logging.getLogger(__name__)

DATABASE = katib_data.DATABASE
ROUTE = katib_route.ROUTE
LINKS = katib_links.DASHBOARD_LINKS
GATEWAY = "gateway-metadata"
TRIAL_KINDS = "trial-kinds"
PEERS = katib_cluster.PEERS
CERTS_LABEL = "webhook-certificates"
# Peer app databag: the digest of the requests, route and links published last.
PUBLISHED_KEY = "published"


class KatibCharm(ops.CharmBase):
    """Katib: the controller (leader only), the UI and the DB manager."""

    # The checks Pebble said fail (check name: container), until it says they recovered.
    _checks = ops.StoredState()
    # The digest of the layer and files each container was last given (container: digest).
    _applied = ops.StoredState()
    # Whether the last full reconcile left this unit active, and when (seconds since the
    # epoch) the webhooks' certificates are next due for renewal, as the leader saw it.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._checks.set_default(failing={})
        self._applied.set_default(digests={})
        self._settled.set_default(active=False, renewal=0.0)
        self._still_settled = False
        self._reconciled = False
        self._pebble_restarted = False
        self._config_error: str | None = None
        self._kinds_error: str | None = None
        self._route_error: str | None = None
        self._cert_problem: str | None = None
        self._data: katib_data.DataInputs | None = None
        self._gateway_read: tuple[Gateway | None, ops.StatusBase | None] | None = None
        self._cluster = katib_cluster.KatibCluster(self)
        self._certs = certificates.CertificateKeeper(
            self,
            label=CERTS_LABEL,
            ca_name=f"{self.app.name} webhook CA ({self.model.name})",
            dns_names=certificates.service_dns_names(wl.CONTROLLER_SERVICE, self.model.name),
            description="Katib's admission webhook certificates",
        )
        on = self.on
        relations = (DATABASE, ROUTE, LINKS, GATEWAY, TRIAL_KINDS)
        for event in (
            *reconcile_events(self, peers=PEERS, containers=(w.container for w in wl.WORKLOADS)),
            *(on[r].relation_created for r in relations),
            *(on[r].relation_changed for r in relations),
            *(on[r].relation_broken for r in relations),
        ):
            framework.observe(event, self._reconcile)
        for workload in wl.WORKLOADS:
            container = on[workload.container]
            framework.observe(container.pebble_check_failed, self._on_check_failed)
            framework.observe(container.pebble_check_recovered, self._on_check_recovered)
            framework.observe(container.pebble_ready, self._on_checks_restarted)
        framework.observe(on.remove, self._cluster.remove)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.rotate_certificates_action, self._on_rotate_certificates)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile ------------------------------------------------------------------

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether services, checks, certificates and objects are as left."""
        if self._checks.failing:
            return False
        return settled_as_left(
            self.unit,
            wl.WORKLOADS,
            next_renewal=self._settled.renewal,
            drifted=self._cluster.drifted,
        )

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        self._pebble_restarted = isinstance(event, ops.PebbleReadyEvent)
        self._publish_requests()
        config = self._load()
        kinds = self._kinds()
        user_header = self._user_header()
        if config is None or kinds is None or user_header is None:
            return  # bad input changes nothing
        self._reconciled = True
        self._data = data = katib_data.read(self)
        broken = isinstance(event, ops.RelationBrokenEvent) and event.relation.name == GATEWAY
        self._gateway_read = self._read_gateway(broken=broken)
        gateway = self._gateway_read[0]
        bundle = self._certificates()
        leader = self.unit.is_leader()
        if leader and bundle is not None:
            self._cluster.reconcile(
                config,
                kinds,
                bundle,
                gateway,
                # A new leader points the webhook Service at its own pod; a new
                # certificate goes into the webhooks' caBundle in this same hook.
                force=isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent)),
                routine=isinstance(event, ops.UpdateStatusEvent),
            )
        self._configure_controller(kinds, bundle, leader)
        if gateway is None:
            self._stop(wl.UI)
        else:
            layer = wl.ui_layer(namespace=self.model.name, user_header=user_header)
            self._configure(wl.UI, layer, [])
        if data.database is not None:
            env = wl.db_manager_env(data.database)
            self._configure(wl.DB_MANAGER, wl.db_manager_layer(env), [env])
        elif data.relation_missing:
            self._stop(wl.DB_MANAGER)

    def _configure_controller(
        self, kinds: list[TrialKind], bundle: CertificateBundle | None, leader: bool
    ) -> None:
        if not leader or bundle is None:
            self._stop(wl.CONTROLLER)
            return
        config_file = wl.controller_config_file(kinds)
        layer = wl.controller_layer(
            namespace=self.model.name, leader=True, config_file=config_file, serial=bundle.serial
        )
        files = [
            config_file,
            wl.File(wl.CONTROLLER.container, wl.CERT_FILE, bundle.tls_cert, 0o644),
            wl.File(wl.CONTROLLER.container, wl.KEY_FILE, bundle.tls_key, 0o600),
        ]
        self._configure(wl.CONTROLLER, layer, files)

    def _certificates(self) -> CertificateBundle | None:
        """The webhooks' CA and serving certificate: made or renewed by the leader when due."""
        try:
            bundle = self._certs.current()
        except ops.ModelError as e:
            self._cert_problem = f"cannot keep the webhook certificates: {e}"
            logger.error(self._cert_problem)
            return None
        if bundle is not None and self.unit.is_leader():
            self._note_renewal(bundle)
            if self._certs.changed:
                logger.info("stored the webhook certificate (serial %s)", bundle.serial)
        return bundle

    def _note_renewal(self, bundle: CertificateBundle) -> None:
        """Keep when the certificates are next due: a settled hook compares the clock with it."""
        renewal = bundle.next_renewal().timestamp()
        if self._settled.renewal != renewal:
            self._settled.renewal = renewal

    def _publish_requests(self) -> None:
        """Leader: ask for the database, publish the route and the links (when changed)."""
        if not self.unit.is_leader():
            return
        peer = self.model.get_relation(PEERS)
        relations = {
            name: relation.id
            for name in (DATABASE, ROUTE, LINKS)
            if (relation := self.model.get_relation(name)) is not None
        }
        route = self.model.get_relation(ROUTE)
        wanted = json.dumps(
            {"relations": relations, "route": katib_route.config(self) if route else None},
            sort_keys=True,
        )
        stamp = hashlib.sha256(wanted.encode()).hexdigest()
        if peer is not None and peer.data[self.app].get(PUBLISHED_KEY) == stamp:
            return
        katib_data.request(self)
        katib_route.publish(self)
        katib_links.publish(self)
        if peer is not None:
            peer.data[self.app][PUBLISHED_KEY] = stamp

    def _load(self) -> KatibConfig | None:
        try:
            return self.load_config(KatibConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    def _kinds(self) -> list[TrialKind] | None:
        try:
            return TrialKindsRequirer(self, TRIAL_KINDS).kinds()
        except InvalidTrialKindsError as e:
            self._kinds_error = f"{TRIAL_KINDS}: {e}"
            return None

    def _user_header(self) -> tuple[str, str] | None:
        try:
            return katib_route.user_header(self)
        except InvalidRouteDataError as e:
            self._route_error = f"{ROUTE}: {e}"
            return None

    def _configure(self, workload: wl.Workload, layer: ops.pebble.LayerDict, files: list[wl.File]):
        container = self.unit.get_container(workload.container)

        def push() -> None:
            for f in files:
                container.push(f.path, f.content, make_dirs=True, permissions=f.permissions)

        start_when_changed(
            container,
            workload.service,
            layer,
            digest=_digest(layer, files),
            digests=self._digests,
            restarted=self._pebble_restarted,
            push=push,
        )

    def _digests(self) -> dict[str, str]:
        """The digest each container was last given, kept in stored state."""
        return self._applied.digests

    def _stop(self, workload: wl.Workload) -> None:
        container = self.unit.get_container(workload.container)
        if service_running(container, workload.service):
            container.stop(workload.service)
            container.stop_checks(workload.check)

    def _read_gateway(
        self, *, broken: bool = False
    ) -> tuple[Gateway | None, ops.StatusBase | None]:
        """The gateway istio names, or the status saying why there is none."""
        missing = (
            f"add the {GATEWAY} relation to istio: only its gateway may send the user "
            "header to the UI"
        )
        try:
            return gateway_identity.read(self, missing=missing, endpoint=GATEWAY, broken=broken)
        except InvalidGatewayMetadataError as e:
            return None, ops.BlockedStatus(f"{GATEWAY}: {e}")

    # --- certificates -----------------------------------------------------------------

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        self._certs.remove_obsolete(event)
        self._reconcile(event)

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        if self._certs.refuse_rotation(event, peers=PEERS):
            return
        config, kinds = self._load(), self._kinds()
        if config is None or kinds is None:
            event.fail(f"fix the charm's input first: {self._config_error or self._kinds_error}")
            return
        bundle = self._certs.rotate()
        self._note_renewal(bundle)
        logger.info("rotated the webhooks' CA (serial %s)", bundle.ca_serial)
        gateway, _ = self._read_gateway()
        self._cluster.reconcile(config, kinds, bundle, gateway, force=True, routine=False)
        self._configure_controller(kinds, bundle, leader=True)
        if self._cluster.error is not None:
            event.fail(
                "the new certificates are in place but the webhook configurations were not "
                f"updated: {self._cluster.error}; the charm retries on its next hook"
            )
            return
        event.set_results(self._certs.results(bundle))

    # --- checks -----------------------------------------------------------------------

    def _on_check_failed(self, event: ops.PebbleCheckFailedEvent) -> None:
        logger.warning("check %s of %s fails", event.info.name, event.workload.name)
        self._checks.failing[event.info.name] = event.workload.name

    def _on_check_recovered(self, event: ops.PebbleCheckRecoveredEvent) -> None:
        if self._checks.failing.pop(event.info.name, None) is not None:
            logger.info("check %s of %s passes again", event.info.name, event.workload.name)

    def _on_checks_restarted(self, event: ops.PebbleReadyEvent) -> None:
        for check, container in list(self._checks.failing.items()):
            if container == event.workload.name:
                del self._checks.failing[check]

    # --- status -----------------------------------------------------------------------

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            event.add_status(ops.ActiveStatus())
            return
        statuses = self._unit_statuses()
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _input_error(self) -> str | None:
        """What is wrong with the config or a relation's data, checked in this hook or now."""
        if self._config_error is None:
            self._load()
        if self._kinds_error is None:
            self._kinds()
        if self._route_error is None:
            self._user_header()
        return self._config_error or self._kinds_error or self._route_error

    def _unit_statuses(self) -> list[ops.StatusBase]:
        if (error := self._input_error()) is not None:
            return [ops.BlockedStatus(error)]
        out: list[ops.StatusBase] = []
        if self.model.get_relation(PEERS) is None:
            out.append(ops.WaitingStatus("waiting for the peer relation"))
        if (cluster := self._cluster.status()) is not None:
            out.append(cluster)
        if self._cert_problem is not None:
            out.append(ops.WaitingStatus(self._cert_problem))
        elif self.unit.is_leader() and self._certs.stored() is None:
            out.append(ops.WaitingStatus("waiting for the webhook certificates"))
        for check, container in sorted(self._checks.failing.items()):
            out.append(ops.WaitingStatus(f"{container} is not ready (check {check} fails)"))
        _, gateway_problem = self._gateway_read or self._read_gateway()
        if gateway_problem is not None:
            out.append(gateway_problem)
        data = self._data or katib_data.read(self)
        out.append(data.status or ops.ActiveStatus())
        return out

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(ops.ActiveStatus())


def _digest(layer: ops.pebble.LayerDict, files: list[wl.File]) -> str:
    """A digest of a container's layer and the files pushed with it."""
    parts = [layer, [dataclasses.asdict(f) for f in files]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
