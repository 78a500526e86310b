"""kubeflow-trainer against Trainer v2.1.0 and JobSet v0.10.1: images, webhooks, runtimes."""

from __future__ import annotations

import re

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.kubeflow_trainer.helpers import CHARM, trainer_cluster, trainer_runtimes, workloads

FACTS = facts.load("kubeflow-trainer")
META = yaml.safe_load((CHARMS / "kubeflow-trainer" / "charmcraft.yaml").read_text())


@pytest.mark.parametrize("workload", ["trainer-controller", "jobset-controller"])
def test_image_is_the_released_one(workload):
    image = FACTS[workload]["image"]
    assert META["resources"][f"{workload}-image"]["upstream-source"] == image.value, str(
        image.source
    )


def test_trainer_config_keeps_upstreams_values_but_certificates():
    fact = FACTS["trainer-controller"]["config-file"]
    ours = workloads.trainer_config()
    for key, value in fact.value.items():
        assert {k: ours[key][k] for k in value} == value, str(fact.source)
    assert ours["certManagement"] == {"enable": False}


def test_webhooks_are_upstreams():
    hooks = {h["name"]: h["path"] for h in trainer_cluster.TRAINER_WEBHOOKS}
    assert hooks == FACTS["trainer-controller"]["webhooks"].value
    jobset = trainer_cluster.JOBSET_MUTATING + trainer_cluster.JOBSET_VALIDATING
    assert {h["name"]: h["path"] for h in jobset} == FACTS["jobset-controller"]["webhooks"].value


def test_runtimes_and_images_are_the_releases():
    runtimes = trainer_runtimes.render_runtimes({})
    names = [r["metadata"]["name"] for r in runtimes]
    assert names == FACTS["trainer-controller"]["runtimes"].value
    images = FACTS["trainer-controller"]["runtime-images"].value
    for option, image in images.items():
        assert trainer_runtimes.IMAGE_DEFAULTS[option] == image
    assert trainer_runtimes.IMAGE_DEFAULTS["torch-image"] == (
        FACTS["trainer-controller"]["torch-image"].value
    )


def test_trial_defaults_are_katibs():
    kind = CHARM.TRAINJOB_TRIAL
    assert kind.success_condition == FACTS["katib-trial"]["success-condition"].value
    assert kind.failure_condition == FACTS["katib-trial"]["failure-condition"].value
    assert kind.primary_pod_labels == FACTS["katib-trial"]["primary-pod-labels"].value
    assert kind.primary_container == FACTS["katib-trial"]["primary-container"].value


# --- Pebble layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads.WORKLOADS, ids=lambda w: w.container)
def test_the_layer_runs_upstreams_entrypoint_with_its_flags(workload):
    facts_ = FACTS[workload.container]
    layer = workloads.layer(workload, leader=True, serial="1")
    service = layer["services"][workload.service]
    entrypoint, *args = service["command"].split()
    assert entrypoint == facts_["entrypoint"].value, str(facts_["entrypoint"].source)
    upstream = facts_["args"].value
    ours = [
        f"--config={workload.config_path}" if a.startswith("--config=") else a for a in upstream
    ]
    assert args == ours, str(facts_["args"].source)
    assert workloads.config_file(workload).path == workload.config_path
    assert service["working-dir"] == facts_["working-dir"].value
    assert service["user-id"] == facts_["user"].value
    assert service["group-id"] == facts_["user"].value


@pytest.mark.parametrize("workload", ["trainer-controller", "jobset-controller"])
def test_certificates_go_where_the_controllers_read_them(workload):
    fact = FACTS[workload]["cert-dir"]
    assert workloads.CERT_DIR == fact.value, str(fact.source)
    assert workloads.CERT_FILE == f"{fact.value}/tls.crt"
    assert workloads.KEY_FILE == f"{fact.value}/tls.key"


# --- CRDs ---------------------------------------------------------------------------------------

CRDS = {
    d["spec"]["names"]["plural"]: d
    for d in yaml.safe_load_all(trainer_cluster.CRDS_FILE.read_text())
    if d
}


CRD_NAMES = sorted(p for p in FACTS["crds"] if not p.endswith("-validation"))


@pytest.mark.parametrize("plural", CRD_NAMES)
def test_crd_is_upstreams(plural):
    fact = FACTS["crds"][plural]
    ours = CRDS[plural]
    version = ours["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {
        "name": ours["metadata"]["name"],
        "kind": ours["spec"]["names"]["kind"],
        "scope": ours["spec"]["scope"],
        "version": version["name"],
        "subresources": sorted(version.get("subresources", {})),
        "spec-fields": sorted(spec["properties"]),
    } == fact.value, str(fact.source)


_CONSTRAINTS = (
    "default",
    "enum",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)


def _constraints(schema: dict, path: str = "", out: dict | None = None) -> dict[str, dict]:
    """Each typed node's defaults, enums, required lists, bounds and CEL rules, by path."""
    out = {} if out is None else out
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return out  # kept open: the controllers and the API server check what is inside
    found = {k: schema[k] for k in _CONSTRAINTS if k in schema}
    if schema.get("x-kubernetes-validations"):
        found["rules"] = [r["rule"] for r in schema["x-kubernetes-validations"]]
    if found:
        out[path or "."] = found
    for name, sub in schema.get("properties", {}).items():
        _constraints(sub, f"{path}.{name}", out)
    if isinstance(schema.get("items"), dict):
        _constraints(schema["items"], f"{path}[]", out)
    return out


def _sorted_lists(constraints: dict[str, dict]) -> dict[str, dict]:
    return {
        path: {k: sorted(v) if k in ("required", "rules") else v for k, v in found.items()}
        for path, found in constraints.items()
    }


@pytest.mark.parametrize("plural", CRD_NAMES)
def test_crd_validates_as_upstreams_does(plural):
    fact = FACTS["crds"][f"{plural}-validation"]
    version = CRDS[plural]["spec"]["versions"][0]
    columns = [
        {k: c[k] for k in ("name", "type", "jsonPath")}
        for c in version.get("additionalPrinterColumns", [])
    ]
    assert columns == fact.value["printer-columns"], str(fact.source)
    ours = _sorted_lists(_constraints(version["schema"]["openAPIV3Schema"]))
    assert ours == _sorted_lists(fact.value["constraints"]), str(fact.source)


def _undeclared_in_rules(schema: dict, path: str = "") -> list[str]:
    """Each `self.a.b` in a CEL rule that reads a field the schema does not declare.

    The API server refuses to compile such a rule, and so the whole CRD.
    """
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        for match in re.finditer(r"\bself((?:\.[A-Za-z_]\w*)+)(\()?", rule["rule"]):
            names = match.group(1).lstrip(".").split(".")
            if match.group(2):
                names.pop()  # a method (`.exists(...)`), not a field
            node, where = schema, path or "."
            for name in names:
                if "properties" not in node and (
                    node.get("x-kubernetes-preserve-unknown-fields") or where.endswith("metadata")
                ):
                    break  # open, or the object's metadata, which CEL may read
                if name not in node.get("properties", {}):
                    problems.append(f"{path or '.'}: {rule['rule']}: no field {name!r}")
                    break
                node, where = node["properties"][name], f"{where}.{name}"
    for name, sub in schema.get("properties", {}).items():
        problems += _undeclared_in_rules(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += _undeclared_in_rules(schema["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("plural", sorted(CRDS))
def test_crd_rules_read_only_declared_fields(plural):
    schema = CRDS[plural]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _undeclared_in_rules(schema) == []


def test_the_rule_checker_finds_an_undeclared_field():
    schema = {
        "type": "object",
        "properties": {"torch": {"type": "object", "properties": {"elasticPolicy": {}}}},
        "x-kubernetes-validations": [{"rule": "!(has(self.torch.numNodes))"}],
    }
    assert _undeclared_in_rules(schema) == [".: !(has(self.torch.numNodes)): no field 'numNodes'"]


def test_the_jobset_crd_has_no_conversion_webhook():
    fact = FACTS["jobset-controller"]["conversion-webhook"]
    assert "conversion" not in CRDS["jobsets"]["spec"], fact.note


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


@pytest.mark.parametrize(
    ("ours", "workload", "fact"),
    [
        (trainer_cluster.TRAINER_RULES, "trainer-controller", "rbac"),
        (trainer_cluster.JOBSET_RULES, "jobset-controller", "rbac"),
        (trainer_cluster.METRICS_AUTH_RULES, "jobset-controller", "metrics-auth-rbac"),
        (trainer_cluster.LEADER_ELECTION_RULES, "jobset-controller", "leader-election-rbac"),
    ],
)
def test_controller_rbac_mirrors_upstream(ours, workload, fact):
    upstream = FACTS[workload][fact]
    assert _rules(ours) == _rules(upstream.value), str(upstream.source)


def _rendered(template: str) -> list[dict]:
    from kubeflow_charms.kubernetes import render

    values = trainer_cluster.context(
        app="kubeflow-trainer", namespace="kubeflow", leader_pod="kubeflow-trainer-0", ca_cert="CA"
    )
    return [
        d for d in yaml.safe_load_all(render(trainer_cluster.MANIFESTS, [template], values)) if d
    ]


def test_the_rendered_controller_roles_grant_upstreams_rules():
    roles = {
        d["metadata"]["name"]: d for d in _rendered("rbac.yaml.j2") if d["kind"] == "ClusterRole"
    }
    trainer = roles["kubeflow-trainer-kubeflow-trainer-controller"]
    jobset = roles["kubeflow-trainer-kubeflow-jobset-controller"]
    assert _rules(trainer["rules"]) == _rules(FACTS["trainer-controller"]["rbac"].value)
    facts_ = FACTS["jobset-controller"]
    assert _rules(jobset["rules"]) == _rules(facts_["rbac"].value) | _rules(
        facts_["metrics-auth-rbac"].value
    )


def test_user_roles_are_kubeflows():
    from kubeflow_charms.kubernetes import render

    fact = FACTS["trainer-controller"]["user-roles"]
    text = render(
        trainer_cluster.MANIFESTS, ["user-roles.yaml.j2"], trainer_cluster.USER_ROLES_CONTEXT
    )
    docs = [d for d in yaml.safe_load_all(text) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert set(roles) == set(fact.value), str(fact.source)
    for name, want in fact.value.items():
        assert roles[name]["metadata"].get("labels", {}) == want["labels"], name
        assert _rules(roles[name]["rules"]) == _rules(want["rules"]), name
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == FACTS["trainer-controller"]["cluster-runtimes-readers"].value


# --- ports and webhooks -------------------------------------------------------------------------


def test_trainer_keeps_upstreams_ports_and_jobset_moves_off_them():
    trainer = FACTS["trainer-controller"]["ports"].value
    jobset = FACTS["jobset-controller"]["ports"].value
    ours = workloads.trainer_config()
    assert ours["webhook"]["port"] == trainer["webhook"]
    assert ours["health"]["healthProbeBindAddress"] == trainer["health"]
    assert ours["metrics"]["bindAddress"] == trainer["metrics"]
    moved = workloads.jobset_config()
    assert moved["webhook"]["port"] == jobset["webhook"] + 1
    assert moved["health"]["healthProbeBindAddress"] != jobset["health"]
    assert moved["metrics"]["bindAddress"] != jobset["metrics"]


def test_the_rendered_webhooks_are_upstreams():
    configurations = {
        d["metadata"]["name"]: d
        for d in _rendered("webhooks.yaml.j2")
        if d["kind"].endswith("WebhookConfiguration")
    }
    trainer, jobset = FACTS["trainer-controller"], FACTS["jobset-controller"]
    assert set(configurations) == {trainer["webhook-configuration"].value} | set(
        jobset["webhook-configurations"].value
    )
    hooks = {h["name"]: h for c in configurations.values() for h in c["webhooks"]}
    rules = trainer["webhook-rules"].value | jobset["webhook-rules"].value
    assert {name: h["rules"] for name, h in hooks.items()} == {n: [r] for n, r in rules.items()}
    paths = trainer["webhooks"].value | jobset["webhooks"].value
    assert {n: h["clientConfig"]["service"]["path"] for n, h in hooks.items()} == paths
    for workload, names in (
        (trainer, trainer["webhooks"].value),
        (jobset, jobset["webhooks"].value),
    ):
        settings = workload["webhook-settings"]
        for name in names:
            assert {k: hooks[name][k] for k in settings.value} == settings.value, name


def test_jobset_pod_webhooks_keep_upstreams_object_selector():
    fact = FACTS["jobset-controller"]["pod-webhook-object-selector"]
    hooks = trainer_cluster.JOBSET_MUTATING + trainer_cluster.JOBSET_VALIDATING
    pods = [h for h in hooks if h["resources"] == ["pods"]]
    assert len(pods) == 2
    assert all(h["object_selector"] == fact.value for h in pods), str(fact.source)


# --- runtimes -----------------------------------------------------------------------------------


def _untagged(node):
    """The runtime with the release's own images untagged, as the base manifests name them."""
    if isinstance(node, dict):
        return {k: _untagged(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_untagged(v) for v in node]
    if isinstance(node, str) and node.startswith("ghcr.io/kubeflow/trainer/"):
        return node.removesuffix(f":{trainer_runtimes.TRAINER_TAG}")
    return node


@pytest.mark.parametrize("name", FACTS["trainer-controller"]["runtimes"].value)
def test_runtime_is_upstreams_by_default(name):
    fact = FACTS["trainer-controller"][f"runtime-{name}"]
    ours = next(r for r in trainer_runtimes.render_runtimes({}) if r["metadata"]["name"] == name)
    assert ours["metadata"]["labels"] == fact.value["labels"], str(fact.source)
    assert _untagged(ours["spec"]) == fact.value["spec"], str(fact.source)


def _not_structural(schema: dict, path: str = "") -> list[str]:
    """Where a schema breaks Kubernetes' structural rule: every node typed, unless left open."""
    open_node = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-int-or-string"
    )
    problems = [] if "type" in schema or open_node else [path or "/"]
    for name, sub in schema.get("properties", {}).items():
        problems += _not_structural(sub, f"{path}/{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += _not_structural(schema[key], f"{path}/{key}")
    return problems


@pytest.mark.parametrize("plural", sorted(CRDS))
def test_crd_schema_is_structural(plural):
    schema = CRDS[plural]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _not_structural(schema) == []
