#!/usr/bin/env python3
"""The istio charm: istiod under Pebble, the ingress gateway, and routes for the platform."""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import gateway
import istiod
import ops
import yaml
from gateway import GATEWAY, GATEWAY_NAME, TLS_SECRET, Conflict, Route, RoutePlan
from istiod import ExtAuthz, Istiod

from kubeflow_charms import certificates
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    apply_stages,
    delete_all,
    error_status,
    load_balancer_address,
    render,
)
from kubeflow_interfaces.ingress import IngressProvider, InvalidIngressDataError
from kubeflow_interfaces.ingress_auth import IngressAuthRequirer, InvalidIngressAuthDataError

logger = logging.getLogger(__name__)

CONTAINER = istiod.CONTAINER
PEERS = "istio-peers"
INGRESS = "ingress"
INGRESS_AUTH = "ingress-auth"
TLS_RELATION = "certificates"
CERTS_LABEL = "istiod-certificates"
TEMPLATES = Path(__file__).parent / "templates"
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
# Peer app databag keys: what the leader applied last.
HASH_KEY = "manifest-hash"
ROUTES_KEY = "routes"
ADDRESS_KEY = "gateway-address"

CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
KINDS = (
    Kind("v1", "Service"),
    Kind("v1", "ServiceAccount"),
    Kind("v1", "Secret"),
    Kind("apps/v1", "Deployment"),
    Kind("rbac.authorization.k8s.io/v1", "Role"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    Kind("networking.istio.io/v1", "Gateway", "gateways"),
    Kind("networking.istio.io/v1", "VirtualService", "virtualservices"),
    Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_PEM_KEY = re.compile(
    r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[A-Za-z0-9+/=\s]+-----END ([A-Z]+ )?PRIVATE KEY-----"
)


def parse_annotations(text: str) -> dict[str, str]:
    """A YAML or JSON map of annotations; ValueError says what is wrong."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError("must be a YAML or JSON map of strings") from None
    if not isinstance(data, dict):
        raise ValueError("must be a YAML or JSON map of strings")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _annotation_key_ok(key):
            raise ValueError(f"{key!r} is not a valid annotation name")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            raise ValueError(f"the value of {key!r} must be a string")
    return out


def _annotation_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _HOSTNAME.match(prefix)):
        return False
    return bool(_ANNOTATION_NAME.match(name))


@dataclasses.dataclass(frozen=True, kw_only=True)
class IstioConfig:
    """The charm's config options, validated; errors name the option."""

    gateway_service_type: str = "LoadBalancer"
    gateway_replicas: int = 1
    gateway_service_annotations: str = ""
    external_hostname: str = ""
    tls_secret_id: ops.Secret | None = None
    proxy_image: str = "docker.io/istio/proxyv2:1.29.6"

    def __post_init__(self):
        if self.gateway_service_type not in SERVICE_TYPES:
            raise ValueError(
                f"gateway-service-type: must be one of {', '.join(SERVICE_TYPES)}, "
                f"not {self.gateway_service_type!r}"
            )
        if not 1 <= self.gateway_replicas <= 50:
            raise ValueError("gateway-replicas: must be between 1 and 50")
        try:
            parse_annotations(self.gateway_service_annotations)
        except ValueError as e:
            raise ValueError(f"gateway-service-annotations: {e}") from None
        if self.external_hostname and not _HOSTNAME.match(self.external_hostname):
            raise ValueError(
                "external-hostname: must be a DNS name like kubeflow.example.com "
                "(no scheme, port or path)"
            )
        if not _IMAGE.match(self.proxy_image):
            raise ValueError("proxy-image: must be an image reference like istio/proxyv2:1.29.6")

    @property
    def service_annotations(self) -> dict[str, str]:
        """The gateway Service's annotations."""
        return parse_annotations(self.gateway_service_annotations)


@dataclasses.dataclass(frozen=True)
class GatewayTLS:
    """The gateway's HTTPS certificate (chain) and key, PEM."""

    cert: str
    key: str = dataclasses.field(repr=False)


@dataclasses.dataclass
class _Inputs:
    """What one hook knows, read and checked, before anything is written."""

    config: IstioConfig | None = None
    blocked: str | None = None  # nothing is applied while set
    tls: GatewayTLS | None = None
    tls_waiting: str | None = None
    ext_authz: ExtAuthz | None = None
    auth_problem: ops.StatusBase | None = None
    requests: dict[int, Route] = dataclasses.field(default_factory=dict)
    invalid: list[str] = dataclasses.field(default_factory=list)


class IstioCharm(ops.CharmBase):
    """istiod, the ingress gateway and the routes of every related application."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._container = self.unit.get_container(CONTAINER)
        self._istiod = Istiod(self._container)
        self._ingress = IngressProvider(self, INGRESS)
        self._auth = IngressAuthRequirer(self, INGRESS_AUTH)
        self._tls = self._tls_requirer()
        self._inputs: _Inputs | None = None
        self._plan: RoutePlan | None = None
        self._kubernetes_error: KubernetesError | None = None
        self._bundle: CertificateBundle | None = None  # as read or made in this hook

        on = self.on
        for event in (
            on.install,
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.update_status,
            on.secret_changed,
            on[CONTAINER].pebble_ready,
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
            on[INGRESS].relation_changed,
            on[INGRESS].relation_departed,
            on[INGRESS].relation_broken,
            on[INGRESS_AUTH].relation_created,
            on[INGRESS_AUTH].relation_changed,
            on[INGRESS_AUTH].relation_broken,
            on[TLS_RELATION].relation_changed,
            on[TLS_RELATION].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.remove, self._on_remove)
        framework.observe(on.rotate_certificates_action, self._on_rotate_certificates)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    def _tls_requirer(self) -> Any:
        """The tls-certificates requirer, only while the relation exists (the library is heavy)."""
        hook = ops.JujuContext.from_environ().hook_name
        if not self.model.relations[TLS_RELATION] and not hook.startswith(f"{TLS_RELATION}-"):
            return None
        from charmlibs.interfaces import tls_certificates as tls

        requirer = tls.TLSCertificatesRequiresV4(
            self,
            TLS_RELATION,
            certificate_requests=[self._tls_request()],
            mode=tls.Mode.APP,
            refresh_events=[self.on.config_changed],
        )
        self.framework.observe(requirer.on.certificate_available, self._reconcile)
        return requirer

    def _tls_request(self) -> Any:
        from charmlibs.interfaces import tls_certificates as tls

        host = str(self.config.get("external-hostname") or "")
        if not _HOSTNAME.match(host):
            host = f"{GATEWAY_NAME}.{self.model.name}.svc.cluster.local"
        return tls.CertificateRequestAttributes(common_name=host[:64], sans_dns=[host])

    # --- reconcile -------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring istiod, the cluster's objects and the routes to what the inputs say."""
        inputs = self._inputs = self._read_inputs()
        if inputs.config is None or inputs.blocked:
            return  # bad config or TLS input: leave everything as it is
        bundle = self._certificates()
        if bundle is not None and self._container.can_connect():
            self._configure_istiod(inputs, bundle)
        if self.unit.is_leader() and bundle is not None:
            force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
            routine = isinstance(event, ops.UpdateStatusEvent)
            self._reconcile_cluster(inputs, bundle, force=force, routine=routine)

    def _read_inputs(self) -> _Inputs:
        """Config, TLS, ext_authz and route requests as they are now; writes nothing."""
        try:
            config = self.load_config(IstioConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {str(e).splitlines()[0]}")
        inputs = _Inputs(config=config)
        self._read_tls(inputs, config)
        self._read_auth(inputs)
        for relation in self._ingress.relations:
            app = relation.app.name if relation.app else "?"
            try:
                request = self._ingress.request(relation)
            except InvalidIngressDataError as e:
                inputs.invalid.append(f"{app} ({e})")
                continue
            if request is None:
                continue
            inputs.requests[relation.id] = Route(
                relation_id=relation.id,
                app=app,
                prefix=request.prefix,
                rewrite=request.rewrite,
                service=request.service,
                namespace=request.namespace,
                port=request.port,
                auth=request.auth,
            )
        return inputs

    def _read_tls(self, inputs: _Inputs, config: IstioConfig) -> None:
        relation = self.model.get_relation(TLS_RELATION)
        if config.tls_secret_id is not None and relation is not None:
            provider = relation.app.name if relation.app else "?"
            inputs.blocked = (
                f"two gateway certificates: tls-secret-id and the certificates relation "
                f"with {provider}; remove one"
            )
            return
        if config.tls_secret_id is not None:
            try:
                content = config.tls_secret_id.get_content(refresh=True)
            except ops.ModelError:
                inputs.blocked = (
                    "tls-secret-id: cannot read the secret; grant it to this application"
                )
                return
            cert, key = content.get("tls-cert", ""), content.get("tls-key", "")
            if not _PEM_CERT.search(cert) or not _PEM_KEY.search(key):
                inputs.blocked = (
                    "tls-secret-id: the secret needs tls-cert (PEM certificate) "
                    "and tls-key (PEM private key)"
                )
                return
            inputs.tls = GatewayTLS(cert=cert.strip() + "\n", key=key.strip() + "\n")
            return
        if relation is not None and self._tls is not None and self.unit.is_leader():
            # App mode: the leader holds the key and applies the gateway's Secret.
            provider = relation.app.name if relation.app else "?"
            certificate, key = self._tls.get_assigned_certificate(self._tls_request())
            if certificate is None or key is None:
                inputs.tls_waiting = f"waiting for the gateway certificate from {provider}"
                return
            leaf = str(certificate.certificate).strip()
            pems = [leaf] + [str(c).strip() for c in certificate.chain if str(c).strip() != leaf]
            inputs.tls = GatewayTLS(cert="\n".join(pems) + "\n", key=str(key).strip() + "\n")

    def _read_auth(self, inputs: _Inputs) -> None:
        relation = self._auth.relation
        if relation is None:
            inputs.auth_problem = ops.BlockedStatus(
                "authenticated routes are not served: relate ingress-auth"
            )
            return
        provider = relation.app.name if relation.app else "?"
        try:
            data = self._auth.data()
        except InvalidIngressAuthDataError as e:
            inputs.auth_problem = ops.BlockedStatus(
                f"authenticated routes are not served: {provider} sent {e}"
            )
            return
        if data is None:
            inputs.auth_problem = ops.WaitingStatus(
                f"authenticated routes are not served: waiting for {provider}"
            )
            return
        inputs.ext_authz = ExtAuthz(
            service=data.target,
            port=data.port,
            include_request_headers=tuple(data.include_request_headers),
            headers_to_upstream=tuple(data.headers_to_upstream),
            headers_to_downstream=tuple(data.headers_to_downstream),
        )

    def _certificates(self) -> CertificateBundle | None:
        """The CA and serving certificate of istiod: made, or renewed when due, by the leader."""
        leader = self.unit.is_leader()
        secret, bundle = certificates.load(self.model, CERTS_LABEL)
        self._bundle = bundle
        if not leader:
            return bundle
        if bundle is None:
            bundle = certificates.new_bundle(self._ca_name(), istiod.dns_names(self.model.name))
            certificates.store(
                self.app, bundle, label=CERTS_LABEL, secret=secret, description="istiod CA"
            )
            self._bundle = bundle
            logger.info("made istiod's CA and serving certificate (serial %s)", bundle.serial)
            return bundle
        due = bundle.renewal_due()
        if due == "ca":
            bundle = certificates.new_bundle(self._ca_name(), istiod.dns_names(self.model.name))
        elif due == "serving":
            bundle = certificates.renew_serving(bundle, istiod.dns_names(self.model.name))
        else:
            return bundle
        certificates.store(self.app, bundle, label=CERTS_LABEL, secret=secret)
        self._bundle = bundle
        logger.info("renewed istiod's %s certificate (serial %s)", due, bundle.serial)
        return bundle

    def _ca_name(self) -> str:
        return f"{self.app.name} mesh CA ({self.model.name})"

    def _configure_istiod(self, inputs: _Inputs, bundle: CertificateBundle) -> bool:
        config = inputs.config
        assert config is not None
        files = istiod.files(
            namespace=self.model.name,
            proxy_image=config.proxy_image,
            ext_authz=inputs.ext_authz,
            bundle=bundle,
        )
        layer = istiod.pebble_layer(
            namespace=self.model.name,
            pod_name=self.unit.name.replace("/", "-"),
            service_account=self.app.name,
            files_hash=istiod.files_hash(files),
        )
        changed = self._istiod.configure(files, layer)
        if changed:
            logger.info("istiod (re)started with its new configuration")
        return changed

    def _reconcile_cluster(
        self, inputs: _Inputs, bundle: CertificateBundle, *, force: bool, routine: bool
    ) -> None:
        """Leader: apply the cluster's objects if they changed, then publish the routes' URLs.

        A routine hook (update-status) with nothing changed reads no more than it must:
        no load-balancer address it already knows, no relation data it already wrote.
        """
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return
        config = inputs.config
        assert config is not None
        stored = peer.data[self.app]
        previous = (stored.get(HASH_KEY), stored.get(ROUTES_KEY), stored.get(ADDRESS_KEY))
        plan = self._plan = gateway.plan_routes(
            inputs.requests, gateway.load_routes(stored.get(ROUTES_KEY))
        )
        served = self._served(plan, inputs)
        context = self._context(inputs, bundle, served)
        stages = [
            (self._resources("crds"), render(TEMPLATES, ["crds.yaml.j2"], context)),
            (
                self._resources("mesh"),
                render(
                    TEMPLATES, ["istiod.yaml.j2", "gateway.yaml.j2", "routes.yaml.j2"], context
                ),
            ),
        ]
        try:
            applied = apply_stages(stages, stored.get(HASH_KEY), force=force)
        except KubernetesError as e:
            self._kubernetes_error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        if applied != stored.get(HASH_KEY):
            logger.info("applied the Kubernetes objects (%d routes)", len(served))
        routes = gateway.dump_routes(served)
        address = self._gateway_address(config, previous[2], refresh=not routine)
        _set(stored, HASH_KEY, applied)
        _set(stored, ROUTES_KEY, routes)
        _set(stored, ADDRESS_KEY, address)
        if routine and (applied, routes, address) == previous:
            return  # the URLs published last time still hold
        base = gateway.base_url(
            tls=inputs.tls is not None,
            external_hostname=config.external_hostname,
            lb_address=address,
            namespace=self.model.name,
        )
        for relation in self._ingress.relations:
            route = served.get(relation.id)
            self._ingress.publish(relation, f"{base}{route.prefix}" if route else None)

    @staticmethod
    def _served(plan: RoutePlan, inputs: _Inputs) -> dict[int, Route]:
        """The planned routes that are served: a route that needs a login only with ext_authz."""
        return {
            rid: route
            for rid, route in plan.routes.items()
            if not route.auth or inputs.ext_authz is not None
        }

    def _context(
        self, inputs: _Inputs, bundle: CertificateBundle, served: dict[int, Route]
    ) -> dict[str, Any]:
        config = inputs.config
        assert config is not None
        return {
            "app": self.app.name,
            "namespace": self.model.name,
            "webhook_name": f"{self.app.name}-{self.model.name}-sidecar-injector",
            "ca_bundle": base64.b64encode(bundle.ca_cert.encode()).decode(),
            "ca_serial": bundle.ca_serial,
            "istiod_address": f"{istiod.istiod_host(self.model.name)}:{istiod.XDS_PORT}",
            "gateway": GATEWAY,
            "gateway_name": GATEWAY_NAME,
            "proxy_image": config.proxy_image,
            "replicas": config.gateway_replicas,
            "service_type": config.gateway_service_type,
            "service_annotations": config.service_annotations,
            "tls": gateway.tls_context(inputs.tls.cert, inputs.tls.key) if inputs.tls else None,
            "tls_secret_name": TLS_SECRET,
            "routes": gateway.virtual_services(served),
            "auth": inputs.ext_authz,
            "auth_rules": gateway.auth_rules(served),
        }

    def _resources(self, scope: str) -> Resources:
        kinds = CRD_KINDS if scope == "crds" else KINDS
        return Resources(app=self.app.name, model=self.model.name, scope=scope, kinds=kinds)

    def _gateway_address(
        self, config: IstioConfig, known: str | None, *, refresh: bool
    ) -> str | None:
        """The gateway Service's load-balancer address, read again unless known and settled."""
        if config.external_hostname or config.gateway_service_type != "LoadBalancer":
            return None
        if known and not refresh:
            return known
        try:
            return load_balancer_address(GATEWAY_NAME, self.model.name)
        except KubernetesError as e:
            logger.warning("cannot read the gateway's load-balancer address: %s", e)
            return known

    # --- remove ------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: delete every object it made (a unit leaving deletes nothing)."""
        if self.app.planned_units() > 0:
            return
        delete_all(self.app.name, [self._resources("mesh"), self._resources("crds")])

    # --- actions -----------------------------------------------------------------------

    def _on_rotate_certificates(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run rotate-certificates on the leader unit")
            return
        inputs = self._inputs = self._read_inputs()
        if inputs.config is None or inputs.blocked:
            event.fail(f"fix the charm first: {inputs.blocked}")
            return
        if self.model.get_relation(PEERS) is None:
            event.fail("the charm is not set up yet: try again later")
            return
        if not self._container.can_connect():
            event.fail("the istiod container is not reachable: try again later")
            return
        secret, _ = certificates.load(self.model, CERTS_LABEL)
        bundle = certificates.new_bundle(self._ca_name(), istiod.dns_names(self.model.name))
        certificates.store(
            self.app, bundle, label=CERTS_LABEL, secret=secret, description="istiod CA"
        )
        self._bundle = bundle
        logger.info("rotated istiod's CA (serial %s)", bundle.ca_serial)
        self._configure_istiod(inputs, bundle)
        self._reconcile_cluster(inputs, bundle, force=True, routine=False)
        if self._kubernetes_error is not None:
            event.fail(
                f"the new certificates are in place but the webhook was not updated: "
                f"{self._kubernetes_error}; the charm retries on its next hook"
            )
            return
        event.set_results(
            {
                "ca-serial": bundle.ca_serial,
                "ca-not-after": bundle.ca_not_after.isoformat(),
                "serial": bundle.serial,
                "not-after": bundle.not_after.isoformat(),
                "next-renewal": bundle.next_renewal().isoformat(),
            }
        )

    # --- status ------------------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        for status in self._workload_problems():
            event.add_status(status)
        if self.unit.is_leader():
            for status in self._cluster_problems(inputs):
                event.add_status(status)
            event.add_status(ops.ActiveStatus(self._active_message(inputs)))
        else:
            event.add_status(ops.ActiveStatus())

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        for status in self._cluster_problems(inputs):
            event.add_status(status)
        event.add_status(ops.ActiveStatus(self._active_message(inputs)))

    def _workload_problems(self) -> list[ops.StatusBase]:
        if not self._container.can_connect():
            return [ops.WaitingStatus("waiting for the istiod container")]
        bundle = self._bundle
        if bundle is None:
            _, bundle = certificates.load(self.model, CERTS_LABEL)
        if bundle is None:
            return [ops.WaitingStatus("waiting for the leader to make istiod's certificates")]
        if not self._istiod.is_running():
            return [ops.MaintenanceStatus("starting istiod")]
        if not self._istiod.is_ready():
            return [ops.WaitingStatus("istiod is not ready yet")]
        return []

    def _cluster_problems(self, inputs: _Inputs) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return [ops.WaitingStatus("waiting for the peer relation")]
        if self._kubernetes_error is not None:
            problems.append(error_status(self._kubernetes_error, self.app.name))
        plan = self._plan
        if plan is None:
            plan = gateway.plan_routes(
                inputs.requests, gateway.load_routes(peer.data[self.app].get(ROUTES_KEY))
            )
        if plan.conflicts:
            problems.append(ops.BlockedStatus(_conflicts_message(plan.conflicts)))
        if inputs.invalid:
            problems.append(
                ops.BlockedStatus(f"invalid ingress request: {'; '.join(inputs.invalid)}")
            )
        needs_auth = any(r.auth for r in plan.routes.values()) or any(
            r.auth for r in inputs.requests.values()
        )
        if needs_auth and inputs.auth_problem is not None:
            problems.append(inputs.auth_problem)
        if inputs.tls_waiting:
            problems.append(ops.WaitingStatus(inputs.tls_waiting))
        return problems

    def _active_message(self, inputs: _Inputs) -> str:
        config = inputs.config
        assert config is not None
        peer = self.model.get_relation(PEERS)
        address = peer.data[self.app].get(ADDRESS_KEY) if peer else None
        url = gateway.base_url(
            tls=inputs.tls is not None,
            external_hostname=config.external_hostname,
            lb_address=address,
            namespace=self.model.name,
        )
        pending = (
            not config.external_hostname
            and config.gateway_service_type == "LoadBalancer"
            and not address
        )
        return f"{url} (no load-balancer address yet)" if pending else url


def _set(databag: ops.RelationDataContent, key: str, value: str | None) -> None:
    """Write a key only when it changes; None removes it."""
    if value is None:
        if key in databag:
            del databag[key]
    elif databag.get(key) != value:
        databag[key] = value


def _conflicts_message(conflicts: tuple[Conflict, ...]) -> str:
    return "; ".join(c.message() for c in conflicts)


if __name__ == "__main__":  # pragma: nocover
    ops.main(IstioCharm)
