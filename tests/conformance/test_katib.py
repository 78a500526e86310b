"""katib against Kubeflow 1.10.0 (Katib v0.18.0): Pebble layers, config, webhooks, RBAC, CRDs."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.katib.helpers import TRAIN_JOB, katib_cluster, katib_config
from unit.katib.helpers import workloads as wl
from workload import katib_schema

from kubeflow_charms import certificates
from kubeflow_charms.kubernetes import render

FACTS = facts.load("katib")
META = yaml.safe_load((CHARMS / "katib" / "charmcraft.yaml").read_text())
NAMESPACE = "kubeflow"
CONFIG_FILE = wl.controller_config_file([])
DB = wl.Database("mysql-primary", 3306, "relation-7", "secret-password")
LAYERS = {
    wl.CONTROLLER.container: wl.controller_layer(
        namespace=NAMESPACE, leader=True, config_file=CONFIG_FILE, serial="1A"
    ),
    wl.UI.container: wl.ui_layer(namespace=NAMESPACE),
    wl.DB_MANAGER.container: wl.db_manager_layer(wl.db_manager_env(DB)),
}
WORKLOADS = {w.container: w for w in wl.WORKLOADS}


def _service(container: str) -> dict[str, Any]:
    return LAYERS[container]["services"][WORKLOADS[container].service]


def _objects(kinds=()) -> dict[tuple[str, str], dict[str, Any]]:
    bundle = certificates.new_bundle("test CA", ["katib-controller.kubeflow.svc"])
    values = katib_cluster.context(
        katib_config.KatibConfig(),
        app="katib",
        namespace=NAMESPACE,
        leader_pod="katib-0",
        kinds=list(kinds),
        bundle=bundle,
        gateway=None,
    )
    names = [n for scope in katib_cluster.SCOPES.values() for n in scope[0]]
    docs = yaml.safe_load_all(render(katib_cluster.MANIFESTS, names, values))
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


OBJECTS = _objects()


# --- images, commands, ports ----------------------------------------------------------


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_image_is_the_released_one(workload):
    image = FACTS[workload]["image"]
    assert META["resources"][f"{workload}-image"]["upstream-source"] == image.value, image.source
    assert workload in META["containers"]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_working_dir_is_the_images(workload):
    fact = FACTS[workload]["working-dir"]
    assert _service(workload)["working-dir"] == fact.value, fact.source


def test_controller_command_and_its_one_flag():
    command = _service("katib-controller")["command"]
    upstream = shlex.split(FACTS["katib-controller"]["command"].value)
    # Upstream's binary and flag; the file is where the charm writes it (upstream
    # mounts its ConfigMap at /katib-config.yaml), read once at start.
    assert shlex.split(command) == [upstream[0], f"--katib-config={wl.CONFIG_FILE}"]
    flags = {w.lstrip("-").partition("=")[0] for w in shlex.split(command)[1:]}
    assert flags <= set(FACTS["katib-controller"]["flags"].value)


def test_controller_reads_its_certificates_where_katib_looks():
    cert_dir = FACTS["katib-controller"]["cert-dir"].value
    assert wl.CERT_FILE == f"{cert_dir}/tls.crt" and wl.KEY_FILE == f"{cert_dir}/tls.key"


def test_controller_environment_and_ready_check():
    env = _service("katib-controller")["environment"]
    assert env["KATIB_CORE_NAMESPACE"] == NAMESPACE
    ready = FACTS["katib-controller"]["ready-endpoint"].value
    check = LAYERS["katib-controller"]["checks"][wl.CONTROLLER.check]
    assert check["http"]["url"] == f"http://localhost:{ready['port']}{ready['path']}"


def test_ports_where_upstream_puts_them_but_the_controller_metrics():
    ports = FACTS["katib-controller"]["ports"].value
    assert wl.Ports.WEBHOOK == ports["webhook"] and wl.Ports.HEALTHZ == ports["healthz"]
    # Upstream's controller metrics and UI both take 8080; in one pod the metrics move.
    assert FACTS["katib-ui"]["port"].value == ports["metrics"] == wl.Ports.UI
    assert wl.Ports.CONTROLLER_METRICS != wl.Ports.UI
    init = yaml.safe_load(CONFIG_FILE.content)["init"]["controller"]
    assert init["metricsAddr"] == f":{wl.Ports.CONTROLLER_METRICS}"
    assert init["healthzAddr"] == f":{ports['healthz']}"


def test_ui_command_environment_and_path():
    command = _service("katib-ui")["command"]
    assert command == FACTS["katib-ui"]["command"].value
    flags = {w.lstrip("-").partition("=")[0] for w in shlex.split(command)[1:]}
    assert flags <= set(FACTS["katib-ui"]["flags"].value)
    env = _service("katib-ui")["environment"]
    assert env["APP_DISABLE_AUTH"] == FACTS["katib-ui"]["environment"].value["APP_DISABLE_AUTH"]
    assert env["USERID_HEADER"] == FACTS["katib-ui"]["user-header"].value["USERID_HEADER"]
    check = LAYERS["katib-ui"]["checks"][wl.UI.check]
    assert check["http"]["url"].endswith(f":{wl.Ports.UI}{FACTS['katib-ui']['path'].value}")


def test_db_manager_runs_the_binary_through_the_images_shell():
    command = shlex.split(_service("katib-db-manager")["command"])
    assert command[:2] == [FACTS["katib-db-manager"]["shell"].value, "-c"]
    assert command[2].endswith(f"exec {FACTS['katib-db-manager']['binary'].value}")
    env = _service("katib-db-manager")["environment"]
    assert env["DB_NAME"] == "mysql"
    assert "DB_PASSWORD" not in env and "DB_USER" not in env


def test_db_manager_env_file_names_every_variable_it_reads():
    names = {line.partition("=")[0] for line in wl.db_manager_env(DB).content.splitlines()}
    wanted = set(FACTS["katib-db-manager"]["database-environment"].value) - {"DB_NAME"}
    assert names == wanted
    assert wl.DATABASE == FACTS["katib-db-manager"]["default-database"].value


@pytest.mark.parametrize(
    ("name", "workload"),
    [
        ("katib-controller", "katib-controller"),
        ("katib-ui", "katib-ui"),
        ("katib-db-manager", "katib-db-manager"),
    ],
)
def test_services_are_named_and_ported_as_upstream(name, workload):
    ours = OBJECTS[("Service", name)]["spec"]["ports"]
    fact = FACTS[workload]["service"].value
    assert fact["name"] == name
    by_port = {p["port"]: p for p in ours}
    if name == "katib-controller":
        for port_name, (port, target) in fact["ports"].items():
            assert by_port[port]["name"] == port_name
            moved = {8080: wl.Ports.CONTROLLER_METRICS}
            assert by_port[port]["targetPort"] == moved.get(target, target)
    elif name == "katib-ui":
        assert by_port[fact["port"]]["targetPort"] == fact["targetPort"]
    else:
        assert by_port[fact["port"]]["name"] == fact["portName"]


def test_the_dashboard_link_is_upstreams():
    import katib_links

    fact = FACTS["katib-ui"]["dashboard-link"].value
    (menu,) = [link for link in katib_links.LINKS if link.location == "menu"]
    assert (menu.text, menu.link, menu.icon) == (fact["text"], fact["link"], fact["icon"])


def _sql(text: str) -> str:
    return " ".join(text.split()).rstrip(";")


def test_the_workload_tests_run_the_db_managers_statements():
    # tests/workload/katib_schema.py runs these on a real server as the relation's account.
    assert _sql(katib_schema.CREATE_TABLE) == FACTS["database"]["ddl"].value
    assert _sql(katib_schema.HEALTH) == FACTS["database"]["health-query"].value
    queries = FACTS["database"]["queries"].value
    assert _sql(katib_schema.DELETE).startswith(queries["delete"].partition("?")[0])
    assert _sql(katib_schema.REPORT).startswith(queries["insert"].partition("(?")[0])
    assert _sql(katib_schema.GET).startswith(queries["select"].partition("?")[0])


def test_the_sdk_default_address_reaches_the_db_manager():
    host, _, port = FACTS["katib-db-manager"]["sdk-default-address"].value.partition(":")
    assert host == f"{wl.DB_MANAGER_SERVICE}.{NAMESPACE}" and int(port) == wl.Ports.DB_MANAGER


# --- the Katib config -------------------------------------------------------------------


def _config(kinds=()) -> dict[str, Any]:
    cm = _objects(kinds)[("ConfigMap", "katib-config")]
    key = FACTS["katib-config"]["name"].value["key"]
    return yaml.safe_load(cm["data"][key])


def test_every_algorithm_of_the_release_has_its_image():
    runtime = _config()["runtime"]
    ours = {s["algorithmName"]: s["image"] for s in runtime["suggestions"]}
    assert ours == FACTS["katib-config"]["suggestions"].value
    extras = FACTS["katib-config"]["suggestion-extras"].value
    for suggestion in runtime["suggestions"]:
        for key, value in extras.get(suggestion["algorithmName"], {}).items():
            assert suggestion[key] == value
    stops = {s["algorithmName"]: s["image"] for s in runtime["earlyStoppings"]}
    assert stops == FACTS["katib-config"]["early-stoppings"].value
    collectors = {c.pop("kind"): c for c in runtime["metricsCollectors"]}
    assert collectors == FACTS["katib-config"]["metrics-collectors"].value


def test_init_config_is_upstreams_with_leader_election_on_and_cert_generator_off():
    init = _config()["init"]
    fact = FACTS["katib-config"]["init"].value
    assert init["controller"]["webhookPort"] == fact["webhookPort"]
    assert init["controller"]["trialResources"] == fact["trialResources"]
    assert init["controller"]["enableLeaderElection"] is True
    le_id = FACTS["katib-controller"]["leader-election-id"].value
    assert init["controller"]["leaderElectionID"] == le_id
    assert init["certGenerator"] == {"enable": False}
    keys = FACTS["katib-config"]["init-keys"].value
    for section, known in keys.items():
        assert set(init[section]) <= set(known), section
    # The controller reads the same text from its own file.
    assert (
        CONFIG_FILE.content
        == _objects()[("ConfigMap", "katib-config")]["data"]["katib-config.yaml"]
    )


def test_an_offered_trial_kind_joins_the_trial_resources():
    resources = _config([TRAIN_JOB])["init"]["controller"]["trialResources"]
    assert resources[-1] == "TrainJob.v1alpha1.trainer.kubeflow.org"


def test_trial_templates_keep_upstreams_and_their_images():
    fact = FACTS["katib-config"]["trial-templates"].value
    cm = OBJECTS[("ConfigMap", fact["name"])]
    assert cm["metadata"]["labels"] == fact["label"]
    for key, image in fact["images"].items():
        assert image in cm["data"][key], key
    commands = FACTS["katib-config"]["trial-template-commands"].value
    for key, command in commands.items():
        spec = yaml.safe_load(cm["data"][key])["spec"]
        if "pytorchReplicaSpecs" in spec:
            replicas = spec["pytorchReplicaSpecs"]
            assert {r: replicas[r]["replicas"] for r in replicas} == {"Master": 1, "Worker": 2}
            pods = [r["template"]["spec"] for r in replicas.values()]
        else:
            pods = [spec["template"]["spec"]]
        for pod in pods:
            (container,) = pod["containers"]
            assert container["command"] == command, key


# --- webhooks ----------------------------------------------------------------------------


def _hooks(kind: str) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in OBJECTS[(kind, "katib.kubeflow.org")]["webhooks"]}


@pytest.mark.parametrize(
    ("kind", "fact"),
    [
        ("ValidatingWebhookConfiguration", "validating"),
        ("MutatingWebhookConfiguration", "mutating"),
    ],
)
def test_webhooks_are_upstreams(kind, fact):
    wanted = FACTS["webhooks"][fact].value
    hooks = _hooks(kind)
    assert set(hooks) == set(wanted["webhooks"])
    for name, want in wanted["webhooks"].items():
        hook = hooks[name]
        service = hook["clientConfig"]["service"]
        assert service["path"] == want["path"]
        assert (service["name"], service["namespace"]) == (wl.CONTROLLER_SERVICE, NAMESPACE)
        (rule,) = hook["rules"]
        group, version, resource = want["resources"]
        assert rule["apiGroups"] == [group] and rule["apiVersions"] == [version]
        assert rule["resources"] == [resource] and rule["operations"] == want["operations"]
        assert hook["sideEffects"] == "None" and hook["failurePolicy"] == "Fail"


def test_pod_mutator_selects_upstreams_namespaces_and_skips_our_controller():
    hook = _hooks("MutatingWebhookConfiguration")["mutator.pod.katib.kubeflow.org"]
    assert (
        hook["namespaceSelector"]["matchLabels"]
        == FACTS["webhooks"]["pod-namespace-selector"].value
    )
    (condition,) = hook["matchConditions"]
    upstream = FACTS["webhooks"]["pod-match-condition"].value
    assert condition["name"] == upstream["name"]
    ours = upstream["expression"].replace("kubeflow:katib-controller", f"{NAMESPACE}:katib")
    assert condition["expression"] == ours


# --- RBAC --------------------------------------------------------------------------------


def test_controller_rules_keep_upstreams():
    rules = OBJECTS[("ClusterRole", "katib-controller")]["rules"]
    for rule in FACTS["rbac"]["controller"].value:
        assert rule in rules, rule


def test_ui_rules_are_upstreams_with_namespaces_read_only():
    rules = OBJECTS[("ClusterRole", "katib-ui")]["rules"]
    for rule in FACTS["katib-ui"]["rbac"].value:
        assert rule in rules, rule
    assert {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get", "list", "watch"],
    } in rules


def test_leader_election_may_use_leases():
    fact = FACTS["katib-controller"]["leader-election-rbac"].value
    assert fact in OBJECTS[("Role", "katib-leader-election")]["rules"]


def test_user_roles_aggregate_as_upstream():
    kf = "rbac.authorization.kubeflow.org/"
    for name, want in FACTS["rbac"]["user-roles"].value.items():
        role = OBJECTS[("ClusterRole", name)]
        assert role["metadata"]["labels"][f"{kf}aggregate-to-{want['aggregates-into']}"] == "true"
        if "verbs" in want:
            assert role["rules"][0]["verbs"] == want["verbs"]


# --- CRDs ----------------------------------------------------------------------------------


def _crds() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all(katib_cluster.CRDS_FILE.read_text())
    return {d["metadata"]["name"]: d for d in docs}


def test_crds_are_the_kinds_and_shape_of_upstreams():
    crds = _crds()
    assert {name: c["spec"]["names"]["kind"] for name, c in crds.items()} == FACTS["crds"][
        "kinds"
    ].value
    shape = FACTS["crds"]["shape"].value
    for crd in crds.values():
        (version,) = crd["spec"]["versions"]
        assert crd["spec"]["group"] == shape["group"] and version["name"] == shape["version"]
        assert crd["spec"]["scope"] == shape["scope"]
        assert crd["spec"]["names"]["categories"] == shape["categories"]
        assert version["subresources"] == shape["subresources"]


@pytest.mark.parametrize(
    ("crd", "fact"),
    [
        ("experiments.kubeflow.org", "experiment-spec"),
        ("trials.kubeflow.org", "trial-spec"),
        ("suggestions.kubeflow.org", "suggestion-spec"),
    ],
)
def test_every_spec_field_is_kept(crd, fact):
    (version,) = _crds()[crd]["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == set(FACTS["crds"][fact].value)


def _structural_problems(node: dict[str, Any], path: str) -> list[str]:
    found = []
    if "type" not in node:
        found.append(f"{path}: no type")
    for name, child in (node.get("properties") or {}).items():
        found += _structural_problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _structural_problems(node[key], f"{path}[]")
    return found


def test_crd_schemas_are_structural():
    for name, crd in _crds().items():
        (version,) = crd["spec"]["versions"]
        assert _structural_problems(version["schema"]["openAPIV3Schema"], name) == []


def _pruned(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """The fields the API server would drop from `value` under `schema` (pruning)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        if "properties" in schema:
            for key, child in value.items():
                if key not in schema["properties"]:
                    found.append(f"{path}.{key}")
                else:
                    found += _pruned(child, schema["properties"][key], f"{path}.{key}")
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, child in value.items():
                found += _pruned(child, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            found += _pruned(child, schema["items"], f"{path}[{i}]")
    return found


# Every field of Katib v0.18.0's ExperimentSpec set once (experiment_types.go,
# common_types.go), with a TrainJob trial as Katib v0.18 needs it spelled out.
EXPERIMENT_SPEC = {
    "parameters": [
        {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {
                "min": "0.01",
                "max": "0.05",
                "step": "0.01",
                "distribution": "logUniform",
            },
        },
        {
            "name": "optimizer",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["sgd", "adam"]},
        },
    ],
    "objective": {
        "type": "maximize",
        "goal": 0.99,
        "objectiveMetricName": "accuracy",
        "additionalMetricNames": ["loss"],
        "metricStrategies": [{"name": "loss", "value": "min"}],
    },
    "algorithm": {
        "algorithmName": "random",
        "algorithmSettings": [{"name": "random_state", "value": "10"}],
    },
    "earlyStopping": {
        "algorithmName": "medianstop",
        "algorithmSettings": [{"name": "min_trials_required", "value": "2"}],
    },
    "trialTemplate": {
        "retain": True,
        "primaryContainerName": TRAIN_JOB.primary_container,
        "primaryPodLabels": TRAIN_JOB.primary_pod_labels,
        "successCondition": TRAIN_JOB.success_condition,
        "failureCondition": TRAIN_JOB.failure_condition,
        "trialParameters": [{"name": "learningRate", "description": "lr", "reference": "lr"}],
        "trialSpec": {
            "apiVersion": TRAIN_JOB.api_version,
            "kind": TRAIN_JOB.kind,
            "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
        },
    },
    "parallelTrialCount": 3,
    "maxTrialCount": 12,
    "maxFailedTrialCount": 3,
    "metricsCollectorSpec": {
        "source": {
            "fileSystemPath": {
                "path": "/var/log/katib/metrics.log",
                "kind": "File",
                "format": "TEXT",
            },
            "filter": {"metricsFormat": ["([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?)"]},
            "httpGet": {"path": "/metrics", "port": 8080},
        },
        "collector": {"kind": "File", "customCollector": {"name": "c", "image": "i"}},
    },
    "nasConfig": {
        "graphConfig": {"numLayers": 8, "inputSizes": [32], "outputSizes": [10]},
        "operations": [
            {
                "operationType": "convolution",
                "parameters": [
                    {
                        "name": "filter_size",
                        "parameterType": "categorical",
                        "feasibleSpace": {"list": ["3"]},
                    }
                ],
            }
        ],
    },
    "resumePolicy": "Never",
}


def test_no_field_of_an_experiment_is_pruned():
    (version,) = _crds()["experiments.kubeflow.org"]["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(EXPERIMENT_SPEC) == set(FACTS["crds"]["experiment-spec"].value)
    assert _pruned(EXPERIMENT_SPEC, spec, "spec") == []
    # And it validates, the way the API server checks it.
    import jsonschema
    from bundle.fake_kubernetes import _json_schema

    jsonschema.validate(
        {"spec": EXPERIMENT_SPEC}, _json_schema(version["schema"]["openAPIV3Schema"])
    )
