"""The Kubeflow Pipelines workloads: each container's Pebble layer and the files it reads.

Pure functions of the typed config (`KfpConfig`) and of what the charm learns
from its relations. Every workload runs in its own container of the charm's
pod, so all of them share one network namespace; where two upstream
defaults collide, one moves and the Kubernetes Service keeps the port
clients know (see `Ports`):

- the visualization server listens on 8888, fixed in its code, which is
  also the API server's default HTTP port: the API server moves to 8889
  (Service `ml-pipeline` maps 8888 to it);
- the viewer controller's metrics server takes controller-runtime's fixed
  default :8080, which is MLMD's default port: MLMD moves to 8081
  (Service `metadata-grpc-service` maps 8080 to it);
- Argo's metrics default to 9090, the envoy's port: Argo's move to 9091
  (`argo_controller_settings`, written into its ConfigMap).

Credentials never enter a Pebble plan: the API server and MLMD read them
from files (`api_server_config`, `mlmd_server_config`).

The controllers (persistence agent, scheduled-workflow controller, Argo's
workflow controller, viewer controller) start only on the leader unit:
their services are `startup: disabled` elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ops
from kfp_config import ARGO_KEY_FORMAT, BUCKET, KfpConfig

KFP_VERSION = "2.4.1"
ARGO_VERSION = "v3.4.17"
# The image Argo runs each step's wait and init containers with, as KFP ships it.
ARGO_EXECUTOR_IMAGE = f"gcr.io/ml-pipeline/argoexec:{ARGO_VERSION}-license-compliance"
ARGO_CONFIGMAP = "workflow-controller-configmap"
# Runs in profile namespaces use the service account Kubeflow's profile controller creates.
PIPELINE_RUNNER_SERVICE_ACCOUNT = "default-editor"
# The login's user-id header and the prefix of its value, until istio says others
# (`kfp_route.user_header`).
USER_HEADER = "kubeflow-userid"
USER_PREFIX = ""
MLPIPELINE_DB = "mlpipeline"  # the API server's own SHOW TABLES reading assumes this name
METADATA_DB = "metadb"
VISUALIZATION_SERVICE = "ml-pipeline-visualizationserver"
UI_ARTIFACT_SERVICE = "ml-pipeline-ui-artifact"
# Where the persistence agent reads its token (audience pipelines.kubeflow.org) from.
PERSISTENCE_AGENT_TOKEN_PATH = "/var/run/secrets/kubeflow/tokens/persistenceagent-sa-token"  # noqa: S105 (a path)
UPSTREAM_UID = 1000  # runAsUser of every KFP Deployment upstream
UPSTREAM_GID = 0
ARGO_UID = 8737  # the workflow-controller image's USER


class Ports:
    """The ports the workloads listen on in the pod (and where they moved from)."""

    API_GRPC = 8887
    API_HTTP = 8889  # upstream 8888, taken here by the visualization server
    API_HTTP_SERVICE = 8888  # what Service ml-pipeline exposes
    UI = 3000
    MLMD = 8081  # upstream 8080, taken here by the viewer controller's metrics
    MLMD_SERVICE = 8080  # what Service metadata-grpc-service exposes
    ENVOY = 9090
    ENVOY_ADMIN = 9901  # bound to 127.0.0.1 only
    ARGO_HEALTH = 6060
    ARGO_METRICS = 9091  # upstream 9090, taken here by the envoy
    VIEWER_METRICS = 8080
    VISUALIZATION = 8888


@dataclasses.dataclass(frozen=True)
class Workload:
    """One container, its one service and its ready check (None: the service running is all)."""

    container: str
    service: str
    check: str | None
    leader_only: bool = False


API_SERVER = Workload("api-server", "api-server", "api-server-ready")
PERSISTENCE_AGENT = Workload("persistence-agent", "persistence-agent", None, leader_only=True)
SCHEDULED_WORKFLOW = Workload("scheduled-workflow", "scheduled-workflow", None, leader_only=True)
UI = Workload("ui", "ui", "ui-ready")
METADATA_GRPC = Workload("metadata-grpc", "metadata-grpc", "metadata-grpc-ready")
METADATA_ENVOY = Workload("metadata-envoy", "metadata-envoy", "metadata-envoy-ready")
WORKFLOW_CONTROLLER = Workload(
    "workflow-controller", "workflow-controller", "workflow-controller-alive", leader_only=True
)
VIEWER_CONTROLLER = Workload("viewer-controller", "viewer-controller", None, leader_only=True)
VISUALIZATION_SERVER = Workload(
    "visualization-server", "visualization-server", "visualization-server-ready"
)
WORKLOADS = (
    API_SERVER,
    PERSISTENCE_AGENT,
    SCHEDULED_WORKFLOW,
    UI,
    METADATA_GRPC,
    METADATA_ENVOY,
    WORKFLOW_CONTROLLER,
    VIEWER_CONTROLLER,
    VISUALIZATION_SERVER,
)

API_SERVER_CONFIG_DIR = "/etc/kfp/api-server"  # viper reads config.json from here
MLMD_CONFIG = "/etc/kfp/metadata-grpc/server-config.pbtxt"
ENVOY_CONFIG = "/etc/kfp/metadata-envoy/envoy.yaml"
UI_VIEWER_TEMPLATE = "/etc/kfp/ui/viewer-pod-template.json"


@dataclasses.dataclass(frozen=True)
class File:
    """A file a workload reads at start, owned by the user its service runs as."""

    container: str
    path: str
    content: str
    user_id: int
    group_id: int
    permissions: int = 0o600


@dataclasses.dataclass(frozen=True)
class Database:
    """A MySQL endpoint and account, as the relational-db relation gives them."""

    host: str
    port: int
    user: str
    password: str


@dataclasses.dataclass(frozen=True)
class ObjectStore:
    """An S3 endpoint and keys, as the object-storage relation gives them."""

    host: str
    port: int
    secure: bool
    region: str
    access_key: str
    secret_key: str


# --- layers ----------------------------------------------------------------------------


def _startup(workload: Workload, leader: bool) -> str:
    return "enabled" if leader or not workload.leader_only else "disabled"


def _layer(
    workload: Workload,
    *,
    leader: bool,
    command: str,
    working_dir: str,
    environment: dict[str, str] | None = None,
    user_id: int = UPSTREAM_UID,
    group_id: int = UPSTREAM_GID,
    check: dict[str, Any] | None = None,
) -> ops.pebble.LayerDict:
    service: dict[str, Any] = {
        "override": "replace",
        "summary": workload.service,
        "command": command,
        "working-dir": working_dir,
        "startup": _startup(workload, leader),
        "user-id": user_id,
        "group-id": group_id,
        "environment": environment or {},
    }
    layer: dict[str, Any] = {"summary": workload.service, "services": {workload.service: service}}
    if workload.check is not None and check is not None:
        layer["checks"] = {
            workload.check: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "timeout": "3s",
                "threshold": 3,
                **check,
            }
        }
        if _startup(workload, leader) == "disabled":
            # A controller that does not run here has nothing to check.
            layer["checks"][workload.check]["startup"] = "disabled"
    return layer  # type: ignore[return-value]


def _http(url: str) -> dict[str, Any]:
    return {"http": {"url": url}}


def _tcp(port: int) -> dict[str, Any]:
    return {"tcp": {"port": port}}


def api_server_layer(
    config: KfpConfig, *, namespace: str, user_header: tuple[str, str] = (USER_HEADER, USER_PREFIX)
) -> ops.pebble.LayerDict:
    """The API server: its settings in `api_server_config`'s file, the rest in env.

    `user_header`: the header the login puts the user's id in, and the prefix before it.
    """
    header, prefix = user_header
    return _layer(
        API_SERVER,
        leader=True,
        command=(
            f"/bin/apiserver --config={API_SERVER_CONFIG_DIR}"
            " --sampleconfig=/config/sample_config.json -logtostderr=true"
            f" --logLevel={config.log_level}"
            f" --rpcPortFlag=:{Ports.API_GRPC} --httpPortFlag=:{Ports.API_HTTP}"
        ),
        working_dir="/bin",
        environment={
            "POD_NAMESPACE": namespace,
            "MULTIUSER": "true",
            "DEFAULTPIPELINERUNNERSERVICEACCOUNT": PIPELINE_RUNNER_SERVICE_ACCOUNT,
            "VISUALIZATIONSERVICE_NAME": VISUALIZATION_SERVICE,
            "VISUALIZATIONSERVICE_PORT": str(Ports.VISUALIZATION),
            # Required at start; in this pod the visualization server is on localhost.
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_HOST": "localhost",
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_PORT": str(Ports.VISUALIZATION),
            "KUBEFLOW_USERID_HEADER": header,
            "KUBEFLOW_USERID_PREFIX": prefix,
            "AUTO_UPDATE_PIPELINE_DEFAULT_VERSION": "true",
            "LOG_LEVEL": config.log_level,
        },
        check=_http(f"http://localhost:{Ports.API_HTTP}/apis/v1beta1/healthz"),
    )


def api_server_config(
    db: Database, store: ObjectStore, *, bucket: str = BUCKET, pipeline_path: str = "pipelines"
) -> File:
    """The API server's config.json: the database and object store, credentials included.

    The keys are those of the image's own /config/config.json; viper lets
    an environment variable override each, and the layer sets none of these.
    """
    document = {
        "DBConfig": {
            "MySQLConfig": {
                "Host": db.host,
                "Port": str(db.port),
                "User": db.user,
                "Password": db.password,
                "DBName": MLPIPELINE_DB,
                "GroupConcatMaxLen": "4194304",
            },
            "ConMaxLifeTime": "120s",
        },
        "DBDriverName": "mysql",
        "ObjectStoreConfig": {
            "Host": store.host,
            "Port": str(store.port),
            "Secure": store.secure,
            "Region": store.region,
            "AccessKey": store.access_key,
            "SecretAccessKey": store.secret_key,
            "BucketName": bucket,
            "PipelinePath": pipeline_path,
        },
        "ARCHIVE_CONFIG_LOG_FILE_NAME": "main.log",
        "ARCHIVE_CONFIG_LOG_PATH_PREFIX": "/artifacts",
        "InitConnectionTimeout": "6m",
        "CRON_SCHEDULE_TIMEZONE": "UTC",
    }
    return File(
        API_SERVER.container,
        f"{API_SERVER_CONFIG_DIR}/config.json",
        json.dumps(document, indent=2, sort_keys=True) + "\n",
        UPSTREAM_UID,
        UPSTREAM_GID,
    )


def persistence_agent_layer(config: KfpConfig, *, leader: bool) -> ops.pebble.LayerDict:
    """The persistence agent: reports workflows to the API server, all namespaces."""
    return _layer(
        PERSISTENCE_AGENT,
        leader=leader,
        command=(
            "/bin/persistence_agent --logtostderr=true --namespace="
            f" --ttlSecondsAfterWorkflowFinish={config.workflow_ttl}"
            " --numWorker=2 --executionType=Workflow"
            f" --logLevel={config.log_level}"
            " --mlPipelineAPIServerName=localhost"
            f" --mlPipelineServiceHttpPort={Ports.API_HTTP}"
            f" --mlPipelineServiceGRPCPort={Ports.API_GRPC}"
        ),
        working_dir="/bin",
    )


def scheduled_workflow_layer(config: KfpConfig, *, leader: bool) -> ops.pebble.LayerDict:
    """The scheduled-workflow controller: starts recurring runs, all namespaces."""
    return _layer(
        SCHEDULED_WORKFLOW,
        leader=leader,
        command=(f"/bin/controller --logtostderr=true --namespace= --logLevel={config.log_level}"),
        working_dir="/bin",
        environment={"CRON_SCHEDULE_TIMEZONE": "UTC"},
    )


def ui_layer(
    config: KfpConfig,
    *,
    namespace: str,
    store: ObjectStore | None = None,
    user_header: tuple[str, str] = (USER_HEADER, USER_PREFIX),
) -> ops.pebble.LayerDict:
    """The UI server, multi-user, in front of the API server and the envoy on localhost.

    `store` gives the object store's address; its keys are not passed (see
    the README: the UI reads them from its environment only). `user_header`:
    the header the login puts the user's id in, and the prefix before it.

    Reading archived step logs stays off (`ARGO_ARCHIVE_LOGS`): the UI reads
    them with its own keys (frontend/server/handlers/pod-logs.ts,
    workflow-helper.ts at KFP 2.4.1), and the same keys serve `/artifacts/get`
    for any bucket and key it is asked for, without a check of the user's
    namespace (handlers/artifacts.ts, app.ts). Keys that reach every profile's
    prefix would let any user read every profile's artifacts, so the UI gets
    none; it still shows a step's log while its pod exists. Where Argo
    archives them is set all the same (`ARGO_KEYFORMAT`, with
    `{{workflow.namespace}}`, which the UI fills in), so the two agree.
    """
    header, prefix = user_header
    environment = {
        "ML_PIPELINE_SERVICE_HOST": "localhost",
        "ML_PIPELINE_SERVICE_PORT": str(Ports.API_HTTP),
        "METADATA_ENVOY_SERVICE_SERVICE_HOST": "localhost",
        "METADATA_ENVOY_SERVICE_SERVICE_PORT": str(Ports.ENVOY),
        "VIEWER_TENSORBOARD_POD_TEMPLATE_SPEC_PATH": UI_VIEWER_TEMPLATE,
        "ALLOW_CUSTOM_VISUALIZATIONS": "true",
        "FRONTEND_SERVER_NAMESPACE": namespace,
        "DEPLOYMENT": "KUBEFLOW",
        "ARTIFACTS_SERVICE_PROXY_NAME": UI_ARTIFACT_SERVICE,
        "ARTIFACTS_SERVICE_PROXY_PORT": "80",
        "ARTIFACTS_SERVICE_PROXY_ENABLED": "true",
        "ENABLE_AUTHZ": "true",
        "KUBEFLOW_USERID_HEADER": header,
        "KUBEFLOW_USERID_PREFIX": prefix,
        "ARGO_ARCHIVE_LOGS": "false",
        "ARGO_ARCHIVE_BUCKETNAME": BUCKET,
        "ARGO_KEYFORMAT": ARGO_KEY_FORMAT,
    }
    if store is not None:
        # An empty namespace makes the UI use MINIO_HOST as it is (not <host>.<namespace>).
        environment |= {
            "MINIO_HOST": store.host,
            "MINIO_PORT": str(store.port),
            "MINIO_NAMESPACE": "",
            "MINIO_SSL": "true" if store.secure else "false",
        }
    return _layer(
        UI,
        leader=True,
        command=f"node dist/server.js ../client/ {Ports.UI}",
        working_dir="/server",
        environment=environment,
        check=_http(f"http://localhost:{Ports.UI}/apis/v1beta1/healthz"),
    )


def ui_viewer_template() -> File:
    """The pod template of TensorBoard viewers: they run as the profile's editor."""
    content = json.dumps({"spec": {"serviceAccountName": PIPELINE_RUNNER_SERVICE_ACCOUNT}})
    return File(UI.container, UI_VIEWER_TEMPLATE, content + "\n", UPSTREAM_UID, UPSTREAM_GID)


def metadata_grpc_layer() -> ops.pebble.LayerDict:
    """The MLMD gRPC server; its database and account are in `mlmd_server_config`'s file."""
    return _layer(
        METADATA_GRPC,
        leader=True,
        command=(
            f"/bin/metadata_store_server --grpc_port={Ports.MLMD}"
            " --metadata_source_config_type=config_file"
            f" --metadata_store_server_config_file={MLMD_CONFIG}"
        ),
        working_dir="/",
        check=_tcp(Ports.MLMD),
    )


def _text_proto_string(value: str) -> str:
    """A protobuf text-format string literal (C escapes; other bytes as octal)."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def mlmd_server_config(db: Database) -> File:
    """MLMD's MetadataStoreServerConfig (text format): MySQL database metadb, upgrades on."""
    content = (
        "connection_config {\n"
        "  mysql {\n"
        f"    host: {_text_proto_string(db.host)}\n"
        f"    port: {int(db.port)}\n"
        f"    database: {_text_proto_string(METADATA_DB)}\n"
        f"    user: {_text_proto_string(db.user)}\n"
        f"    password: {_text_proto_string(db.password)}\n"
        "  }\n"
        "}\n"
        "migration_options {\n"
        "  enable_upgrade_migration: true\n"
        "}\n"
    )
    return File(METADATA_GRPC.container, MLMD_CONFIG, content, UPSTREAM_UID, UPSTREAM_GID)


def metadata_envoy_layer() -> ops.pebble.LayerDict:
    """The envoy that turns the UI's gRPC-web into gRPC for MLMD."""
    return _layer(
        METADATA_ENVOY,
        leader=True,
        command=f"/usr/local/bin/envoy -c {ENVOY_CONFIG}",
        working_dir="/",
        check=_tcp(Ports.ENVOY),
    )


def envoy_config() -> File:
    """The envoy's config: upstream's listener, filters and CORS, MLMD on localhost.

    Upstream's file names the Service metadata-grpc-service; here MLMD is in
    the same pod. The admin interface listens on 127.0.0.1 only.
    """
    cors = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"safe_regex": {"regex": ".*"}}],
        "allow_methods": "GET, PUT, DELETE, POST, OPTIONS",
        "allow_headers": (
            "keep-alive,user-agent,cache-control,content-type,content-transfer-encoding,"
            "custom-header-1,x-accept-content-transfer-encoding,x-accept-response-streaming,"
            "x-user-agent,x-grpc-web,grpc-timeout"
        ),
        "max_age": "1728000",
        "expose_headers": "custom-header-1,grpc-status,grpc-message",
    }
    manager = {
        "@type": (
            "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager"
        ),
        "codec_type": "auto",
        "stat_prefix": "ingress_http",
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [
                {
                    "name": "local_service",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "route": {
                                "cluster": "metadata-cluster",
                                "max_stream_duration": {"grpc_timeout_header_max": "0s"},
                            },
                            "typed_per_filter_config": {"envoy.filter.http.cors": cors},
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            {
                "name": f"envoy.filters.http.{name}",
                "typed_config": {
                    "@type": f"type.googleapis.com/envoy.extensions.filters.http.{name}.v3.{kind}"
                },
            }
            for name, kind in (("grpc_web", "GrpcWeb"), ("cors", "Cors"), ("router", "Router"))
        ],
    }
    document = {
        "admin": {
            "address": {
                "socket_address": {"address": "127.0.0.1", "port_value": Ports.ENVOY_ADMIN}
            }
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "listener_0",
                    "address": {
                        "socket_address": {"address": "0.0.0.0", "port_value": Ports.ENVOY}  # noqa: S104
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "metadata-cluster",
                    "connect_timeout": "30s",
                    "type": "static",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": (
                                "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                                "HttpProtocolOptions"
                            ),
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "lb_policy": "round_robin",
                    "load_assignment": {
                        "cluster_name": "metadata-grpc",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": Ports.MLMD,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }
    # JSON is YAML: envoy reads it by the .yaml name.
    return File(
        METADATA_ENVOY.container,
        ENVOY_CONFIG,
        json.dumps(document, indent=2) + "\n",
        UPSTREAM_UID,
        UPSTREAM_GID,
        permissions=0o644,
    )


def workflow_controller_layer(
    config: KfpConfig, *, leader: bool, pod_name: str
) -> ops.pebble.LayerDict:
    """Argo's workflow controller, all namespaces, with its own Lease election on top."""
    return _layer(
        WORKFLOW_CONTROLLER,
        leader=leader,
        command=(
            f"/bin/workflow-controller --configmap {ARGO_CONFIGMAP}"
            f" --executor-image {ARGO_EXECUTOR_IMAGE}"
            f" --loglevel {config.log_level}"
        ),
        working_dir="/",
        # Two leaders for a moment (a leader change) still give one acting controller.
        environment={"LEADER_ELECTION_IDENTITY": pod_name},
        user_id=ARGO_UID,
        group_id=ARGO_UID,
        check={
            **_http(f"http://localhost:{Ports.ARGO_HEALTH}/healthz"),
            "level": "alive",
            "period": "60s",
            "timeout": "30s",
        },
    )


def argo_controller_settings(config: KfpConfig) -> dict[str, str]:
    """The keys of Argo's ConfigMap that the charm's options set (values are YAML; JSON is).

    `parallelism` only when max-concurrent-runs limits; `workflowDefaults`
    only with a default node selector or tolerations; the metrics port always.
    """
    data = {"metricsConfig": json.dumps({"port": Ports.ARGO_METRICS})}
    if config.max_concurrent_runs:
        data["parallelism"] = str(config.max_concurrent_runs)
    spec: dict[str, Any] = {}
    if config.node_selector:
        spec["nodeSelector"] = config.node_selector
    if config.tolerations:
        spec["tolerations"] = config.tolerations
    if spec:
        data["workflowDefaults"] = json.dumps({"spec": spec}, sort_keys=True)
    return data


def viewer_controller_layer(*, leader: bool) -> ops.pebble.LayerDict:
    """The viewer controller (TensorBoard viewers), all namespaces."""
    return _layer(
        VIEWER_CONTROLLER,
        leader=leader,
        command="/bin/controller -logtostderr=true -max_num_viewers=50 --namespace=",
        working_dir="/bin",
    )


def visualization_server_layer() -> ops.pebble.LayerDict:
    """The visualization server (the API server requires one)."""
    return _layer(
        VISUALIZATION_SERVER,
        leader=True,
        command="python3 server.py",
        working_dir="/src",
        check=_http(f"http://localhost:{Ports.VISUALIZATION}/"),
    )


def layers(
    config: KfpConfig,
    *,
    namespace: str,
    pod_name: str,
    leader: bool,
    store: ObjectStore | None = None,
    user_header: tuple[str, str] = (USER_HEADER, USER_PREFIX),
) -> dict[str, ops.pebble.LayerDict]:
    """Every container's layer, by container name."""
    return {
        API_SERVER.container: api_server_layer(
            config, namespace=namespace, user_header=user_header
        ),
        PERSISTENCE_AGENT.container: persistence_agent_layer(config, leader=leader),
        SCHEDULED_WORKFLOW.container: scheduled_workflow_layer(config, leader=leader),
        UI.container: ui_layer(config, namespace=namespace, store=store, user_header=user_header),
        METADATA_GRPC.container: metadata_grpc_layer(),
        METADATA_ENVOY.container: metadata_envoy_layer(),
        WORKFLOW_CONTROLLER.container: workflow_controller_layer(
            config, leader=leader, pod_name=pod_name
        ),
        VIEWER_CONTROLLER.container: viewer_controller_layer(leader=leader),
        VISUALIZATION_SERVER.container: visualization_server_layer(),
    }
