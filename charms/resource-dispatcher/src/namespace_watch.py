"""The profile namespace watch: wakes the charm within seconds of a new profile namespace.

A small container with kubectl and a shell runs, under Pebble, a watch on
namespaces labelled as profiles. Each line kubectl prints (every labelled
namespace when the watch starts, then each change) becomes a Pebble custom
notice in that container (`pebble notify`), which Juju delivers to the charm
as a `pebble-custom-notice` event. The charm itself runs no long-lived
process; Pebble restarts the watch whenever kubectl exits (the API server
ends watches after a while), and each restart lists every namespace again.
"""

from __future__ import annotations

import ops

from kubeflow_charms.pebble import plan_has

CONTAINER = "namespace-watch"
SERVICE = "profile-namespace-watch"
NOTICE_KEY = "kubeflow.org/profile-namespace"
PROFILE_LABEL = "app.kubernetes.io/part-of"
PROFILE_VALUE = "kubeflow-profile"
# Juju puts its Pebble binary and the container's Pebble socket here.
PEBBLE = "/charm/bin/pebble"
PEBBLE_SOCKET = "/charm/container/pebble.socket"


def script() -> str:
    """The shell pipeline the service runs: kubectl's watch into one notice per line."""
    return (
        f"kubectl get namespaces -l {PROFILE_LABEL}={PROFILE_VALUE} --watch -o name"
        " | while read -r line; do"
        f' {PEBBLE} notify {NOTICE_KEY} "name=${{line#namespace/}}";'
        " done"
    )


def pebble_layer() -> ops.pebble.LayerDict:
    """The watch service; restarted by Pebble whenever it ends."""
    return {
        "summary": "profile namespace watch",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "notify the charm of profile namespaces",
                "command": f"/bin/sh -c '{script()}'",
                "startup": "enabled",
                "environment": {"PEBBLE_SOCKET": PEBBLE_SOCKET},
                "on-success": "restart",
                "on-failure": "restart",
                "backoff-delay": "1s",
                "backoff-limit": "30s",
            }
        },
    }


class NamespaceWatch:
    """The watch in its container."""

    def __init__(self, container: ops.Container):
        self._container = container
        # Set when `configure` found the watch running as wanted: for the rest of
        # the hook, the status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self) -> bool:
        """Start the watch (or add its layer) unless it already runs as wanted; whether it did."""
        layer = pebble_layer()
        self._settled = False
        running = self.is_running()
        if running and plan_has(self._container.get_plan(), layer):
            self._settled = True
            return False
        self._container.add_layer(SERVICE, layer, combine=True)
        self._container.replan()
        return True

    def restart(self) -> None:
        """Restart the watch (kubectl reads a new token when it starts)."""
        self._settled = False
        self._container.restart(SERVICE)

    def can_connect(self) -> bool:
        """Whether the container's Pebble answers (known once `configure` found it settled)."""
        return self._settled or self._container.can_connect()

    def is_running(self) -> bool:
        """Whether the service runs (known once `configure` found the watch settled)."""
        if self._settled:
            return True
        service = self._container.get_services(SERVICE).get(SERVICE)
        return service is not None and service.is_running()
