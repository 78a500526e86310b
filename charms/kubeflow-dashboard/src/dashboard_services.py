"""The three workloads of the charm's pod under Pebble: dashboard, profile controller, KFAM.

Each runs in its own container from its upstream image, as the image's
Dockerfile runs it (its working directory and user), with a ready check
Pebble polls on the endpoint the upstream manifests probe. Their settings
are flags and environment from the charm's config and relations; the
profile controller also reads the labels it puts on every profile namespace
from a file the charm writes.

The profile controller and KFAM write Istio AuthorizationPolicies that let
requests from the ingress gateway (and from the pipelines UI, and for
culling the notebook controller) into profile namespaces: they name those
workloads by their mesh identity, `<trust domain>/ns/<namespace>/sa/<service
account>`, from environment variables; upstream's defaults name
`istio-system` and `kubeflow`, which are not where our charms run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shlex

import ops
import yaml

from kubeflow_charms.pebble import plan_has, service_running

logger = logging.getLogger(__name__)

DASHBOARD = "dashboard"
PROFILE_CONTROLLER = "profile-controller"
KFAM = "kfam"
CONTAINERS = (DASHBOARD, PROFILE_CONTROLLER, KFAM)

DASHBOARD_PORT = 8082
KFAM_PORT = 8081
CONTROLLER_METRICS_PORT = 8080
CONTROLLER_PROBE_PORT = 9876  # the manager's /healthz and /readyz
NAMESPACE_LABELS_FILE = "/etc/profile-controller/namespace-labels.yaml"
# The central dashboard image's WORKDIR: `npm start` needs its package.json.
DASHBOARD_WORKDIR = "/usr/src/app"
GO_WORKDIR = "/"  # the profile controller's and KFAM's images: binaries at the root
# Who each image runs as (its Dockerfile's USER): `node`, and distroless' nonroot.
DASHBOARD_USER = "node"
NONROOT_ID = 65532
# The Lease the profile controller's replicas (one per unit) elect a leader with.
LEADER_ELECTION_ID = "kubeflow-profile-controller"

# Every profile namespace: sidecars injected, and picked up by the resource dispatcher.
NAMESPACE_LABELS = {
    "istio-injection": "enabled",
    "app.kubernetes.io/part-of": "kubeflow-profile",
    "katib.kubeflow.org/metrics-collector-injection": "enabled",
    "pipelines.kubeflow.org/enabled": "true",
    "serving.kubeflow.org/inferenceservice": "enabled",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the three workloads are told, from config and the model."""

    namespace: str
    configmap: str
    userid_header: str
    userid_prefix: str
    registration_flow: bool
    workload_identity: str
    # Mesh identities let into profile namespaces. None: the gateway's is not known
    # yet, and the profile controller and KFAM wait for it.
    gateway_principal: str | None
    notebook_controller_principal: str
    kfp_ui_principal: str


@dataclasses.dataclass(frozen=True)
class File:
    """A file a workload reads."""

    path: str
    content: str


def _check(url: str) -> ops.pebble.CheckDict:
    return {
        "override": "replace",
        "level": "ready",
        "period": "10s",
        "threshold": 3,
        "http": {"url": url},
    }


def principal(namespace: str, service_account: str) -> str:
    """A workload's mesh identity (SPIFFE path) in the `cluster.local` trust domain."""
    return f"cluster.local/ns/{namespace}/sa/{service_account}"


def needs_gateway(container: str) -> bool:
    """Whether a container's service needs the gateway's identity to be configured."""
    return container in (PROFILE_CONTROLLER, KFAM)


def check_name(container: str) -> str:
    """The ready check of a container's service."""
    return f"{container}-ready"


def namespace_labels_file() -> File:
    """The labels the profile controller puts on each profile namespace."""
    return File(NAMESPACE_LABELS_FILE, yaml.safe_dump(NAMESPACE_LABELS, sort_keys=True))


def files(container: str) -> list[File]:
    """The files a container's service reads."""
    return [namespace_labels_file()] if container == PROFILE_CONTROLLER else []


def _files_hash(wanted: list[File]) -> str:
    digest = hashlib.sha256()
    for f in wanted:
        digest.update(f"{f.path}\0{f.content}\0".encode())
    return digest.hexdigest()[:16]


def _flag(name: str, value: str) -> str:
    return f"-{name}={shlex.quote(value)}"


def layer(container: str, settings: Settings) -> ops.pebble.LayerDict:
    """The Pebble layer of one container: its service and ready check."""
    if container == DASHBOARD:
        service: ops.pebble.ServiceDict = {
            "summary": "Kubeflow central dashboard",
            "command": "npm start",
            "working-dir": DASHBOARD_WORKDIR,
            "user": DASHBOARD_USER,
            "group": DASHBOARD_USER,
            "environment": {
                "USERID_HEADER": settings.userid_header,
                "USERID_PREFIX": settings.userid_prefix,
                # KFAM runs in the same pod.
                "PROFILES_KFAM_SERVICE_HOST": "localhost",
                "PROFILES_KFAM_SERVICE_PORT": str(KFAM_PORT),
                "REGISTRATION_FLOW": "true" if settings.registration_flow else "false",
                "DASHBOARD_CONFIGMAP": settings.configmap,
                "POD_NAMESPACE": settings.namespace,
                "LOGOUT_URL": "/oauth2/sign_out",
            },
        }
        check = _check(f"http://localhost:{DASHBOARD_PORT}/healthz")
    elif container == PROFILE_CONTROLLER:
        command = [
            "/manager",
            _flag("userid-header", settings.userid_header),
            _flag("userid-prefix", settings.userid_prefix),
            _flag("workload-identity", settings.workload_identity),
            _flag("namespace-labels-path", NAMESPACE_LABELS_FILE),
            # One controller per unit: only the one holding the Lease reconciles. The Lease
            # lives in the pod's own namespace (the model): the release parses
            # -leader-election-namespace but never hands it to the manager.
            "-leader-elect",
        ]
        service = {
            "summary": "Kubeflow profile controller",
            "command": " ".join(command),
            "working-dir": GO_WORKDIR,
            "user-id": NONROOT_ID,
            "group-id": NONROOT_ID,
            "environment": {
                **_principals(settings, notebook_controller=True),
                "FILES_HASH": _files_hash(files(container)),
            },
        }
        check = _check(f"http://localhost:{CONTROLLER_PROBE_PORT}/readyz")
    elif container == KFAM:
        command = [
            "/access-management",
            _flag("userid-header", settings.userid_header),
            _flag("userid-prefix", settings.userid_prefix),
        ]
        service = {
            "summary": "Kubeflow access management (KFAM)",
            "command": " ".join(command),
            "working-dir": GO_WORKDIR,
            "user-id": NONROOT_ID,
            "group-id": NONROOT_ID,
            "environment": _principals(settings, notebook_controller=False),
        }
        check = _check(f"http://localhost:{KFAM_PORT}/metrics")
    else:
        raise ValueError(f"no workload in container {container!r}")
    service.update({"override": "replace", "startup": "enabled"})
    return {
        "summary": container,
        "services": {container: service},
        "checks": {check_name(container): check},
    }


def _principals(settings: Settings, *, notebook_controller: bool) -> dict[str, str]:
    if settings.gateway_principal is None:
        raise ValueError("the gateway's identity is not known yet")
    env = {
        "ISTIO_INGRESS_GATEWAY_PRINCIPAL": settings.gateway_principal,
        "KFP_UI_PRINCIPAL": settings.kfp_ui_principal,
    }
    if notebook_controller:
        env["NOTEBOOK_CONTROLLER_PRINCIPAL"] = settings.notebook_controller_principal
    return env


class Workload:
    """One service in its container: the service and the container share a name."""

    def __init__(self, container: ops.Container):
        self.container = container
        self.name = container.name
        self.failed: str | None = None  # why the service did not start in this hook
        # Set when `configure` found the service running with its plan as wanted:
        # this hook's status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, settings: Settings) -> bool:
        """Write files and (re)start the service when anything changed; whether it did.

        A service that fails to start does not stop the others: the failure is
        logged and kept in `failed`, and the next hook tries again. A container
        whose Pebble cannot be reached is left as it is.
        """
        wanted = layer(self.name, settings)
        self._settled = False
        running = self.running()
        if running and plan_has(self.container.get_plan(), wanted):
            self._settled = True
            return False
        if running is None:
            return False
        for f in files(self.name):
            self.container.push(f.path, f.content, make_dirs=True)
        self.container.add_layer(self.name, wanted, combine=True)
        try:
            self.container.replan()
        except ops.pebble.ChangeError as e:
            self.failed = str(e.err).splitlines()[0] if e.err else "see the Pebble logs"
            logger.error("%s failed to start: %s", self.name, e)
            return False
        return True

    def running(self) -> bool | None:
        """Whether the service runs; None when the container's Pebble cannot be reached.

        Once `configure` found it running as wanted, that answer stands for the
        rest of the hook.
        """
        if self._settled:
            return True
        return service_running(self.container, self.name)

    def check_is_up(self) -> bool:
        """Whether the service's ready check passes (ask once the service runs)."""
        name = check_name(self.name)
        check = self.container.get_checks(name).get(name)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
