"""Katib's workloads: each container's Pebble layer and the files it reads.

Pure functions of what the charm knows. Every workload runs in its own
container of the charm's pod, so all share one network namespace: the UI
keeps upstream's port 8080, and the controller's metrics, upstream's
:8080 too, move to 8081 (its `init.controller.metricsAddr`; the Service
`katib-controller` keeps 8080 in front of it).

- The controller (`./katib-controller --katib-config=/etc/katib/katib-config.yaml`,
  its only flag) reads the `init` part of the Katib config from that file
  once at start: the file's digest is in its layer, so a change restarts
  it. It serves the admission webhooks on 8443 with `tls.crt` and
  `tls.key` from /tmp/cert (controller-runtime's CertDir as Katib sets
  it); the serving certificate's serial is in its layer too. It starts on
  the leader unit only.
- The UI (`./katib-ui --port=8080`) serves /katib/ and asks the API server,
  with a SubjectAccessReview, whether the user the login's header names
  (`kubeflow-userid` unless istio passes on another) may do what they ask
  (APP_DISABLE_AUTH=false).
- The DB manager reads its database account from its environment only
  (DB_USER, DB_PASSWORD, KATIB_MYSQL_DB_*). So that none of it enters the
  Pebble plan, the charm writes them into a 0600 file and the service
  starts through the image's /bin/sh (alpine), which exports the file and
  execs the binary; the layer carries only the file's digest.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

import ops
from katib_config import KatibConfig, Placement

from kubeflow_charms.pebble import service_layer
from kubeflow_interfaces.trial_kinds import TrialKind

KATIB_VERSION = "v0.18.0"
IMAGES = "ghcr.io/kubeflow/katib"
USER_HEADER = "kubeflow-userid"
USER_PREFIX = ""
DATABASE = "katib"
CONFIGMAP = "katib-config"
CONFIG_KEY = "katib-config.yaml"
TRIAL_TEMPLATES = "trial-templates"
CONTROLLER_SERVICE = "katib-controller"
DB_MANAGER_SERVICE = "katib-db-manager"
UI_SERVICE = "katib-ui"
LEADER_ELECTION_ID = "3fbc96e9.katib.kubeflow.org"
CONFIG_FILE = "/etc/katib/katib-config.yaml"
CERT_DIR = "/tmp/cert"  # noqa: S108 (the controller's fixed CertDir)
CERT_FILE = f"{CERT_DIR}/tls.crt"
KEY_FILE = f"{CERT_DIR}/tls.key"
DB_ENV_FILE = "/etc/katib/db-manager.env"
CONFIG_HASH = "CONFIG_HASH"
TLS_SERIAL = "TLS_SERIAL"
# Katib's default trial kinds (kubeflow/manifests v1.10.0, apps/katib/upstream/installs/
# katib-cert-manager/katib-config.yaml): the controller watches those whose CRDs exist.
DEFAULT_TRIAL_RESOURCES = (
    "Job.v1.batch",
    "TFJob.v1.kubeflow.org",
    "PyTorchJob.v1.kubeflow.org",
    "MPIJob.v1.kubeflow.org",
    "XGBoostJob.v1.kubeflow.org",
)


class Ports:
    """The ports the workloads listen on in the pod (and where one moved from)."""

    WEBHOOK = 8443
    CONTROLLER_METRICS = 8081  # upstream :8080, the UI's port here
    CONTROLLER_METRICS_SERVICE = 8080  # what Service katib-controller exposes
    HEALTHZ = 18080
    UI = 8080
    DB_MANAGER = 6789


@dataclasses.dataclass(frozen=True)
class Workload:
    """One container, its one service and its ready check."""

    container: str
    service: str
    check: str
    leader_only: bool = False


CONTROLLER = Workload("katib-controller", "katib-controller", "controller-ready", True)
UI = Workload("katib-ui", "katib-ui", "ui-ready")
DB_MANAGER = Workload("katib-db-manager", "katib-db-manager", "db-manager-ready")
WORKLOADS = (CONTROLLER, UI, DB_MANAGER)


@dataclasses.dataclass(frozen=True)
class File:
    """A file a workload reads at start."""

    container: str
    path: str
    content: str
    permissions: int = 0o600


@dataclasses.dataclass(frozen=True)
class Database:
    """A MySQL endpoint and account, as the relational-db relation gives them."""

    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)


def image(name: str) -> str:
    """An image of the release, as Kubeflow 1.10.0's manifests name it."""
    return f"{IMAGES}/{name}:{KATIB_VERSION}"


# --- the Katib config -----------------------------------------------------------------


def trial_resources(kinds: list[TrialKind]) -> list[str]:
    """Katib's default trial kinds and those offered over `trial-kinds`, each once."""
    out = list(DEFAULT_TRIAL_RESOURCES)
    out += [k.trial_resource for k in kinds if k.trial_resource not in out]
    return out


def init_config(kinds: list[TrialKind]) -> dict[str, Any]:
    """The `init` part: read once by the controller at start, from its file."""
    return {
        "controller": {
            "webhookPort": Ports.WEBHOOK,
            "metricsAddr": f":{Ports.CONTROLLER_METRICS}",
            "healthzAddr": f":{Ports.HEALTHZ}",
            "trialResources": trial_resources(kinds),
            "enableLeaderElection": True,
            "leaderElectionID": LEADER_ELECTION_ID,
        },
        # The charm makes the webhooks' certificates: Katib's own generator stays off.
        "certGenerator": {"enable": False},
    }


def _suggestion(name: str, algorithm_image: str, **extra: Any) -> dict[str, Any]:
    return {"algorithmName": name, "image": image(algorithm_image), **extra}


def runtime_config() -> dict[str, Any]:
    """The `runtime` part: read by the controller from the ConfigMap on each use."""
    return {
        "metricsCollectors": [
            {"kind": "StdOut", "image": image("file-metrics-collector")},
            {"kind": "File", "image": image("file-metrics-collector")},
            {
                "kind": "TensorFlowEvent",
                "image": image("tfevent-metrics-collector"),
                "resources": {"limits": {"memory": "1Gi"}},
            },
        ],
        "suggestions": [
            _suggestion("random", "suggestion-hyperopt"),
            _suggestion("tpe", "suggestion-hyperopt"),
            _suggestion("grid", "suggestion-optuna"),
            _suggestion("hyperband", "suggestion-hyperband"),
            _suggestion("bayesianoptimization", "suggestion-skopt"),
            _suggestion("cmaes", "suggestion-goptuna"),
            _suggestion("sobol", "suggestion-goptuna"),
            _suggestion("multivariate-tpe", "suggestion-optuna"),
            _suggestion("enas", "suggestion-enas", resources={"limits": {"memory": "400Mi"}}),
            _suggestion("darts", "suggestion-darts"),
            _suggestion(
                "pbt",
                "suggestion-pbt",
                persistentVolumeClaimSpec={
                    "accessModes": ["ReadWriteMany"],
                    "resources": {"requests": {"storage": "5Gi"}},
                },
            ),
        ],
        "earlyStoppings": [
            {"algorithmName": "medianstop", "image": image("earlystopping-medianstop")}
        ],
    }


def katib_config(kinds: list[TrialKind]) -> dict[str, Any]:
    """The whole KatibConfig, as the ConfigMap `katib-config` holds it."""
    return {
        "apiVersion": "config.kubeflow.org/v1beta1",
        "kind": "KatibConfig",
        "init": init_config(kinds),
        "runtime": runtime_config(),
    }


def controller_config_file(kinds: list[TrialKind]) -> File:
    """The file the controller reads its `init` config from (the ConfigMap's text)."""
    return File(CONTROLLER.container, CONFIG_FILE, _yaml(katib_config(kinds)), 0o644)


def _yaml(data: Any) -> str:
    # JSON is YAML; sorted keys give the same text for the same config.
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- the default trial templates -----------------------------------------------------------

_MNIST = ("python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1")
_LR = "--lr=${trialParameters.learningRate}"
_MOMENTUM = "--momentum=${trialParameters.momentum}"


def _pod_spec(containers: list[dict[str, Any]], placement: Placement, **extra: Any) -> dict:
    spec: dict[str, Any] = {"containers": containers, **extra}
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = list(placement.tolerations)
    return spec


def _job(container: dict[str, Any], placement: Placement) -> dict[str, Any]:
    pod = _pod_spec([container], placement, restartPolicy="Never")
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod}}}


def trial_templates(config: KatibConfig, kinds: list[TrialKind]) -> dict[str, str]:
    """The ConfigMap `trial-templates`: upstream's, a GPU one, one per offered job kind."""
    cpu, gpu = config.cpu_placement, config.gpu_placement
    mnist = {
        "name": "training-container",
        "image": image("pytorch-mnist-cpu"),
        "command": [*_MNIST, "--batch-size=16", _LR, _MOMENTUM],
    }
    enas = {
        "name": "training-container",
        "image": image("enas-cnn-cifar10-cpu"),
        "command": [
            "python3",
            "-u",
            "RunTrial.py",
            "--num_epochs=1",
            '--architecture="${trialParameters.neuralNetworkArchitecture}"',
            '--nn_config="${trialParameters.neuralNetworkConfig}"',
        ],
    }
    gpu_mnist = {
        "name": "training-container",
        "image": image("pytorch-mnist-gpu"),
        "command": [*_MNIST, "--batch-size=16", _LR, _MOMENTUM],
        "resources": {"limits": {"nvidia.com/gpu": str(config.gpus_per_trial)}},
    }
    pytorch_container = {
        "name": "pytorch",
        "image": image("pytorch-mnist-cpu"),
        "command": [*_MNIST, _LR, _MOMENTUM],
    }

    def replica(replicas: int) -> dict[str, Any]:
        pod = _pod_spec([pytorch_container], cpu)
        return {"replicas": replicas, "restartPolicy": "OnFailure", "template": {"spec": pod}}

    pytorch_job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(2)}},
    }
    templates = {
        "defaultTrialTemplate.yaml": _job(mnist, cpu),
        "enasCPUTemplate": _job(enas, cpu),
        "pytorchJobTemplate": pytorch_job,
        "gpuTrialTemplate": _job(gpu_mnist, gpu),
    }
    for kind in kinds:
        if kind.kind == "TrainJob":
            templates["trainJobTemplate"] = train_job_template(kind)
    return {key: _yaml(value) for key, value in sorted(templates.items())}


def train_job_template(kind: TrialKind) -> dict[str, Any]:
    """A TrainJob trial on the torch-distributed runtime (its placement is the runtime's)."""
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {
                "numNodes": 1,
                "image": image("pytorch-mnist-cpu"),
                "command": [*_MNIST, _LR, _MOMENTUM],
            },
        },
    }


# --- layers -----------------------------------------------------------------------------


def _layer(
    workload: Workload,
    *,
    leader: bool,
    command: str,
    environment: dict[str, str],
    check: dict[str, Any],
) -> ops.pebble.LayerDict:
    return service_layer(
        workload.service,
        workload.check,
        command=command,
        runs=leader or not workload.leader_only,
        environment=environment,
        check_spec={
            "override": "replace",
            "level": "ready",
            "period": "10s",
            "timeout": "3s",
            "threshold": 3,
            **check,
        },
        working_dir="/app",  # WORKDIR of every Katib image
    )


def controller_layer(
    *, namespace: str, leader: bool, config_file: File, serial: str
) -> ops.pebble.LayerDict:
    """The controller and its webhooks; the config file's digest and the cert's serial in it."""
    return _layer(
        CONTROLLER,
        leader=leader,
        command=f"./katib-controller --katib-config={CONFIG_FILE}",
        environment={
            "KATIB_CORE_NAMESPACE": namespace,
            CONFIG_HASH: digest(config_file.content),
            TLS_SERIAL: serial,
        },
        check={"http": {"url": f"http://localhost:{Ports.HEALTHZ}/readyz"}},
    )


def ui_layer(
    *, namespace: str, user_header: tuple[str, str] = (USER_HEADER, USER_PREFIX)
) -> ops.pebble.LayerDict:
    """The UI at /katib/, authorizing every request by the user header (name, value prefix)."""
    header, prefix = user_header
    return _layer(
        UI,
        leader=True,
        command=f"./katib-ui --port={Ports.UI}",
        environment={
            "KATIB_CORE_NAMESPACE": namespace,
            "APP_DISABLE_AUTH": "false",
            "USERID_HEADER": header,
            "USERID_PREFIX": prefix,
        },
        check={"http": {"url": f"http://localhost:{Ports.UI}/katib/"}},
    )


def db_manager_layer(env_file: File) -> ops.pebble.LayerDict:
    """The DB manager, its account read from the env file; only the file's digest in the plan."""
    return _layer(
        DB_MANAGER,
        leader=True,
        command=(
            "/bin/sh -c "
            + shlex.quote(f"set -a && . {DB_ENV_FILE} && set +a && exec ./katib-db-manager")
        ),
        environment={"DB_NAME": "mysql", CONFIG_HASH: digest(env_file.content)},
        check={"tcp": {"port": Ports.DB_MANAGER}},
    )


def db_manager_env(db: Database) -> File:
    """The DB manager's account and where its database is, as shell assignments (0600)."""
    values = {
        "DB_USER": db.user,
        "DB_PASSWORD": db.password,
        "KATIB_MYSQL_DB_HOST": db.host,
        "KATIB_MYSQL_DB_PORT": str(db.port),
        "KATIB_MYSQL_DB_DATABASE": DATABASE,
    }
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    return File(DB_MANAGER.container, DB_ENV_FILE, text)


def digest(text: str) -> str:
    """A digest of a file's content, for a layer's environment."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
