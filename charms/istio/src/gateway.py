"""The ingress gateway: its names, the URL it is reached at, its TLS Secret's data."""

from __future__ import annotations

import base64

GATEWAY = "kubeflow-gateway"  # the Gateway every route binds to
GATEWAY_NAME = "istio-ingressgateway"  # its Deployment, Service and ServiceAccount
TLS_SECRET = "kubeflow-gateway-tls"  # noqa: S105 - a Secret's name


def base_url(*, tls: bool, external_hostname: str, lb_address: str | None, namespace: str) -> str:
    """Where the gateway is reached, without a trailing slash."""
    scheme = "https" if tls else "http"
    host = external_hostname or lb_address or f"{GATEWAY_NAME}.{namespace}.svc.cluster.local"
    return f"{scheme}://{host}"


def tls_context(cert: str, key: str) -> dict[str, str]:
    """The gateway Secret's data, base64."""
    return {
        "cert_b64": base64.b64encode(cert.encode()).decode(),
        "key_b64": base64.b64encode(key.encode()).decode(),
    }
