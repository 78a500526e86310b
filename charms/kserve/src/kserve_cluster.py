"""The charm's cluster objects, applied by the leader; pruned on removal, restored on drift.

Two groups (`kubeflow_charms.staged_cluster`), each with its digest in the peer
app databag:

- the base: the CustomResourceDefinitions (`manifests/crds.yaml`, applied as
  it is), the controllers' RBAC and the users' aggregated roles, the
  ConfigMap `inferenceservice-config`, the webhook Service (pointing at the
  leader's pod) and configurations (caBundle: the charm's CA);
- the ClusterServingRuntimes and the ClusterStorageContainer
  (`kserve_runtimes`), applied once the KServe controller runs: its runtime
  webhook validates them and fails closed, so they wait for it.

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

import kserve_workloads as wl
from kserve_config import KServeConfig

from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.kubernetes import CRD_KINDS, RBAC_KINDS, Kind
from kubeflow_charms.lifecycle import leader_pod
from kubeflow_charms.staged_cluster import Scopes, StagedCluster, json_documents
from kubeflow_interfaces.knative_serving import KnativeServing

PEERS = "kserve-peers"
MANIFESTS = Path(__file__).parent / "manifests"
CRDS_FILE = MANIFESTS / "crds.yaml"

CONFIG_KINDS = (Kind("v1", "ConfigMap"),)
WEBHOOK_KINDS = (
    Kind("v1", "Service"),
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
)
RUNTIME_KINDS = (
    Kind(
        "serving.kserve.io/v1alpha1",
        "ClusterServingRuntime",
        "clusterservingruntimes",
        namespaced=False,
    ),
    Kind(
        "serving.kserve.io/v1alpha1",
        "ClusterStorageContainer",
        "clusterstoragecontainers",
        namespaced=False,
    ),
)
# scope: (templates, kinds), in the order they are applied; "crds" is the plain file.
SCOPES: Scopes = {
    "crds": ((), CRD_KINDS),
    "rbac": (("rbac.yaml.j2", "user-roles.yaml.j2"), RBAC_KINDS),
    "config": (("config.yaml.j2",), CONFIG_KINDS),
    "webhooks": (("webhooks.yaml.j2",), WEBHOOK_KINDS),
}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_FULL = ["create", "delete", "get", "list", "patch", "update", "watch"]
_READ = ["get", "list", "watch"]
_STATUS = ["get", "patch", "update"]
_USER_FULL = ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]
_KNATIVE = [
    "services",
    "services/status",
    "routes",
    "routes/status",
    "configurations",
    "configurations/status",
    "revisions",
    "revisions/status",
]

# kubeflow/manifests v1.10.0 apps/kserve/kserve/kserve_kubeflow.yaml ClusterRole
# kserve-manager-role (kserve/kserve v0.14.1 config/rbac/role.yaml).
CONTROLLER_RULES = [
    _rule([""], ["configmaps"], ["create", "get", "update"]),
    _rule([""], ["events", "services"], _FULL),
    _rule([""], ["namespaces", "pods"], _READ),
    _rule([""], ["secrets", "serviceaccounts"], ["get"]),
    _rule(
        ["admissionregistration.k8s.io"],
        ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        _FULL,
    ),
    _rule(["apps"], ["deployments"], _FULL),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _FULL),
    _rule(["networking.istio.io"], ["virtualservices", "virtualservices/finalizers"], _FULL),
    _rule(["networking.istio.io"], ["virtualservices/status"], _STATUS),
    _rule(["networking.k8s.io"], ["ingresses"], _FULL),
    _rule(["serving.knative.dev"], ["services", "services/finalizers"], _FULL),
    _rule(["serving.knative.dev"], ["services/status"], _STATUS),
    _rule(
        ["serving.kserve.io"],
        [
            "clusterservingruntimes",
            "clusterservingruntimes/finalizers",
            "clusterstoragecontainers",
            "inferencegraphs",
            "inferencegraphs/finalizers",
            "inferenceservices",
            "inferenceservices/finalizers",
            "servingruntimes",
            "servingruntimes/finalizers",
            "trainedmodels",
        ],
        _FULL,
    ),
    _rule(
        ["serving.kserve.io"],
        [
            "clusterservingruntimes/status",
            "inferencegraphs/status",
            "inferenceservices/status",
            "servingruntimes/status",
            "trainedmodels/status",
        ],
        _STATUS,
    ),
    _rule(["serving.kserve.io"], ["localmodelcaches"], _READ),
]
# The same file, ClusterRole kserve-localmodel-manager-role (config/rbac/localmodel/role.yaml).
LOCALMODEL_RULES = [
    _rule([""], ["configmaps"], ["get"]),
    _rule([""], ["nodes"], _READ),
    _rule([""], ["nodes/status"], ["get", "watch"]),
    _rule([""], ["persistentvolumeclaims", "persistentvolumes"], _FULL),
    _rule(["serving.kserve.io"], ["inferenceservices", "localmodelnodegroups"], _READ),
    _rule(["serving.kserve.io"], ["localmodelcaches", "localmodelnodes"], _FULL),
    _rule(["serving.kserve.io"], ["localmodelcaches/status"], _STATUS),
    _rule(["serving.kserve.io"], ["localmodelnodes/status"], ["get", "watch"]),
]
# The same file, Role kserve-leader-election-role (config/rbac/leader_election_role.yaml).
LEADER_ELECTION_RULES = [
    _rule(["coordination.k8s.io"], ["leases"], ["create", "get", "list", "update"]),
    _rule([""], ["configmaps"], ["get", "list", "watch", "create", "update", "patch", "delete"]),
    _rule([""], ["configmaps/status"], ["get", "update", "patch"]),
    _rule([""], ["events"], ["create"]),
]
# The same file, ClusterRoles kubeflow-kserve-edit and -view (kserve/kserve v0.14.1
# config/overlays/kubeflow/cluster-role.yaml).
USER_ROLES = {
    "edit": [
        _rule(["serving.kserve.io"], ["inferenceservices", "servingruntimes"], _USER_FULL),
        _rule(["serving.knative.dev"], _KNATIVE, _USER_FULL),
    ],
    "view": [
        _rule(["serving.kserve.io"], ["inferenceservices", "servingruntimes"], _READ),
        _rule(["serving.knative.dev"], _KNATIVE, ["get", "list"]),
    ],
}
USER_ROLES_CONTEXT = {"user_roles": USER_ROLES}


def _webhook(
    name: str, path: str, version: str, resource: str, operations: list[str], **extra: Any
) -> dict[str, Any]:
    group = "" if resource == "pods" else "serving.kserve.io"
    return {
        "name": name,
        "path": path,
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": [version],
                "operations": operations,
                "resources": [resource],
            }
        ],
        **extra,
    }


_CU = ["CREATE", "UPDATE"]
# kubeflow/manifests v1.10.0 apps/kserve/kserve/kserve_kubeflow.yaml (kserve/kserve v0.14.1
# config/webhook/manifests.yaml): configuration name -> webhooks.
MUTATING = {
    "inferenceservice.serving.kserve.io": [
        _webhook(
            "inferenceservice.kserve-webhook-server.defaulter",
            "/mutate-serving-kserve-io-v1beta1-inferenceservice",
            "v1beta1",
            "inferenceservices",
            _CU,
        ),
        _webhook(
            "inferenceservice.kserve-webhook-server.pod-mutator",
            "/mutate-pods",
            "v1",
            "pods",
            ["CREATE"],
            namespaceSelector={
                "matchExpressions": [{"key": "control-plane", "operator": "DoesNotExist"}]
            },
            objectSelector={
                "matchExpressions": [
                    {"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}
                ]
            },
            reinvocationPolicy="IfNeeded",
        ),
    ]
}


def _validator(kind: str, version: str, operations: list[str] = _CU) -> dict[str, Any]:
    return _webhook(
        f"{kind}.kserve-webhook-server.validator",
        f"/validate-serving-kserve-io-{version}-{kind}",
        version,
        f"{kind}s",
        operations,
    )


VALIDATING = {
    f"{kind}.serving.kserve.io": [_validator(kind, version, *ops_)]
    for kind, version, *ops_ in (
        ("clusterservingruntime", "v1alpha1"),
        ("inferencegraph", "v1alpha1"),
        ("inferenceservice", "v1beta1"),
        ("localmodelcache", "v1alpha1", ["CREATE", "UPDATE", "DELETE"]),
        ("servingruntime", "v1alpha1"),
        ("trainedmodel", "v1alpha1"),
    )
}
WEBHOOK_SETTINGS = {
    "admissionReviewVersions": ["v1beta1"],
    "failurePolicy": "Fail",
    "sideEffects": "None",
}


def inferenceservice_config(
    config: KServeConfig,
    *,
    gateway_namespace: str,
    gateway_name: str,
    knative: KnativeServing | None = None,
) -> dict[str, str]:
    """The ConfigMap `inferenceservice-config`'s data: upstream's, with our mode and ingress.

    Values as kubeflow/manifests v1.10.0 ships them but `deploy`, `ingress`
    (our gateway, domain and scheme), and the storage initializer's image (an
    option; the local model jobs' image follows it). The `_example` key,
    documentation only, is left out.

    Without `knative` the default mode is RawDeployment. With it (Knative
    Serving is in place) it is Serverless, as Kubeflow ships it, and the
    ingress names Knative's local gateway and the Service in front of it:
    KServe routes a Serverless InferenceService's cluster-local host through
    them (`knativeLocalGatewayService`, which defaults to
    `localGatewayService`, is said outright).
    """
    image = config.storage_initializer_image.strip()
    agent = {
        "image": "kserve/agent:v0.14.1",
        "memoryRequest": "100Mi",
        "memoryLimit": "1Gi",
        "cpuRequest": "100m",
        "cpuLimit": "1",
    }
    data: dict[str, Any] = {
        "agent": agent,
        "batcher": agent
        | {
            "memoryRequest": "1Gi",
            "cpuRequest": "1",
            "maxBatchSize": "32",
            "maxLatency": "5000",
        },
        "credentials": {
            "storageSpecSecretName": "storage-config",
            "storageSecretNameAnnotation": "serving.kserve.io/storageSecretName",
            "gcs": {"gcsCredentialFileName": "gcloud-application-credentials.json"},
            "s3": {
                "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
                "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
                "s3Endpoint": "",
                "s3UseHttps": "",
                "s3Region": "",
                "s3VerifySSL": "",
                "s3UseVirtualBucket": "",
                "s3UseAccelerate": "",
                "s3UseAnonymousCredential": "",
                "s3CABundle": "",
            },
        },
        "deploy": {"defaultDeploymentMode": "RawDeployment" if knative is None else "Serverless"},
        "explainers": {"art": {"image": "kserve/art-explainer", "defaultImageVersion": "latest"}},
        "ingress": {
            "ingressGateway": f"{gateway_namespace}/{gateway_name}",
            **_local_gateway(knative),
            "ingressDomain": config.ingress_domain,
            "ingressClassName": "istio",
            "domainTemplate": "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}",
            "urlScheme": config.url_scheme,
            "disableIstioVirtualHost": False,
            "disableIngressCreation": False,
        },
        "localModel": {
            "enabled": False,
            "jobNamespace": "kserve-localmodel-jobs",
            "defaultJobImage": image,
            "fsGroup": 1000,
        },
        "logger": agent | {"defaultUrl": "http://default-broker"},
        "metricsAggregator": {
            "enableMetricAggregation": "false",
            "enablePrometheusScraping": "false",
        },
        "router": {
            "image": "kserve/router:v0.14.1",
            "memoryRequest": "100Mi",
            "memoryLimit": "1Gi",
            "cpuRequest": "100m",
            "cpuLimit": "1",
        },
        "security": {"autoMountServiceAccountToken": True},
        "storageInitializer": {
            "image": image,
            "memoryRequest": "100Mi",
            "memoryLimit": "1Gi",
            "cpuRequest": "100m",
            "cpuLimit": "1",
            "caBundleConfigMapName": "",
            "caBundleVolumeMountPath": "/etc/ssl/custom-certs",
            "enableDirectPvcVolumeMount": True,
            "enableModelcar": False,
            "cpuModelcar": "10m",
            "memoryModelcar": "15Mi",
        },
    }
    return {key: json.dumps(value, indent=2) for key, value in data.items()}


def _local_gateway(knative: KnativeServing | None) -> dict[str, str]:
    if knative is None:
        # Kubeflow's values, unused in RawDeployment mode.
        return {
            "localGateway": "knative-serving/knative-local-gateway",
            "localGatewayService": "knative-local-gateway.istio-system.svc.cluster.local",
        }
    return {
        "localGateway": knative.local_gateway,
        "localGatewayService": knative.local_gateway_service,
        "knativeLocalGatewayService": knative.local_gateway_service,
    }


def context(
    config: KServeConfig,
    *,
    app: str,
    namespace: str,
    leader_pod: str,
    ca_cert: str,
    gateway_namespace: str,
    gateway_name: str,
    knative: KnativeServing | None = None,
) -> dict[str, Any]:
    """The templates' parameters."""
    return {
        "app": app,
        "namespace": namespace,
        "service_account": app,
        "controller_rules": CONTROLLER_RULES,
        "localmodel_rules": LOCALMODEL_RULES,
        "leader_election_rules": LEADER_ELECTION_RULES,
        "user_roles": USER_ROLES,
        "configmap": wl.CONFIGMAP,
        "config_data": inferenceservice_config(
            config,
            gateway_namespace=gateway_namespace,
            gateway_name=gateway_name,
            knative=knative,
        ),
        "leader_pod": leader_pod,
        "ca_bundle": base64.b64encode(ca_cert.encode()).decode(),
        "service": wl.WEBHOOK_SERVICE,
        "webhook_port": wl.Ports.WEBHOOK,
        "mutating": MUTATING,
        "validating": VALIDATING,
        "settings": WEBHOOK_SETTINGS,
    }


def runtimes_text(config: KServeConfig) -> str:
    """The runtimes and the storage container as YAML text (JSON documents)."""
    return json_documents(config.runtimes())


def runtimes_digest(config: KServeConfig) -> str:
    """What the runtimes are made from: the code and the options."""
    digest = hashlib.sha256((Path(__file__).parent / "kserve_runtimes.py").read_bytes())
    digest.update(json.dumps(config.images(), sort_keys=True).encode())
    placement = [
        config.predictor_node_selector,
        config.predictor_tolerations,
        config.gpu_predictor_node_selector,
        config.gpu_predictor_tolerations,
        config.gpus_per_predictor,
    ]
    digest.update(json.dumps(placement).encode())
    return digest.hexdigest()


class KServeCluster(StagedCluster):
    """The leader's side of the cluster: objects applied, kept, deleted.

    Removal keeps the CRDs: deleting them would delete every user's
    InferenceServices (and their Deployments) with them.
    """

    peers = PEERS
    manifests = MANIFESTS
    scopes = SCOPES
    runtime_kinds = RUNTIME_KINDS
    base_label = "the CRDs, RBAC, config and webhooks"
    runtimes_label = "the ClusterServingRuntimes"

    def reconcile_base(
        self,
        config: KServeConfig,
        bundle: CertificateBundle,
        *,
        gateway_namespace: str,
        gateway_name: str,
        knative: KnativeServing | None = None,
        force: bool,
        routine: bool,
    ) -> None:
        """Leader: apply the base objects if changed, forced, or (on a routine hook) drifted."""
        self.apply_base(
            lambda: context(
                config,
                app=self.model.app.name,
                namespace=self.model.name,
                leader_pod=leader_pod(self.model.app.name, self._charm.unit),
                ca_cert=bundle.ca_cert,
                gateway_namespace=gateway_namespace,
                gateway_name=gateway_name,
                knative=knative,
            ),
            force=force,
            routine=routine,
        )

    def reconcile_runtimes(
        self, config: KServeConfig, *, controller_running: bool, force: bool, routine: bool
    ) -> None:
        """Leader, once the controller serves its webhooks: apply the runtimes when wanted."""
        self.apply_runtimes(
            runtimes_digest(config),
            lambda: runtimes_text(config),
            controller_running=controller_running,
            force=force,
            routine=routine,
        )
