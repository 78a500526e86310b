"""The kubeflow-trainer charm: Kubeflow Trainer v2.1.0 and the JobSet v0.10.1 it runs on.

The leader runs both controllers (Pebble services in their own containers),
makes their webhook certificates (`CertificateKeeper`: one CA and serving
certificate covering both webhook Services), applies the CRDs, RBAC,
webhooks and ClusterTrainingRuntimes (`trainer_cluster`), and offers Katib
the TrainJob kind (`trial-kinds`) once its CRDs are in place. Other units
keep the controllers stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import ops
import trainer_cluster
import trainer_workloads as wl
from trainer_cluster import PEERS
from trainer_config import TrainerConfig

from kubeflow_charms import certificates
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.controllers import (
    reconcile_events,
    rotate_webhook_certificates,
    settled_as_left,
)
from kubeflow_charms.kubernetes import error_status
from kubeflow_charms.pebble import keep_stopped, service_running, start_when_changed
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.trial_kinds import OwnedResources, TrialKind, TrialKindsProvider

logger = logging.getLogger(__name__)

TRIAL_KINDS = "trial-kinds"
CERTS_LABEL = "webhook-certificates"

# What Katib v0.19.0 defaults for a TrainJob trial (kubeflow/katib v0.19.0
# pkg/apis/controller/experiments/v1beta1/constants.go); the container is `node`
# (examples/v1beta1/kubeflow-trainer/trainjob-pytorch.yaml). A TrainJob makes a
# JobSet, which makes Jobs, which make the pods.
TRAINJOB_TRIAL = TrialKind(
    kind="TrainJob",
    api_version="trainer.kubeflow.org/v1alpha1",
    plural="trainjobs",
    success_condition='status.conditions.#(type=="Complete")#|#(status=="True")#',
    failure_condition='status.conditions.#(type=="Failed")#|#(status=="True")#',
    primary_pod_labels={
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    },
    primary_container="node",
    owned=(OwnedResources("jobset.x-k8s.io", ("jobsets",)), OwnedResources("batch", ("jobs",))),
)


def dns_names(namespace: str) -> list[str]:
    """The names the API server reaches either webhook Service by; the first is the CN."""
    return certificates.service_dns_names(
        wl.TRAINER_SERVICE, namespace
    ) + certificates.service_dns_names(wl.JOBSET_SERVICE, namespace)


class KubeflowTrainerCharm(ops.CharmBase):
    """Kubeflow Trainer and JobSet: controllers, webhooks, CRDs and training runtimes."""

    # The digest of the layer and files each container was last given (container: digest).
    _applied = ops.StoredState()
    # Whether the last full reconcile left this unit active, and (leader) when the
    # certificates fall due: an update-status on a settled unit looks only at what can
    # drift without an event of its own.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._applied.set_default(digests={})
        self._settled.set_default(active=False, next_renewal=0.0)
        self._still_settled = False
        self._reconciled = False
        self._config_error: str | None = None
        self._certs = certificates.CertificateKeeper(
            self,
            label=CERTS_LABEL,
            ca_name=f"{self.app.name} webhook CA ({self.model.name})",
            dns_names=dns_names(self.model.name),
            description="Trainer and JobSet webhook certificates",
        )
        self._cluster = trainer_cluster.TrainerCluster(self)
        self._trial_kinds = TrialKindsProvider(self, TRIAL_KINDS)
        on = self.on
        for event in (
            *reconcile_events(self, peers=PEERS, containers=(w.container for w in wl.WORKLOADS)),
            on[TRIAL_KINDS].relation_created,
            on[TRIAL_KINDS].relation_changed,
        ):
            framework.observe(event, self._reconcile)
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

    def _load(self) -> TrainerConfig | None:
        try:
            return self.load_config(TrainerConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        config = self._load()
        if config is None:
            return  # a bad option changes nothing
        self._reconciled = True
        force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
        self._apply(
            config,
            force=force,
            routine=isinstance(event, ops.UpdateStatusEvent),
            restarted=isinstance(event, ops.PebbleReadyEvent),
        )

    def _apply(
        self,
        config: TrainerConfig,
        *,
        force: bool,
        routine: bool,
        restarted: bool = False,
        bundle: CertificateBundle | None = None,
    ) -> None:
        leader = self.unit.is_leader()
        if not leader:
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
        for workload in wl.WORKLOADS:
            self._configure(workload, bundle, restarted=restarted)
        trainer = self.unit.get_container(wl.TRAINER.container)
        self._cluster.reconcile(
            config,
            bundle,
            trainer_running=bool(service_running(trainer, wl.TRAINER.service)),
            force=force or self._certs.changed,
            routine=routine,
        )
        if self._cluster.base_applied:
            self._trial_kinds.publish([TRAINJOB_TRIAL])
        renewal = bundle.next_renewal().timestamp()
        if self._settled.next_renewal != renewal:
            self._settled.next_renewal = renewal

    def _configure(self, workload: wl.Workload, bundle: CertificateBundle, *, restarted: bool):
        """Leader: write the certificate and config, (re)start the controller when changed."""
        container = self.unit.get_container(workload.container)
        layer = wl.layer(workload, leader=True, serial=bundle.serial)
        config = wl.config_file(workload)

        def push() -> None:
            owner = {"user_id": wl.UID, "group_id": wl.GID, "make_dirs": True}
            container.push(wl.CERT_FILE, bundle.tls_cert, permissions=0o644, **owner)
            container.push(wl.KEY_FILE, bundle.tls_key, permissions=0o600, **owner)
            container.push(config.path, config.content, permissions=config.permissions, **owner)

        if start_when_changed(
            container,
            workload.service,
            layer,
            digest=_digest(layer, config),
            digests=self._digests,
            restarted=restarted,
            push=push,
        ):
            logger.info("started %s with certificate %s", workload.service, bundle.serial)

    def _stop(self, workload: wl.Workload) -> None:
        """Not the leader: the controller and its check stay stopped."""
        container = self.unit.get_container(workload.container)
        layer = wl.layer(workload, leader=False, serial="")
        if keep_stopped(container, workload.service, workload.check, layer, self._digests):
            logger.info("stopped %s: this unit is not the leader", workload.service)

    def _digests(self) -> dict[str, str]:
        """The digest each container was last given, kept in stored state."""
        return self._applied.digests

    # --- certificates ------------------------------------------------------------------

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        self._certs.remove_obsolete(event)

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        def apply(config: TrainerConfig, bundle: CertificateBundle) -> None:
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
            event.add_status(ops.ActiveStatus())
            return
        statuses = self._statuses()
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _statuses(self) -> list[ops.StatusBase]:
        if self._config_error is None:
            self._load()
        if self._config_error is not None:
            return [ops.BlockedStatus(self._config_error)]
        out: list[ops.StatusBase] = []
        leader = self.unit.is_leader()
        for workload in wl.WORKLOADS:
            running = service_running(
                self.unit.get_container(workload.container), workload.service
            )
            if running is None:
                out.append(ops.WaitingStatus(f"waiting for the {workload.container} container"))
            elif leader and not running:
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
                ops.WaitingStatus("waiting for the Trainer controller to apply the runtimes")
            )
        out.append(ops.ActiveStatus())
        return out

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(ops.ActiveStatus())


def _digest(layer: ops.pebble.LayerDict, config: wl.File) -> str:
    parts = [layer, dataclasses.asdict(config)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
