"""kserve against KServe v0.14.1: Pebble layers, config, webhooks, RBAC, runtimes and CRDs."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.kserve.helpers import kserve_cluster as cluster
from unit.kserve.helpers import kserve_config, kserve_runtimes
from unit.kserve.helpers import workloads as wl

FACTS = facts.load("kserve")
META = yaml.safe_load((CHARMS / "kserve" / "charmcraft.yaml").read_text())
CONTROLLER = FACTS["kserve-controller"]
LOCALMODEL = FACTS["localmodel-controller"]
CONFIG = FACTS["inferenceservice-config"]
RUNTIMES = FACTS["runtimes"]


def _config(**options) -> kserve_config.KServeConfig:
    return kserve_config.KServeConfig(**options)


@pytest.mark.parametrize(
    ("resource", "fact"),
    [
        ("kserve-controller-image", CONTROLLER["image"]),
        ("localmodel-controller-image", LOCALMODEL["image"]),
    ],
)
def test_images_are_the_releases(resource, fact):
    assert META["resources"][resource]["upstream-source"] == fact.value, str(fact.source)


# --- Pebble layers ------------------------------------------------------------------------------


def _service(workload: wl.Workload) -> dict:
    layer = wl.layer(workload, leader=True, namespace="kubeflow", serial="1")
    return layer["services"][workload.service]


def _flags(command: str) -> dict[str, str]:
    return dict([*a[2:].split("=", 1), ""][:2] for a in command.split()[1:])


def test_the_controller_runs_upstreams_entrypoint_with_known_flags_and_leases_on():
    service = _service(wl.CONTROLLER)
    assert service["command"].split()[0] == CONTROLLER["entrypoint"].value
    flags = _flags(service["command"])
    assert set(flags) <= set(CONTROLLER["flags"].value), str(CONTROLLER["flags"].source)
    assert "leader-elect" in flags
    assert "--leader-elect" in CONTROLLER["args"].value
    assert int(flags["webhook-port"]) == CONTROLLER["webhook-port"].value
    # Upstream binds metrics to localhost too; the port moves off the local model controller's.
    assert flags["metrics-addr"].startswith("127.0.0.1:")
    assert service["user-id"] == service["group-id"] == CONTROLLER["user"].value
    assert service["environment"][CONTROLLER["namespace-env"].value] == "kubeflow"
    assert CONTROLLER["namespace-env"].value in CONTROLLER["env"].value


def test_the_local_model_controller_runs_with_its_only_flag():
    service = _service(wl.LOCALMODEL)
    assert service["command"].split()[0] == LOCALMODEL["entrypoint"].value
    assert set(_flags(service["command"])) == set(LOCALMODEL["flags"].value)
    # Upstream runs it without flags (lease election off); the charm turns it on.
    assert LOCALMODEL["args"].value == [], str(LOCALMODEL["args"].source)
    assert service["user-id"] == LOCALMODEL["user"].value
    assert service["environment"]["POD_NAMESPACE"] == "kubeflow"


def test_the_two_controllers_do_not_share_a_port():
    fixed = LOCALMODEL["ports"].value
    assert wl.Ports.LOCALMODEL_METRICS == int(fixed["metrics"].lstrip(":"))
    assert wl.Ports.LOCALMODEL_HEALTH == int(fixed["health"].lstrip(":"))
    ours = {wl.Ports.METRICS, wl.Ports.HEALTH, wl.Ports.WEBHOOK}
    assert not ours & {wl.Ports.LOCALMODEL_METRICS, wl.Ports.LOCALMODEL_HEALTH}
    check = wl.layer(wl.CONTROLLER, leader=True, namespace="m", serial="1")["checks"]
    assert check[wl.CONTROLLER.check]["http"]["url"].endswith(
        f":{wl.Ports.HEALTH}{CONTROLLER['health-paths'].value['liveness']}"
    )


def test_leases_and_certificates_are_where_the_binaries_use_them():
    assert wl.CONTROLLER_LEASE == CONTROLLER["lease"].value
    assert wl.LOCALMODEL_LEASE == LOCALMODEL["lease"].value
    assert wl.CERT_DIR == CONTROLLER["cert-dir"].value
    assert wl.CERT_FILE == f"{CONTROLLER['cert-dir'].value}/tls.crt"
    assert wl.KEY_FILE == f"{CONTROLLER['cert-dir'].value}/tls.key"
    assert wl.WEBHOOK_SERVICE == CONTROLLER["webhook-service"].value


# --- inferenceservice-config --------------------------------------------------------------------


def _ours(**options) -> dict:
    data = cluster.inferenceservice_config(
        _config(**options), gateway_namespace="istio-system", gateway_name="kubeflow-gateway"
    )
    return {key: json.loads(value) for key, value in data.items()}


def test_the_config_has_upstreams_keys_but_its_example():
    assert sorted(_ours()) == [k for k in CONFIG["keys"].value if k != "_example"]


@pytest.mark.parametrize(
    "key", [k for k in FACTS["inferenceservice-config"]["keys"].value if k != "_example"]
)
def test_each_config_key_is_upstreams_but_what_we_set(key):
    ours, upstream = _ours()[key], copy.deepcopy(CONFIG[key].value)
    if key == "deploy":
        upstream["defaultDeploymentMode"] = CONFIG["raw-deployment-mode"].value
    if key == "ingress":
        upstream["ingressGateway"] = "istio-system/kubeflow-gateway"
    if key == "storageInitializer":
        assert ours["image"] == upstream["image"]  # the option's default is upstream's image
    if key == "localModel":
        assert ours["defaultJobImage"] == CONFIG["storageInitializer"].value["image"]
    assert ours == upstream, str(CONFIG[key].source)


def test_the_ingress_follows_the_options():
    ingress = _ours(ingress_domain="ml.example.org", url_scheme="https")["ingress"]
    assert (ingress["ingressDomain"], ingress["urlScheme"]) == ("ml.example.org", "https")
    assert ingress["ingressClassName"] == CONFIG["ingress"].value["ingressClassName"] == "istio"


# --- webhooks -----------------------------------------------------------------------------------


def _rendered(template: str) -> list[dict]:
    from kubeflow_charms.kubernetes import render

    values = cluster.context(
        _config(),
        app="kserve",
        namespace="kubeflow",
        leader_pod="kserve-0",
        ca_cert="CA",
        gateway_namespace="istio-system",
        gateway_name="kubeflow-gateway",
    )
    return [d for d in yaml.safe_load_all(render(cluster.MANIFESTS, [template], values)) if d]


@pytest.mark.parametrize(
    ("kind", "fact"),
    [
        ("MutatingWebhookConfiguration", "mutating-webhooks"),
        ("ValidatingWebhookConfiguration", "validating-webhooks"),
    ],
)
def test_the_rendered_webhooks_are_upstreams(kind, fact):
    upstream = CONTROLLER[fact]
    ours = {d["metadata"]["name"]: d for d in _rendered("webhooks.yaml.j2") if d["kind"] == kind}
    assert set(ours) == set(upstream.value), str(upstream.source)
    for name, hooks in upstream.value.items():
        mine = ours[name]["webhooks"]
        assert len(mine) == len(hooks), name
        for theirs, hook in zip(hooks, mine, strict=True):
            config = hook.pop("clientConfig")
            assert config["service"]["name"] == CONTROLLER["webhook-service"].value
            assert config["service"]["path"] == theirs.pop("path")
            assert hook == theirs, name


# --- RBAC ---------------------------------------------------------------------------------------


def _rules(rules: list[dict]) -> set[tuple]:
    """Rules as (group, resource, verb) triples: the same access, however grouped."""
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_the_rendered_controller_roles_grant_upstreams_rules():
    docs = _rendered("rbac.yaml.j2")
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    assert _rules(roles["kserve-kubeflow-controller"]["rules"]) == _rules(CONTROLLER["rbac"].value)
    assert _rules(roles["kserve-kubeflow-localmodel"]["rules"]) == _rules(LOCALMODEL["rbac"].value)
    assert _rules(roles["kserve-leader-election"]["rules"]) == _rules(
        CONTROLLER["leader-election-rbac"].value
    )


def test_user_roles_are_kubeflows():
    fact = CONTROLLER["user-roles"]
    docs = _rendered("user-roles.yaml.j2")
    roles = {d["metadata"]["name"]: d for d in docs}
    assert set(roles) == set(fact.value), str(fact.source)
    for name, want in fact.value.items():
        assert roles[name]["metadata"]["labels"] == want["labels"], name
        assert _rules(roles[name]["rules"]) == _rules(want["rules"]), name
        assert roles[name].get("aggregationRule") == want["aggregationRule"], name


# --- runtimes -----------------------------------------------------------------------------------


def _by_name(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs}


def test_the_runtimes_are_the_releases():
    ours = [
        d["metadata"]["name"] for d in _config().runtimes() if d["kind"] == "ClusterServingRuntime"
    ]
    names = RUNTIMES["names"].value
    assert sorted(n for n in ours if not n.endswith("-gpu")) == sorted(names)
    assert sorted(n for n in ours if n.endswith("-gpu")) == sorted(
        f"{n}-gpu" for n in kserve_runtimes.GPU_RUNTIMES
    )


@pytest.mark.parametrize("name", RUNTIMES["names"].value)
def test_each_runtime_is_upstreams_by_default(name):
    fact = RUNTIMES[f"runtime-{name}"]
    ours = _by_name(_config().runtimes())[name]
    assert ours["spec"] == fact.value, str(fact.source)


@pytest.mark.parametrize("name", kserve_runtimes.GPU_RUNTIMES)
def test_each_gpu_twin_is_its_runtime_on_the_gpu_pool(name):
    upstream = RUNTIMES[f"runtime-{name}"].value
    gpu = {"kubernetes.azure.com/accelerator": "nvidia"}
    config = _config(gpu_predictor_node_selector=json.dumps(gpu), gpus_per_predictor=2)
    twin = _by_name(config.runtimes())[f"{name}-gpu"]["spec"]
    container, theirs = twin["containers"][0], upstream["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert twin["nodeSelector"] == gpu
    image = theirs["image"] + ("-gpu" if name in RUNTIMES["gpu-tag"].value else "")
    assert container["image"] == image
    assert [(f["name"], f["version"]) for f in twin["supportedModelFormats"]] == [
        (f["name"], f["version"]) for f in upstream["supportedModelFormats"]
    ]
    assert not any(f.get("autoSelect") for f in twin["supportedModelFormats"])


def test_the_gpu_runtimes_are_the_cuda_builds():
    assert RUNTIMES["huggingface-cuda-base"].value.startswith("nvidia/cuda")
    images = {
        n: RUNTIMES[f"runtime-{n}"].value["containers"][0]["image"]
        for n in RUNTIMES["names"].value
    }
    assert images["kserve-tritonserver"].startswith("nvcr.io/nvidia/")
    assert set(RUNTIMES["gpu-tag"].value) < set(kserve_runtimes.GPU_RUNTIMES)


def test_placement_goes_into_the_fields_the_controller_merges():
    merged = set(RUNTIMES["merged-pod-fields"].value)
    config = _config(
        predictor_node_selector='{"kubeflow.org/pool": "cpu"}',
        predictor_tolerations='[{"key": "k", "operator": "Exists"}]',
    )
    runtime = _by_name(config.runtimes())["kserve-sklearnserver"]["spec"]
    upstream = RUNTIMES["runtime-kserve-sklearnserver"].value
    assert set(runtime) - set(upstream) == {"nodeSelector", "tolerations"} <= merged


def test_the_storage_container_is_upstreams():
    fact = RUNTIMES["storage-container-default"]
    assert _by_name(_config().runtimes())["default"]["spec"] == fact.value, str(fact.source)


def test_image_defaults_are_the_releases():
    for name, known in kserve_runtimes.RUNTIMES.items():
        image = RUNTIMES[f"runtime-{name}"].value["containers"][0]["image"]
        assert kserve_runtimes.IMAGE_DEFAULTS[known["option"]] == image, name
        assert META["config"]["options"][known["option"]]["default"] == image, name
    storage = CONFIG["storageInitializer"].value["image"]
    assert META["config"]["options"]["storage-initializer-image"]["default"] == storage


# --- CRDs ---------------------------------------------------------------------------------------

CRDS = {
    d["spec"]["names"]["plural"]: d for d in yaml.safe_load_all(cluster.CRDS_FILE.read_text()) if d
}


@pytest.mark.parametrize("plural", sorted(FACTS["crds"]))
def test_crd_is_upstreams(plural):
    fact = FACTS["crds"][plural]
    ours = CRDS[plural]
    spec = ours["spec"]
    version = spec["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert "conversion" not in spec
    assert {
        "name": ours["metadata"]["name"],
        "kind": spec["names"]["kind"],
        "scope": spec["scope"],
        "version": version["name"],
        "versions": len(spec["versions"]),
        "served": version["served"],
        "storage": version["storage"],
        "short-names": spec["names"].get("shortNames", []),
        "subresources": sorted(version.get("subresources") or {}),
        "printer-columns": version.get("additionalPrinterColumns", []),
        "top-fields": sorted(schema["properties"]),
        "spec-fields": sorted(schema["properties"]["spec"]["properties"]),
        "spec-required": sorted(schema["properties"]["spec"].get("required", [])),
    } == fact.value, str(fact.source)


def test_every_crd_of_the_release_is_ours():
    assert sorted(CRDS) == sorted(FACTS["crds"])


@pytest.mark.parametrize("plural", sorted(CRDS))
def test_crd_schema_is_structural(plural):
    from crd_schema import structural_problems

    schema = CRDS[plural]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []


_CONSTRAINTS = (
    "required",
    "enum",
    "default",
    "minimum",
    "maximum",
    "format",
    "pattern",
    "maxLength",
    "minLength",
    "minItems",
    "maxItems",
    "nullable",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)


def _constraints(schema: dict, path: str = "", out: dict | None = None) -> dict[str, dict]:
    """The validation keywords at every field of a schema, by path (`[]` items, `{}` values)."""
    out = {} if out is None else out
    found = {k: schema[k] for k in _CONSTRAINTS if k in schema}
    if found:
        out[path or "."] = found
    for name, sub in schema.get("properties", {}).items():
        _constraints(sub, f"{path}.{name}", out)
    if "items" in schema:
        _constraints(schema["items"], f"{path}[]", out)
    if isinstance(schema.get("additionalProperties"), dict):
        _constraints(schema["additionalProperties"], f"{path}{{}}", out)
    return out


@pytest.mark.parametrize("plural", sorted(FACTS["crd-constraints"]))
def test_crd_validation_is_upstreams_where_we_type_a_field(plural):
    fact = FACTS["crd-constraints"][plural]
    schema = CRDS[plural]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _constraints(schema["properties"]["spec"]) == fact.value, str(fact.source)
