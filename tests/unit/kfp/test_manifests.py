"""The kfp charm's cluster objects: CRDs, RBAC and the Argo controller's ConfigMap.

The templates under charms/kfp/src/manifests are rendered the way the charm
renders them (kubeflow_charms.kubernetes.render) with sample parameters; every
object must pass the Kubernetes schemas strictly, and what each object says is
checked against facts read from the upstream releases Kubeflow 1.10.0 ships:
kubeflow/manifests v1.10.0 (KFP 2.4.1, under apps/pipeline/upstream/, "M" below)
and argoproj/argo-workflows v3.4.17 ("A" below).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import crd_schema
import kubernetes_validate
import pytest
import yaml
from bundle.fake_kubernetes import KUBERNETES_VERSION

from kubeflow_charms.kubernetes import render

MANIFESTS = Path(__file__).parents[3] / "charms" / "kfp" / "src" / "manifests"
NAMESPACE = "kubeflow"
SERVICE_ACCOUNT = "kfp"

RBAC_PARAMS = {"app_name": "kfp", "namespace": NAMESPACE, "service_account": SERVICE_ACCOUNT}
TOLERATIONS = [
    {"key": "dedicated", "operator": "Equal", "value": "pipelines", "effect": "NoSchedule"}
]
CONFIGMAP_PARAMS: dict[str, Any] = {
    "configmap_name": "workflow-controller-configmap",
    "namespace": NAMESPACE,
    "executor_image": "gcr.io/ml-pipeline/argoexec:v3.4.17-license-compliance",
    "s3_endpoint": "minio.kubeflow.svc.cluster.local:9000",
    "s3_bucket": "mlpipeline",
    "s3_insecure": True,
    "s3_region": "",
    "archive_logs": True,
    "key_format": (
        "private-artifacts/{{workflow.namespace}}/artifacts/{{workflow.name}}/"
        "{{workflow.creationTimestamp.Y}}/{{workflow.creationTimestamp.m}}/"
        "{{workflow.creationTimestamp.d}}/{{pod.name}}"
    ),
    "credentials_secret": "minio-credentials",
    "access_key_key": "AWS_ACCESS_KEY_ID",
    "secret_key_key": "AWS_SECRET_ACCESS_KEY",
    # As kfp_workloads.argo_controller_settings gives them: one-line JSON values.
    "settings": {
        "metricsConfig": '{"port": 9091}',
        "parallelism": "20",
        "workflowDefaults": json.dumps(
            {"spec": {"nodeSelector": {"pool": "pipelines"}, "tolerations": TOLERATIONS}}
        ),
    },
}
TEMPLATES = {
    "crds.yaml.j2": {},
    "rbac.yaml.j2": RBAC_PARAMS,
    "user-roles.yaml.j2": {},
    "workflow-controller-configmap.yaml.j2": CONFIGMAP_PARAMS,
}

A = "argoproj/argo-workflows v3.4.17 manifests/base/crds/minimal/argoproj.io_"
M = "kubeflow/manifests v1.10.0 apps/pipeline/upstream/base/pipeline/cluster-scoped/"
OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
# The CRDs the release installs: the eight of Argo's minimal set (A
# manifests/base/crds/minimal/kustomization.yaml:5-12, included by M
# third-party/argo/upstream/manifests/base/crds/kustomization.yaml:4) and KFP's
# two (M base/pipeline/cluster-scoped/kustomization.yaml:4-5).
# name: (kind, shortNames, scope, version, subresources, required, open fields, where read)
# fmt: off
CRDS: dict[str, tuple[str, list[str], str, str, dict | None, list[str], list[str], str]] = {
    "workflows.argoproj.io": (
        "Workflow", ["wf"], "Namespaced", "v1alpha1", {}, ["metadata", "spec"],
        ["spec", "status"], A + "workflows.yaml:6-55",
    ),
    "workflowtemplates.argoproj.io": (
        "WorkflowTemplate", ["wftmpl"], "Namespaced", "v1alpha1", None, ["metadata", "spec"],
        ["spec"], A + "workflowtemplates.yaml:6-35",
    ),
    "clusterworkflowtemplates.argoproj.io": (
        "ClusterWorkflowTemplate", ["clusterwftmpl", "cwft"], "Cluster", "v1alpha1", None,
        ["metadata", "spec"], ["spec"], A + "clusterworkflowtemplates.yaml:6-36",
    ),
    "cronworkflows.argoproj.io": (
        "CronWorkflow", ["cwf", "cronwf"], "Namespaced", "v1alpha1", None, ["metadata", "spec"],
        ["spec", "status"], A + "cronworkflows.yaml:6-40",
    ),
    "workflowtasksets.argoproj.io": (
        "WorkflowTaskSet", ["wfts"], "Namespaced", "v1alpha1", {"status": {}},
        ["metadata", "spec"], ["spec", "status"], A + "workflowtasksets.yaml:6-41",
    ),
    "workflowartifactgctasks.argoproj.io": (
        "WorkflowArtifactGCTask", ["wfat"], "Namespaced", "v1alpha1", {"status": {}},
        ["metadata", "spec"], ["spec", "status"], A + "workflowartifactgctasks.yaml:6-41",
    ),
    "workfloweventbindings.argoproj.io": (
        "WorkflowEventBinding", ["wfeb"], "Namespaced", "v1alpha1", None, ["metadata", "spec"],
        ["spec"], A + "workfloweventbindings.yaml:6-35",
    ),
    # The one with a full schema (outputs, phase, message, progress at the top level).
    "workflowtaskresults.argoproj.io": (
        "WorkflowTaskResult", [], "Namespaced", "v1alpha1", None, ["metadata"], [],
        A + "workflowtaskresults.yaml:6-14,580-584",
    ),
    "scheduledworkflows.kubeflow.org": (
        "ScheduledWorkflow", ["swf"], "Namespaced", "v1beta1", None, ["spec", "status"],
        ["spec", "status"], M + "scheduled-workflow-crd.yaml:6-39",
    ),
    "viewers.kubeflow.org": (
        "Viewer", ["vi"], "Namespaced", "v1beta1", None, ["spec"], ["spec"],
        M + "viewer-crd.yaml:6-34",
    ),
}
# fmt: on


def _objects(template: str) -> list[dict[str, Any]]:
    text = render(MANIFESTS, [template], TEMPLATES[template])
    return [d for d in yaml.safe_load_all(text) if d]


def _by_kind(template: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects(template) if o["kind"] == kind}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_object_is_valid_kubernetes(template: str):
    objects = _objects(template)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_crds_are_the_releases():
    assert sorted(_by_kind("crds.yaml.j2", "CustomResourceDefinition")) == sorted(CRDS)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_matches_upstream(name: str):
    kind, short_names, scope, version, subresources, required, open_fields, _ = CRDS[name]
    crd = _by_kind("crds.yaml.j2", "CustomResourceDefinition")[name]
    plural, _, group = name.partition(".")
    spec = crd["spec"]
    assert spec["group"] == group
    assert spec["scope"] == scope
    names = spec["names"]
    assert (names["kind"], names["listKind"]) == (kind, kind + "List")
    assert (names["plural"], names["singular"]) == (plural, kind.lower())
    assert names.get("shortNames", []) == short_names
    [served] = spec["versions"]
    assert (served["name"], served["served"], served["storage"]) == (version, True, True)
    assert served.get("subresources") == subresources
    schema = served["schema"]["openAPIV3Schema"]
    assert sorted(schema["required"]) == sorted(required)
    properties = schema["properties"]
    for field in open_fields:
        # Kept whole, as upstream: an update replaces it (atomic), nothing is pruned.
        assert properties[field] == OPEN | {"x-kubernetes-map-type": "atomic"}
    assert {"spec", "status"} & set(properties) == set(open_fields)


def test_workflow_printer_columns():
    # A workflows.yaml:16-30: Status, Age and Message, from the status.
    crd = _by_kind("crds.yaml.j2", "CustomResourceDefinition")["workflows.argoproj.io"]
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["type"], c["jsonPath"]) for c in columns] == [
        ("Status", "string", ".status.phase"),
        ("Age", "date", ".status.startedAt"),
        ("Message", "string", ".status.message"),
    ]
    assert columns[1]["format"] == "date-time"
    for name, crd in _by_kind("crds.yaml.j2", "CustomResourceDefinition").items():
        if name != "workflows.argoproj.io":
            assert "additionalPrinterColumns" not in crd["spec"]["versions"][0]


class _Validator:
    """A CRD's schema, checked as the API server checks a request's body.

    The request's path names apiVersion and kind, so the body may leave them out.
    """

    def __init__(self, crd: dict[str, Any]):
        self.schema = crd_schema.CustomResourceSchema(crd)

    def is_valid(self, obj: dict[str, Any]) -> bool:
        return self.schema.is_valid(obj, type_meta=False)


def _validator(name: str) -> _Validator:
    crd = _by_kind("crds.yaml.j2", "CustomResourceDefinition")[name]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert crd_schema.structural_problems(schema) == []
    return _Validator(crd)


def test_schemas_take_what_the_workloads_write():
    meta = {"name": "x", "namespace": "team-a"}
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": []}}]},
        "status": {"phase": "Running", "nodes": {"x": {"phase": "Running"}}},
    }
    assert _validator("workflows.argoproj.io").is_valid(workflow)
    assert not _validator("workflows.argoproj.io").is_valid({"metadata": meta})
    # The API server writes a ScheduledWorkflow with its status (required upstream).
    swf = {"metadata": meta, "spec": {"enabled": True, "workflow": {}}, "status": {}}
    assert _validator("scheduledworkflows.kubeflow.org").is_valid(swf)
    assert not _validator("scheduledworkflows.kubeflow.org").is_valid(
        {"metadata": meta, "spec": {}}
    )
    viewer = {"metadata": meta, "spec": {"type": "tensorboard", "tensorboardSpec": {}}}
    assert _validator("viewers.kubeflow.org").is_valid(viewer)
    # What the v3.4 executor reports for a node: its outputs, with typed fields.
    result = {
        "metadata": meta,
        "phase": "Succeeded",
        "progress": "1/1",
        "outputs": {
            "exitCode": "0",
            "parameters": [{"name": "p", "value": "1", "valueFrom": {"path": "/outputs/p"}}],
            "artifacts": [
                {
                    "name": "main-logs",
                    "s3": {
                        "key": "artifacts/x/2026/01/01/x-1/main.log",
                        "bucket": "mlpipeline",
                        "accessKeySecret": {"name": "s", "key": "accesskey"},
                    },
                    "archive": {"tar": {"compressionLevel": 6}},
                    "artifactGC": {"strategy": "OnWorkflowDeletion"},
                }
            ],
        },
    }
    results = _validator("workflowtaskresults.argoproj.io")
    assert results.is_valid(result)
    # As upstream's schema: an artifact needs a name, a secret reference a key,
    # and the GC strategy is one of four.
    bad_artifacts = [
        [{"path": "/outputs/x"}],
        [{"name": "a", "s3": {"accessKeySecret": {"name": "s"}}}],
        [{"name": "a", "artifactGC": {"strategy": "Sometimes"}}],
    ]
    for artifacts in bad_artifacts:
        assert not results.is_valid(result | {"outputs": {"artifacts": artifacts}})


# Rules upstream grants each workload's ServiceAccount, a sample of each role
# (M = kubeflow/manifests v1.10.0 apps/pipeline/upstream/):
# (api group, resource, verb) the charm's ServiceAccount must be allowed.
WORKLOAD_GRANTS = {
    # M base/installs/multi-user/api-service/cluster-role.yaml:5-49
    "api-server": [
        ("argoproj.io", "workflows", "create"),
        ("kubeflow.org", "scheduledworkflows", "delete"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("", "pods/log", "get"),
    ],
    # M base/installs/multi-user/persistence-agent/cluster-role.yaml:5-35
    "persistence-agent": [
        ("argoproj.io", "workflows", "watch"),
        ("pipelines.kubeflow.org", "workflows", "report"),
        ("pipelines.kubeflow.org", "scheduledworkflows", "report"),
        ("pipelines.kubeflow.org", "runs", "reportMetrics"),
    ],
    # M base/installs/multi-user/scheduled-workflow/cluster-role.yaml:5-37
    "scheduled-workflow": [
        ("argoproj.io", "workflows", "create"),
        ("kubeflow.org", "scheduledworkflows/finalizers", "update"),
        ("", "events", "create"),
    ],
    # M third-party/argo/upstream/manifests/cluster-install/workflow-controller-rbac/
    # workflow-controller-clusterrole.yaml:7-107
    "workflow-controller": [
        ("", "pods", "create"),
        ("", "pods/exec", "create"),
        ("", "configmaps", "watch"),
        ("", "persistentvolumeclaims", "create"),
        ("argoproj.io", "workflowtasksets", "create"),
        ("argoproj.io", "workflowartifactgctasks", "delete"),
        ("argoproj.io", "workflowtaskresults", "deletecollection"),
        ("argoproj.io", "clusterworkflowtemplates", "get"),
        ("argoproj.io", "cronworkflows", "update"),
        ("", "serviceaccounts", "get"),
        ("policy", "poddisruptionbudgets", "create"),
    ],
    # M base/installs/multi-user/viewer-controller/cluster-role.yaml:5-31
    "viewer-controller": [
        ("apps", "deployments", "create"),
        ("", "services", "create"),
        ("kubeflow.org", "viewers/finalizers", "update"),
    ],
    # M base/installs/multi-user/pipelines-ui/cluster-role.yaml:5-42
    "ui": [
        ("", "pods/log", "get"),
        ("", "secrets", "get"),
        ("kubeflow.org", "viewers", "create"),
        ("argoproj.io", "workflows", "list"),
    ],
}
# Upstream grants these in its own namespace only: the Argo controller's lease
# and secrets (M third-party/argo/upstream/manifests/cluster-install/
# workflow-controller-rbac/workflow-controller-role.yaml:7-21), the UI's
# configmaps (M base/pipeline/ml-pipeline-ui-role.yaml:21-28).
NAMESPACED_GRANTS = {
    "workflow-controller": [("coordination.k8s.io", "leases", "update"), ("", "secrets", "get")],
    "ui": [("", "configmaps", "get")],
}


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        {group, "*"} & set(r["apiGroups"])
        and {resource, "*"} & set(r["resources"])
        and {verb, "*"} & set(r["verbs"])
        for r in rules
    )


def _bound_to_the_charm(binding: dict[str, Any], kind: str, role: str) -> None:
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": kind,
        "name": role,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    ]


def test_one_cluster_role_per_workload_bound_to_the_charm():
    roles = _by_kind("rbac.yaml.j2", "ClusterRole")
    bindings = _by_kind("rbac.yaml.j2", "ClusterRoleBinding")
    assert sorted(roles) == sorted(bindings) == sorted(f"kfp-{w}" for w in WORKLOAD_GRANTS)
    for workload, grants in WORKLOAD_GRANTS.items():
        name = f"kfp-{workload}"
        _bound_to_the_charm(bindings[name], "ClusterRole", name)
        for grant in grants:
            assert _allows(roles[name]["rules"], *grant), (workload, grant)
    # Nothing more than its own workload needs: the UI only reads workflows.
    assert not _allows(roles["kfp-ui"]["rules"], "argoproj.io", "workflows", "create")
    assert not _allows(
        roles["kfp-persistence-agent"]["rules"], "argoproj.io", "workflows", "delete"
    )


def test_namespaced_roles_stay_in_the_model():
    roles = _by_kind("rbac.yaml.j2", "Role")
    bindings = _by_kind("rbac.yaml.j2", "RoleBinding")
    assert sorted(roles) == sorted(bindings) == sorted(f"kfp-{w}" for w in NAMESPACED_GRANTS)
    for workload, grants in NAMESPACED_GRANTS.items():
        name = f"kfp-{workload}"
        assert roles[name]["metadata"]["namespace"] == NAMESPACE
        assert bindings[name]["metadata"]["namespace"] == NAMESPACE
        _bound_to_the_charm(bindings[name], "Role", name)
        for grant in grants:
            assert _allows(roles[name]["rules"], *grant), (workload, grant)


KF = "rbac.authorization.kubeflow.org/"
# name: (labels, aggregated label or None), as upstream:
# M base/installs/multi-user/view-edit-cluster-roles.yaml:7-142 and
# M third-party/argo/upstream/manifests/cluster-install/workflow-controller-rbac/
# workflow-aggregate-roles.yaml:4-6,33-35,67-69.
USER_ROLES = {
    "kubeflow-pipelines-edit": (
        {KF + "aggregate-to-kubeflow-edit": "true"},
        KF + "aggregate-to-kubeflow-pipelines-edit",
    ),
    "kubeflow-pipelines-view": (
        {
            KF + "aggregate-to-kubeflow-pipelines-edit": "true",
            KF + "aggregate-to-kubeflow-view": "true",
        },
        KF + "aggregate-to-kubeflow-pipelines-view",
    ),
    "aggregate-to-kubeflow-pipelines-edit": (
        {KF + "aggregate-to-kubeflow-pipelines-edit": "true"},
        None,
    ),
    "aggregate-to-kubeflow-pipelines-view": (
        {KF + "aggregate-to-kubeflow-pipelines-view": "true"},
        None,
    ),
    "argo-aggregate-to-view": ({"rbac.authorization.k8s.io/aggregate-to-view": "true"}, None),
    "argo-aggregate-to-edit": ({"rbac.authorization.k8s.io/aggregate-to-edit": "true"}, None),
    "argo-aggregate-to-admin": ({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}, None),
}


def test_user_roles_aggregate_as_upstream():
    roles = _by_kind("user-roles.yaml.j2", "ClusterRole")
    assert sorted(roles) == sorted(USER_ROLES)
    for name, (labels, aggregates) in USER_ROLES.items():
        role = roles[name]
        assert role["metadata"]["labels"] == labels
        if aggregates:
            selectors = role["aggregationRule"]["clusterRoleSelectors"]
            assert selectors == [{"matchLabels": {aggregates: "true"}}]
            assert role["rules"] == []
        else:
            assert "aggregationRule" not in role
    edit = roles["aggregate-to-kubeflow-pipelines-edit"]["rules"]
    view = roles["aggregate-to-kubeflow-pipelines-view"]["rules"]
    # A profile's default-editor runs the pipelines' pods; the v3.4 executor in
    # them writes WorkflowTaskResults (view-edit-cluster-roles.yaml:89-100).
    assert _allows(edit, "argoproj.io", "workflowtaskresults", "create")
    assert _allows(edit, "pipelines.kubeflow.org", "runs", "terminate")
    assert _allows(view, "pipelines.kubeflow.org", "runs", "readArtifact")
    assert not _allows(view, "pipelines.kubeflow.org", "runs", "create")
    argo_view = roles["argo-aggregate-to-view"]["rules"]
    argo_admin = roles["argo-aggregate-to-admin"]["rules"]
    assert _allows(argo_view, "argoproj.io", "workflows", "watch")
    assert not _allows(argo_view, "argoproj.io", "workflows", "delete")
    assert _allows(argo_admin, "argoproj.io", "workflowtasksets", "deletecollection")
    assert not _allows(
        roles["argo-aggregate-to-edit"]["rules"], "argoproj.io", "workflowtasksets", "get"
    )


# The keys Argo's controller decodes, strictly (A config/controller.go:34-53,
# yaml.UnmarshalStrict into Config): A config/config.go:22-110 (Config),
# pkg/apis/workflow/v1alpha1/artifact_repository_types.go:15-30 (ArtifactRepository)
# and :73-83 (S3ArtifactRepository), workflow_types.go:2383-2411 (S3Bucket).
CONFIG_KEYS = {
    "nodeEvents", "executor", "mainContainer", "kubeConfig", "artifactRepository", "namespace",
    "instanceID", "metricsConfig", "telemetryConfig", "parallelism", "namespaceParallelism",
    "resourceRateLimit", "persistence", "links", "columns", "workflowDefaults",
    "podSpecLogStrategy", "podGCGracePeriodSeconds", "podGCDeleteDelayDuration",
    "workflowRestrictions", "initialDelay", "images", "retentionPolicy", "navColor", "sso",
}  # fmt: skip
ARTIFACT_REPOSITORY_KEYS = {"archiveLogs", "s3", "artifactory", "hdfs", "oss", "gcs", "azure"}
S3_KEYS = {
    "endpoint", "bucket", "region", "insecure", "accessKeySecret", "secretKeySecret", "roleARN",
    "useSDKCreds", "createBucketIfNotPresent", "encryptionOptions", "keyFormat", "keyPrefix",
}  # fmt: skip
# M third-party/argo/base/workflow-controller-configmap-patch.yaml:28 (the UI's
# ARGO_KEYFORMAT default is the same), moved under the profile's prefix: Argo fills in
# workflow.namespace like workflow.name (A workflow/controller/operator.go:589).
KEY_FORMAT = "private-artifacts/{{workflow.namespace}}/" + (
    "artifacts/{{workflow.name}}/{{workflow.creationTimestamp.Y}}/"
    "{{workflow.creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}"
)


def _controller_config(params: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap as Argo reads it: each data key a YAML value of one document."""
    text = render(MANIFESTS, ["workflow-controller-configmap.yaml.j2"], params)
    [configmap] = [d for d in yaml.safe_load_all(text) if d]
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)
    assert configmap["metadata"] == {"name": params["configmap_name"], "namespace": NAMESPACE}
    data = configmap["data"]
    # A key named "config" would have to be the only one (config/controller.go:37-40).
    assert "config" not in data
    return yaml.safe_load(_argo_document(data))


def _argo_document(data: dict[str, str]) -> str:
    """The one YAML document Argo makes of the data keys (A config/controller.go:41-50)."""
    lines = []
    for name, value in data.items():
        if "\n" in value:
            body = "\n  ".join(value.strip("\n").split("\n"))
            lines.append(f"{name}:\n  {body}\n")
        else:
            lines.append(f"{name}: {value}\n")
    return "".join(lines)


def test_controller_config_keys_are_argos():
    config = _controller_config(CONFIGMAP_PARAMS)
    assert set(config) <= CONFIG_KEYS
    assert set(config) == {
        "executor", "artifactRepository", "workflowDefaults", "parallelism", "metricsConfig"
    }  # fmt: skip
    # Argo's metrics server defaults to :9090 (A workflow/metrics/metrics.go:19,
    # workflow/controller/controller.go:1169-1172), the envoy's port in our pod:
    # it moves to 9091. Telemetry, unset, follows the metrics port (controller.go:1190-1193).
    assert config["metricsConfig"] == {"port": 9091}
    assert "telemetryConfig" not in config
    repository = config["artifactRepository"]
    assert set(repository) <= ARTIFACT_REPOSITORY_KEYS
    assert set(repository["s3"]) <= S3_KEYS
    assert repository["archiveLogs"] is True
    assert repository["s3"] == {
        "endpoint": "minio.kubeflow.svc.cluster.local:9000",
        "bucket": "mlpipeline",
        "insecure": True,
        "keyFormat": KEY_FORMAT,
        # Each profile's own keys: the controller mounts the Secret into the step's pod, in
        # the workflow's namespace (A workflow/controller/workflowpod.go:1127-1160), and the
        # executor reads the files (A workflow/executor/executor.go:643-649).
        "accessKeySecret": {"name": "minio-credentials", "key": "AWS_ACCESS_KEY_ID"},
        "secretKeySecret": {"name": "minio-credentials", "key": "AWS_SECRET_ACCESS_KEY"},
    }
    assert config["parallelism"] == 20
    # Config.Executor is a corev1 Container; the image is used unless a flag overrides
    # it (A workflow/controller/config.go:110-118).
    assert config["executor"] == {
        "image": "gcr.io/ml-pipeline/argoexec:v3.4.17-license-compliance",
        "imagePullPolicy": "IfNotPresent",
    }
    container = {"name": "executor"} | config["executor"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    kubernetes_validate.validate(
        pod | {"spec": {"containers": [container]}}, KUBERNETES_VERSION, strict=True
    )
    # workflowDefaults is a Workflow: its spec's nodeSelector and tolerations are
    # the pod fields of the same names (workflow_types.go:307,316).
    defaults = config["workflowDefaults"]
    assert set(defaults) == {"spec"}
    assert defaults["spec"] == {
        "nodeSelector": {"pool": "pipelines"},
        "tolerations": TOLERATIONS,
    }
    scheduling = pod | {"spec": {"containers": [{"name": "c", "image": "i"}], **defaults["spec"]}}
    kubernetes_validate.validate(scheduling, KUBERNETES_VERSION, strict=True)


def test_controller_config_leaves_out_what_is_unset():
    params = CONFIGMAP_PARAMS | {
        "settings": {},
        "s3_insecure": False,
        "s3_region": "eu-west-1",
        "archive_logs": False,
    }
    config = _controller_config(params)
    assert set(config) == {"executor", "artifactRepository"}
    assert config["artifactRepository"]["archiveLogs"] is False
    assert config["artifactRepository"]["s3"]["insecure"] is False
    assert config["artifactRepository"]["s3"]["region"] == "eu-west-1"
    # What kfp_workloads.argo_controller_settings gives passes through as it is.
    defaults = json.dumps({"spec": {"nodeSelector": {"a": "b"}}})
    only_selector = _controller_config(params | {"settings": {"workflowDefaults": defaults}})
    assert only_selector["workflowDefaults"] == {"spec": {"nodeSelector": {"a": "b"}}}


def test_controller_config_quotes_what_it_is_given():
    # A value with YAML's special characters stays one string and adds no key.
    odd = 'a: b\n"c": [d]'
    config = _controller_config(CONFIGMAP_PARAMS | {"s3_bucket": odd, "executor_image": odd})
    assert config["artifactRepository"]["s3"]["bucket"] == odd
    assert config["executor"]["image"] == odd
    assert set(config) <= CONFIG_KEYS
