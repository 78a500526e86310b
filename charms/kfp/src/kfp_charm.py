"""The kfp charm: Kubeflow Pipelines' workloads under Pebble (first step: the plan only).

This step configures each container's Pebble plan from the config and sets
the status. The database and object store come from their relations
(`kfp_data`): until both are read, the API server and MLMD, which need
them, are not given a plan. The route (`kfp_route`), the dashboard's links
(`kfp_links`) and the profiles' ConfigMaps (`kfp_profiles`) are published by
the leader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import kfp_actions
import kfp_cluster
import kfp_data
import kfp_links
import kfp_mesh
import kfp_pod_defaults
import kfp_profile_workloads
import kfp_profiles
import kfp_route
import kfp_workloads as wl
import ops
from kfp_config import KfpConfig

from kubeflow_charms import gateway_identity
from kubeflow_charms.gateway_identity import Gateway, InvalidGatewayMetadataError
from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import plan_has, service_running
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError

logger = logging.getLogger(__name__)

DATABASE = kfp_data.DATABASE
OBJECT_STORAGE = kfp_data.OBJECT_STORAGE
ROUTE = kfp_route.ROUTE
LINKS = kfp_links.DASHBOARD_LINKS
CONFIG_MAPS = kfp_profiles.CONFIG_MAPS
GATEWAY = "gateway-metadata"
POD_DEFAULTS = kfp_pod_defaults.POD_DEFAULTS
# Peer app databag: the digest of the requests, routes and links published last.
PUBLISHED_KEY = "published"
# The workloads that need the database or the object store before they can start.
NEEDS_RELATIONS = (wl.API_SERVER, wl.METADATA_GRPC)
# The workloads that trust the user header: they start once only the gateway may send it.
NEEDS_GATEWAY = (wl.API_SERVER, wl.UI)


class KfpCharm(ops.CharmBase):
    """Kubeflow Pipelines: API server, UI, MLMD, Argo and the KFP controllers."""

    # The checks Pebble said fail (check name: container), until it says they recovered:
    # the status names them without asking every container's Pebble on every hook.
    _checks = ops.StoredState()

    # The digest of the layer and files each container was last given (container: digest):
    # a running service whose wanted layer has that digest is not read back from Pebble.
    _applied = ops.StoredState()

    # Whether the last full reconcile left this unit active. Every input but the cluster's
    # objects and the containers comes with an event of its own (config, relation and
    # secret changes, leadership, pebble-ready, checks), so an update-status on a settled
    # unit looks only at what can drift, and reconciles in full when something did.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._checks.set_default(failing={})
        self._applied.set_default(digests={})
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._pebble_restarted = False
        self._config_error: str | None = None
        self._route_error: str | None = None
        self._cluster = kfp_cluster.KfpCluster(self)
        self._data: kfp_data.DataInputs | None = None
        self._profiles_problem: str | None = None
        self._gateway_read: tuple[Gateway | None, ops.StatusBase | None] | None = None
        self._mesh = kfp_mesh.MeshJoin(self)
        self._profile_workloads = kfp_profile_workloads.ProfileWorkloads(self)
        on = self.on
        for event in (
            on.install,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.update_status,
            on[kfp_cluster.PEERS].relation_created,
            *(on[w.container].pebble_ready for w in wl.WORKLOADS),
            *(on[r].relation_created for r in (DATABASE, OBJECT_STORAGE, ROUTE, LINKS)),
            *(on[r].relation_changed for r in (DATABASE, OBJECT_STORAGE, ROUTE, LINKS)),
            *(on[r].relation_broken for r in (DATABASE, OBJECT_STORAGE, ROUTE, LINKS)),
            on[GATEWAY].relation_created,
            on[GATEWAY].relation_changed,
            on[GATEWAY].relation_broken,
            on[CONFIG_MAPS].relation_created,
            on[CONFIG_MAPS].relation_changed,
            on[POD_DEFAULTS].relation_created,
            on[POD_DEFAULTS].relation_changed,
            on.secret_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on[CONFIG_MAPS].relation_broken, self._on_config_maps_broken)
        framework.observe(on[POD_DEFAULTS].relation_broken, self._on_pod_defaults_broken)
        framework.observe(on.list_stuck_runs_action, self._on_list_stuck_runs)
        framework.observe(on.remove, self._cluster.remove)
        framework.observe(on.remove, self._profile_workloads.remove)
        framework.observe(on.resync_profiles_action, self._profile_workloads.on_resync)
        for workload in wl.WORKLOADS:
            if workload.check is not None:
                container = on[workload.container]
                framework.observe(container.pebble_check_failed, self._on_check_failed)
                framework.observe(container.pebble_check_recovered, self._on_check_recovered)
                framework.observe(container.pebble_ready, self._on_checks_restarted)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    def _nothing_drifted(self, event: ops.UpdateStatusEvent) -> bool:
        """On a settled unit: whether the services, checks and cluster objects are as left."""
        if self._checks.failing:
            return False
        leader = self.unit.is_leader()
        for workload in wl.WORKLOADS:
            container = self.unit.get_container(workload.container)
            running = service_running(container, workload.service)
            if running is None or running != (leader or not workload.leader_only):
                return False
        if not leader:
            return True
        if self._cluster.drifted() or self._profile_workloads.drifted():
            return False
        self._mesh.reconcile(event)
        self._cluster.renew_token()
        return self._cluster.status() is None and self._mesh.status() is None

    def _publish_requests(self) -> None:
        """Leader: ask for the databases and the bucket, publish the routes and the links.

        What was published is kept as a digest in the peer app databag: a hook
        where the relations and the routes wanted are the same neither reads
        nor writes the charm's own side of those relations.
        """
        if not self.unit.is_leader():
            return
        peer = self.model.get_relation(kfp_cluster.PEERS)
        route = self.model.get_relation(ROUTE)
        relations = {
            name: relation.id
            for name in (DATABASE, OBJECT_STORAGE, ROUTE, LINKS)
            if (relation := self.model.get_relation(name)) is not None
        }
        wanted = json.dumps(
            {"relations": relations, "route": kfp_route.config(self) if route else None},
            sort_keys=True,
        )
        stamp = hashlib.sha256(wanted.encode()).hexdigest()
        if peer is not None and peer.data[self.app].get(PUBLISHED_KEY) == stamp:
            return
        kfp_data.request(self)
        kfp_route.publish(self)
        kfp_links.publish(self)
        if peer is not None:
            peer.data[self.app][PUBLISHED_KEY] = stamp

    def _load(self) -> KfpConfig | None:
        try:
            return self.load_config(KfpConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    def _user_header(self) -> tuple[str, str] | None:
        """The login's user-id header and prefix, as istio passes them; None if invalid."""
        try:
            return kfp_route.user_header(self)
        except InvalidRouteDataError as e:
            self._route_error = f"{ROUTE}: {e}"
            return None

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted(event)
            if self._still_settled:
                return
        # A new Pebble starts from its own layers: read its plan back whatever was applied.
        self._pebble_restarted = isinstance(event, ops.PebbleReadyEvent)
        self._publish_requests()
        config = self._load()
        user_header = self._user_header()
        if config is None or user_header is None:
            return  # a bad option or a bad answer from istio changes nothing
        header = user_header[0]
        self._reconciled = True
        kfp_pod_defaults.publish(self, config, self._published())
        self._data = data = kfp_data.read(self)
        broken = isinstance(event, ops.RelationBrokenEvent) and event.relation.name == GATEWAY
        self._gateway_read = self._read_gateway(broken=broken)
        gateway = self._gateway_read[0]
        self._cluster.reconcile(
            event, config, store=data.store, gateway=gateway, user_header=header
        )
        self._profiles_problem = kfp_profiles.publish(self, config, data.store, self._published())
        self._mesh.reconcile(event)
        self._profile_workloads.reconcile(event, data.store, header)
        leader = self.unit.is_leader()
        layers = wl.layers(
            config,
            namespace=self.model.name,
            pod_name=self.unit.name.replace("/", "-"),
            leader=leader,
            store=data.store,
            user_header=user_header,
        )
        files = {f.container: [f] for f in (wl.ui_viewer_template(), wl.envoy_config())}
        for workload in wl.WORKLOADS:
            if workload in NEEDS_GATEWAY and gateway is None:
                self._stop(workload)
                continue
            if workload in NEEDS_RELATIONS:
                self._configure_data(workload, layers[workload.container], data)
                continue
            self._configure(workload, layers[workload.container], files.get(workload.container))
            if workload.leader_only and not leader:
                self._stop(workload)

    def _configure(
        self, workload: wl.Workload, layer: ops.pebble.LayerDict, files: list[wl.File] | None
    ) -> None:
        container = self.unit.get_container(workload.container)
        running = service_running(container, workload.service)
        if running is None:
            return  # Pebble not up yet: its pebble-ready comes
        digest = _digest(layer, files)
        digests = self._applied.digests
        if running and not self._pebble_restarted and digests.get(workload.container) == digest:
            return  # running with the layer this unit gave it
        if plan_has(container.get_plan(), layer) and (running or not _starts(layer)):
            if digests.get(workload.container) != digest:
                digests[workload.container] = digest
            return
        for f in files or ():
            container.push(
                f.path,
                f.content,
                make_dirs=True,
                permissions=f.permissions,
                user_id=f.user_id,
                group_id=f.group_id,
            )
        container.add_layer(workload.service, layer, combine=True)
        if running:
            container.restart(workload.service)
        else:
            container.replan()
        digests[workload.container] = digest

    def _configure_data(
        self, workload: wl.Workload, layer: ops.pebble.LayerDict, data: kfp_data.DataInputs
    ) -> None:
        file = data.files().get(workload.container)
        if file is not None:
            self._configure(workload, kfp_data.with_hash(layer, workload.service, file), [file])
        elif data.relation_missing:
            self._stop(workload)

    def _published(self) -> ops.RelationDataContent | None:
        """Where the leader notes what the dispatcher's secrets hold: the peer app databag."""
        peer = self.model.get_relation(kfp_cluster.PEERS)
        return None if peer is None else peer.data[self.app]

    def _read_gateway(
        self, *, broken: bool = False
    ) -> tuple[Gateway | None, ops.StatusBase | None]:
        """The gateway istio names, or the status saying why there is none."""
        missing = (
            f"add the {GATEWAY} relation to istio: only its gateway may send the user "
            "header to the UI and API server"
        )
        try:
            return gateway_identity.read(self, missing=missing, endpoint=GATEWAY, broken=broken)
        except InvalidGatewayMetadataError as e:
            return None, ops.BlockedStatus(f"{GATEWAY}: {e}")

    def _on_config_maps_broken(self, event: ops.RelationBrokenEvent) -> None:
        if own_departure(self, event):
            return  # this unit is scaled away: the relation and its secret stay for the others
        kfp_profiles.revoke(self, event, self._published())
        self._profile_workloads.remove_all()

    def _on_pod_defaults_broken(self, event: ops.RelationBrokenEvent) -> None:
        if own_departure(self, event):
            return  # this unit is scaled away: the relation and its secret stay for the others
        kfp_pod_defaults.revoke(self, event, self._published())

    def _on_list_stuck_runs(self, event: ops.ActionEvent) -> None:
        kfp_actions.on_list_stuck_runs(self, event)

    def _stop(self, workload: wl.Workload) -> None:
        container = self.unit.get_container(workload.container)
        if service_running(container, workload.service):
            container.stop(workload.service)
            if workload.leader_only and workload.check is not None:
                # No longer the leader: its controller's check would only fail.
                container.stop_checks(workload.check)

    def _on_check_failed(self, event: ops.PebbleCheckFailedEvent) -> None:
        logger.warning("check %s of %s fails", event.info.name, event.workload.name)
        self._checks.failing[event.info.name] = event.workload.name

    def _on_check_recovered(self, event: ops.PebbleCheckRecoveredEvent) -> None:
        if self._checks.failing.pop(event.info.name, None) is not None:
            logger.info("check %s of %s passes again", event.info.name, event.workload.name)

    def _on_checks_restarted(self, event: ops.PebbleReadyEvent) -> None:
        """A new Pebble (the container restarted) starts its checks afresh."""
        for check, container in list(self._checks.failing.items()):
            if container == event.workload.name:
                del self._checks.failing[check]

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            event.add_status(ops.ActiveStatus())
            return
        statuses: list[ops.StatusBase] = []
        self._unit_statuses(statuses)
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _unit_statuses(self, out: list[ops.StatusBase]) -> None:
        event = _Statuses(out)
        if self._config_error is None:
            self._load()
        if self._route_error is None:
            self._user_header()
        if (error := self._config_error or self._route_error) is not None:
            event.add_status(ops.BlockedStatus(error))
            return
        if (cluster := self._cluster.status()) is not None:
            event.add_status(cluster)
        if self._profiles_problem is not None:
            event.add_status(ops.BlockedStatus(self._profiles_problem))
        for check, container in sorted(self._checks.failing.items()):
            event.add_status(ops.WaitingStatus(f"{container} is not ready (check {check} fails)"))
        _, gateway_problem = self._gateway_read or self._read_gateway()
        if gateway_problem is not None:
            event.add_status(gateway_problem)
        for problem in (self._mesh.status(), self._profile_workloads.status()):
            if problem is not None:
                event.add_status(problem)
        data = self._data or kfp_data.read(self)
        event.add_status(data.status or ops.ActiveStatus())

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        # Without a status of its own the app would keep the last one it was given.
        event.add_status(ops.ActiveStatus())


@dataclasses.dataclass
class _Statuses:
    """Collects the statuses the unit's checks add, as a collect-status event would."""

    out: list[ops.StatusBase]

    def add_status(self, status: ops.StatusBase) -> None:
        self.out.append(status)


def _digest(layer: ops.pebble.LayerDict, files: list[wl.File] | None) -> str:
    """A digest of a container's layer and the files pushed with it."""
    parts = [layer, [dataclasses.asdict(f) for f in files or ()]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _starts(layer: ops.pebble.LayerDict) -> bool:
    services = layer.get("services", {})
    return any(s.get("startup") == "enabled" for s in services.values())
