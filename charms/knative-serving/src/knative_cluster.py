"""The charm's cluster objects, applied by the leader; pruned on removal, restored on drift.

One group (`kubeflow_charms.staged_cluster`), its digest in the peer app
databag, applied in this order:

- the CustomResourceDefinitions (`manifests/crds.yaml`, applied as it is);
- RBAC: upstream's ClusterRoles, bound to the charm's ServiceAccount (the
  control plane in its pod) and to the data path's own ServiceAccounts, and
  the users' roles, aggregated into Kubeflow's;
- the config ConfigMaps, unlabelled for Knative's config webhooks (`configmaps`);
- the webhooks: their certificate Secrets, Services (the leader's pod) and
  configurations, applied without the fields Knative's webhook sets itself
  (rules, caBundle, path, namespaceSelector), so the two never fight;
- the data path: the activator, the autoscaler and net-istio's controller
  as Deployments, with upstream's Services, autoscaler and disruption budget;
- the cluster-local gateway on the ingress gateway's pods.

Objects follow knative/serving v1.16.2 `serving-core.yaml` (SC) and
knative-extensions/net-istio v1.16.0 `net-istio.yaml` (NI), as
kubeflow/manifests v1.10.0 vendors them (common/knative/knative-serving/
base/upstream/); lines are cited where a value is set.

lightkube, jinja2 and PyYAML are imported only on the paths that apply.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import knative_workloads as wl
import ops
from knative_config import KnativeConfig

from kubeflow_charms.certificates import CertificateBundle
from kubeflow_charms.kubernetes import CRD_KINDS, RBAC_KINDS, Kind, delete_all
from kubeflow_charms.lifecycle import leader_pod
from kubeflow_charms.staged_cluster import (
    BASE_HASH_KEY,
    BASE_OBJECTS_KEY,
    CRDS,
    Scopes,
    StagedCluster,
)

PEERS = "knative-serving-peers"
MANIFESTS = Path(__file__).parent / "manifests"
LOCAL_GATEWAY = "knative-local-gateway"
LOCAL_GATEWAY_PORT = 8081  # NI:37-56
NAME_LABEL = {"app.kubernetes.io/name": "knative-serving"}


@dataclasses.dataclass(frozen=True)
class IstioGateway:
    """The platform's ingress gateway, as istio's gateway-metadata names it.

    The istio charm names the gateway's Service after its Deployment
    (`deployment_name`), in the gateway's namespace.
    """

    namespace: str
    name: str
    service: str


GATEWAY_KIND = Kind("networking.istio.io/v1", "Gateway", "gateways")
SCOPES: Scopes = {
    "crds": ((), CRD_KINDS),
    "rbac": (("rbac.yaml.j2",), (Kind("v1", "ServiceAccount"), *RBAC_KINDS)),
    "config": (("config.yaml.j2",), (Kind("v1", "ConfigMap"),)),
    "webhooks": (
        ("webhooks.yaml.j2",),
        (
            Kind("v1", "Secret"),
            Kind("v1", "Service"),
            Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
            Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
        ),
    ),
    "data-path": (
        ("data-path.yaml.j2",),
        (
            Kind("apps/v1", "Deployment"),
            Kind("v1", "Service"),
            Kind("autoscaling/v2", "HorizontalPodAutoscaler"),
            Kind("policy/v1", "PodDisruptionBudget"),
        ),
    ),
    "gateway": (("gateway.yaml.j2",), (GATEWAY_KIND, Kind("v1", "Service"))),
}

# --- RBAC (SC:9-289, NI:1-14) ------------------------------------------------------------


def _rule(
    groups: list[str], resources: list[str], verbs: list[str], **extra: Any
) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


_ALL = ["get", "list", "create", "update", "delete", "patch", "watch"]
_READ = ["get", "list", "watch"]
# ClusterRole knative-serving-core (SC:121-169).
CORE_RULES = [
    _rule(
        [""],
        [
            "pods",
            "namespaces",
            "secrets",
            "configmaps",
            "endpoints",
            "services",
            "events",
            "serviceaccounts",
        ],
        _ALL,
    ),
    _rule([""], ["endpoints/restricted"], ["create"]),
    _rule([""], ["namespaces/finalizers"], ["update"]),
    _rule(["apps"], ["deployments", "deployments/finalizers"], _ALL),
    _rule(
        ["admissionregistration.k8s.io"],
        ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        _ALL,
    ),
    _rule(
        ["apiextensions.k8s.io"],
        ["customresourcedefinitions", "customresourcedefinitions/status"],
        _ALL,
    ),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _ALL),
    _rule(["coordination.k8s.io"], ["leases"], _ALL),
    _rule(
        [
            "serving.knative.dev",
            "autoscaling.internal.knative.dev",
            "networking.internal.knative.dev",
        ],
        ["*", "*/status", "*/finalizers"],
        ["get", "list", "create", "update", "delete", "deletecollection", "patch", "watch"],
    ),
    _rule(["caching.internal.knative.dev"], ["images"], _ALL),
    _rule(
        ["cert-manager.io"],
        ["certificates", "clusterissuers", "certificaterequests", "issuers"],
        _ALL,
    ),
    _rule(["acme.cert-manager.io"], ["challenges"], _ALL),
    _rule(
        ["rbac.authorization.k8s.io"],
        ["clusterroles"],
        ["delete"],
        resourceNames=["knative-serving-certmanager"],
    ),
]
# ClusterRole knative-serving-activator-cluster (SC:27-41).
ACTIVATOR_CLUSTER_RULES = [
    _rule([""], ["services", "endpoints"], _READ),
    _rule(["serving.knative.dev"], ["revisions"], _READ),
]
# ClusterRole knative-serving-istio (NI:1-14).
ISTIO_RULES = [
    _rule(
        ["networking.istio.io"],
        ["virtualservices", "gateways", "destinationrules"],
        ["get", "list", "create", "update", "delete", "patch", "watch"],
    )
]
# ClusterRole knative-serving-addressable-resolver (SC:53-74), which the controller's
# aggregated addressable-resolver role takes in.
ADDRESSABLE_RULES = [
    _rule(
        ["serving.knative.dev"],
        ["routes", "routes/status", "services", "services/status"],
        _READ,
    )
]
# Role knative-serving-activator (SC:9-25).
ACTIVATOR_RULES = [
    _rule([""], ["configmaps", "secrets"], _READ),
    _rule(
        [""],
        ["secrets"],
        _READ,
        resourceNames=["routing-serving-certs", "knative-serving-certs"],
    ),
]
# The users' roles knative-serving-namespaced-{admin,edit,view} (SC:76-119): upstream
# aggregates them into Kubernetes' admin, edit and view; Kubeflow 1.10.0 adds its own
# labels so that profiles' kubeflow-admin, -edit and -view take them in too (kubeflow/
# manifests common/knative/knative-serving/base/patches/knative-serving-namespaced-*.yaml).
_INTERNAL = [
    "networking.internal.knative.dev",
    "autoscaling.internal.knative.dev",
    "caching.internal.knative.dev",
]
USER_ROLES: dict[str, list[dict[str, Any]]] = {
    "admin": [
        _rule(["serving.knative.dev"], ["*"], ["*"]),
        _rule(_INTERNAL, ["*"], _READ),
    ],
    "edit": [
        _rule(["serving.knative.dev"], ["*"], ["create", "update", "patch", "delete"]),
        _rule(_INTERNAL, ["*"], _READ),
    ],
    "view": [_rule(["serving.knative.dev", *_INTERNAL], ["*"], _READ)],
}


def user_roles() -> list[dict[str, Any]]:
    """The users' ClusterRoles, aggregated into Kubernetes' and Kubeflow's user roles."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": f"knative-serving-namespaced-{role}",
                "labels": NAME_LABEL
                | {
                    f"rbac.authorization.k8s.io/aggregate-to-{role}": "true",
                    f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{role}": "true",
                },
            },
            "rules": rules,
        }
        for role, rules in USER_ROLES.items()
    ]


# knative-serving-admin aggregates every ClusterRole labelled serving.knative.dev/
# controller: core, activator-cluster and net-istio's (SC:200-227): here, their union.
CONTROLLER_RULES = CORE_RULES + ACTIVATOR_CLUSTER_RULES + ISTIO_RULES + ADDRESSABLE_RULES


def controller_account(app: str) -> str:
    """The ServiceAccount of the autoscaler and net-istio's controller (upstream: controller)."""
    return f"{app}-controller"


def activator_account(app: str) -> str:
    """The activator's ServiceAccount (upstream: activator)."""
    return f"{app}-activator"


def _account(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def rbac(app: str, namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccounts of the data path and every role, bound as upstream binds them."""
    rbac_v1 = "rbac.authorization.k8s.io/v1"
    controller, activator = controller_account(app), activator_account(app)

    def cluster_role(name: str, rules: list[dict[str, Any]], *accounts: str):
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
        return [
            {
                "apiVersion": rbac_v1,
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": rules,
            },
            {
                "apiVersion": rbac_v1,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": ref,
                "subjects": [_account(a, namespace) for a in accounts],
            },
        ]

    accounts = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": n, "namespace": namespace},
        }
        for n in (controller, activator)
    ]
    role = f"{app}-activator"
    return [
        *accounts,
        *user_roles(),
        # The control plane in the charm's pod and the Deployments under `controller`.
        *cluster_role(f"{app}-{namespace}-admin", CONTROLLER_RULES, app, controller),
        *cluster_role(f"{app}-{namespace}-activator", ACTIVATOR_CLUSTER_RULES, activator),
        {
            "apiVersion": rbac_v1,
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace},
            "rules": ACTIVATOR_RULES,
        },
        {
            "apiVersion": rbac_v1,
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [_account(activator, namespace)],
        },
    ]


# --- config (SC:6913-8220, NI:81-185) ----------------------------------------------------


def config_data(config: KnativeConfig, *, namespace: str, gateway: IstioGateway) -> dict:
    """Each ConfigMap's data; no `_example`."""
    local_host = local_gateway_service(gateway.namespace)
    return {
        # KS pkg/autoscaler/config/config.go; keys SC:6913-7107.
        "config-autoscaler": {
            "enable-scale-to-zero": "true" if config.enable_scale_to_zero else "false",
            "scale-to-zero-grace-period": config.scale_to_zero_grace_period.strip(),
            "stable-window": config.stable_window.strip(),
            "panic-window-percentage": config.panic_window_percentage.strip(),
            "target-burst-capacity": config.target_burst_capacity.strip(),
        },
        # KN pkg/config/config.go `ingress-class` (SC:7922).
        "config-network": {"ingress-class": "istio.ingress.networking.knative.dev"},
        # NIS pkg/reconciler/ingress/config/istio.go, old format (`gateway.`/`local-gateway.`).
        "config-istio": {
            f"gateway.{gateway.namespace}.{gateway.name}": (
                f"{gateway.service}.{gateway.namespace}.svc.cluster.local"
            ),
            f"local-gateway.{namespace}.{LOCAL_GATEWAY}": local_host,
        },
        # KS pkg/reconciler/route/config/domain.go: an empty value is the default domain.
        "config-domain": {config.domain: ""},
        # KS pkg/apis/config/features.go: KServe predictors on a node pool need these.
        "config-features": {
            "kubernetes.podspec-nodeselector": "enabled",
            "kubernetes.podspec-tolerations": "enabled",
            "kubernetes.podspec-affinity": "enabled",
        },
        # KS pkg/deployment/config.go: the one required key; Kubeflow's progressDeadline.
        "config-deployment": {
            "queue-sidecar-image": config.image("queue-proxy-image"),
            "progress-deadline": "600s",
        },
        # The rest as upstream's compiled defaults (SC:7164-8220).
        "config-defaults": {},
        "config-gc": {},
        "config-leader-election": {},
        "config-logging": {},
        "config-observability": {},
        "config-tracing": {},
    }


def configmaps(config: KnativeConfig, *, namespace: str, gateway: IstioGateway) -> list[dict]:
    """The config ConfigMaps, without the label Knative's config webhooks select on.

    Upstream labels them `app.kubernetes.io/component: <component>` so that
    its config webhooks (objectSelector on that label and the name label,
    failurePolicy Fail) check every write. Knative reads them by name only
    (knative/pkg injection/sharedmain/main.go SetupConfigMapWatchOrDie filters
    by no label unless SYSTEM_RESOURCE_LABEL is set), while the charm writes
    them in every forced apply: after a charm upgrade, before its webhook runs
    again, and on a new leader, before the webhook Services point at it. With
    the label, each of those writes would wait on a webhook that is not
    there. The charm checks its own options (`knative_config`).
    """
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": NAME_LABEL},
            "data": data,
        }
        for name, data in config_data(config, namespace=namespace, gateway=gateway).items()
    ]


# --- webhooks (SC:8739-8885, NI:380-463) -------------------------------------------------

_REVIEW = {
    "admissionReviewVersions": ["v1", "v1beta1"],
    "failurePolicy": "Fail",
    "sideEffects": "None",
}
# configuration kind, name, webhook service, extra fields the charm owns.
CONFIGURATIONS: list[tuple[str, str, wl.Workload, dict[str, Any]]] = [
    (
        "ValidatingWebhookConfiguration",
        "config.webhook.serving.knative.dev",
        wl.WEBHOOK,
        {
            "timeoutSeconds": 10,
            "objectSelector": {
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/name",
                        "operator": "In",
                        "values": ["knative-serving"],
                    },
                    {
                        "key": "app.kubernetes.io/component",
                        "operator": "In",
                        "values": [
                            "autoscaler",
                            "controller",
                            "logging",
                            "networking",
                            "observability",
                            "tracing",
                            "net-certmanager",
                        ],
                    },
                ]
            },
        },
    ),
    (
        "MutatingWebhookConfiguration",
        "webhook.serving.knative.dev",
        wl.WEBHOOK,
        {"timeoutSeconds": 10},
    ),
    (
        "ValidatingWebhookConfiguration",
        "validation.webhook.serving.knative.dev",
        wl.WEBHOOK,
        {"timeoutSeconds": 10},
    ),
    (
        "MutatingWebhookConfiguration",
        "webhook.istio.networking.internal.knative.dev",
        wl.NET_ISTIO_WEBHOOK,
        {
            "objectSelector": {
                "matchExpressions": [
                    {"key": "serving.knative.dev/configuration", "operator": "Exists"}
                ]
            }
        },
    ),
    (
        "ValidatingWebhookConfiguration",
        "config.webhook.istio.networking.internal.knative.dev",
        wl.NET_ISTIO_WEBHOOK,
        {
            "objectSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "knative-serving",
                    "app.kubernetes.io/component": "net-istio",
                }
            }
        },
    ),
]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def webhooks(bundle: CertificateBundle, *, namespace: str, leader: str) -> list[dict]:
    """The certificate Secrets, the Services (the leader's pod) and the configurations.

    The Secrets hold the keys knative/pkg webhook/certificates/resources/
    secret.go reads. The configurations leave out rules, caBundle, the path
    and namespaceSelector: Knative's webhook sets them (KP webhook/
    resourcesemantics/defaulting/defaulting.go, webhook/configmaps/configmaps.go).
    """
    out: list[dict[str, Any]] = []
    for workload in wl.WEBHOOKS:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": wl.secret_name(workload), "namespace": namespace},
                "data": {
                    "server-key.pem": _b64(bundle.tls_key),
                    "server-cert.pem": _b64(bundle.tls_cert),
                    "ca-cert.pem": _b64(bundle.ca_cert),
                },
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": workload.service, "namespace": namespace},
                "spec": {
                    "selector": {"statefulset.kubernetes.io/pod-name": leader},
                    "ports": [
                        {
                            "name": "https-webhook",
                            "port": 443,
                            "targetPort": workload.webhook_port,
                            "protocol": "TCP",
                        }
                    ],
                },
            }
        )
    for kind, name, workload, extra in CONFIGURATIONS:
        service = {"name": workload.service, "namespace": namespace, "port": 443}
        out.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": name},
                "webhooks": [
                    {"name": name, "clientConfig": {"service": service}, **_REVIEW, **extra}
                ],
            }
        )
    return out


# --- the data path (SC:8222-8498, NI:223-299) ---------------------------------------------

_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def _env(
    metrics_domain: str, *, pod: bool, extra: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = list(extra)
    if pod:
        env += [
            {"name": "POD_NAME", **_field("metadata.name")},
            {"name": "POD_IP", **_field("status.podIP")},
        ]
    env += [
        {"name": "SYSTEM_NAMESPACE", **_field("metadata.namespace")},
        {"name": "CONFIG_LOGGING_NAME", "value": "config-logging"},
        {"name": "CONFIG_OBSERVABILITY_NAME", "value": "config-observability"},
    ]
    return [*env, {"name": "METRICS_DOMAIN", "value": metrics_domain}]


def _ports(*named: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {"name": n, "containerPort": p}
        for n, p in (("metrics", 9090), ("profiling", 8008), *named)
    ]


def _anti_affinity(app: str) -> dict[str, Any]:
    term = {
        "labelSelector": {"matchLabels": {"app": app}},
        "topologyKey": "kubernetes.io/hostname",
    }
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"podAffinityTerm": term, "weight": 100}
            ]
        }
    }


def _deployment(
    name: str,
    namespace: str,
    *,
    selector: dict[str, str],
    pod_labels: dict[str, str],
    account: str,
    container: dict[str, Any],
    pod: dict[str, Any],
    spec: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": NAME_LABEL},
        "spec": {
            **spec,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector | pod_labels},
                "spec": {
                    **pod,
                    "serviceAccountName": account,
                    "containers": [{**container, "securityContext": _SECURITY}],
                },
            },
        },
    }


def _resources(requests: tuple[str, str], limits: tuple[str, str]) -> dict[str, Any]:
    return {
        "requests": {"cpu": requests[0], "memory": requests[1]},
        "limits": {"cpu": limits[0], "memory": limits[1]},
    }


def _service(name: str, namespace: str, app: str, ports: list[tuple[str, int, int]]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": app},
            "ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports],
        },
    }


def data_path(config: KnativeConfig, *, app: str, namespace: str) -> list[dict[str, Any]]:
    """The activator and autoscaler (placed by the options) and net-istio's controller."""
    placement = {k: v for k, v in config.placement().items() if v}
    component = {"app.kubernetes.io/name": "knative-serving"}
    activator = _deployment(
        "activator",
        namespace,
        selector={"app": "activator", "role": "activator"},
        pod_labels=component | {"app.kubernetes.io/component": "activator"},
        account=activator_account(app),
        container={
            "name": "activator",
            "image": config.image("activator-image"),
            "resources": _resources(("300m", "60Mi"), ("1000m", "600Mi")),
            "env": _env(
                "knative.dev/internal/serving", pod=True, extra=[{"name": "GOGC", "value": "500"}]
            ),
            "ports": _ports(("http1", 8012), ("h2c", 8013)),
            "readinessProbe": {
                "httpGet": {"port": 8012},
                "periodSeconds": 5,
                "failureThreshold": 5,
            },
            "livenessProbe": {
                "httpGet": {"port": 8012},
                "periodSeconds": 10,
                "failureThreshold": 12,
                "initialDelaySeconds": 15,
            },
        },
        pod={
            "affinity": _anti_affinity("activator"),
            "terminationGracePeriodSeconds": 600,
            **placement,
        },
        spec={},  # replicas: the HorizontalPodAutoscaler's
    )
    autoscaler = _deployment(
        "autoscaler",
        namespace,
        selector={"app": "autoscaler"},
        pod_labels=component | {"app.kubernetes.io/component": "autoscaler"},
        account=controller_account(app),
        container={
            "name": "autoscaler",
            "image": config.image("autoscaler-image"),
            "resources": _resources(("100m", "100Mi"), ("1000m", "1000Mi")),
            "env": _env("knative.dev/serving", pod=True),
            "ports": _ports(("websocket", 8080)),
            "readinessProbe": {"httpGet": {"port": 8080}},
            "livenessProbe": {"httpGet": {"port": 8080}, "failureThreshold": 6},
        },
        pod={"affinity": _anti_affinity("autoscaler"), **placement},
        spec={
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
        },
    )
    net_istio = _deployment(
        "net-istio-controller",
        namespace,
        selector={"app": "net-istio-controller"},
        pod_labels=component
        | {"app.kubernetes.io/component": "net-istio", "sidecar.istio.io/inject": "false"},
        account=controller_account(app),
        container={
            "name": "controller",
            "image": config.image("net-istio-controller-image"),
            "resources": _resources(("30m", "40Mi"), ("300m", "400Mi")),
            "env": _env(
                "knative.dev/net-istio",
                pod=False,
                extra=[{"name": "ENABLE_SECRET_INFORMER_FILTERING_BY_CERT_UID", "value": "false"}],
            ),
            "ports": _ports(("probes", 8080)),
            "readinessProbe": {
                "httpGet": {"path": "/readiness", "port": "probes", "scheme": "HTTP"},
                "periodSeconds": 5,
                "failureThreshold": 3,
            },
            "livenessProbe": {
                "httpGet": {"path": "/health", "port": "probes", "scheme": "HTTP"},
                "periodSeconds": 5,
                "failureThreshold": 6,
            },
        },
        pod={},
        spec={},
    )
    return [
        activator,
        _service(
            "activator-service",
            namespace,
            "activator",
            [
                ("http-metrics", 9090, 9090),
                ("http-profiling", 8008, 8008),
                ("http", 80, 8012),
                ("http2", 81, 8013),
                ("https", 443, 8112),
            ],
        ),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "activator", "namespace": namespace},
            "spec": {
                "minReplicas": 1,
                "maxReplicas": 20,
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "activator",
                },
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 100},
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "activator-pdb", "namespace": namespace},
            "spec": {"minAvailable": "80%", "selector": {"matchLabels": {"app": "activator"}}},
        },
        autoscaler,
        _service(
            "autoscaler",
            namespace,
            "autoscaler",
            [("http-metrics", 9090, 9090), ("http-profiling", 8008, 8008), ("http", 8080, 8080)],
        ),
        net_istio,
    ]


# --- the cluster-local gateway (NI:37-79) -------------------------------------------------

# The istio charm's ingress gateway pods carry `istio: ingressgateway` (its
# templates/gateway.yaml.j2), the selector upstream's gateways use.
GATEWAY_POD_SELECTOR = {"istio": "ingressgateway"}


def local_gateway(*, namespace: str, gateway_namespace: str) -> list[dict[str, Any]]:
    """The Gateway `knative-local-gateway` on port 8081 and the Service in front of it."""
    return [
        {
            "apiVersion": GATEWAY_KIND.api_version,
            "kind": "Gateway",
            "metadata": {"name": LOCAL_GATEWAY, "namespace": namespace},
            "spec": {
                "selector": GATEWAY_POD_SELECTOR,
                "servers": [
                    {
                        "port": {"number": LOCAL_GATEWAY_PORT, "name": "http", "protocol": "HTTP"},
                        "hosts": ["*"],
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": LOCAL_GATEWAY,
                "namespace": gateway_namespace,
                "labels": {
                    "networking.knative.dev/ingress-provider": "istio",
                    "experimental.istio.io/disable-gateway-port-translation": "true",
                },
            },
            "spec": {
                "type": "ClusterIP",
                "selector": GATEWAY_POD_SELECTOR,
                "ports": [{"name": "http2", "port": 80, "targetPort": LOCAL_GATEWAY_PORT}],
            },
        },
    ]


def local_gateway_service(gateway_namespace: str) -> str:
    """The host of the Service in front of the local gateway."""
    return f"{LOCAL_GATEWAY}.{gateway_namespace}.svc.cluster.local"


def context(
    config: KnativeConfig,
    bundle: CertificateBundle,
    *,
    app: str,
    namespace: str,
    leader: str,
    gateway: IstioGateway,
) -> dict[str, Any]:
    """The templates' parameters: each scope's objects."""
    return {
        "rbac": rbac(app, namespace),
        "config": configmaps(config, namespace=namespace, gateway=gateway),
        "webhooks": webhooks(bundle, namespace=namespace, leader=leader),
        "data_path": data_path(config, app=app, namespace=namespace),
        "gateway": local_gateway(namespace=namespace, gateway_namespace=gateway.namespace),
    }


class KnativeCluster(StagedCluster):
    """The leader's side of the cluster: one group of objects, applied, kept, deleted.

    Removal keeps the CRDs: deleting them would delete every Knative Service
    (and KServe's InferenceServices' revisions) with them.
    """

    peers = PEERS
    manifests = MANIFESTS
    scopes = SCOPES
    runtime_kinds = ()
    base_label = "the CRDs, RBAC, config, webhooks, data path and local gateway"
    runtimes_label = "nothing"

    def reconcile(
        self,
        config: KnativeConfig,
        bundle: CertificateBundle,
        *,
        gateway: IstioGateway,
        force: bool,
        routine: bool,
    ) -> None:
        """Leader: apply the objects if changed, forced, or (on a routine hook) drifted."""
        self.apply_base(
            lambda: context(
                config,
                bundle,
                app=self.model.app.name,
                namespace=self.model.name,
                leader=leader_pod(self.model.app.name, self._charm.unit),
                gateway=gateway,
            ),
            force=force,
            routine=routine,
        )

    def drifted(self) -> bool:
        """Leader: whether an object applied last was deleted or changed behind our back."""
        stored = self._stored()
        if stored is None:
            return False
        if not stored.get(BASE_HASH_KEY):
            return True
        return self._owned(stored, BASE_OBJECTS_KEY, self.base_kinds()).drifted()

    def remove(self, _: ops.RemoveEvent) -> None:
        """The application goes: the leader deletes every object it made but the CRDs."""
        if not self._charm.unit.is_leader() or self.model.app.planned_units() > 0:
            return
        delete_all(
            self.model.app.name,
            [
                self._resources(scope, kinds)
                for scope, (_, kinds) in reversed(self.scopes.items())
                if scope != CRDS
            ],
        )
