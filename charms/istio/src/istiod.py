"""istiod, Istio's control plane, under Pebble: its files, its command, its checks.

istiod runs in the charm's pod. What it reads comes from files the charm
writes into its container:

- the mesh config (`--meshConfig`): trust domain, root namespace, where
  proxies find istiod, Kubernetes Ingress on the gateway, and the ext_authz
  provider when one is related;
- the sidecar-injection config and values it serves on its webhook
  (`/inject` on port 15017);
- its serving certificate for the webhook and XDS ports (`--tlsCertFile`,
  `--tlsKeyFile`, `--caCertFile`), and the same CA plugged in as the
  mesh's CA (the `cacerts` files), so that proxies that trust the mesh
  root trust istiod too.

A hash of all of them is part of the Pebble layer, so a changed file
changes the plan and the replan restarts istiod.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import ops
import yaml
from gateway import GATEWAY_NAME

from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.pebble import plan_has

CONTAINER = "istiod"
SERVICE = "istiod"
READY_CHECK = "istiod-ready"
SERVICE_NAME = "istiod"  # the Kubernetes Service in front of the charm's pods
CLUSTER_DOMAIN = "cluster.local"
XDS_PORT = 15012
WEBHOOK_PORT = 15017
EXT_AUTHZ_PROVIDER = "kubeflow-ext-authz"
# Kubernetes Ingress: istiod serves Ingress objects of this class (their
# `ingressClassName` naming an IngressClass of this controller) on the pods
# labelled `istio: <INGRESS_SELECTOR>`, and writes the address of the Service
# INGRESS_SERVICE (in the namespace K8S_INGRESS_NS names) into their status.
INGRESS_CLASS = "istio"
INGRESS_CONTROLLER = "istio.io/ingress-controller"
INGRESS_SERVICE = GATEWAY_NAME  # the gateway's Service
INGRESS_SELECTOR = "ingressgateway"  # the gateway pods' `istio` label

MESH_FILE = "/etc/istio/config/mesh"
INJECT_DIR = "/var/lib/istio/inject"  # istiod reads ./var/lib/istio/inject from its working dir
TLS_DIR = "/var/run/secrets/istiod/tls"
CACERTS_DIR = "/etc/cacerts"
SIDECAR_TEMPLATE = Path(__file__).parent / "templates" / "sidecar-injection.gotmpl"


@dataclasses.dataclass(frozen=True)
class ExtAuthz:
    """The external authorization service the gateway asks about protected routes."""

    service: str
    port: int
    include_request_headers: tuple[str, ...] = ()
    headers_to_upstream: tuple[str, ...] = ()
    headers_to_downstream: tuple[str, ...] = ()
    provider: str = EXT_AUTHZ_PROVIDER


@dataclasses.dataclass(frozen=True)
class File:
    """A file istiod reads."""

    path: str
    content: str
    permissions: int = 0o644


def istiod_host(namespace: str) -> str:
    """The name proxies and the API server reach istiod at."""
    return f"{SERVICE_NAME}.{namespace}.svc"


def dns_names(namespace: str) -> list[str]:
    """The names istiod's serving certificate is for."""
    host = istiod_host(namespace)
    return [host, f"{host}.{CLUSTER_DOMAIN}", f"{SERVICE_NAME}.{namespace}"]


def mesh_config(namespace: str, ext_authz: ExtAuthz | None) -> str:
    """The mesh config istiod serves to every proxy."""
    mesh: dict[str, object] = {
        "rootNamespace": namespace,
        "trustDomain": CLUSTER_DOMAIN,
        "accessLogFile": "/dev/stdout",
        "enablePrometheusMerge": True,
        "defaultConfig": {"discoveryAddress": f"{istiod_host(namespace)}:{XDS_PORT}"},
        # Ingress objects of class `istio` only (STRICT), served on our gateway's pods,
        # their status the gateway Service's address. These are Istio's defaults too;
        # set here so that the mesh file says what the gateway serves.
        "ingressClass": INGRESS_CLASS,
        "ingressControllerMode": "STRICT",
        "ingressService": INGRESS_SERVICE,
        "ingressSelector": INGRESS_SELECTOR,
    }
    if ext_authz is not None:
        mesh["extensionProviders"] = [
            {
                "name": ext_authz.provider,
                "envoyExtAuthzHttp": {
                    "service": ext_authz.service,
                    "port": ext_authz.port,
                    "includeRequestHeadersInCheck": list(ext_authz.include_request_headers),
                    "headersToUpstreamOnAllow": list(ext_authz.headers_to_upstream),
                    "headersToDownstreamOnDeny": list(ext_authz.headers_to_downstream),
                },
            }
        ]
    return yaml.safe_dump(mesh, sort_keys=True)


# libyaml's emitter where PyYAML has it: the same text as the Python emitter's for this
# config (a unit test checks), in a tenth of the time, which every hook spends on it.
_SafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _LiteralDumper(_SafeDumper):
    """Multi-line strings as `|` blocks, so the template reads as written."""


def _literal(dumper: Any, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _literal)


def injection_config() -> str:
    """The sidecar injector's config: inject where the webhook sends a pod, with our template."""
    config = {
        "policy": "enabled",
        "alwaysInjectSelector": [],
        "neverInjectSelector": [],
        "injectedAnnotations": {},
        "defaultTemplates": ["sidecar"],
        "templates": {"sidecar": SIDECAR_TEMPLATE.read_text()},
    }
    return yaml.dump(config, Dumper=_LiteralDumper, sort_keys=True)


def injection_values(namespace: str, proxy_image: str) -> str:
    """The values the injection template reads (`.Values`)."""
    values = {
        "global": {
            "caAddress": f"{istiod_host(namespace)}:{XDS_PORT}",
            "istioNamespace": namespace,
            "proxy": {"image": proxy_image, "clusterDomain": CLUSTER_DOMAIN},
        }
    }
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def files(
    *, namespace: str, proxy_image: str, ext_authz: ExtAuthz | None, bundle: CertificateBundle
) -> list[File]:
    """Every file istiod reads, with its content."""
    return [
        File(MESH_FILE, mesh_config(namespace, ext_authz)),
        File(f"{INJECT_DIR}/config", injection_config()),
        File(f"{INJECT_DIR}/values", injection_values(namespace, proxy_image)),
        File(f"{TLS_DIR}/tls.crt", bundle.tls_cert),
        File(f"{TLS_DIR}/tls.key", bundle.tls_key, 0o600),
        File(f"{TLS_DIR}/ca.crt", bundle.ca_cert),
        File(f"{CACERTS_DIR}/ca-cert.pem", bundle.ca_cert),
        File(f"{CACERTS_DIR}/ca-key.pem", bundle.ca_key, 0o600),
        File(f"{CACERTS_DIR}/root-cert.pem", bundle.ca_cert),
        File(f"{CACERTS_DIR}/cert-chain.pem", bundle.ca_cert),
    ]


def files_hash(wanted: list[File]) -> str:
    """A hash of every file's path, content and mode."""
    digest = hashlib.sha256()
    for f in sorted(wanted, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.permissions:o}\0{f.content}\0".encode())
    return digest.hexdigest()[:16]


def pebble_layer(
    *, namespace: str, pod_name: str, service_account: str, files_hash: str
) -> ops.pebble.LayerDict:
    """The Pebble layer: the istiod service and its ready check."""
    command = " ".join(
        [
            "/usr/local/bin/pilot-discovery discovery",
            "--monitoringAddr=:15014",
            "--log_output_level=default:info",
            f"--domain {CLUSTER_DOMAIN}",
            "--keepaliveMaxServerConnectionAge 30m",
            f"--meshConfig {MESH_FILE}",
            f"--tlsCertFile {TLS_DIR}/tls.crt",
            f"--tlsKeyFile {TLS_DIR}/tls.key",
            f"--caCertFile {TLS_DIR}/ca.crt",
        ]
    )
    return {
        "summary": "istiod",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "Istio control plane (pilot-discovery)",
                "command": command,
                "startup": "enabled",
                "working-dir": "/",
                "environment": {
                    "POD_NAME": pod_name,
                    "POD_NAMESPACE": namespace,
                    "SERVICE_ACCOUNT": service_account,
                    "REVISION": "default",
                    "CLUSTER_ID": "Kubernetes",
                    "PILOT_CERT_PROVIDER": "istiod",
                    "ROOT_CA_DIR": CACERTS_DIR,
                    # The charm owns the webhook's caBundle; istiod must not patch it,
                    # and it serves no validation webhook.
                    "INJECTION_WEBHOOK_CONFIG_NAME": "",
                    "VALIDATION_WEBHOOK_CONFIG_NAME": "",
                    "PILOT_ENABLE_ANALYSIS": "false",
                    # Where the gateway runs: the Gateways istiod makes for Ingress
                    # objects go there, and the status is the address of the Service
                    # there (istio-system otherwise).
                    "K8S_INGRESS_NS": namespace,
                    "CHARM_FILES_HASH": files_hash,
                },
            }
        },
        "checks": {
            READY_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "threshold": 3,
                "http": {"url": "http://localhost:8080/ready"},
            }
        },
    }


class Istiod:
    """istiod in its container."""

    def __init__(self, container: ops.Container):
        self._container = container
        # Set when `configure` found istiod running as wanted: for the rest of the
        # hook, the status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, wanted: list[File], layer: ops.pebble.LayerDict) -> bool:
        """Write the files and start or restart istiod when anything changed; whether it did."""
        self._settled = False
        running = self.is_running()
        if running and plan_has(self._container.get_plan(), layer):
            self._settled = True
            return False
        for f in wanted:
            self._container.push(f.path, f.content, make_dirs=True, permissions=f.permissions)
        self._container.add_layer(SERVICE, layer, combine=True)
        if running:
            self._container.restart(SERVICE)  # it reads its files only at start
        else:
            self._container.replan()
        return True

    def restart(self) -> None:
        """Restart istiod (it re-reads every file)."""
        self._container.restart(SERVICE)

    def can_connect(self) -> bool:
        """Whether the container's Pebble answers (known once `configure` found istiod settled)."""
        return self._settled or self._container.can_connect()

    def is_running(self) -> bool:
        """Whether the service runs (known once `configure` found istiod settled)."""
        if self._settled:
            return True
        service = self._container.get_services(SERVICE).get(SERVICE)
        return service is not None and service.is_running()

    def ready_check_passes(self) -> bool:
        """Whether the ready check passes (the service runs: ask `is_running` first)."""
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
