"""kubeflow-trainer against Trainer v2.1.0 and JobSet v0.10.1: images, webhooks, runtimes."""

from __future__ import annotations

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
    assert kind.primary_pod_labels == FACTS["katib-trial"]["primary-pod-labels"].value


# --- CRDs ---------------------------------------------------------------------------------------

CRDS = {
    d["spec"]["names"]["plural"]: d
    for d in yaml.safe_load_all(trainer_cluster.CRDS_FILE.read_text())
    if d
}


@pytest.mark.parametrize("plural", sorted(FACTS["crds"]))
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
        (trainer_cluster.LEADER_ELECTION_RULES, "jobset-controller", "leader-election-rbac"),
    ],
)
def test_controller_rbac_mirrors_upstream(ours, workload, fact):
    upstream = FACTS[workload][fact]
    assert _rules(ours) == _rules(upstream.value), str(upstream.source)


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
