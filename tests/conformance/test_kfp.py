"""kfp against Kubeflow 1.10.0 (KFP 2.4.1, Argo v3.4.17): its Pebble layers, Services and CRDs."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.kfp.helpers import CHARM, kfp_config, workloads

from kubeflow_charms.kubernetes import render

FACTS = facts.load("kfp")
META = yaml.safe_load((CHARMS / "kfp" / "charmcraft.yaml").read_text())
MANIFESTS = CHARMS / "kfp" / "src" / "manifests"
kfp_cluster = CHARM.kfp_cluster  # the charm's own module, as it imported it
Ports = workloads.Ports

NAMESPACE = "kubeflow"
STORE = workloads.ObjectStore("minio.kubeflow", 9000, False, "", "access", "secret")
LAYERS = workloads.layers(
    kfp_config.KfpConfig(), namespace=NAMESPACE, pod_name="kfp-0", leader=True, store=STORE
)
WORKLOADS = {w.container: w for w in workloads.WORKLOADS}

# Where two upstream defaults collide in our one pod, one moves (kfp_workloads'
# docstring): the workload, its upstream port, where it listens here, and why.
MOVED = {
    "api-server": (8888, Ports.API_HTTP, "the visualization server's fixed 8888"),
    "metadata-grpc": (8080, Ports.MLMD, "the viewer controller's metrics on :8080"),
}


def _service(container: str) -> dict[str, Any]:
    return LAYERS[container]["services"][WORKLOADS[container].service]


def _flags(argv: list[str]) -> dict[str, str]:
    """Go-style flags: -name=value, --name=value or --name value."""
    flags = {}
    words = iter(argv[1:])
    for word in words:
        assert word.startswith("-"), f"a positional argument: {word}"
        name, eq, value = word.lstrip("-").partition("=")
        flags[name] = value if eq else next(words)
    return flags


def _fact_flags(workload: str) -> set[str]:
    """The flags a workload's binary defines, and those its image's command passes."""
    names = set(FACTS[workload]["flags"].value)
    command = FACTS[workload]["command"].value
    if isinstance(command, str):
        names |= {w.lstrip("-").partition("=")[0] for w in command.split() if w.startswith("-")}
    return names


# --- images and working directories -----------------------------------------------------------


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_image_is_the_released_one(workload):
    image = FACTS[workload]["image"]
    upstream = META["resources"][f"{workload}-image"]["upstream-source"]
    assert upstream == image.value, f"{workload} image: {image.source}"
    assert workload in META["containers"], workload


@pytest.mark.parametrize(
    "workload",
    [w for w in sorted(WORKLOADS) if "working-dir" in FACTS[w]],
)
def test_working_dir_is_the_images(workload):
    wd = FACTS[workload]["working-dir"]
    assert _service(workload)["working-dir"] == wd.value, str(wd.source)


# --- commands and flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "workload",
    ["api-server", "persistence-agent", "scheduled-workflow", "viewer-controller"],
)
def test_kfp_go_binaries_and_flags(workload):
    argv = shlex.split(_service(workload)["command"])
    command, wd = FACTS[workload]["command"], FACTS[workload]["working-dir"]
    binary = command.value.split()[0]
    # The image's CMD names the binary relative to its WORKDIR or absolutely.
    assert argv[0] in (binary, f"{wd.value}/{binary}"), str(command.source)
    flags = _flags(argv)
    assert set(flags) <= _fact_flags(workload), f"flags: {FACTS[workload]['flags'].source}"


def test_api_server_flags():
    flags = _flags(shlex.split(_service("api-server")["command"]))
    defined = FACTS["api-server"]["flags"]
    assert flags["sampleconfig"] == "/config/sample_config.json", str(defined.source)
    assert flags["rpcPortFlag"] == defined.value["rpcPortFlag"], str(defined.source)
    upstream, moved, why = MOVED["api-server"]
    assert defined.value["httpPortFlag"] == f":{upstream}", str(defined.source)
    assert flags["httpPortFlag"] == f":{moved}", f"moved off {why}"


@pytest.mark.parametrize("workload", ["persistence-agent", "scheduled-workflow"])
def test_controllers_watch_every_namespace(workload):
    flags = _flags(shlex.split(_service(workload)["command"]))
    multi_user = FACTS[workload]["environment-values-multi-user"]
    assert flags["namespace"] == multi_user.value["NAMESPACE"], str(multi_user.source)


def test_viewer_controller_flags():
    flags = _flags(shlex.split(_service("viewer-controller")["command"]))
    multi_user = FACTS["viewer-controller"]["environment-values-multi-user"]
    assert flags["namespace"] == multi_user.value["NAMESPACE"], str(multi_user.source)
    viewers = FACTS["viewer-controller"]["environment-values"]
    assert flags["max_num_viewers"] == viewers.value["MAX_NUM_VIEWERS"], str(viewers.source)


def test_persistence_agent_reaches_the_api_server_in_the_pod():
    flags = _flags(shlex.split(_service("persistence-agent")["command"]))
    defined = FACTS["persistence-agent"]["flags"]
    # Upstream reaches Service ml-pipeline; here the API server is in the same pod.
    assert flags["mlPipelineAPIServerName"] == "localhost", str(defined.source)
    assert flags["mlPipelineServiceGRPCPort"] == str(Ports.API_GRPC), str(defined.source)
    assert flags["mlPipelineServiceHttpPort"] == str(Ports.API_HTTP), "moved with the API server"


def test_ui_command():
    command = FACTS["ui"]["command"]
    assert _service("ui")["command"] == command.value, str(command.source)


def test_visualization_server_command():
    entrypoint = FACTS["visualization-server"]["entrypoint"]
    assert shlex.split(_service("visualization-server")["command"]) == entrypoint.value, str(
        entrypoint.source
    )


def test_metadata_grpc_command():
    argv = shlex.split(_service("metadata-grpc")["command"])
    command = FACTS["metadata-grpc"]["command"]
    assert argv[:1] == command.value, str(command.source)
    defined = FACTS["metadata-grpc"]["flags"]
    flags = _flags(argv)
    assert set(flags) <= set(defined.value), str(defined.source)
    upstream, moved, why = MOVED["metadata-grpc"]
    assert defined.value["grpc_port"] == upstream, str(defined.source)
    assert flags["grpc_port"] == str(moved), f"moved off {why}"


def test_metadata_envoy_command():
    argv = shlex.split(_service("metadata-envoy")["command"])
    entrypoint = FACTS["metadata-envoy"]["entrypoint"]
    assert argv[:2] == entrypoint.value, str(entrypoint.source)
    # Our own config file, written by the charm (upstream's names a Service MLMD is not behind).
    assert argv[2:] == [workloads.ENVOY_CONFIG]
    assert workloads.envoy_config().path == workloads.ENVOY_CONFIG


def test_workflow_controller_command():
    argv = shlex.split(_service("workflow-controller")["command"])
    entrypoint, args = (
        FACTS["workflow-controller"]["entrypoint"],
        FACTS["workflow-controller"]["args"],
    )
    assert argv[0].rpartition("/")[2] == entrypoint.value[0], str(entrypoint.source)
    defined = FACTS["workflow-controller"]["flags"]
    flags = _flags(argv)
    assert set(flags) <= set(defined.value), str(defined.source)
    assert _flags(["", *args.value]) == {k: v for k, v in flags.items() if k != "loglevel"}, str(
        args.source
    )


# --- environment ------------------------------------------------------------------------------


def _env_name(key: str) -> str:
    """A viper config key as the environment sets it (dots as underscores, upper case)."""
    return key.replace(".", "_").upper()


def test_api_server_environment():
    env = _service("api-server")["environment"]
    fact = FACTS["api-server"]
    read = {_env_name(k) for k in fact["environment-read"].value}
    read |= set(fact["environment-read-common"].value)
    read |= {_env_name(k) for k in ("VisualizationService.Name", "VisualizationService.Port")}
    read.add("LOG_LEVEL")  # the image's CMD expands it (backend/Dockerfile)
    assert set(env) <= read, f"{set(env) - read}: {fact['environment-read'].source}"
    for name in ("environment-values-multi-user", "environment-values-multi-user-auth"):
        values = fact[name]
        for key, value in values.value.items():
            assert env[key] == value, f"{key}: {values.source}"
    assert env["POD_NAMESPACE"] == NAMESPACE, str(fact["environment-values"].source)


def test_ui_environment():
    env = _service("ui")["environment"]
    fact = FACTS["ui"]
    read = set(fact["environment-read"].value) | set(fact["artifact-proxy-environment"].value)
    assert set(env) <= read, f"{set(env) - read}: {fact['environment-read'].source}"
    values = fact["environment-values-multi-user"]
    for key, value in values.value.items():
        if key == "VIEWER_TENSORBOARD_POD_TEMPLATE_SPEC_PATH":
            # Our file, at our path: the template the charm writes.
            assert env[key] == workloads.ui_viewer_template().path, str(values.source)
        else:
            assert env[key] == value, f"{key}: {values.source}"
    # The envoy and API server are in the pod: localhost, at the ports they listen on.
    assert env["METADATA_ENVOY_SERVICE_SERVICE_PORT"] == str(Ports.ENVOY)
    assert env["ML_PIPELINE_SERVICE_PORT"] == str(Ports.API_HTTP), "moved with the API server"


def test_scheduled_workflow_environment():
    env = _service("scheduled-workflow").get("environment", {})
    read = FACTS["scheduled-workflow"]["environment-read"]
    assert set(env) <= set(read.value), str(read.source)
    values = FACTS["scheduled-workflow"]["environment-values"]
    assert env["CRON_SCHEDULE_TIMEZONE"] == values.value["CRON_SCHEDULE_TIMEZONE"], str(
        values.source
    )


def test_workflow_controller_environment():
    env = _service("workflow-controller").get("environment", {})
    read = FACTS["workflow-controller"]["leader-election-environment"]
    assert set(env) <= set(read.value) - {"lease"}, str(read.source)
    values = FACTS["workflow-controller"]["environment-values"]
    assert set(env) == set(values.value), str(values.source)


@pytest.mark.parametrize(
    "workload", ["persistence-agent", "viewer-controller", "metadata-grpc", "metadata-envoy"]
)
def test_flags_not_environment(workload):
    # These images read their settings from flags only; the command carries them.
    assert not _service(workload).get("environment"), workload


# --- health checks and ports ------------------------------------------------------------------


def _check(workload: str) -> dict[str, Any]:
    name = WORKLOADS[workload].check
    assert name is not None, workload
    return LAYERS[workload]["checks"][name]


@pytest.mark.parametrize(
    "workload", ["api-server", "ui", "workflow-controller", "visualization-server"]
)
def test_http_checks_are_the_health_endpoints(workload):
    health = FACTS[workload]["health-endpoint"]
    port = health.value["port"]
    if workload in MOVED:
        upstream, moved, _why = MOVED[workload]
        assert port == upstream, str(health.source)
        port = moved
    want = f"http://localhost:{port}{health.value['path']}"
    assert _check(workload)["http"] == {"url": want}, f"{health.source} (ports moved: {MOVED})"


def test_metadata_grpc_check():
    health = FACTS["metadata-grpc"]["health-endpoint"]
    upstream, moved, why = MOVED["metadata-grpc"]
    assert health.value == {"tcp": upstream}, str(health.source)
    assert _check("metadata-grpc")["tcp"] == {"port": moved}, f"moved off {why}"


def test_metadata_envoy_check():
    ports = FACTS["metadata-envoy"]["ports"]
    assert _check("metadata-envoy")["tcp"] == {"port": ports.value["md-envoy"]}, str(ports.source)
    listener = FACTS["metadata-envoy"]["config-listener"]
    document = json.loads(workloads.envoy_config().content)
    [ours] = document["static_resources"]["listeners"]
    assert ours["address"]["socket_address"]["port_value"] == listener.value["port"], str(
        listener.source
    )


def test_argo_metrics_move_off_the_envoys_port():
    ports = FACTS["workflow-controller"]["ports"]
    envoy = FACTS["metadata-envoy"]["ports"]
    # Upstream both take 9090; in one pod Argo's metrics move (its ConfigMap's metricsConfig).
    assert ports.value["metrics"] == envoy.value["md-envoy"], f"{ports.source}, {envoy.source}"
    settings = workloads.argo_controller_settings(kfp_config.KfpConfig())
    assert json.loads(settings["metricsConfig"]) == {"port": Ports.ARGO_METRICS}
    assert Ports.ARGO_METRICS != Ports.ENVOY, "Argo's metrics moved off the envoy's 9090"
    healthz = ports.value["healthz"]
    assert _check("workflow-controller")["http"]["url"].startswith(f"http://localhost:{healthz}/")


def test_no_two_workloads_share_a_port():
    listening = [
        Ports.API_GRPC, Ports.API_HTTP, Ports.UI, Ports.MLMD, Ports.ENVOY, Ports.ENVOY_ADMIN,
        Ports.ARGO_HEALTH, Ports.ARGO_METRICS, Ports.VIEWER_METRICS, Ports.VISUALIZATION,
    ]  # fmt: skip
    assert len(set(listening)) == len(listening)
    visualization = FACTS["visualization-server"]["port"]
    assert Ports.VISUALIZATION == visualization.value, str(visualization.source)
    assert Ports.UI == FACTS["ui"]["port"].value, str(FACTS["ui"]["port"].source)


# --- Services ---------------------------------------------------------------------------------


def _services() -> dict[str, dict[str, Any]]:
    values = kfp_cluster.context(
        kfp_config.KfpConfig(), app="kfp", namespace=NAMESPACE, store=None
    )
    text = render(MANIFESTS, ["services.yaml.j2"], values)
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}


# Which workload's port each Service's port reaches.
TARGETS = {
    ("ml-pipeline", "http"): Ports.API_HTTP,
    ("ml-pipeline", "grpc"): Ports.API_GRPC,
    ("ml-pipeline-ui", "http"): Ports.UI,
    ("metadata-grpc-service", "grpc-api"): Ports.MLMD,
    ("metadata-envoy-service", "md-envoy"): Ports.ENVOY,
    ("ml-pipeline-visualizationserver", "http"): Ports.VISUALIZATION,
}


def test_services_are_named_and_numbered_as_upstream():
    ours = _services()
    names = {"ml-pipeline", "ml-pipeline-ui", "metadata-grpc-service", "metadata-envoy-service"}
    names.add("ml-pipeline-visualizationserver")
    assert set(ours) == names
    for name, service in ours.items():
        fact = FACTS["services"][name]
        assert service["metadata"]["namespace"] == NAMESPACE
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": "kfp"}
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert set(ports) == set(fact.value["ports"]), f"{name}: {fact.source}"
        for port_name, want in fact.value["ports"].items():
            port = ports[port_name]
            if isinstance(want, dict):
                assert port["port"] == want["port"], f"{name}/{port_name}: {fact.source}"
                assert port["targetPort"] == want["targetPort"], f"{name}: {fact.source}"
            else:
                assert port["port"] == want, f"{name}/{port_name}: {fact.source}"
            # Where the workload moved, the Service keeps the port clients know.
            assert port["targetPort"] == TARGETS[name, port_name], f"{name}/{port_name}"


def test_the_services_clients_default_to():
    ours = _services()
    for fact_name in ("ml-pipeline-for-driver", "metadata-grpc-for-driver"):
        fact = FACTS["services"][fact_name]
        host, _, port = fact.value.rpartition(":")
        name, _, namespace = host.partition(".")
        assert namespace == NAMESPACE, str(fact.source)
        assert int(port) in {p["port"] for p in ours[name]["spec"]["ports"]}, str(fact.source)


# --- CRDs -------------------------------------------------------------------------------------


def _crds() -> dict[str, dict[str, Any]]:
    text = render(MANIFESTS, ["crds.yaml.j2"], {})
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}


@pytest.mark.parametrize("crd", sorted(set(FACTS["crds"]) - {"metacontroller"}))
def test_crd_is_upstreams(crd):
    fact = FACTS["crds"][crd]
    want = fact.value
    ours = _crds().get(want["name"])
    assert ours is not None, str(fact.source)
    spec = ours["spec"]
    where = str(fact.source)
    assert spec["group"] == want["group"], where
    assert spec["scope"] == want["scope"], where
    for key in ("kind", "plural", "listKind", "singular"):
        if key in want:
            assert spec["names"][key] == want[key], f"{key}: {where}"
    assert sorted(spec["names"].get("shortNames", [])) == sorted(want["shortNames"]), where
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {want["version"]}, where
    assert versions[want["version"]]["served"] and versions[want["version"]]["storage"], where
    if "subresources" in want:
        assert versions[want["version"]].get("subresources", {}) == want["subresources"], where


def test_metacontroller_crds_are_not_installed():
    fact = FACTS["crds"]["metacontroller"]
    ours = _crds()
    for crd in fact.value:
        assert crd["name"] not in ours, f"not needed: {fact.note}"


# --- Argo's artifact repository, the UI's archived logs -----------------------------------------


def _argo_repository(config: Any) -> dict[str, Any]:
    values = kfp_cluster.context(config, app="kfp", namespace=NAMESPACE, store=STORE)
    text = render(MANIFESTS, ["workflow-controller-configmap.yaml.j2"], values)
    [configmap] = [d for d in yaml.safe_load_all(text) if d]
    return yaml.safe_load(configmap["data"]["artifactRepository"])


def test_argo_keys_are_upstreams_under_the_profile_prefix():
    upstream = FACTS["workflow-controller"]["configmap-artifact-repository"]
    variables = FACTS["workflow-controller"]["key-format-variables"]
    s3 = _argo_repository(kfp_config.KfpConfig())["s3"]
    prefix = "private-artifacts/{{workflow.namespace}}/"
    assert s3["keyFormat"] == prefix + upstream.value["s3"]["keyFormat"], str(upstream.source)
    used = set(re.findall(r"\{\{([^}]*)\}\}", s3["keyFormat"]))
    assert used <= set(variables.value), str(variables.source)
    # The UI fills in the same variables, so it would find them where Argo puts them.
    ui = FACTS["ui"]["argo-keyformat-substitution"]
    assert {f"{{{{{v}}}}}" for v in used} <= set(ui.value), str(ui.source)
    assert _service("ui")["environment"]["ARGO_KEYFORMAT"] == s3["keyFormat"]


def test_argo_reads_each_profiles_own_keys():
    resolution = FACTS["workflow-controller"]["artifact-secret-resolution"]
    s3 = _argo_repository(kfp_config.KfpConfig())["s3"]
    # Mounted from the workflow's namespace (resolution): the Secret the minio charm pins
    # to every profile namespace, with the keys it writes (charms/minio/src/
    # profile_manifests.py), as the launcher's providers name them (kfp_profiles).
    assert s3["accessKeySecret"] == {"name": "minio-credentials", "key": "AWS_ACCESS_KEY_ID"}
    assert s3["secretKeySecret"] == {"name": "minio-credentials", "key": "AWS_SECRET_ACCESS_KEY"}
    assert s3["accessKeySecret"]["name"] == CHARM.kfp_profiles.CREDENTIALS_SECRET
    assert "mlpipeline-minio-artifact" not in json.dumps(s3), str(resolution.source)


@pytest.mark.parametrize("archive", [True, False])
def test_archive_logs_option_is_argos_archive_logs(archive):
    priority = FACTS["workflow-controller"]["archive-logs-priority"]
    repository = _argo_repository(kfp_config.KfpConfig(archive_logs=archive))
    # Off in the controller only holds if nothing below it turns it on: KFP's compiler
    # sets none (priority's note).
    assert repository["archiveLogs"] is archive, str(priority.source)


def test_ui_reads_no_archived_logs_with_keys_of_its_own():
    served = FACTS["ui"]["artifacts-served-with-own-keys"]
    env = _service("ui")["environment"]
    assert env["ARGO_ARCHIVE_LOGS"] == "false", str(served.source)
    read = set(FACTS["ui"]["environment-read"].value)
    keys = {n for n in read if n.endswith(("ACCESS_KEY", "SECRET_KEY", "_KEY_ID"))}
    assert keys == {"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "AWS_ACCESS_KEY_ID"} | {
        "AWS_SECRET_ACCESS_KEY"
    }
    assert not keys & set(env), str(served.source)


# --- the access-ml-pipeline PodDefault -----------------------------------------------------------


kfp_pod_defaults = CHARM.kfp_pod_defaults


def test_pod_default_is_upstreams():
    fact = FACTS["pod-default"]["access-ml-pipeline"]
    ours = kfp_pod_defaults.pod_default(kfp_config.KfpConfig())
    assert ours == fact.value, str(fact.source)


def test_pod_default_token_is_what_the_sdk_and_api_server_read():
    token_path = FACTS["sdk"]["token-path"]
    audience = FACTS["api-server"]["environment-read-common"]
    spec = kfp_pod_defaults.pod_default(kfp_config.KfpConfig())["spec"]
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env[token_path.value["env"]] == token_path.value["default"], str(token_path.source)
    [mount] = spec["volumeMounts"]
    [volume] = spec["volumes"]
    [source] = volume["projected"]["sources"]
    path = f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"
    assert path == token_path.value["default"], str(token_path.source)
    assert "TOKEN_REVIEW_AUDIENCE" in audience.value, str(audience.source)
    assert source["serviceAccountToken"]["audience"] == kfp_cluster.TOKEN_AUDIENCE
    # No API address: with one, kfp.Client() would not send the token.
    host = FACTS["sdk"]["in-cluster-host"]
    assert "KF_PIPELINES_ENDPOINT" not in env, str(host.source)


def test_cache_off_sets_the_sdks_switch():
    switch = FACTS["sdk"]["disable-caching-env"]
    spec = kfp_pod_defaults.pod_default(kfp_config.KfpConfig(cache=False))["spec"]
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env[switch.value["env"]] in switch.value["true-values"], str(switch.source)
    spec = kfp_pod_defaults.pod_default(kfp_config.KfpConfig())["spec"]
    assert switch.value["env"] not in {e["name"] for e in spec["env"]}, str(switch.source)
    # Not a server-side switch: say so where the option is described.
    server = FACTS["sdk"]["server-caching-switch"]
    assert "not a server-side switch" in META["config"]["options"]["cache"]["description"], str(
        server.source
    )


def test_stuck_runs_read_argos_phases_and_kfps_run_id():
    kfp_actions = CHARM.kfp_actions
    phases = FACTS["workflow-controller"]["workflow-phases-unfinished"]
    assert set(kfp_actions.STUCK_PHASES) == set(phases.value), str(phases.source)
    nodes = FACTS["workflow-controller"]["node-status-fields"]
    assert set(kfp_actions.WAITING_NODE_PHASES) == set(nodes.value["waiting-phases"]), str(
        nodes.source
    )
    label = FACTS["sdk"]["run-id-label"]
    assert kfp_actions.RUN_ID_LABEL == label.value, str(label.source)


# --- the servers in every profile namespace ----------------------------------------------------

kfp_profile_workloads = CHARM.kfp_profile_workloads
PROFILE = "alice"


def _profile_objects() -> dict[tuple[str, str], dict[str, Any]]:
    text = kfp_profile_workloads.manifests(PROFILE, model=NAMESPACE, app="kfp", store=STORE)
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(text)}


def _one_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    ("fact", "workload"),
    [
        ("ui-artifact-deployment", "ui"),
        ("visualization-server-deployment", "visualization-server"),
    ],
)
def test_profile_deployments_are_upstreams(fact, workload):
    upstream = FACTS["profile-resources"][fact]
    wanted = upstream.value
    deployment = _profile_objects()[("Deployment", wanted["name"])]
    container = _one_container(deployment)
    pod = deployment["spec"]["template"]
    where = str(upstream.source)
    assert pod["metadata"]["labels"] == wanted["labels"], where
    assert deployment["spec"]["selector"]["matchLabels"] == wanted["labels"], where
    assert pod["spec"]["serviceAccountName"] == wanted["serviceAccountName"], where
    assert container["ports"] == [{"containerPort": wanted["containerPort"]}], where
    limits = {"requests": wanted["requests"], "limits": wanted["limits"]}
    assert container["resources"] == limits, where
    # The image: upstream's name, the release's tag (KFP_VERSION), as the charm's own container.
    name = wanted["image"].removesuffix(":<tag>")
    image = FACTS[workload]["image"]
    assert container["image"] == image.value, str(image.source)
    assert container["image"].rpartition(":")[0] == name, where
    # The user upstream's own Deployment of the image runs it as.
    user = FACTS[workload]["user"]
    context = container["securityContext"]
    assert {k: context[k] for k in user.value} == user.value, str(user.source)


@pytest.mark.parametrize("fact", ["ui-artifact-service", "visualization-server-service"])
def test_profile_services_are_upstreams(fact):
    upstream = FACTS["profile-resources"][fact]
    wanted = upstream.value
    service = _profile_objects()[("Service", wanted["name"])]["spec"]
    assert service["selector"] == wanted["selector"], str(upstream.source)
    ports = [{k: p[k] for k in ("name", "port", "targetPort")} for p in service["ports"]]
    assert ports == wanted["ports"], str(upstream.source)


def test_profile_services_are_where_their_callers_look():
    objects = _profile_objects()
    proxy = FACTS["profile-workloads"]["artifact-proxy-target"]
    defaults = proxy.value["defaults"]
    # The UI's own environment names them; both are upstream's defaults.
    ui = _service("ui")["environment"]
    for variable in ("ARTIFACTS_SERVICE_PROXY_NAME", "ARTIFACTS_SERVICE_PROXY_PORT"):
        assert ui[variable] == defaults[variable], str(proxy.source)
    artifact = objects[("Service", defaults["ARTIFACTS_SERVICE_PROXY_NAME"])]["spec"]
    assert artifact["ports"][0]["port"] == int(defaults["ARTIFACTS_SERVICE_PROXY_PORT"])
    served = FACTS["profile-workloads"]["artifact-server-port"]
    assert artifact["ports"][0]["targetPort"] == served.value, str(served.source)
    visualization = FACTS["profile-workloads"]["visualization-service-url"]
    api = _service("api-server")["environment"]
    name, port = api["VISUALIZATIONSERVICE_NAME"], api["VISUALIZATIONSERVICE_PORT"]
    service = objects[("Service", name)]["spec"]
    assert service["ports"][0]["port"] == int(port), str(visualization.source)
    assert service["ports"][0]["targetPort"] == FACTS["visualization-server"]["port"].value


def test_artifact_server_environment():
    container = _one_container(_profile_objects()[("Deployment", "ml-pipeline-ui-artifact")])
    env = {e["name"]: e for e in container["env"]}
    read = FACTS["ui"]["environment-read"]
    assert set(env) <= set(read.value), str(read.source)
    # Upstream's keys, from the profile's own Secret (never a value).
    upstream = FACTS["profile-resources"]["ui-artifact-deployment"].value["env"]
    for name in upstream:
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "minio-credentials"
    # The provider Secret of a v2 artifact is read in FRONTEND_SERVER_NAMESPACE, since the
    # proxy drops the namespace parameter: this profile's.
    dropped = FACTS["profile-workloads"]["artifact-proxy-drops-namespace"]
    variable = dropped.value["namespace-then-read-from"]
    assert env[variable]["value"] == PROFILE, str(dropped.source)
    # The charm's own keys are in no variable.
    assert all(e.get("value") not in (STORE.access_key, STORE.secret_key) for e in env.values())


def test_visualization_policy_lets_in_the_api_server_as_upstream():
    upstream = FACTS["profile-resources"]["visualization-server-authorization-policy"]
    policy = _profile_objects()[("AuthorizationPolicy", upstream.value["name"])]["spec"]
    assert policy["selector"]["matchLabels"] == upstream.value["selector"], str(upstream.source)
    # Upstream's principal is the API server's account; here the charm's pod runs it.
    (rule,) = policy["rules"]
    assert rule["from"][0]["source"]["principals"] == [f"cluster.local/ns/{NAMESPACE}/sa/kfp"]


def test_artifact_policy_keeps_the_profiles_own_check():
    unchecked = FACTS["profile-workloads"]["artifact-server-authorization"]
    owner = FACTS["profile-workloads"]["profile-owner-policy"]
    assert unchecked.value == {"checked-by-the-ui": False}, str(unchecked.source)
    assert "KFP_UI_PRINCIPAL" in owner.value["header-rule-principals"], str(owner.source)
    # The UI checks no user on the artifact proxy and the profile's policy trusts the UI's
    # header: so the artifact server must not ALLOW the UI with any header (that would be
    # ORed with the owner's policy). It only DENYs other callers and requests without one.
    policy = _profile_objects()[("AuthorizationPolicy", "ml-pipeline-ui-artifact")]["spec"]
    assert policy["action"] == "DENY"
