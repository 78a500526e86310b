"""The katib charm's cluster objects, applied by the leader, kept, restored and removed.

In order: the CustomResourceDefinitions, the RBAC (bound to the charm's
ServiceAccount, which Juju names after the application) with the users'
aggregated roles, the Katib config and trial-template ConfigMaps, the
Services (`katib-controller` selecting the leader's pod only), the
admission webhook configurations with the charm's CA as caBundle, and the
NetworkPolicy. What was rendered is kept as a digest in the peer app
databag, so a hook where nothing changed renders and writes nothing; on
update-status the objects are listed (`OwnedObjects`) and applied again
when one was deleted or changed behind the charm's back.

lightkube and jinja2 are imported only on the paths that apply.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import katib_workloads as wl
import ops
from katib_config import KatibConfig

from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.drift import OwnedObjects
from kubeflow_charms.gateway_identity import Gateway
from kubeflow_charms.kubernetes import (
    CRD_KINDS,
    RBAC_KINDS,
    Kind,
    KubernetesError,
    Resources,
    delete_all,
    error_status,
    render,
    render_digest,
)
from kubeflow_charms.lifecycle import leader_pod
from kubeflow_interfaces.trial_kinds import TrialKind

logger = logging.getLogger(__name__)

PEERS = "katib-peers"
MANIFESTS = Path(__file__).parent / "manifests"
CRDS_FILE = MANIFESTS / "crds.yaml"
HASH_KEY = "cluster-hash"
OBJECTS_KEY = "cluster-objects"

CONFIGMAP_KINDS = (Kind("v1", "ConfigMap"),)
SERVICE_KINDS = (Kind("v1", "Service"),)
WEBHOOK_KINDS = (
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
)
NETWORK_KINDS = (Kind("networking.k8s.io/v1", "NetworkPolicy"),)
# scope: (templates, kinds), in the order they are applied.
SCOPES: dict[str, tuple[tuple[str, ...], tuple[Kind, ...]]] = {
    "crds": (("crds.yaml",), CRD_KINDS),
    "rbac": (("rbac.yaml.j2", "user-roles.yaml.j2"), RBAC_KINDS),
    "config": (("configmaps.yaml.j2",), CONFIGMAP_KINDS),
    "services": (("services.yaml.j2",), SERVICE_KINDS),
    "webhooks": (("webhooks.yaml.j2",), WEBHOOK_KINDS),
    "network": (("network.yaml.j2",), NETWORK_KINDS),
}
# Removal keeps the CRDs: deleting them would delete every user's Experiments.
REMOVED_SCOPES = ("network", "webhooks", "services", "config", "rbac")
ALL_KINDS = (
    CRD_KINDS + RBAC_KINDS + CONFIGMAP_KINDS + SERVICE_KINDS + WEBHOOK_KINDS + NETWORK_KINDS
)
# The ingress gateway's pods, as the istio charm labels them.
GATEWAY_POD_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def context(
    config: KatibConfig,
    *,
    app: str,
    namespace: str,
    leader_pod: str,
    kinds: list[TrialKind],
    bundle: CertificateBundle,
    gateway: Gateway | None,
) -> dict[str, Any]:
    """The templates' parameters."""
    return {
        "app": app,
        "namespace": namespace,
        "service_account": app,
        "controller_user": f"system:serviceaccount:{namespace}:{app}",
        "leader_pod": leader_pod,
        "trial_kinds": [
            {
                "group": k.group,
                "plural": k.plural,
                "owned": [{"group": o.group, "resources": list(o.resources)} for o in k.owned],
            }
            for k in kinds
        ],
        "config_key": wl.CONFIG_KEY,
        "katib_config": wl.controller_config_file(kinds).content,
        "templates": wl.trial_templates(config, kinds),
        "ca_bundle": base64.b64encode(bundle.ca_cert.encode()).decode(),
        "gateway_pod_labels": GATEWAY_POD_LABELS,
        "gateway_namespace": gateway.namespace if gateway else namespace,
        "ports": {
            "webhook": wl.Ports.WEBHOOK,
            "metrics": wl.Ports.CONTROLLER_METRICS,
            "metrics_service": wl.Ports.CONTROLLER_METRICS_SERVICE,
            "healthz": wl.Ports.HEALTHZ,
            "ui": wl.Ports.UI,
            "db_manager": wl.Ports.DB_MANAGER,
        },
    }


class KatibCluster(ops.Object):
    """The leader's side of the cluster: objects applied, kept, deleted."""

    def __init__(self, charm: ops.CharmBase):
        super().__init__(charm, "cluster")
        self._charm = charm
        self.error: KubernetesError | None = None

    def _owned(self, stored: ops.RelationDataContent) -> OwnedObjects:
        app, namespace = self.model.app.name, self.model.name
        return OwnedObjects(stored, OBJECTS_KEY, app=app, model=namespace, kinds=ALL_KINDS)

    def reconcile(
        self,
        config: KatibConfig,
        kinds: list[TrialKind],
        bundle: CertificateBundle,
        gateway: Gateway | None,
        *,
        force: bool,
        routine: bool,
    ) -> None:
        """Leader: apply the objects if changed, forced, or (on update-status) drifted."""
        peer = self.model.get_relation(PEERS)
        if not self._charm.unit.is_leader() or peer is None:
            return
        stored = peer.data[self.model.app]
        values = context(
            config,
            app=self.model.app.name,
            namespace=self.model.name,
            leader_pod=leader_pod(self.model.app.name, self._charm.unit),
            kinds=kinds,
            bundle=bundle,
            gateway=gateway,
        )
        names = [name for scope in SCOPES for name in SCOPES[scope][0]]
        wanted = render_digest(MANIFESTS, names, values)
        try:
            new = self._owned(stored).apply_when_wanted(
                HASH_KEY,
                wanted,
                lambda: [
                    (self._resources(s), render(MANIFESTS, SCOPES[s][0], values)) for s in SCOPES
                ],
                force=force,
                routine=routine,
            )
        except KubernetesError as e:
            self.error = e
            logger.error("applying the Kubernetes objects failed: %s", e)
            return
        if new:
            logger.info("applied the Kubernetes objects (%s)", ", ".join(SCOPES))

    def drifted(self) -> bool:
        """Leader: whether an object applied last was deleted or changed behind our back."""
        peer = self.model.get_relation(PEERS)
        if not self._charm.unit.is_leader() or peer is None:
            return False
        stored = peer.data[self.model.app]
        return bool(stored.get(HASH_KEY)) and self._owned(stored).drifted()

    def _resources(self, scope: str) -> Resources:
        return Resources(
            app=self.model.app.name, model=self.model.name, scope=scope, kinds=SCOPES[scope][1]
        )

    def remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: the leader deletes every object it made but the CRDs."""
        if not self._charm.unit.is_leader() or self.model.app.planned_units() > 0:
            return
        delete_all(self.model.app.name, [self._resources(s) for s in REMOVED_SCOPES])

    def status(self) -> ops.StatusBase | None:
        """What went wrong in this hook, as a status; None when nothing did."""
        if self.error is not None:
            return error_status(self.error, self.model.app.name)
        return None
