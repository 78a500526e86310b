"""The PodDefault admission webhook under Pebble: its certificate files, command and checks.

The upstream image serves `/apply-poddefault` over HTTPS on the port named
by `--webhookPort` (4443) with the certificate and key named by
`--tlsCertFile` and `--tlsKeyFile`. The charm writes both into the
container; the serving certificate's serial is part of the Pebble layer, so
a new certificate changes the plan and the webhook restarts to read it.

The webhook answers an AdmissionReview without `apiVersion` and `kind`. The
API server accepts that only for `admission.k8s.io/v1beta1` reviews (it
checks both on `v1` answers), and it sends the first version of
`admissionReviewVersions` it knows: the configuration must list `v1beta1`
first.
"""

from __future__ import annotations

import ops

from kubeflow_charms.certificates import CertificateBundle, service_dns_names
from kubeflow_charms.pebble import plan_has

CONTAINER = "poddefaults-webhook"
SERVICE = "poddefaults-webhook"
READY_CHECK = "webhook-ready"
PORT = 4443
PATH = "/apply-poddefault"
CERT_DIR = "/etc/webhook/certs"
CERT_FILE = f"{CERT_DIR}/tls.crt"
KEY_FILE = f"{CERT_DIR}/tls.key"
# In this order: the API server sends a review of the first version it knows.
ADMISSION_REVIEW_VERSIONS = ("v1beta1", "v1")


def service_name(app: str) -> str:
    """The Kubernetes Service in front of the webhook (the charm makes it)."""
    return f"{app}-webhook"


def dns_names(app: str, namespace: str) -> list[str]:
    """The names the API server may use to reach the webhook; the first is the common name."""
    return service_dns_names(service_name(app), namespace)


def pebble_layer(serial: str) -> ops.pebble.LayerDict:
    """The webhook's service and ready check; `serial` ties the plan to the certificate."""
    return {
        "summary": "PodDefault admission webhook",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "PodDefault admission webhook",
                "command": (
                    f"/webhook --tlsCertFile={CERT_FILE} --tlsKeyFile={KEY_FILE}"
                    f" --webhookPort={PORT}"
                ),
                "working-dir": "/",
                "startup": "enabled",
                "environment": {"TLS_SERIAL": serial},
            }
        },
        "checks": {
            READY_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "threshold": 3,
                "tcp": {"port": PORT},
            }
        },
    }


class Webhook:
    """The webhook in its container."""

    def __init__(self, container: ops.Container):
        self._container = container
        # Set when `configure` found the webhook running as wanted: for the rest of
        # the hook, the status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, bundle: CertificateBundle) -> bool:
        """Write the certificate, (re)start the webhook when anything changed; whether it did."""
        layer = pebble_layer(bundle.serial)
        self._settled = False
        running = self.is_running()
        if running and plan_has(self._container.get_plan(), layer):
            self._settled = True
            return False
        self._container.push(CERT_FILE, bundle.tls_cert, make_dirs=True, permissions=0o644)
        self._container.push(KEY_FILE, bundle.tls_key, make_dirs=True, permissions=0o600)
        self._container.add_layer(SERVICE, layer, combine=True)
        if running:
            self._container.restart(SERVICE)  # it reads its certificate only at start
        else:
            self._container.replan()
        return True

    def can_connect(self) -> bool:
        """Whether the container's Pebble answers (known once `configure` found it settled)."""
        return self._settled or self._container.can_connect()

    def is_running(self) -> bool:
        """Whether the service runs (known once `configure` found the webhook settled)."""
        if self._settled:
            return True
        service = self._container.get_services(SERVICE).get(SERVICE)
        return service is not None and service.is_running()

    def is_ready(self) -> bool:
        """Whether the webhook's readiness check passes (Pebble asks its port)."""
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
