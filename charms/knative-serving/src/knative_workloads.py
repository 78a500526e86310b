"""The control plane under Pebble: the controller and both admission webhooks.

The three processes run in the charm's pod, one container each, on the
leader unit only (lease election stays on, as upstream runs them). Every
Knative image is built by ko, whose entrypoint is `/ko-app/<command>`
(ko-build/ko pkg/build/gobuild.go). They share the pod's network namespace,
so the ports each binds by default (metrics :9090, profiling :8008, the
webhooks :8443; knative/pkg metrics/config.go, profiling/server.go,
webhook/env.go) are moved apart by the environment variables those read.
The controller keeps :8080 for its health probes (a constant in knative/pkg
injection/health_check.go): that is why net-istio's controller and the
autoscaler, which bind :8080 too, run in Deployments of their own.

The webhooks read their certificates from the Secrets the charm writes
(`webhook-certs`, `net-istio-webhook-certs`) on every TLS handshake, so a new
certificate needs no restart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ops

from kubeflow_charms.pebble import service_layer

VERSION = "1.16.2"
NET_ISTIO_VERSION = "1.16.0"


@dataclasses.dataclass(frozen=True)
class Workload:
    """One process: its container, service, check and where it listens."""

    container: str
    service: str
    check: str
    command: str
    metrics_domain: str
    metrics_port: int
    profiling_port: int
    webhook_port: int | None = None  # and its Service's and Secret's name is the service's
    pod_name: bool = True


CONTROLLER = Workload(
    "controller",
    "controller",
    "controller-ready",
    "/ko-app/controller",
    "knative.dev/internal/serving",
    9090,
    8008,
)
WEBHOOK = Workload(
    "webhook",
    "webhook",
    "webhook-up",
    "/ko-app/webhook",
    "knative.dev/internal/serving",
    9091,
    8009,
    webhook_port=8443,
)
NET_ISTIO_WEBHOOK = Workload(
    "net-istio-webhook",
    "net-istio-webhook",
    "net-istio-webhook-up",
    "/ko-app/webhook",
    "knative.dev/net-istio",
    9092,
    8010,
    webhook_port=8444,
    pod_name=False,  # upstream's net-istio-webhook gets no POD_NAME
)
WORKLOADS = (CONTROLLER, WEBHOOK, NET_ISTIO_WEBHOOK)
WEBHOOKS = (WEBHOOK, NET_ISTIO_WEBHOOK)
HEALTH_PORT = 8080  # the controller's /health and /readiness


def secret_name(workload: Workload) -> str:
    """The Secret a webhook reads its certificate from (a name compiled into its binary)."""
    return f"{workload.service}-certs"


def environment(workload: Workload, *, namespace: str, pod: str) -> dict[str, str]:
    """Upstream's environment for the process, with its ports moved apart."""
    env = {
        "SYSTEM_NAMESPACE": namespace,
        "CONFIG_LOGGING_NAME": "config-logging",
        "CONFIG_OBSERVABILITY_NAME": "config-observability",
        "METRICS_DOMAIN": workload.metrics_domain,
        "METRICS_PROMETHEUS_PORT": str(workload.metrics_port),
        "PROFILING_PORT": str(workload.profiling_port),
    }
    if workload.pod_name:
        env["POD_NAME"] = pod
    if workload.webhook_port is not None:
        env["WEBHOOK_NAME"] = workload.service
        env["WEBHOOK_PORT"] = str(workload.webhook_port)
    return env


def _check(workload: Workload) -> dict[str, Any]:
    base: dict[str, Any] = {"override": "replace", "period": "10s", "timeout": "3s"}
    if workload.webhook_port is None:
        # /readiness answers 200 until the process is told to stop (knative/pkg
        # injection/health_check.go).
        return base | {
            "level": "ready",
            "threshold": 3,
            "http": {"url": f"http://localhost:{HEALTH_PORT}/readiness"},
        }
    # The webhooks serve TLS with a certificate Pebble's HTTP check cannot skip: TCP.
    return base | {"level": "alive", "threshold": 6, "tcp": {"port": workload.webhook_port}}


def layer(workload: Workload, *, leader: bool, namespace: str, pod: str) -> ops.pebble.LayerDict:
    """A process's service and check: enabled on the leader only."""
    return service_layer(
        workload.service,
        workload.check,
        command=workload.command,
        runs=leader,
        environment=environment(workload, namespace=namespace, pod=pod),
        check_spec=_check(workload),
    )
