"""The kfp charm's cluster objects, applied by the leader, and the persistence agent's token.

The leader applies, in order: the CustomResourceDefinitions, the RBAC bound
to the charm's ServiceAccount (Juju names it after the application) with the
users' aggregated roles, the Services the KFP images reach each other by,
and Argo's ConfigMap (only once the object store's endpoint is known: until
then there is nothing to point the artifact repository at, and a ConfigMap
applied before stays as it is). What it rendered is kept as a digest in the
peer relation's app databag, so a hook where nothing changed renders
nothing and writes nothing; on update-status the objects are listed
(`OwnedObjects`) and applied again when one was deleted or changed behind
the charm's back.

The persistence agent authenticates to the API server with a token of the
audience `pipelines.kubeflow.org`, which it reads from a file every hour
(KFP 2.4.1 backend/src/agent/persistence/main.go, client/token_refresher.go);
upstream a projected volume puts it there. Here the leader asks for one
(TokenRequest) for the charm's ServiceAccount, writes it into the
persistence-agent container and renews it when a third of its life is left.
Its expiry is kept in the unit's stored state, so a settled hook compares
numbers and checks the file is there. Its value is never logged.

lightkube is imported only on the paths that talk to the API server.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import kfp_profiles
import kfp_workloads as wl
import ops
from kfp_config import ARGO_KEY_FORMAT, BUCKET, KfpConfig

from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.gateway_identity import Gateway
from kubeflow_charms.kubernetes import (
    CRD_KINDS,
    RBAC_KINDS,
    Kind,
    KubernetesError,
    Resources,
    api_errors,
    delete_all,
    error_status,
    render,
    render_digest,
)

logger = logging.getLogger(__name__)

PEERS = "kfp-peers"
MANIFESTS = Path(__file__).parent / "manifests"
# Peer app databag: the digest of the templates and values the leader applied
# last, and the digest of the objects as listed after that apply.
HASH_KEY = "cluster-hash"
OBJECTS_KEY = "cluster-objects"
TOKEN_AUDIENCE = "pipelines.kubeflow.org"  # noqa: S105 (an audience)
# The agent rereads the file hourly; renewal at two thirds leaves it 8 hours.
TOKEN_LIFETIME = 24 * 3600

SERVICE_KINDS = (Kind("v1", "Service"),)
CONFIGMAP_KINDS = (Kind("v1", "ConfigMap"),)
NETWORK_KINDS = (Kind("networking.k8s.io/v1", "NetworkPolicy"),)
MESH_KINDS = (Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),)
# scope: (templates, kinds), in the order they are applied.
SCOPES: dict[str, tuple[tuple[str, ...], tuple[Kind, ...]]] = {
    "crds": (("crds.yaml.j2",), CRD_KINDS),
    "rbac": (("rbac.yaml.j2", "user-roles.yaml.j2"), RBAC_KINDS),
    "services": (("services.yaml.j2",), SERVICE_KINDS),
    "argo": (("workflow-controller-configmap.yaml.j2",), CONFIGMAP_KINDS),
    "network": (("network.yaml.j2",), NETWORK_KINDS),
    # Only once istio names its gateway: until then Istio's kinds may not be served.
    "mesh": (("mesh.yaml.j2",), MESH_KINDS),
}
ALL_KINDS = CRD_KINDS + RBAC_KINDS + SERVICE_KINDS + CONFIGMAP_KINDS + NETWORK_KINDS + MESH_KINDS
# The ingress gateway's pods, as the istio charm labels them.
GATEWAY_POD_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def _port(name: str, port: int, target: int) -> dict[str, Any]:
    return {"name": name, "port": port, "target": target}


# The Services, their ports as upstream names them, and where each goes in the pod.
SERVICES: list[dict[str, Any]] = [
    {
        "name": "ml-pipeline",
        "ports": [
            _port("http", wl.Ports.API_HTTP_SERVICE, wl.Ports.API_HTTP),
            _port("grpc", wl.Ports.API_GRPC, wl.Ports.API_GRPC),
        ],
    },
    {"name": "ml-pipeline-ui", "ports": [_port("http", 80, wl.Ports.UI)]},
    {
        "name": "metadata-grpc-service",
        "ports": [_port("grpc-api", wl.Ports.MLMD_SERVICE, wl.Ports.MLMD)],
    },
    {
        "name": "metadata-envoy-service",
        "ports": [_port("md-envoy", wl.Ports.ENVOY, wl.Ports.ENVOY)],
    },
    {
        "name": wl.VISUALIZATION_SERVICE,
        "ports": [_port("http", wl.Ports.VISUALIZATION, wl.Ports.VISUALIZATION)],
    },
]


@dataclasses.dataclass(frozen=True)
class Token:
    """A token as the API issued it; its value is never logged or shown."""

    value: str = dataclasses.field(repr=False)
    issued: float
    expires: float


def _now() -> float:
    return time.time()


def renewal_due(issued: float, expires: float, now: float) -> bool:
    """Whether a token issued and expiring then has less than a third of its life left."""
    if expires <= issued:
        return True
    return now >= issued + (expires - issued) * 2 / 3


def request_token(service_account: str, namespace: str, now: float) -> Token:
    """A new token of `service_account` for the API server's audience (TokenRequest)."""
    with api_errors():
        from lightkube import Client
        from lightkube.models.authentication_v1 import TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        request = ServiceAccount.Token(
            metadata=ObjectMeta(namespace=namespace),
            spec=TokenRequestSpec(audiences=[TOKEN_AUDIENCE], expirationSeconds=TOKEN_LIFETIME),
        )
        answer = Client(namespace=namespace).create(request, service_account, namespace=namespace)
    status = answer.status
    if status is None or not status.token or status.expirationTimestamp is None:
        raise KubernetesError("the API issued no token for the persistence agent")
    return Token(status.token, issued=now, expires=status.expirationTimestamp.timestamp())


def context(
    config: KfpConfig,
    *,
    app: str,
    namespace: str,
    store: wl.ObjectStore | None,
    gateway: Gateway | None = None,
    user_header: str = wl.USER_HEADER,
) -> dict[str, Any]:
    """The templates' parameters; Argo's only with the object store (its keys never).

    `user_header`: the header the login puts the user's id in (`kfp_route.user_header`).
    """
    values: dict[str, Any] = {
        "app": app,
        "app_name": app,
        "namespace": namespace,
        "service_account": app,
        "services": SERVICES,
        "gateway_pod_labels": GATEWAY_POD_LABELS,
        "gateway_namespace": gateway.namespace if gateway else namespace,
        "gateway_principal": gateway.principal if gateway else None,
        "user_header": user_header,
        "ports": {
            "ui": wl.Ports.UI,
            "envoy": wl.Ports.ENVOY,
            "api_http": wl.Ports.API_HTTP,
            "api_grpc": wl.Ports.API_GRPC,
            "mlmd": wl.Ports.MLMD,
        },
    }
    if store is not None:
        values |= {
            "configmap_name": wl.ARGO_CONFIGMAP,
            "executor_image": wl.ARGO_EXECUTOR_IMAGE,
            "s3_endpoint": f"{store.host}:{store.port}",
            "s3_bucket": BUCKET,
            "s3_insecure": not store.secure,
            "s3_region": store.region,
            "archive_logs": config.archive_logs,
            "key_format": ARGO_KEY_FORMAT,
            # Each profile's own keys (the object store's charm puts the Secret there), not
            # upstream's mlpipeline-minio-artifact, which no profile namespace has here.
            "credentials_secret": kfp_profiles.CREDENTIALS_SECRET,
            "access_key_key": kfp_profiles.ACCESS_KEY_KEY,
            "secret_key_key": kfp_profiles.SECRET_KEY_KEY,
            # The metrics port (off the envoy's), parallelism, workflow defaults.
            "settings": wl.argo_controller_settings(config),
        }
    return values


class KfpCluster(ops.Object):
    """The leader's side of the cluster: objects applied, kept, deleted; the agent's token."""

    _stored = ops.StoredState()

    def __init__(self, charm: ops.CharmBase):
        super().__init__(charm, "cluster")
        self._charm = charm
        self._stored.set_default(token_issued=0.0, token_expires=0.0)
        self.error: KubernetesError | None = None
        self.token_problem: str | None = None

    # --- objects

    def reconcile(
        self,
        event: ops.EventBase,
        config: KfpConfig,
        store: wl.ObjectStore | None,
        gateway: Gateway | None = None,
        user_header: str = wl.USER_HEADER,
    ) -> None:
        """Leader: apply the objects if changed (or drifted, on update-status); renew the token."""
        if not self._charm.unit.is_leader():
            return
        self._apply(
            config,
            store,
            gateway,
            user_header,
            force=isinstance(event, (ops.UpgradeCharmEvent, ops.LeaderElectedEvent)),
            routine=isinstance(event, ops.UpdateStatusEvent),
        )
        self._renew_token()

    def _apply(
        self,
        config: KfpConfig,
        store: wl.ObjectStore | None,
        gateway: Gateway | None,
        user_header: str,
        *,
        force: bool,
        routine: bool,
    ) -> None:
        peer = self.model.get_relation(PEERS)
        if peer is None:
            return
        stored = peer.data[self.model.app]
        app, namespace = self.model.app.name, self.model.name
        values = context(
            config,
            app=app,
            namespace=namespace,
            store=store,
            gateway=gateway,
            user_header=user_header,
        )
        skip = {"argo"} if store is None else set()
        skip |= {"mesh"} if gateway is None else set()
        scopes = [s for s in SCOPES if s not in skip]
        names = [name for scope in scopes for name in SCOPES[scope][0]]
        wanted = render_digest(MANIFESTS, names, values)
        owned = OwnedObjects(stored, OBJECTS_KEY, app=app, model=namespace, kinds=ALL_KINDS)
        try:
            new = owned.apply_when_wanted(
                HASH_KEY,
                wanted,
                lambda: [
                    (self._resources(s), render(MANIFESTS, SCOPES[s][0], values)) for s in scopes
                ],
                force=force,
                routine=routine,
            )
        except KubernetesError as e:
            self.error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        if new:
            logger.info("applied the Kubernetes objects (%s)", ", ".join(scopes))

    def drifted(self) -> bool:
        """Leader: whether an object applied last was deleted or changed behind our back."""
        peer = self.model.get_relation(PEERS)
        if not self._charm.unit.is_leader() or peer is None:
            return False
        stored = peer.data[self.model.app]
        app, namespace = self.model.app.name, self.model.name
        owned = OwnedObjects(stored, OBJECTS_KEY, app=app, model=namespace, kinds=ALL_KINDS)
        return bool(stored.get(HASH_KEY)) and owned.drifted()

    def renew_token(self) -> None:
        """Leader: renew the persistence agent's token when it is due or its file is gone."""
        if self._charm.unit.is_leader():
            self._renew_token()

    def _resources(self, scope: str) -> Resources:
        return Resources(
            app=self.model.app.name, model=self.model.name, scope=scope, kinds=SCOPES[scope][1]
        )

    def remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: the leader deletes every object it made."""
        if not self._charm.unit.is_leader() or self.model.app.planned_units() > 0:
            return
        delete_all(self.model.app.name, [self._resources(s) for s in reversed(SCOPES)])

    # --- the persistence agent's token

    def _renew_token(self) -> None:
        container = self._charm.unit.get_container(wl.PERSISTENCE_AGENT.container)
        if not container.can_connect():
            return  # its pebble-ready comes
        now = _now()
        issued, expires = self._stored.token_issued, self._stored.token_expires
        if not renewal_due(issued, expires, now) and _token_present(container):
            return
        try:
            token = request_token(self.model.app.name, self.model.name, now)
        except KubernetesError as e:
            self.error = self.error or e
            logger.error("requesting the persistence agent's token failed: %s", e)
            return
        try:
            container.push(
                wl.PERSISTENCE_AGENT_TOKEN_PATH,
                token.value,
                make_dirs=True,
                permissions=0o600,
                user_id=wl.UPSTREAM_UID,
                group_id=wl.UPSTREAM_GID,
            )
        except (ops.pebble.PathError, ops.pebble.APIError, ops.pebble.ConnectionError) as e:
            self.token_problem = f"cannot write the persistence agent's token: {e}"
            logger.error(self.token_problem)
            return
        self._stored.token_issued = token.issued
        self._stored.token_expires = token.expires
        logger.info("wrote a new token for the persistence agent")

    # --- status

    def status(self) -> ops.StatusBase | None:
        """What went wrong in this hook, as a status; None when nothing did."""
        if self.error is not None:
            return error_status(self.error, self.model.app.name)
        if self.token_problem is not None:
            return ops.WaitingStatus(self.token_problem)
        return None


def _token_present(container: ops.Container) -> bool:
    try:
        return container.exists(wl.PERSISTENCE_AGENT_TOKEN_PATH)
    except (ops.pebble.APIError, ops.pebble.ConnectionError):
        return False
