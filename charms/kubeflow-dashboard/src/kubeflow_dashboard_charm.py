"""The kubeflow-dashboard charm: the central dashboard, the profile controller and KFAM."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dashboard_config
import dashboard_services as services
import ops
import profile_admin as profiles
from dashboard_config import DashboardConfig
from dashboard_services import CONTAINERS, DASHBOARD_PORT, Settings, Workload

from kubeflow_charms import gateway_identity
from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.gateway_identity import Gateway, InvalidGatewayMetadataError
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    api_errors,
    delete_all,
    error_status,
    render,
    render_digest,
)
from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.dashboard_links import (
    DashboardLink,
    DashboardLinksProvider,
    InvalidLinksError,
)
from kubeflow_interfaces.istio_ingress_route import (
    DEFAULT_USER_HEADER,
    DEFAULT_USER_PREFIX,
    InvalidRouteDataError,
    RouteRequirer,
)

logger = logging.getLogger(__name__)

PEERS = "dashboard-peers"
LINKS = "links"
ROUTE = "istio-ingress-route"
GATEWAY = "gateway-metadata"
# The mesh identities let into profile namespaces besides the gateway's, unless
# config names others: the bundle's applications of these names in this model
# (a Juju application's pods run as a service account of its name).
NOTEBOOK_CONTROLLER_APP = "kubeflow-notebooks"
KFP_UI_APP = "kfp"
TEMPLATES = Path(__file__).parent / "templates"
# Peer app databag: the hash of the templates and values the leader applied last.
HASH_KEY = "manifest-hash"
OBJECTS_KEY = "owned-objects"  # the digest of the objects as listed after that apply

CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
KINDS = (
    Kind("v1", "ConfigMap"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    Kind("rbac.authorization.k8s.io/v1", "Role"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding"),
    Kind("networking.k8s.io/v1", "NetworkPolicy"),
)
# The ingress gateway's pods, as the istio charm labels them (in the gateway's namespace).
GATEWAY_POD_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


@dataclasses.dataclass
class _Inputs:
    """What one hook knows, read and checked, before anything is written."""

    config: DashboardConfig | None = None
    blocked: str | None = None  # bad config or route data: nothing is configured or applied
    # The user-id header and its prefix, as the mesh passes them on from the login.
    user_header: tuple[str, str] = (DEFAULT_USER_HEADER, DEFAULT_USER_PREFIX)
    url: str | None = None
    # The ingress gateway, from istio; until then why not (the profile controller
    # and KFAM wait for it: without it they would shut the gateway out).
    gateway: Gateway | None = None
    no_gateway: ops.StatusBase | None = None
    links: list[DashboardLink] = dataclasses.field(default_factory=list)
    bad_links: str | None = None  # a related app's links: the ConfigMap is left as it is


@dataclasses.dataclass(frozen=True)
class CreateProfileParams:
    """The create-profile action's parameters."""

    name: str
    owner: str
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    storage: str | None = None


@dataclasses.dataclass(frozen=True)
class AddContributorParams:
    """The add-contributor action's parameters."""

    profile: str
    user: str
    role: str


@dataclasses.dataclass(frozen=True)
class RemoveContributorParams:
    """The remove-contributor action's parameters."""

    profile: str
    user: str


class KubeflowDashboardCharm(ops.CharmBase):
    """The dashboard, profile controller and KFAM; the Profile CRD, RBAC and links."""

    # Whether the last full reconcile left this unit active. Every input but the cluster's
    # objects and the services comes with an event of its own (config and relation
    # changes, leadership, pebble-ready, checks failing or recovering), so an
    # update-status on a settled unit looks only at what can drift without one.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._workloads = [Workload(self.unit.get_container(c)) for c in CONTAINERS]
        self._links = DashboardLinksProvider(self, LINKS)
        self._route = RouteRequirer(self, ROUTE, prefix="/", port=DASHBOARD_PORT)
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
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
            on[LINKS].relation_changed,
            on[LINKS].relation_departed,
            on[LINKS].relation_broken,
            on[ROUTE].relation_created,
            on[ROUTE].relation_changed,
            on[ROUTE].relation_broken,
            on[GATEWAY].relation_created,
            on[GATEWAY].relation_changed,
            on[GATEWAY].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        for container in CONTAINERS:
            framework.observe(on[container].pebble_ready, self._reconcile)
            framework.observe(on[container].pebble_check_failed, self._reconcile)
            framework.observe(on[container].pebble_check_recovered, self._reconcile)
        framework.observe(on.remove, self._on_remove)
        framework.observe(on.create_profile_action, self._on_create_profile)
        framework.observe(on.add_contributor_action, self._on_add_contributor)
        framework.observe(on.remove_contributor_action, self._on_remove_contributor)
        framework.observe(on.list_profiles_action, self._on_list_profiles)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile -------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring the workloads, the cluster's objects and the route request to the inputs."""
        if own_departure(self, event):
            # This unit is scaled away (a leader keeps its lease meanwhile): the
            # links and objects of its relations stay for the units that remain.
            logger.info("this unit is leaving: it leaves the menu to the units that stay")
            return
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        inputs = self._inputs = self._read_inputs()
        if inputs.config is None or inputs.blocked:
            return  # bad config or route data: leave everything as it is
        self._reconciled = True
        self._route.publish()
        self.unit.set_ports(DASHBOARD_PORT)
        settings = self._settings(inputs)
        for workload in self._workloads:
            if services.needs_gateway(workload.name) and settings.gateway_principal is None:
                continue  # left as it is until istio says where its gateway runs
            if workload.configure(settings):
                logger.info("%s (re)started with its new configuration", workload.name)
        if self.unit.is_leader() and inputs.bad_links is None:
            force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
            routine = isinstance(event, ops.UpdateStatusEvent)
            self._reconcile_cluster(inputs, force=force, routine=routine)

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether every service runs and is ready, and no object drifted."""
        if not all(w.running() and w.check_is_up() for w in self._workloads):
            return False
        peer = self.model.get_relation(PEERS)
        if not self.unit.is_leader() or peer is None:
            return True
        return not self._owned(peer.data[self.app]).drifted()

    def _read_inputs(self) -> _Inputs:
        """Config, the route and related apps' links as they are now; writes nothing."""
        try:
            config = self.load_config(DashboardConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {str(e).splitlines()[0]}")
        try:
            user_header, url = self._route.user_header, self._route.url
        except InvalidRouteDataError as e:
            return _Inputs(config=config, blocked=f"{ROUTE}: {e}")
        if "*" in "".join(user_header):
            # Istio would read it as a wildcard in every owner and contributor
            # policy, opening each profile to other users.
            return _Inputs(
                config=config, blocked=f"{ROUTE}: the user-id header or prefix contains *"
            )
        try:
            gateway, no_gateway = self._read_gateway()
        except InvalidGatewayMetadataError as e:
            return _Inputs(config=config, blocked=f"{GATEWAY}: {e}")
        inputs = _Inputs(
            config=config,
            user_header=user_header,
            url=url,
            gateway=gateway,
            no_gateway=no_gateway,
        )
        try:
            by_app = self._links.links()
        except InvalidLinksError as e:
            inputs.bad_links = str(e)
            return inputs
        inputs.links = [link for app in sorted(by_app) for link in by_app[app]]
        inputs.links += config.links
        return inputs

    def _read_gateway(self) -> tuple[Gateway | None, ops.StatusBase | None]:
        """The gateway istio names, or the status saying why there is none yet.

        InvalidGatewayMetadataError when istio's data cannot be used.
        """
        missing = (
            f"add the {GATEWAY} relation to istio: "
            "the profile controller and KFAM need the gateway's identity"
        )
        return gateway_identity.read(self, missing=missing, endpoint=GATEWAY)

    def _settings(self, inputs: _Inputs) -> Settings:
        config = inputs.config
        assert config is not None
        header, prefix = inputs.user_header
        gateway = inputs.gateway
        model = self.model.name
        return Settings(
            namespace=model,
            configmap=self._configmap_name,
            userid_header=header,
            userid_prefix=prefix,
            registration_flow=config.registration_flow,
            workload_identity=config.workload_identity,
            gateway_principal=(
                services.principal(gateway.namespace, gateway.service_account) if gateway else None
            ),
            notebook_controller_principal=config.notebook_controller_principal
            or services.principal(model, NOTEBOOK_CONTROLLER_APP),
            kfp_ui_principal=config.kfp_ui_principal or services.principal(model, KFP_UI_APP),
        )

    @property
    def _configmap_name(self) -> str:
        return f"{self.app.name}-config"

    def _reconcile_cluster(self, inputs: _Inputs, *, force: bool, routine: bool = False) -> None:
        """Leader: apply the CRD, RBAC and the dashboard's ConfigMap if they changed.

        A routine hook (update-status) also applies them again when one was
        deleted or changed behind the charm's back.
        """
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return
        config = inputs.config
        assert config is not None
        stored = peer.data[self.app]
        links = dashboard_config.dashboard_links(inputs.links, config.order)
        context: dict[str, Any] = {
            "app": self.app.name,
            "namespace": self.model.name,
            "service_account": self.app.name,
            "cluster_role": f"{self.app.name}-{self.model.name}",
            "leader_election_role": f"{self.app.name}-leader-election",
            "leader_election_id": services.LEADER_ELECTION_ID,
            "configmap": self._configmap_name,
            "links": dashboard_config.links_json(links),
            "settings": dashboard_config.SETTINGS,
            "dashboard_port": DASHBOARD_PORT,
            "kfam_port": services.KFAM_PORT,
            "metrics_port": services.CONTROLLER_METRICS_PORT,
            "probe_port": services.CONTROLLER_PROBE_PORT,
            "gateway_pod_labels": GATEWAY_POD_LABELS,
            # Istio's gateway runs in this model unless it said otherwise.
            "gateway_namespace": inputs.gateway.namespace if inputs.gateway else self.model.name,
        }
        templates = {
            "crds": ["crds.yaml.j2"],
            "dashboard": ["rbac.yaml.j2", "config.yaml.j2", "network.yaml.j2"],
        }
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
            logger.info("applied the Kubernetes objects (%d links)", len(inputs.links))

    def _owned(self, stored: ops.RelationDataContent) -> OwnedObjects:
        return OwnedObjects(
            stored, OBJECTS_KEY, app=self.app.name, model=self.model.name, kinds=CRD_KINDS + KINDS
        )

    def _resources(self, scope: str) -> Resources:
        kinds = CRD_KINDS if scope == "crds" else KINDS
        return Resources(app=self.app.name, model=self.model.name, scope=scope, kinds=kinds)

    # --- remove ------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: delete every object it made (a unit leaving deletes nothing)."""
        if self.app.planned_units() > 0:
            return
        delete_all(self.app.name, [self._resources("dashboard"), self._resources("crds")])

    # --- actions -----------------------------------------------------------------------

    def _run(self, event: ops.ActionEvent, work: Callable[[], None]) -> None:
        """Run a leader's action; every error fails it with a clear message, no traceback.

        The Kubernetes API refusing, unreachable (a transport error) or not
        configured (no credentials outside a cluster) all end here.
        """
        if not self.unit.is_leader():
            event.fail("run this action on the leader unit")
            return
        try:
            with api_errors():
                work()
        except (profiles.ProfileError, ValueError, TypeError) as e:
            event.fail(str(e))
        except KubernetesError as e:
            refused = "the Kubernetes API refused: " if e.status is not None else ""
            event.fail(f"{refused}{e}")

    def _client(self) -> Any:
        """A lightkube client, made once an action's parameters are checked."""
        return profiles.client(self.app.name, self.model.name)

    def _on_create_profile(self, event: ops.ActionEvent) -> None:
        def work() -> None:
            params = event.load_params(CreateProfileParams)
            quota = profiles.Quota(
                cpu=params.cpu, memory=params.memory, gpu=params.gpu, storage=params.storage
            )
            profiles.create_profile(
                self._client(), params.name, params.owner, quota, self.model.name
            )
            logger.info("created profile %s", params.name)
            event.set_results(
                {
                    "profile": params.name,
                    "owner": params.owner,
                    "quota": ", ".join(f"{k}={v}" for k, v in quota.hard().items()) or "none",
                }
            )

        self._run(event, work)

    def _on_add_contributor(self, event: ops.ActionEvent) -> None:
        def work() -> None:
            params = event.load_params(AddContributorParams)
            inputs = self._read_inputs()
            if inputs.blocked:
                raise ValueError(inputs.blocked)
            settings = self._settings(inputs)
            if settings.gateway_principal is None:
                assert inputs.no_gateway is not None
                raise ValueError(inputs.no_gateway.message)
            name, mesh = profiles.add_contributor(
                self._client(),
                params.profile,
                params.user,
                params.role,
                self.model.name,
                userid_header=settings.userid_header,
                userid_prefix=settings.userid_prefix,
                # Who may carry the contributor's requests in, as KFAM lets them.
                principals=(settings.gateway_principal, settings.kfp_ui_principal),
            )
            logger.info("added a contributor to profile %s (%s)", params.profile, params.role)
            event.set_results(
                {
                    "profile": params.profile,
                    "role": params.role,
                    "binding": name,
                    "mesh-access": mesh,
                }
            )

        self._run(event, work)

    def _on_remove_contributor(self, event: ops.ActionEvent) -> None:
        def work() -> None:
            params = event.load_params(RemoveContributorParams)
            removed = profiles.remove_contributor(
                self._client(), params.profile, params.user, self.model.name
            )
            logger.info(
                "removed a contributor from profile %s (%d bindings, %d policies)",
                params.profile,
                len(removed.bindings),
                len(removed.policies),
            )
            event.set_results(
                {
                    "profile": params.profile,
                    "removed-role": ", ".join(removed.roles) or "none",
                    "removed-bindings": ", ".join(removed.bindings) or "none",
                    "removed-policies": ", ".join(removed.policies) or "none",
                }
            )

        self._run(event, work)

    def _on_list_profiles(self, event: ops.ActionEvent) -> None:
        def work() -> None:
            found = profiles.list_profiles(self._client())
            event.set_results({"count": len(found), "profiles": profiles.dump(found)})

        self._run(event, work)

    # --- status ------------------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        statuses: list[ops.StatusBase] = []
        self._unit_statuses(statuses)
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _unit_statuses(self, out: list[ops.StatusBase]) -> None:
        inputs = self._current_inputs()
        if inputs.blocked:
            out.append(ops.BlockedStatus(inputs.blocked))
            return
        if inputs.no_gateway is not None:
            out.append(inputs.no_gateway)
        for workload in self._workloads:
            if inputs.gateway is None and services.needs_gateway(workload.name):
                continue  # said above
            running = workload.running()
            if running is None:
                out.append(ops.WaitingStatus(f"waiting for the {workload.name} container"))
            elif workload.failed:
                out.append(
                    ops.BlockedStatus(f"{workload.name} failed to start: {workload.failed}")
                )
            elif not running:
                out.append(ops.MaintenanceStatus(f"starting {workload.name}"))
            elif not workload.check_is_up():
                out.append(ops.WaitingStatus(f"{workload.name} is not ready yet"))
        if self.unit.is_leader():
            out.extend(self._cluster_problems(inputs))
        out.append(ops.ActiveStatus(self._active_message()))

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        if inputs.no_gateway is not None:
            event.add_status(inputs.no_gateway)
        for status in self._cluster_problems(inputs):
            event.add_status(status)
        event.add_status(ops.ActiveStatus(self._active_message()))

    def _cluster_problems(self, inputs: _Inputs) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        if inputs.bad_links:
            problems.append(ops.BlockedStatus(f"invalid dashboard links: {inputs.bad_links}"))
        if self.model.get_relation(PEERS) is None:
            problems.append(ops.WaitingStatus("waiting for the peer relation"))
        if self._kubernetes_error is not None:
            problems.append(error_status(self._kubernetes_error, self.app.name))
        return problems

    def _active_message(self) -> str:
        url = self._current_inputs().url
        return url if url else f"no route: serving on port {DASHBOARD_PORT}"
