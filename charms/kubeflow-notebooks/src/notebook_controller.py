"""The notebook controller: turns Notebook objects into StatefulSets, Services, VirtualServices.

It runs as `/manager` in its own container of the charm's pod, with the
pod's service account (the RBAC the charm applies). Its settings are
environment variables; culling (scaling idle notebooks to zero) is off
when `culling-idle-minutes` is 0.
"""

from __future__ import annotations

import ops

CONTAINER = "notebook-controller"
SERVICE = "notebook-controller"
READY_CHECK = "notebook-controller-up"
METRICS_PORT = 8080
PROBE_PORT = 8081  # /healthz and /readyz
CLUSTER_DOMAIN = "cluster.local"
GATEWAY = "kubeflow-gateway"  # the istio charm's Gateway, in the same model


def pebble_layer(*, namespace: str, culling_idle_minutes: int) -> ops.pebble.LayerDict:
    """The controller's service and its check (its readiness endpoint)."""
    culling = culling_idle_minutes > 0
    environment = {
        "USE_ISTIO": "true",
        "ISTIO_GATEWAY": f"{namespace}/{GATEWAY}",
        "ISTIO_HOST": "*",
        "CLUSTER_DOMAIN": CLUSTER_DOMAIN,
        "ADD_FSGROUP": "true",
        "ENABLE_CULLING": "true" if culling else "false",
    }
    if culling:
        environment["CULL_IDLE_TIME"] = str(culling_idle_minutes)
        environment["IDLENESS_CHECK_PERIOD"] = str(min(5, culling_idle_minutes))
    return {
        "summary": "notebook controller",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "Kubeflow notebook controller",
                # Leader election: one controller acts while the app has several units.
                "command": (
                    f"/manager --metrics-addr=:{METRICS_PORT} --probe-addr=:{PROBE_PORT}"
                    " --enable-leader-election"
                ),
                "working-dir": "/",
                "startup": "enabled",
                "environment": environment,
            }
        },
        "checks": {
            READY_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "30s",
                "threshold": 3,
                "http": {"url": f"http://localhost:{PROBE_PORT}/readyz"},
            }
        },
    }
