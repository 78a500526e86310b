"""The kfp pod joins the service mesh, so that profile namespaces can tell its requests apart.

The profile workloads (`kfp_profile_workloads`) let in only the mesh identity
of the charm's pods, `cluster.local/ns/<model>/sa/<app>`: every kfp workload
runs in that pod, as the ServiceAccount Juju names after the application.
A pod has that identity in the mesh only with an Istio sidecar. The istio
charm's injection webhook injects pods labelled `sidecar.istio.io/inject:
"true"` in namespaces without an `istio-injection` label (charms/istio/src/
templates/istiod.yaml.j2), such as the model's.

Juju makes the application's pods from a StatefulSet named after the
application, in the model's namespace. The leader adds the label to its pod
template with a server-side apply of that one field (the application is the
field manager), only when it is missing: Kubernetes then replaces the pods
once, and they come back with a sidecar. Juju writes the StatefulSet anew
when the charm is upgraded, dropping the label, so the leader looks again
after upgrade-charm (and when it is elected, and on every update-status);
otherwise, once the label was seen, other hooks do not ask.

The label is read with `kubeflow_charms.drift.send` (one GET, no lightkube);
lightkube is imported only to write it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import ops

from kubeflow_charms import drift
from kubeflow_charms.kubernetes import KubernetesError, api_errors, error_status

logger = logging.getLogger(__name__)

INJECT_LABEL = "sidecar.istio.io/inject"
INJECT_VALUE = "true"
# Hooks after which the label is checked even when it was seen before.
CHECKED_AFTER = (ops.InstallEvent, ops.UpgradeCharmEvent, ops.LeaderElectedEvent)


def statefulset_path(app: str, model: str) -> str:
    """The API path of the StatefulSet Juju made for the application's pods."""
    return f"/apis/apps/v1/namespaces/{model}/statefulsets/{app}"


def template_labels(app: str, model: str) -> dict[str, str] | None:
    """The labels of the StatefulSet's pod template; None when there is no such StatefulSet.

    Raises KubernetesError when it cannot be read.
    """
    status, body = drift.send("GET", statefulset_path(app, model), {"Accept": "application/json"})
    if status == 404:
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict):
        message = data.get("message") if isinstance(data, dict) else None
        raise KubernetesError(
            f"reading the StatefulSet {app} failed: HTTP {status} {message or ''}".rstrip(),
            status=status,
        )
    template = (data.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def label_patch(app: str, model: str) -> dict[str, Any]:
    """The one field the leader applies to the StatefulSet."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": app, "namespace": model},
        "spec": {"template": {"metadata": {"labels": {INJECT_LABEL: INJECT_VALUE}}}},
    }


def apply_label(app: str, model: str) -> None:
    """Apply the label to the pod template (server-side apply, the application as manager)."""
    with api_errors():
        from lightkube import Client
        from lightkube.resources.apps_v1 import StatefulSet
        from lightkube.types import PatchType

        Client(field_manager=app, namespace=model).patch(
            StatefulSet,
            app,
            label_patch(app, model),
            namespace=model,
            patch_type=PatchType.APPLY,
            force=True,
        )


class MeshJoin(ops.Object):
    """The leader keeps the injection label on the pod template of the charm's StatefulSet."""

    _stored = ops.StoredState()

    def __init__(self, charm: ops.CharmBase):
        super().__init__(charm, "mesh")
        self._charm = charm
        self._stored.set_default(labelled=False)
        self.error: KubernetesError | None = None

    def reconcile(self, event: ops.EventBase) -> None:
        """Leader: add the label when it is missing (looked at only when it may be)."""
        if not self._charm.unit.is_leader():
            return
        routine = isinstance(event, ops.UpdateStatusEvent)
        if self._stored.labelled and not (routine or isinstance(event, CHECKED_AFTER)):
            return
        self.ensure()

    def ensure(self) -> bool:
        """Add the label if it is missing; whether it is there now."""
        app, model = self.model.app.name, self.model.name
        try:
            labels = template_labels(app, model)
        except KubernetesError as e:
            if e.status in (401, 403):
                self.error = e
            logger.warning("cannot read the StatefulSet %s: %s", app, e)
            return False
        if labels is None:
            # Not under Juju on Kubernetes: there is no pod to put in the mesh.
            logger.warning("no StatefulSet %s in %s: the pods are not put in the mesh", app, model)
            return False
        if labels.get(INJECT_LABEL) != INJECT_VALUE:
            try:
                apply_label(app, model)
            except KubernetesError as e:
                self.error = e
                logger.error("labelling the StatefulSet %s for the mesh failed: %s", app, e)
                return False
            logger.info(
                "labelled the StatefulSet %s %s=%s: its pods restart once, with a sidecar",
                app,
                INJECT_LABEL,
                INJECT_VALUE,
            )
        if not self._stored.labelled:
            self._stored.labelled = True
        return True

    def status(self) -> ops.StatusBase | None:
        """What went wrong in this hook, as a status; None when nothing did."""
        if self.error is None:
            return None
        return error_status(self.error, self.model.app.name)
