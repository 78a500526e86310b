"""The charm's cluster objects, applied by the leader; pruned on removal, restored on drift.

Two groups (`kubeflow_charms.staged_cluster`), each with its digest in the peer
app databag:

- the base: the CustomResourceDefinitions (`manifests/crds.yaml`, applied
  as it is), the controllers' RBAC and the users' roles, the webhook
  Services (pointing at the leader's pod) and configurations (caBundle:
  the charm's CA);
- the ClusterTrainingRuntimes (`trainer_runtimes.render_runtimes`), applied
  once the Trainer controller runs: its webhook validates them and fails
  closed, so they wait for it.

A hook where the rendered inputs are those applied last renders nothing and
writes nothing; update-status lists the objects (`OwnedObjects`) and applies
again what was deleted or changed behind the charm's back.

lightkube, jinja2 and PyYAML are imported only on the paths that apply.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import trainer_workloads as wl
from trainer_config import TrainerConfig

from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.kubernetes import CRD_KINDS, RBAC_KINDS, Kind
from kubeflow_charms.lifecycle import leader_pod
from kubeflow_charms.staged_cluster import Scopes, StagedCluster, json_documents

PEERS = "trainer-peers"
MANIFESTS = Path(__file__).parent / "manifests"
CRDS_FILE = MANIFESTS / "crds.yaml"

WEBHOOK_KINDS = (
    Kind("v1", "Service"),
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
)
RUNTIME_KINDS = (
    Kind(
        "trainer.kubeflow.org/v1alpha1",
        "ClusterTrainingRuntime",
        "clustertrainingruntimes",
        namespaced=False,
    ),
)
# scope: (templates, kinds), in the order they are applied; "crds" is the plain file.
SCOPES: Scopes = {
    "crds": ((), CRD_KINDS),
    "rbac": (("rbac.yaml.j2", "user-roles.yaml.j2"), RBAC_KINDS),
    "webhooks": (("webhooks.yaml.j2",), WEBHOOK_KINDS),
}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_RW = ["create", "get", "list", "patch", "update", "watch"]
_FULL = ["create", "delete", "get", "list", "patch", "update", "watch"]
_READ = ["get", "list", "watch"]
_TRAINER = ["clustertrainingruntimes", "trainingruntimes", "trainjobs"]

# kubeflow/trainer v2.1.0 manifests/base/rbac/role.yaml.
TRAINER_RULES = [
    _rule([""], ["configmaps", "secrets"], _RW),
    _rule([""], ["events"], ["create", "patch", "update", "watch"]),
    _rule([""], ["limitranges"], _READ),
    _rule(
        ["admissionregistration.k8s.io"],
        ["validatingwebhookconfigurations"],
        ["get", "list", "update", "watch"],
    ),
    _rule(["coordination.k8s.io"], ["leases"], ["create", "get", "list", "update"]),
    _rule(["jobset.x-k8s.io"], ["jobsets"], _RW),
    _rule(["node.k8s.io"], ["runtimeclasses"], _READ),
    _rule(["scheduling.volcano.sh", "scheduling.x-k8s.io"], ["podgroups"], _RW),
    _rule(["trainer.kubeflow.org"], _TRAINER, ["get", "list", "patch", "update", "watch"]),
    _rule(
        ["trainer.kubeflow.org"],
        [
            "clustertrainingruntimes/finalizers",
            "trainingruntimes/finalizers",
            "trainjobs/finalizers",
            "trainjobs/status",
        ],
        ["get", "patch", "update"],
    ),
]
# kubernetes-sigs/jobset v0.10.1 config/components/rbac/role.yaml.
JOBSET_RULES = [
    _rule([""], ["events"], ["create", "patch", "update", "watch"]),
    _rule([""], ["nodes"], _READ),
    _rule([""], ["pods", "services"], _FULL),
    _rule([""], ["secrets"], ["get", "list", "update", "watch"]),
    _rule(
        ["admissionregistration.k8s.io"],
        ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        ["get", "list", "update", "watch"],
    ),
    _rule(["batch"], ["jobs"], _FULL),
    _rule(["batch"], ["jobs/status"], ["get", "patch", "update"]),
    _rule(["jobset.x-k8s.io"], ["jobsets"], _FULL),
    _rule(["jobset.x-k8s.io"], ["jobsets/finalizers"], ["update"]),
    _rule(["jobset.x-k8s.io"], ["jobsets/status"], ["get", "patch", "update"]),
]
# kubernetes-sigs/jobset v0.10.1 config/components/rbac/auth_proxy_role.yaml: JobSet serves
# its metrics behind controller-runtime's authentication and authorization filter (main.go
# `filters.WithAuthenticationAndAuthorization`), which reviews each scraper's token.
METRICS_AUTH_RULES = [
    _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
    _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
]
# kubernetes-sigs/jobset v0.10.1 config/components/rbac/leader_election_role.yaml.
LEADER_ELECTION_RULES = [
    _rule([""], ["configmaps"], ["get", "list", "watch", "create", "update", "patch", "delete"]),
    _rule(
        ["coordination.k8s.io"],
        ["leases"],
        ["get", "list", "watch", "create", "update", "patch", "delete"],
    ),
    _rule([""], ["events"], ["create", "patch"]),
]
# kubeflow/manifests v1.11.0 applications/trainer/upstream/overlays/kubeflow-platform/
# kubeflow-trainer-roles.yaml.
USER_ROLES = {
    "edit": [
        _rule(["trainer.kubeflow.org"], ["trainingruntimes"], _READ),
        _rule(
            ["trainer.kubeflow.org"],
            ["trainjobs"],
            ["create", "patch", "get", "list", "watch", "delete"],
        ),
        _rule([""], ["pods", "pods/log", "events"], _READ),
    ],
    "view": [_rule(["trainer.kubeflow.org"], ["trainingruntimes", "trainjobs"], _READ)],
    "cluster_runtimes": [_rule(["trainer.kubeflow.org"], ["clustertrainingruntimes"], _READ)],
}
USER_ROLES_CONTEXT = {"user_roles": USER_ROLES}


def _webhook(
    name: str,
    path: str,
    group: str,
    version: str,
    resource: str,
    operations: list[str],
    object_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "path": path,
        "group": [group],
        "versions": [version],
        "resources": [resource],
        "operations": operations,
        "object_selector": object_selector,
    }


_CU = ["CREATE", "UPDATE"]
_JOBSET_PODS = {
    "matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]
}
TRAINER_WEBHOOKS = [
    _webhook(
        f"validator.{plural[:-1]}.trainer.kubeflow.org",
        f"/validate-trainer-kubeflow-org-v1alpha1-{plural[:-1]}",
        "trainer.kubeflow.org",
        "v1alpha1",
        plural,
        _CU,
    )
    for plural in _TRAINER
]
JOBSET_MUTATING = [
    _webhook(
        "mjobset.kb.io",
        "/mutate-jobset-x-k8s-io-v1alpha2-jobset",
        "jobset.x-k8s.io",
        "v1alpha2",
        "jobsets",
        ["CREATE"],
    ),
    _webhook("mpod.kb.io", "/mutate--v1-pod", "", "v1", "pods", ["CREATE"], _JOBSET_PODS),
]
JOBSET_VALIDATING = [
    _webhook(
        "vjobset.kb.io",
        "/validate-jobset-x-k8s-io-v1alpha2-jobset",
        "jobset.x-k8s.io",
        "v1alpha2",
        "jobsets",
        _CU,
    ),
    _webhook("vpod.kb.io", "/validate--v1-pod", "", "v1", "pods", ["CREATE"], _JOBSET_PODS),
]


def context(*, app: str, namespace: str, leader_pod: str, ca_cert: str) -> dict[str, Any]:
    """The templates' parameters."""
    return {
        "app_name": app,
        "namespace": namespace,
        "service_account": app,
        "controller_rules": TRAINER_RULES,
        "jobset_rules": JOBSET_RULES + METRICS_AUTH_RULES,
        "leader_election_rules": LEADER_ELECTION_RULES,
        "user_roles": USER_ROLES,
        "leader_pod": leader_pod,
        "ca_bundle": base64.b64encode(ca_cert.encode()).decode(),
        "trainer_service": wl.TRAINER_SERVICE,
        "jobset_service": wl.JOBSET_SERVICE,
        "trainer_port": wl.Ports.TRAINER_WEBHOOK,
        "jobset_port": wl.Ports.JOBSET_WEBHOOK,
        "trainer_webhooks": TRAINER_WEBHOOKS,
        "jobset_mutating": JOBSET_MUTATING,
        "jobset_validating": JOBSET_VALIDATING,
    }


def runtimes_text(config: TrainerConfig) -> str:
    """The ClusterTrainingRuntimes as YAML text (JSON documents)."""
    import trainer_runtimes

    return json_documents(trainer_runtimes.render_runtimes(config.options()))


def runtimes_digest(config: TrainerConfig) -> str:
    """What the runtimes are made from: the code and the options."""
    digest = hashlib.sha256((Path(__file__).parent / "trainer_runtimes.py").read_bytes())
    digest.update(json.dumps(config.options(), sort_keys=True).encode())
    return digest.hexdigest()


class TrainerCluster(StagedCluster):
    """The leader's side of the cluster: objects applied, kept, deleted.

    Removal keeps the CRDs: deleting them would delete every user's TrainJobs
    and JobSets (and their running pods) with them.
    """

    peers = PEERS
    manifests = MANIFESTS
    scopes = SCOPES
    runtime_kinds = RUNTIME_KINDS
    base_label = "the CRDs, RBAC and webhooks"
    runtimes_label = "the ClusterTrainingRuntimes"

    def reconcile(
        self,
        config: TrainerConfig,
        bundle: CertificateBundle,
        *,
        trainer_running: bool,
        force: bool,
        routine: bool,
    ) -> None:
        """Leader: apply the objects if changed, forced, or (on a routine hook) drifted."""
        self.apply_base(
            lambda: context(
                app=self.model.app.name,
                namespace=self.model.name,
                leader_pod=leader_pod(self.model.app.name, self._charm.unit),
                ca_cert=bundle.ca_cert,
            ),
            force=force,
            routine=routine,
        )
        self.apply_runtimes(
            runtimes_digest(config),
            lambda: runtimes_text(config),
            controller_running=trainer_running,
            force=force,
            routine=routine,
        )
