"""The two controllers under Pebble: their Pebble layers, config files and certificate files.

Both upstream binaries are controller-runtime managers that read a config
file (`--config`) and serve their admission webhooks from
`/tmp/k8s-webhook-server/serving-certs/tls.{crt,key}`, controller-runtime's
default directory. Both run in this charm's pod and so share its network
namespace: the Trainer controller keeps upstream's ports (webhook 9443,
probes 8081, metrics 8443) and JobSet's move by one (9444, 8082, 8444); the
Services map port 443 to each webhook port.

The config files turn the upstream lease-based leader election on and the
upstream certificate management off: the charm makes the certificates,
writes them where the binaries read them, and puts the serving
certificate's serial into the Pebble layer so a new one restarts them.
The controllers start on the leader unit only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ops

from kubeflow_charms.pebble import service_layer

TRAINER_VERSION = "v2.1.0"
JOBSET_VERSION = "v0.10.1"
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # noqa: S108 (controller-runtime's default)
CERT_FILE = f"{CERT_DIR}/tls.crt"
KEY_FILE = f"{CERT_DIR}/tls.key"
UID = 65532  # the distroless :nonroot user both images run as upstream
GID = 65532


class Ports:
    """Where each controller listens in the pod."""

    TRAINER_WEBHOOK = 9443
    TRAINER_HEALTH = 8081
    TRAINER_METRICS = 8443
    JOBSET_WEBHOOK = 9444  # upstream 9443, taken here by the Trainer controller
    JOBSET_HEALTH = 8082  # upstream 8081
    JOBSET_METRICS = 8444  # upstream 8443


@dataclasses.dataclass(frozen=True)
class Workload:
    """One controller: its container, service, ready check and config file."""

    container: str
    service: str
    check: str
    config_path: str
    health_port: int


TRAINER = Workload(
    "trainer-controller",
    "trainer-controller",
    "trainer-ready",
    "/etc/trainer/controller_manager_config.yaml",
    Ports.TRAINER_HEALTH,
)
JOBSET = Workload(
    "jobset-controller",
    "jobset-controller",
    "jobset-ready",
    "/etc/jobset/controller_manager_config.yaml",
    Ports.JOBSET_HEALTH,
)
WORKLOADS = (TRAINER, JOBSET)

# The Services in front of the webhooks (upstream's names) and the webhook ports.
TRAINER_SERVICE = "kubeflow-trainer-controller-manager"
JOBSET_SERVICE = "jobset-webhook-service"
TRAINER_LEASE = "trainer.kubeflow.org"
JOBSET_LEASE = "6d4f6a47.jobset.x-k8s.io"


@dataclasses.dataclass(frozen=True)
class File:
    """A file a controller reads at start."""

    path: str
    content: str
    permissions: int = 0o600


def trainer_config() -> dict[str, Any]:
    """The Trainer controller's `Configuration` (config.trainer.kubeflow.org/v1alpha1).

    It is decoded strictly: only fields the release knows. `webhook.host` is
    always written (v2.1.0 dereferences it whenever `webhook.port` is set).
    """
    return {
        "apiVersion": "config.trainer.kubeflow.org/v1alpha1",
        "kind": "Configuration",
        "health": {
            "healthProbeBindAddress": f":{Ports.TRAINER_HEALTH}",
            "readinessEndpointName": "readyz",
            "livenessEndpointName": "healthz",
        },
        "metrics": {"bindAddress": f":{Ports.TRAINER_METRICS}", "secureServing": True},
        "webhook": {"port": Ports.TRAINER_WEBHOOK, "host": ""},
        "leaderElection": {
            "leaderElect": True,
            "resourceName": TRAINER_LEASE,
            "resourceNamespace": "",
            "leaseDuration": "15s",
            "renewDeadline": "10s",
            "retryPeriod": "2s",
        },
        "controller": {
            "groupKindConcurrency": {
                "TrainJob.trainer.kubeflow.org": 5,
                "TrainingRuntime.trainer.kubeflow.org": 1,
                "ClusterTrainingRuntime.trainer.kubeflow.org": 1,
            }
        },
        "certManagement": {"enable": False},
        "clientConnection": {"qps": 50, "burst": 100},
    }


def jobset_config() -> dict[str, Any]:
    """The JobSet controller's `Configuration` (config.jobset.x-k8s.io/v1alpha1).

    With its own certificates off, JobSet serves metrics with the certificate
    in `metrics.certDir`: the charm's, from the webhook's directory.
    """
    return {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": f":{Ports.JOBSET_HEALTH}"},
        "metrics": {"bindAddress": f":{Ports.JOBSET_METRICS}", "certDir": CERT_DIR},
        "webhook": {"port": Ports.JOBSET_WEBHOOK, "certDir": CERT_DIR},
        "leaderElection": {"leaderElect": True, "resourceName": JOBSET_LEASE},
        "internalCertManagement": {"enable": False},
    }


def config_file(workload: Workload) -> File:
    """A controller's config file (JSON, which is YAML)."""
    document = trainer_config() if workload is TRAINER else jobset_config()
    return File(workload.config_path, json.dumps(document, indent=2) + "\n", 0o644)


def command(workload: Workload) -> str:
    """The controller's command line: upstream's entrypoint with its config file."""
    return f"/manager --config={workload.config_path} --zap-log-level=2"


def layer(workload: Workload, *, leader: bool, serial: str) -> ops.pebble.LayerDict:
    """The controller's service and ready check: enabled on the leader only."""
    check: dict[str, Any] = {
        "override": "replace",
        "level": "ready",
        "period": "10s",
        "timeout": "3s",
        "threshold": 3,
        "http": {"url": f"http://localhost:{workload.health_port}/readyz"},
    }
    return service_layer(
        workload.service,
        workload.check,
        command=command(workload),
        runs=leader,
        # A new serving certificate changes the plan: the controller restarts.
        environment={"TLS_SERIAL": serial},
        check_spec=check,
        user=(UID, GID),
    )
