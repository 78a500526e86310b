"""The kubeflow-notebooks charm: the notebook controller and the Jupyter web app."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import jupyter_web_app
import notebook_controller
import ops
import spawner_config
from pebble_workload import File, PebbleWorkload, files_hash
from spawner_config import NotebooksConfig

from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    delete_all,
    error_status,
    render,
    render_digest,
)
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.dashboard_links import DashboardLink, DashboardLinksRequirer
from kubeflow_interfaces.istio_ingress_route import (
    DEFAULT_USER_HEADER,
    DEFAULT_USER_PREFIX,
    InvalidRouteDataError,
    RouteRequirer,
)

logger = logging.getLogger(__name__)

PEERS = "notebooks-peers"
ROUTE = "istio-ingress-route"
DASHBOARD_LINKS = "dashboard-links"
TEMPLATES = Path(__file__).parent / "templates"
# Peer app databag: the hash of the templates and values the leader applied last.
HASH_KEY = "manifest-hash"
OBJECTS_KEY = "owned-objects"  # the digest of the objects as listed after that apply
SCOPES = ("crds", "rbac")

CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
RBAC_KINDS = (
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    Kind("networking.k8s.io/v1", "NetworkPolicy"),
)
# The ingress gateway's pods, as the istio charm labels them (in this model's namespace).
GATEWAY_POD_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
LINKS = [
    DashboardLink(
        text="Notebooks", link=f"{jupyter_web_app.PREFIX}/", location="menu", icon="book"
    )
]


@dataclasses.dataclass
class _Inputs:
    """What one hook knows, read and checked, before anything is written."""

    config: NotebooksConfig | None = None
    blocked: str | None = None  # nothing is applied or started while set
    route_problem: str | None = None  # the mesh's data does not parse: nothing changes
    # The user-id header and its prefix, as the mesh passes them on from the login.
    user_header: tuple[str, str] = (DEFAULT_USER_HEADER, DEFAULT_USER_PREFIX)
    url: str | None = None


class NotebooksCharm(ops.CharmBase):
    """Notebooks for Kubeflow: the controller, the web app, the Notebook kind and its RBAC."""

    # Whether the last full reconcile left this unit active. Every input but the cluster's
    # objects and the services comes with an event of its own (config and relation
    # changes, leadership, pebble-ready), so an update-status on a settled unit looks
    # only at the services, their checks and (leader) the objects.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._controller = PebbleWorkload(
            self.unit.get_container(notebook_controller.CONTAINER),
            notebook_controller.SERVICE,
            notebook_controller.READY_CHECK,
        )
        self._web_app = PebbleWorkload(
            self.unit.get_container(jupyter_web_app.CONTAINER),
            jupyter_web_app.SERVICE,
            jupyter_web_app.READY_CHECK,
        )
        # The web app serves at its root: the mesh strips the prefix on the way.
        self._route = RouteRequirer(
            self, ROUTE, prefix=jupyter_web_app.PREFIX, rewrite="/", port=jupyter_web_app.PORT
        )
        self._links = DashboardLinksRequirer(self, LINKS, DASHBOARD_LINKS)
        self._inputs: _Inputs | None = None
        self._kubernetes_error: KubernetesError | None = None

        on = self.on
        for event in (
            on.install,
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.update_status,
            on[notebook_controller.CONTAINER].pebble_ready,
            on[jupyter_web_app.CONTAINER].pebble_ready,
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
            on[ROUTE].relation_created,
            on[ROUTE].relation_changed,
            on[ROUTE].relation_broken,
            on[DASHBOARD_LINKS].relation_created,
            on[DASHBOARD_LINKS].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.remove, self._on_remove)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile -------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring the relations, the cluster's objects and both workloads to what config says."""
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        inputs = self._inputs = self._read_inputs()
        if inputs.route_problem:
            return  # the mesh's data does not parse: leave everything as it is
        self._route.publish()
        self._links.publish()
        config = inputs.config
        if config is None:
            return  # invalid config: apply nothing, start nothing
        self._reconciled = True
        self.unit.set_ports(jupyter_web_app.PORT)
        if self.unit.is_leader():
            force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
            self._reconcile_cluster(force=force, routine=isinstance(event, ops.UpdateStatusEvent))
        self._reconcile_controller(config)
        self._reconcile_web_app(inputs)

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether both services run and are ready, and no object drifted."""
        for workload in (self._controller, self._web_app):
            if not (workload.running() and workload.check_is_up()):
                return False
        peer = self.model.get_relation(PEERS)
        if not self.unit.is_leader() or peer is None:
            return True
        return not self._owned(peer.data[self.app]).drifted()

    def _read_inputs(self) -> _Inputs:
        try:
            user_header, url = self._route.user_header, self._route.url
        except InvalidRouteDataError as e:
            problem = f"{ROUTE}: {e}"
            return _Inputs(blocked=problem, route_problem=problem)
        try:
            config = self.load_config(NotebooksConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {str(e).splitlines()[0]}")
        return _Inputs(config=config, user_header=user_header, url=url)

    def _reconcile_cluster(self, *, force: bool, routine: bool = False) -> None:
        """Leader: apply the Notebook kind and the RBAC if changed (hash in the peer data).

        A routine hook (update-status) also applies them again when one was
        deleted or changed behind the charm's back.
        """
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return
        stored = peer.data[self.app]
        context: dict[str, Any] = {
            "app": self.app.name,
            "namespace": self.model.name,
            "role_name": f"{self.app.name}-{self.model.name}",
            "service_account": self.app.name,
            "web_app_port": jupyter_web_app.PORT,
            "metrics_port": notebook_controller.METRICS_PORT,
            "probe_port": notebook_controller.PROBE_PORT,
            "gateway_pod_labels": GATEWAY_POD_LABELS,
        }
        # The network policy shares the `rbac` scope: objects keep the scope they were made in.
        templates = {"crds": ["crds.yaml.j2"], "rbac": ["rbac.yaml.j2", "network.yaml.j2"]}
        # What is rendered follows from the templates and the values alone: when
        # neither changed, nothing is rendered (Jinja2 costs a settled hook as much
        # as the rest of its work) and nothing is applied.
        wanted = render_digest(
            TEMPLATES,
            [f"{scope}/{n}" for scope, names in templates.items() for n in names],
            context,
        )
        try:
            new = self._owned(stored).apply_when_wanted(
                HASH_KEY,
                wanted,
                lambda: [
                    (self._resources(scope), render(TEMPLATES, names, context))
                    for scope, names in templates.items()
                ],
                force=force,
                routine=routine,
            )
        except KubernetesError as e:
            self._kubernetes_error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        if new:
            logger.info("applied the Notebook kind and the RBAC")

    def _reconcile_controller(self, config: NotebooksConfig) -> None:
        layer = notebook_controller.pebble_layer(
            namespace=self.model.name, culling_idle_minutes=config.culling_idle_minutes
        )
        if self._controller.configure(layer):
            logger.info("notebook controller (re)started")

    def _reconcile_web_app(self, inputs: _Inputs) -> None:
        assert inputs.config is not None
        files = [File(jupyter_web_app.CONFIG_FILE, spawner_config.render(inputs.config))]
        header, prefix = inputs.user_header
        layer = jupyter_web_app.pebble_layer(
            secure_cookies=(inputs.url or "").startswith("https://"),
            config_hash=files_hash(files),
            userid_header=header,
            userid_prefix=prefix,
        )
        if self._web_app.configure(layer, files):
            logger.info("jupyter web app (re)started with its spawner config")

    def _owned(self, stored: ops.RelationDataContent) -> OwnedObjects:
        return OwnedObjects(
            stored,
            OBJECTS_KEY,
            app=self.app.name,
            model=self.model.name,
            kinds=CRD_KINDS + RBAC_KINDS,
        )

    def _resources(self, scope: str) -> Resources:
        kinds = CRD_KINDS if scope == "crds" else RBAC_KINDS
        return Resources(app=self.app.name, model=self.model.name, scope=scope, kinds=kinds)

    # --- remove ------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: delete every object it made (a unit leaving deletes nothing)."""
        if self.app.planned_units() > 0:
            return
        delete_all(self.app.name, [self._resources(scope) for scope in reversed(SCOPES)])

    # --- status ------------------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        statuses = self._unit_statuses()
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _unit_statuses(self) -> list[ops.StatusBase]:
        inputs = self._current_inputs()
        if inputs.blocked:
            return [ops.BlockedStatus(inputs.blocked)]
        statuses = self._workload_problems()
        if self.unit.is_leader():
            statuses += self._app_problems()
        return [*statuses, ops.ActiveStatus()]

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        for status in self._app_problems():
            event.add_status(status)
        event.add_status(ops.ActiveStatus())

    def _workload_problems(self) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        for name, workload in (
            ("notebook controller", self._controller),
            ("Jupyter web app", self._web_app),
        ):
            running = workload.running()
            if running is None:
                problems.append(
                    ops.WaitingStatus(f"waiting for the {workload.container.name} container")
                )
            elif not running:
                problems.append(ops.MaintenanceStatus(f"starting the {name}"))
            elif not workload.check_is_up():
                problems.append(ops.WaitingStatus(f"the {name} is not ready yet"))
        return problems

    def _app_problems(self) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return [ops.WaitingStatus("waiting for the peer relation")]
        if self._kubernetes_error is not None:
            problems.append(error_status(self._kubernetes_error, self.app.name))
        elif not peer.data[self.app].get(HASH_KEY):
            problems.append(ops.WaitingStatus("waiting for the leader to apply the Notebook kind"))
        if self._route.relation is None:
            problems.append(ops.BlockedStatus(f"the web app is not reachable: relate {ROUTE}"))
        elif not self._current_inputs().url:
            problems.append(ops.WaitingStatus("waiting for the route's URL"))
        return problems
