"""The knative-serving charm: Knative Serving v1.16.2 and net-istio v1.16.0.

The leader makes the webhook certificates (`CertificateKeeper`), applies the
CRDs, RBAC, config, webhooks, the data path's Deployments and the
cluster-local gateway (`knative_cluster`), runs the controller and both
webhooks under Pebble, and, once everything is applied, tells KServe where
Knative runs (`knative-serving`). Other units keep the processes stopped.
A settled unit's update-status looks only at what can drift.
"""

from __future__ import annotations

import hashlib
import json
import logging

import knative_cluster
import knative_workloads as wl
import ops
from knative_cluster import PEERS, IstioGateway
from knative_config import KnativeConfig

from kubeflow_charms import certificates, gateway_identity
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.controllers import (
    reconcile_events,
    rotate_webhook_certificates,
    settled_as_left,
)
from kubeflow_charms.gateway_identity import InvalidGatewayMetadataError
from kubeflow_charms.kubernetes import error_status
from kubeflow_charms.lifecycle import leader_pod
from kubeflow_charms.pebble import keep_stopped, service_running, start_when_changed
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.knative_serving import KnativeServing, KnativeServingProvider

logger = logging.getLogger(__name__)

GATEWAY = "gateway-metadata"
KNATIVE_SERVING = "knative-serving"
CERTS_LABEL = "webhook-certificates"
_LABEL = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"


def read_gateway(
    charm: ops.CharmBase, *, broken: bool = False
) -> tuple[IstioGateway | None, ops.StatusBase | None]:
    """The gateway's namespace and name (istio's gateway-metadata), or why there is none."""
    import re

    missing = f"add the {GATEWAY} relation to istio: Knative routes through its gateway"
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
    data = json.loads(relation.data[relation.app][gateway_identity.KEY])
    name, service = data.get("gateway_name"), data.get("deployment_name")
    if not isinstance(name, str) or not re.fullmatch(_LABEL, name):
        return None, ops.BlockedStatus(f"{GATEWAY}: gateway_name {name!r} is not a gateway name")
    if not isinstance(service, str) or not re.fullmatch(_LABEL, service):
        return None, ops.BlockedStatus(
            f"{GATEWAY}: deployment_name {service!r} is not a Service name"
        )
    return IstioGateway(gateway.namespace, name, service), None


class KnativeServingCharm(ops.CharmBase):
    """Knative Serving: the control plane (leader only), the data path, CRDs and config."""

    # The digest of the layer each container was last given (container: digest).
    _applied = ops.StoredState()
    # Whether the last full reconcile left this unit active, and (leader) when the
    # certificates fall due.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._applied.set_default(digests={})
        self._settled.set_default(active=False, next_renewal=0.0, message="")
        self._still_settled = False
        self._reconciled = False
        self._config_error: str | None = None
        self._gateway: tuple[IstioGateway | None, ops.StatusBase | None] | None = None
        dns_names = [
            name
            for workload in wl.WEBHOOKS
            for name in certificates.service_dns_names(workload.service, self.model.name)
        ]
        self._certs = certificates.CertificateKeeper(
            self,
            label=CERTS_LABEL,
            ca_name=f"{self.app.name} webhook CA ({self.model.name})",
            dns_names=dns_names,
            description="Knative Serving's admission webhook certificates",
        )
        self._cluster = knative_cluster.KnativeCluster(self)
        self._provider = KnativeServingProvider(self, KNATIVE_SERVING)
        on = self.on
        for event in (
            *reconcile_events(self, peers=PEERS, containers=(w.container for w in wl.WORKLOADS)),
            on[GATEWAY].relation_created,
            on[GATEWAY].relation_changed,
            on[GATEWAY].relation_broken,
            on[KNATIVE_SERVING].relation_created,
            on[KNATIVE_SERVING].relation_joined,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.rotate_certificates_action, self._on_rotate_certificates)
        framework.observe(on.remove, self._cluster.remove)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile ---------------------------------------------------------------------

    def _load(self) -> KnativeConfig | None:
        try:
            return self.load_config(KnativeConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = settled_as_left(
                self.unit,
                wl.WORKLOADS,
                next_renewal=self._settled.next_renewal,
                drifted=self._cluster.drifted,
            )
            if self._still_settled:
                return
        config = self._load()
        broken = isinstance(event, ops.RelationBrokenEvent) and event.relation.name == GATEWAY
        self._gateway = read_gateway(self, broken=broken)
        if config is None or isinstance(self._gateway[1], ops.BlockedStatus):
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
        config: KnativeConfig,
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
        bundle = bundle or self._certs.current()
        if bundle is None:
            return
        if self._certs.changed:
            logger.info("stored new webhook certificates (serial %s)", bundle.serial)
        renewal = bundle.next_renewal().timestamp()
        if self._settled.next_renewal != renewal:
            self._settled.next_renewal = renewal
        gateway = self._gateway[0] if self._gateway else None
        if gateway is None:
            # Without the gateway there is no config-istio: nothing is served.
            for workload in wl.WORKLOADS:
                self._stop(workload)
            self._provider.publish(None)
            return
        self._cluster.reconcile(
            config,
            bundle,
            gateway=gateway,
            force=force or self._certs.changed,
            routine=routine,
        )
        if not self._cluster.base_applied:
            # Keep what kserve was told: Knative's objects from the last good apply are
            # still there, and withdrawing would switch KServe's default to RawDeployment
            # (stamping every InferenceService made meanwhile) and restart its controller.
            return
        for workload in wl.WORKLOADS:
            self._configure(workload, restarted=restarted)
        self._provider.publish(
            KnativeServing(
                namespace=self.model.name,
                local_gateway=f"{self.model.name}/{knative_cluster.LOCAL_GATEWAY}",
                local_gateway_service=knative_cluster.local_gateway_service(gateway.namespace),
                domain=config.domain,
                version=wl.VERSION,
            )
        )

    def _layer(self, workload: wl.Workload, *, leader: bool) -> ops.pebble.LayerDict:
        pod = leader_pod(self.app.name, self.unit)
        return wl.layer(workload, leader=leader, namespace=self.model.name, pod=pod)

    def _configure(self, workload: wl.Workload, *, restarted: bool) -> None:
        """Leader: (re)start the process when its layer changed."""
        container = self.unit.get_container(workload.container)
        layer = self._layer(workload, leader=True)
        if start_when_changed(
            container,
            workload.service,
            layer,
            digest=hashlib.sha256(json.dumps(layer, sort_keys=True).encode()).hexdigest(),
            digests=self._digests,
            restarted=restarted,
        ):
            logger.info("started %s", workload.service)

    def _stop(self, workload: wl.Workload) -> None:
        """Not the leader (or no gateway yet): the process and its check stay stopped."""
        container = self.unit.get_container(workload.container)
        layer = self._layer(workload, leader=False)
        if keep_stopped(container, workload.service, workload.check, layer, self._digests):
            logger.info("stopped %s", workload.service)

    def _digests(self) -> dict[str, str]:
        """The digest each container was last given, kept in stored state."""
        return self._applied.digests

    # --- certificates ------------------------------------------------------------------

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        self._certs.remove_obsolete(event)

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        def apply(config: KnativeConfig, bundle: CertificateBundle) -> None:
            self._gateway = read_gateway(self)
            self._reconciled = True
            self._apply(config, force=True, routine=False, bundle=bundle)

        rotate_webhook_certificates(
            event,
            self._certs,
            self._cluster,
            peers=PEERS,
            containers=[self.unit.get_container(w.container) for w in wl.WORKLOADS],
            load=self._load,
            problem=lambda: self._config_error,
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
        config = self._load() if self._config_error is None else None
        if config is None:
            return [ops.BlockedStatus(self._config_error or "")]
        out: list[ops.StatusBase] = []
        _, gateway_problem = self._gateway or read_gateway(self)
        if gateway_problem is not None:
            out.append(gateway_problem)
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
            return [*out, ops.ActiveStatus("standby: the control plane runs on the leader")]
        if self.model.get_relation(PEERS) is None:
            out.append(ops.WaitingStatus("waiting for the peer relation"))
        elif self._certs.stored() is None:
            out.append(ops.WaitingStatus("waiting for the webhook certificates"))
        if self._cluster.error is not None:
            out.append(error_status(self._cluster.error, self.app.name))
        out.append(ops.ActiveStatus(f"Knative Serving {wl.VERSION}, routes *.{config.domain}"))
        return out

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(ops.ActiveStatus())
