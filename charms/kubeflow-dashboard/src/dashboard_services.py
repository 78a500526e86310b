"""The three workloads of the charm's pod under Pebble: dashboard, profile controller, KFAM.

Each runs in its own container from its upstream image, with a ready check
Pebble polls. Their settings are flags and environment from the charm's
config; the profile controller also reads the labels it puts on every
profile namespace from a file the charm writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex

import ops
import yaml

from kubeflow_charms.pebble import plan_has

DASHBOARD = "dashboard"
PROFILE_CONTROLLER = "profile-controller"
KFAM = "kfam"
CONTAINERS = (DASHBOARD, PROFILE_CONTROLLER, KFAM)

DASHBOARD_PORT = 8082
KFAM_PORT = 8081
CONTROLLER_METRICS_PORT = 8080
NAMESPACE_LABELS_FILE = "/etc/profile-controller/namespace-labels.yaml"

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
            "working-dir": "/app",
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
        ]
        service = {
            "summary": "Kubeflow profile controller",
            "command": " ".join(command),
            "environment": {"FILES_HASH": _files_hash(files(container))},
        }
        check = _check(f"http://localhost:{CONTROLLER_METRICS_PORT}/metrics")
    elif container == KFAM:
        command = [
            "/access-management",
            _flag("userid-header", settings.userid_header),
            _flag("userid-prefix", settings.userid_prefix),
        ]
        service = {"summary": "Kubeflow access management (KFAM)", "command": " ".join(command)}
        check = _check(f"http://localhost:{KFAM_PORT}/kfam/metrics")
    else:
        raise ValueError(f"no workload in container {container!r}")
    service.update({"override": "replace", "startup": "enabled"})
    return {
        "summary": container,
        "services": {container: service},
        "checks": {check_name(container): check},
    }


class Workload:
    """One service in its container: the service and the container share a name."""

    def __init__(self, container: ops.Container):
        self.container = container
        self.name = container.name

    def configure(self, settings: Settings) -> bool:
        """Write files and (re)start the service when anything changed; whether it did."""
        wanted = layer(self.name, settings)
        running = self.is_running()
        if running and plan_has(self.container.get_plan(), wanted):
            return False
        for f in files(self.name):
            self.container.push(f.path, f.content, make_dirs=True)
        self.container.add_layer(self.name, wanted, combine=True)
        self.container.replan()
        return True

    def is_running(self) -> bool:
        """Whether the service runs."""
        service = self.container.get_services(self.name).get(self.name)
        return service is not None and service.is_running()

    def is_ready(self) -> bool:
        """Whether the service runs and its ready check passes."""
        if not self.is_running():
            return False
        name = check_name(self.name)
        check = self.container.get_checks(name).get(name)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
