"""The istio charm: istiod under Pebble, the ingress gateway, and routes for the platform."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import forward_auth
import gateway
import istiod
import ops
import routes
import yaml
from forward_auth import LoginCheck
from gateway import GATEWAY, GATEWAY_NAME, TLS_MOUNT, TLS_SECRET
from istiod import ExtAuthz, Istiod
from routes import Conflict, RefusedError, Request, RoutePlan

from kubeflow_charms import certificates
from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.kubernetes import (
    Kind,
    KubernetesError,
    Resources,
    apply_stages,
    delete_all,
    error_status,
    load_balancer_address,
    render,
    render_digest,
)
from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import service_running
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces import istio_ingress_route

logger = logging.getLogger(__name__)

CONTAINER = istiod.CONTAINER
PEERS = "istio-peers"
# Route endpoints: (endpoint, interface, whether its routes need a login).
ROUTE = "istio-ingress-route"
ROUTE_OPEN = "istio-ingress-route-unauthenticated"
INGRESS = "ingress"
INGRESS_OPEN = "ingress-unauthenticated"
ROUTE_ENDPOINTS = {ROUTE: True, ROUTE_OPEN: False}
INGRESS_ENDPOINTS = {INGRESS: True, INGRESS_OPEN: False}
FORWARD_AUTH = "forward-auth"
GATEWAY_METADATA = "gateway-metadata"
TLS_RELATION = "certificates"
CERTS_LABEL = "istiod-certificates"
TEMPLATES = Path(__file__).parent / "templates"
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
# The templates of each scope, applied in this order (the CRDs before objects of their kinds).
STAGES = (
    ("crds", ("crds.yaml.j2",)),
    ("mesh", ("istiod.yaml.j2", "gateway.yaml.j2", "ingress.yaml.j2", "routes.yaml.j2")),
)
# Peer app databag keys: what the leader applied last.
HASH_KEY = "manifest-hash"
OBJECTS_KEY = "owned-objects"  # the digest of the objects as listed after that apply
INPUTS_KEY = "manifest-inputs"  # the digest of what the manifests in HASH_KEY were rendered from
ROUTES_KEY = "served-routes"
REQUESTS_KEY = "route-requests"  # the requests as last read, and the digest of their source
ADDRESS_KEY = "gateway-address"
# The gateway certificate and key that passed the check: their digest and the leaf's expiry.
TLS_CHECKED_KEY = "gateway-tls-checked"
# The provider's answer on istio_ingress_route: the ecosystem library's keys and ours.
ANSWER_KEYS = (
    istio_ingress_route.EXTERNAL_HOST_KEY,
    istio_ingress_route.TLS_ENABLED_KEY,
    istio_ingress_route.USER_HEADER_KEY,
    istio_ingress_route.USER_PREFIX_KEY,
)

CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
KINDS = (
    Kind("v1", "Service"),
    Kind("v1", "ServiceAccount"),
    Kind("v1", "Secret"),
    Kind("apps/v1", "Deployment"),
    # None rendered any more: kept so that the gateway's Role on Secrets, which earlier
    # versions made, is pruned on upgrade.
    Kind("rbac.authorization.k8s.io/v1", "Role"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    Kind("networking.k8s.io/v1", "IngressClass"),
    Kind("networking.istio.io/v1", "Gateway", "gateways"),
    Kind("networking.istio.io/v1", "VirtualService", "virtualservices"),
    Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
    Kind("networking.istio.io/v1alpha3", "EnvoyFilter", "envoyfilters"),
)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
# A label value: empty, or at most 63 of these characters, alphanumeric at both ends
# (IsValidLabelValue in k8s.io/apimachinery pkg/util/validation/validation.go).
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
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


def parse_node_selector(text: str) -> dict[str, str]:
    """A YAML or JSON map of node labels to values; ValueError says what is wrong."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError("must be a YAML or JSON map of node labels to values") from None
    if not isinstance(data, dict):
        raise ValueError("must be a YAML or JSON map of node labels to values")
    out: dict[str, str] = {}
    for key, value in data.items():
        # Label keys follow the same rules as annotation names (a qualified name).
        if not isinstance(key, str) or not _annotation_key_ok(key):
            raise ValueError(f"{key!r} is not a valid label name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise ValueError(f"the value of {key!r} is not a valid label value")
        out[key] = value
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
    gateway_node_selector: str = ""
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
        try:
            parse_node_selector(self.gateway_node_selector)
        except ValueError as e:
            raise ValueError(f"gateway-node-selector: {e}") from None
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

    @property
    def node_selector(self) -> dict[str, str]:
        """The gateway pods' nodeSelector."""
        return parse_node_selector(self.gateway_node_selector)


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
    tls_checked: str | None = None  # the record of the check `tls` passed (TLS_CHECKED_KEY)
    login: LoginCheck | None = None
    auth_problem: ops.StatusBase | None = None
    requests: dict[int, Request] = dataclasses.field(default_factory=dict)
    invalid: list[str] = dataclasses.field(default_factory=list)
    requests_digest: str | None = None  # of the relation data the requests were read from

    @property
    def ext_authz(self) -> ExtAuthz | None:
        """The login check as istiod's extension provider, once there is one."""
        if self.login is None:
            return None
        return ExtAuthz(
            service=self.login.host,
            port=self.login.port,
            include_request_headers=forward_auth.INCLUDE_REQUEST_HEADERS,
            headers_to_upstream=self.login.headers,
            headers_to_downstream=forward_auth.HEADERS_TO_DOWNSTREAM_ON_DENY,
        )

    @property
    def user_header(self) -> tuple[str, str]:
        """The header that names the user, and its value's prefix."""
        if self.login is None:
            return forward_auth.DEFAULT_USER_HEADER, ""
        return self.login.user_header, self.login.user_prefix

    @property
    def identity_headers(self) -> list[str]:
        """Headers only the login may set: dropped from requests on open routes."""
        headers = {self.user_header[0]}
        if self.login is not None:
            headers |= set(self.login.headers)
        return sorted(headers)


class IstioCharm(ops.CharmBase):
    """istiod, the ingress gateway and the routes of every related application."""

    # Whether the last full reconcile left this unit active. Every input but the cluster's
    # objects, istiod and what falls due with time (istiod's certificates, the gateway
    # certificate's expiry) comes with an event of its own (config, relation and secret
    # changes, leadership, pebble-ready), so an update-status on a settled leader looks
    # only at those, and at the gateway certificate where there is one.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._address_pending = False  # the active status waits for the load balancer
        self._container = self.unit.get_container(CONTAINER)
        self._istiod = Istiod(self._container)
        self._tls = self._tls_requirer()
        self._inputs: _Inputs | None = None
        self._plan: RoutePlan | None = None
        self._kubernetes_error: KubernetesError | None = None
        self._bundle: CertificateBundle | None = None  # as read or made in this hook

        on = self.on
        events = [
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
            on[FORWARD_AUTH].relation_created,
            on[FORWARD_AUTH].relation_changed,
            on[FORWARD_AUTH].relation_broken,
            on[GATEWAY_METADATA].relation_created,
            on[TLS_RELATION].relation_changed,
            on[TLS_RELATION].relation_broken,
        ]
        for endpoint in (*ROUTE_ENDPOINTS, *INGRESS_ENDPOINTS):
            events += [
                on[endpoint].relation_changed,
                on[endpoint].relation_departed,
                on[endpoint].relation_broken,
            ]
        for event in events:
            framework.observe(event, self._reconcile)
        framework.observe(on.remove, self._on_remove)
        framework.observe(on.secret_remove, self._on_secret_remove)
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
        if own_departure(self, event):
            # This unit is scaled away (a leader keeps its lease meanwhile): the
            # routes of its relations stay for the units that remain.
            logger.info("this unit is leaving: it leaves the routes to the units that stay")
            return
        routine = isinstance(event, ops.UpdateStatusEvent)
        if routine and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        inputs = self._inputs = self._read_inputs(routine=routine)
        if inputs.config is None or inputs.blocked:
            return  # bad config or TLS input: leave everything as it is
        self._reconciled = True
        bundle = self._certificates()
        if bundle is not None and self._container.can_connect():
            self._configure_istiod(inputs, bundle)
        if self.unit.is_leader() and bundle is not None:
            force = isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent))
            self._reconcile_cluster(inputs, bundle, force=force, routine=routine)

    def _nothing_drifted(self) -> bool:
        """On a settled leader: istiod, what falls due and the objects are as left.

        Another unit reconciles in full: istiod there must run the certificates
        the leader keeps, which it may have renewed.
        """
        if not self.unit.is_leader():
            return False
        if not service_running(self._container, istiod.SERVICE):
            return False
        if not self._istiod.ready_check_passes():
            return False
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return False
        stored = peer.data[self.app]
        if stored.get(TLS_CHECKED_KEY) and not self._same_gateway_tls(stored[TLS_CHECKED_KEY]):
            return False
        _, bundle = certificates.load(self.model, CERTS_LABEL)
        if bundle is None or bundle.renewal_due() is not None:
            return False
        return not self._owned(stored).drifted()

    def _same_gateway_tls(self, checked: str) -> bool:
        """Whether the gateway certificate is still the one checked last, and not expired."""
        try:
            config = self.load_config(IstioConfig)
        except ValueError:
            return False
        inputs = _Inputs(config=config)
        self._read_tls(inputs, config)
        return not inputs.blocked and inputs.tls_checked == checked

    def _read_inputs(self, *, routine: bool = False) -> _Inputs:
        """Config, TLS, the login check and (on the leader) route requests; writes nothing.

        `routine` (update-status): see `_read_requests`.
        """
        try:
            config = self.load_config(IstioConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {str(e).splitlines()[0]}")
        inputs = _Inputs(config=config)
        self._read_tls(inputs, config)
        self._read_auth(inputs)
        if self.unit.is_leader():
            self._read_requests(inputs, routine=routine)
        return inputs

    def _route_relations(self) -> list[tuple[str, ops.Relation]]:
        """Every relation that asks for a route, with its endpoint, in id order."""
        found = [
            (endpoint, relation)
            for endpoint in (*ROUTE_ENDPOINTS, *INGRESS_ENDPOINTS)
            for relation in self.model.relations[endpoint]
        ]
        return sorted(found, key=lambda pair: pair[1].id)

    def _read_requests(self, inputs: _Inputs, *, routine: bool = False) -> None:
        """Each relation's route request, checked; the last reading is reused while unchanged.

        Parsing a request needs the ecosystem's route models, whose import costs
        as much as a settled hook; a settled hook finds the same relation data
        and takes the requests from the peer databag instead.

        A routine hook (update-status) of a unit whose last hook ended active
        does not read the relations at all: every change of a route relation
        comes with a hook of its own, which read it, and an active leader
        applied and recorded what it read. After a hook that could not (bad
        config or TLS input, the API server refusing: not active), the
        relations are read again.
        """
        peer = self.model.get_relation(PEERS)
        cached = _load_json(peer.data[self.app].get(REQUESTS_KEY)) if peer else None
        if not isinstance(cached, dict) or not isinstance(cached.get("digest"), str):
            cached = None
        if routine and cached is not None and isinstance(self.unit.status, ops.ActiveStatus):
            _load_record(inputs, cached)
            return
        sources = []
        for endpoint, relation in self._route_relations():
            app = relation.app.name if relation.app else "?"
            units = []
            if endpoint in INGRESS_ENDPOINTS:
                units = [dict(relation.data[u]) for u in sorted(relation.units, key=str)]
            data = dict(relation.data[relation.app]) if relation.app else {}
            sources.append([endpoint, relation.id, app, data, units])
        inputs.requests_digest = routes.digest(sources)
        if cached is not None and cached["digest"] == inputs.requests_digest:
            _load_record(inputs, cached)
            return
        for endpoint, relation in self._route_relations():
            app = relation.app.name if relation.app else "?"
            try:
                request = self._parse_request(endpoint, relation, app)
            except RefusedError as e:
                inputs.invalid.append(f"{app} ({e})")
                continue
            if request is not None:
                inputs.requests[relation.id] = request

    def _parse_request(self, endpoint: str, relation: ops.Relation, app: str) -> Request | None:
        """One relation's request; None while it has asked nothing; RefusedError says why not."""
        if endpoint in ROUTE_ENDPOINTS:
            text = relation.data[relation.app].get("config") if relation.app else None
            if not text:
                return None
            from charmlibs.interfaces.istio_ingress_route import IstioIngressRouteConfig
            from pydantic import ValidationError

            try:
                config = IstioIngressRouteConfig.model_validate_json(text)
            except ValidationError as e:
                fields = sorted({".".join(str(p) for p in err["loc"]) for err in e.errors()})
                raise RefusedError(
                    f"invalid istio-ingress-route config: {', '.join(fields) or 'not JSON'}"
                ) from None
            return routes.from_istio_ingress_route(
                config,
                relation_id=relation.id,
                endpoint=endpoint,
                app=app,
                auth=ROUTE_ENDPOINTS[endpoint],
            )
        from kubeflow_interfaces.ingress import IngressV2Provider, InvalidIngressDataError

        try:
            data = IngressV2Provider(self, endpoint).request(relation)
        except InvalidIngressDataError as e:
            raise RefusedError(str(e)) from None
        if data is None:
            return None
        return routes.from_ingress_v2(
            data,
            relation_id=relation.id,
            endpoint=endpoint,
            app=app,
            auth=INGRESS_ENDPOINTS[endpoint],
            path=IngressV2Provider.default_path(data.model, data.name),
        )

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
            tls = GatewayTLS(cert=cert.strip() + "\n", key=key.strip() + "\n")
            self._check_tls(inputs, tls, "tls-secret-id")
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
            tls = GatewayTLS(cert="\n".join(pems) + "\n", key=str(key).strip() + "\n")
            self._check_tls(inputs, tls, f"certificates relation with {provider}")

    def _check_tls(self, inputs: _Inputs, tls: GatewayTLS, source: str) -> None:
        """Take `tls` if the key is the certificate's, the chain holds and it has not expired.

        Parsing needs `cryptography`, too heavy for a settled hook: the leader
        records the digest of the certificate and key that passed, with the
        leaf's expiry, and a hook that finds the same digest checks only the
        recorded expiry.
        """
        digest = hashlib.sha256(f"{tls.cert}\0{tls.key}".encode()).hexdigest()
        peer = self.model.get_relation(PEERS)
        record = _load_json(peer.data[self.app].get(TLS_CHECKED_KEY)) if peer else None
        not_after = None
        if isinstance(record, dict) and record.get("digest") == digest:
            try:
                not_after = dt.datetime.fromisoformat(str(record.get("not-after")))
            except ValueError:
                not_after = None
        if not_after is None or not_after.tzinfo is None:
            try:
                not_after = gateway.check_tls(tls.cert, tls.key)
            except ValueError as e:
                inputs.blocked = f"{source}: {e}"
                return
        if not_after <= dt.datetime.now(dt.timezone.utc):
            inputs.blocked = f"{source}: the certificate expired at {not_after.isoformat()}"
            return
        inputs.tls = tls
        inputs.tls_checked = json.dumps(
            {"digest": digest, "not-after": not_after.isoformat()}, sort_keys=True
        )

    def _read_auth(self, inputs: _Inputs) -> None:
        relation = self.model.get_relation(FORWARD_AUTH)
        if relation is None:
            inputs.auth_problem = ops.BlockedStatus(
                "authenticated routes are not served: relate forward-auth"
            )
            return
        provider = relation.app.name if relation.app else "?"
        try:
            login = forward_auth.parse(relation.data[relation.app] if relation.app else {})
        except ValueError as e:
            inputs.auth_problem = ops.BlockedStatus(
                f"authenticated routes are not served: {provider} sent invalid "
                f"forward-auth data ({e})"
            )
            return
        if login is None:
            inputs.auth_problem = ops.WaitingStatus(
                f"authenticated routes are not served: waiting for {provider}"
            )
            return
        if login.user_header not in login.headers:
            inputs.auth_problem = ops.BlockedStatus(
                f"authenticated routes are not served: {provider} does not pass "
                f"{login.user_header} upstream"
            )
            return
        inputs.login = login

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
        """Leader: apply the cluster's objects if they changed, then answer every relation.

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
        plan = self._plan = routes.plan_routes(
            inputs.requests, routes.load_requests(stored.get(ROUTES_KEY))
        )
        served = self._served(plan, inputs)
        context = self._context(inputs, bundle, served)
        digest = render_digest(TEMPLATES, [n for _, names in STAGES for n in names], context)
        owned = self._owned(stored)
        if routine and stored.get(HASH_KEY) and not force:
            force = owned.drifted()  # an object deleted or changed behind the charm's back
        if force or digest != stored.get(INPUTS_KEY) or not stored.get(HASH_KEY):
            stages = [
                (self._resources(scope), render(TEMPLATES, names, context))
                for scope, names in STAGES
            ]
            try:
                applied = apply_stages(stages, stored.get(HASH_KEY), force=force)
            except KubernetesError as e:
                self._kubernetes_error = e
                logger.error("applying the Kubernetes objects failed: %s", e)
                return
            if force or applied != stored.get(HASH_KEY):
                owned.record()
        else:
            applied = stored[HASH_KEY]  # the same inputs render the manifests applied last
        if applied != stored.get(HASH_KEY):
            logger.info("applied the Kubernetes objects (%d routes)", len(served))
        served_text = routes.dump_requests(served)
        address = self._gateway_address(config, previous[2], refresh=not routine)
        _set(stored, HASH_KEY, applied)
        _set(stored, INPUTS_KEY, digest)
        _set(stored, ROUTES_KEY, served_text)
        _set(stored, ADDRESS_KEY, address)
        _set(stored, REQUESTS_KEY, self._requests_record(inputs))
        _set(stored, TLS_CHECKED_KEY, inputs.tls_checked)
        if routine and (applied, served_text, address) == previous:
            return  # the answers written last time still hold
        self._answer(inputs, config, served, address)

    def _owned(self, stored: ops.RelationDataContent) -> OwnedObjects:
        return OwnedObjects(
            stored, OBJECTS_KEY, app=self.app.name, model=self.model.name, kinds=CRD_KINDS + KINDS
        )

    def _requests_record(self, inputs: _Inputs) -> str | None:
        if inputs.requests_digest is None:
            return None
        requests = [inputs.requests[i].to_dict() for i in sorted(inputs.requests)]
        record = {
            "digest": inputs.requests_digest,
            "requests": requests,
            "invalid": inputs.invalid,
        }
        return json.dumps(record, sort_keys=True)

    def _answer(
        self,
        inputs: _Inputs,
        config: IstioConfig,
        served: dict[int, Request],
        address: str | None,
    ) -> None:
        """Tell every related application where it is served, and the login who protects."""
        base = gateway.base_url(
            tls=inputs.tls is not None,
            external_hostname=config.external_hostname,
            lb_address=address,
            namespace=self.model.name,
        )
        host = base.split("://", 1)[1]
        header, prefix = inputs.user_header
        answer = dict(
            zip(ANSWER_KEYS, (host, str(inputs.tls is not None), header, prefix), strict=True)
        )
        protected: set[str] = set()
        for endpoint, relation in self._route_relations():
            databag = relation.data[self.app]
            request = served.get(relation.id)
            if relation.app is not None and (
                ROUTE_ENDPOINTS.get(endpoint) or INGRESS_ENDPOINTS.get(endpoint)
            ):
                protected.add(relation.app.name)
            if endpoint in ROUTE_ENDPOINTS:
                for key in ANSWER_KEYS:
                    _set(databag, key, answer[key] if request else None)
            else:
                from kubeflow_interfaces.ingress import IngressV2Provider

                url = f"{base}{request.url_path}" if request else None
                IngressV2Provider(self, endpoint).publish(relation, url)
        self._publish_protected_apps(sorted(protected))
        self._publish_gateway_metadata()

    def _publish_protected_apps(self, apps: list[str]) -> None:
        """Tell the login provider which applications sit behind it (forward-auth)."""
        relation = self.model.get_relation(FORWARD_AUTH)
        if relation is None or relation.app is None:
            return
        _set(relation.data[self.app], forward_auth.INGRESS_APP_NAMES, json.dumps(apps))

    def _publish_gateway_metadata(self) -> None:
        """The gateway's namespace, name, Deployment and ServiceAccount (gateway-metadata)."""
        relations = self.model.relations[GATEWAY_METADATA]
        if not relations:
            return
        wanted = {
            "namespace": self.model.name,
            "gateway_name": GATEWAY,
            "deployment_name": GATEWAY_NAME,
            "service_account": GATEWAY_NAME,
        }
        if all(_load_json(r.data[self.app].get("metadata")) == wanted for r in relations):
            return
        from charmlibs.interfaces.gateway_metadata import GatewayMetadata

        text = GatewayMetadata(**wanted).model_dump_json()
        for relation in relations:
            _set(relation.data[self.app], "metadata", text)

    @staticmethod
    def _served(plan: RoutePlan, inputs: _Inputs) -> dict[int, Request]:
        """The planned routes that are served: a route that needs a login only with ext_authz."""
        return {
            rid: request
            for rid, request in plan.routes.items()
            if not request.auth or inputs.login is not None
        }

    def _context(
        self, inputs: _Inputs, bundle: CertificateBundle, served: dict[int, Request]
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
            "node_selector": config.node_selector,
            "tls": gateway.tls_context(inputs.tls.cert, inputs.tls.key) if inputs.tls else None,
            "tls_secret_name": TLS_SECRET,
            "tls_mount_path": TLS_MOUNT,
            "virtual_services": routes.virtual_services(served, inputs.identity_headers),
            "auth": inputs.ext_authz,
            "auth_rules": routes.auth_rules(served),
            "strip_identity_lua": routes.strip_headers_lua(inputs.identity_headers),
            "ingress_class": istiod.INGRESS_CLASS,
            "ingress_controller": istiod.INGRESS_CONTROLLER,
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

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of istiod's certificates (after a rotation or a
        # renewal) that no unit reads any more: the old CA key goes.
        if self.unit.is_leader():
            event.remove_revision()

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

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        statuses = self._unit_statuses()
        # A gateway still waiting for its address is looked for on update-status.
        reconciled = self._reconciled and not self._address_pending
        add_and_note_settled(event, statuses, self._settled, reconciled=reconciled)

    def _unit_statuses(self) -> list[ops.StatusBase]:
        inputs = self._current_inputs()
        if inputs.blocked:
            return [ops.BlockedStatus(inputs.blocked)]
        statuses = self._workload_problems()
        if self.unit.is_leader():
            statuses += self._cluster_problems(inputs)
            statuses.append(ops.ActiveStatus(self._active_message(inputs)))
        else:
            statuses.append(ops.ActiveStatus())
        return statuses

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        for status in self._cluster_problems(inputs):
            event.add_status(status)
        event.add_status(ops.ActiveStatus(self._active_message(inputs)))

    def _workload_problems(self) -> list[ops.StatusBase]:
        if not self._istiod.can_connect():
            return [ops.WaitingStatus("waiting for the istiod container")]
        bundle = self._bundle
        if bundle is None:
            _, bundle = certificates.load(self.model, CERTS_LABEL)
        if bundle is None:
            return [ops.WaitingStatus("waiting for the leader to make istiod's certificates")]
        if not self._istiod.is_running():
            return [ops.MaintenanceStatus("starting istiod")]
        if not self._istiod.ready_check_passes():
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
            plan = routes.plan_routes(
                inputs.requests, routes.load_requests(peer.data[self.app].get(ROUTES_KEY))
            )
        if plan.conflicts:
            problems.append(ops.BlockedStatus(_conflicts_message(plan.conflicts)))
        if inputs.invalid:
            problems.append(ops.BlockedStatus(f"route refused: {'; '.join(inputs.invalid)}"))
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
        pending = self._address_pending = (
            not config.external_hostname
            and config.gateway_service_type == "LoadBalancer"
            and not address
        )
        return f"{url} (no load-balancer address yet)" if pending else url


def _set(databag: ops.RelationDataContent, key: str, value: str | None) -> None:
    """Write a key only when it changes; None or "" removes it (Juju keeps no empty value)."""
    if not value:
        if key in databag:
            del databag[key]
    elif databag.get(key) != value:
        databag[key] = value


def _load_record(inputs: _Inputs, record: dict[str, Any]) -> None:
    """Take the route requests from the record of their last reading (REQUESTS_KEY)."""
    inputs.requests_digest = record["digest"]
    inputs.requests = routes.load_requests(json.dumps(record.get("requests", [])))
    inputs.invalid = [str(i) for i in record.get("invalid", [])]


def _conflicts_message(conflicts: tuple[Conflict, ...]) -> str:
    return "; ".join(c.message() for c in conflicts)


def _load_json(text: str | None) -> Any:
    """A databag value as JSON, None when absent or not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
