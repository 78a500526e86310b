"""kubeflow-notebooks against Kubeflow 1.10.0: its Pebble layers, files and manifests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from ops import testing
from unit.kubeflow_notebooks.helpers import CHARM, MODEL, controller, spawner_file, state, web_app

FACTS = facts.load("kubeflow-notebooks")
CONTROLLER = FACTS["notebook-controller"]
WEB_APP = FACTS["jupyter-web-app"]
META = yaml.safe_load((CHARMS / "kubeflow-notebooks" / "charmcraft.yaml").read_text())


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.NotebooksCharm)


@pytest.fixture
def out(ctx, kube) -> testing.State:
    """The leader after its first hook, with the default config."""
    return ctx.run(ctx.on.config_changed(), state())


def _service(out: testing.State, container: str, service: str) -> Any:
    return out.get_container(container).plan.services[service]


def _flags(command: str) -> dict[str, str]:
    flags = {}
    for word in command.split()[1:]:
        name, _, value = word.lstrip("-").partition("=")
        flags[name] = value or "true"
    return flags


def _allowed(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    """A role's rules as the facts write them (the API group left out)."""
    return [{"resources": r["resources"], "verbs": r["verbs"]} for r in role["rules"]]


# --- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "workload"),
    [
        ("notebook-controller-image", "notebook-controller"),
        ("jupyter-web-app-image", "jupyter-web-app"),
    ],
)
def test_images_are_the_published_ones(resource, workload):
    image = FACTS[workload]["image"]
    published = FACTS[workload]["image-published-as"]
    upstream = META["resources"][resource]["upstream-source"]
    assert upstream == image.value, f"{workload} image: {image.source}"
    assert upstream.rpartition(":")[0] == published.value, f"published as: {published.source}"


def test_spawner_offers_the_published_notebook_servers(ctx, out):
    form = yaml.safe_load(spawner_file(ctx, out))["spawnerFormDefaults"]
    images = WEB_APP["spawner-images"]
    for field, offered in images.value.items():
        assert form[field]["options"] == offered, f"{field}: {images.source}"
        assert form[field]["value"] == offered[0], f"{field} default: {images.source}"
        for image in offered:
            registry = WEB_APP["notebook-servers-published-as"]
            assert image.startswith(registry.value + "/"), f"{image}: {registry.source}"
            assert image.endswith(":v1.10.0"), f"{image}: {registry.source}"
    # The charm's config defaults are the same lists.
    options = META["config"]["options"]
    for option, field in (
        ("jupyter-images", "image"),
        ("vscode-images", "imageGroupOne"),
        ("rstudio-images", "imageGroupTwo"),
    ):
        assert yaml.safe_load(options[option]["default"]) == images.value[field], option


def test_spawner_form_settings(ctx, out):
    form = yaml.safe_load(spawner_file(ctx, out))["spawnerFormDefaults"]
    vendors = WEB_APP["spawner-gpu-vendors"]
    assert form["gpus"]["value"]["vendors"] == vendors.value, str(vendors.source)
    settings = WEB_APP["spawner-form-settings"]
    want = settings.value
    where = str(settings.source)
    assert form["hideRegistry"] is want["hideRegistry"], where
    assert form["hideTag"] is want["hideTag"], where
    assert form["allowCustomImage"] is want["allowCustomImage"], where
    workspace = form["workspaceVolume"]["value"]
    assert workspace["mount"] == want["workspace-mount"], where
    assert (
        workspace["newPvc"]["spec"]["resources"]["requests"]["storage"] == want["workspace-size"]
    ), where
    assert form["cpu"]["value"] == want["cpu"], where
    assert form["cpu"]["limitFactor"] == want["cpu-limit-factor"], where
    assert form["memory"]["limitFactor"] == want["memory-limit-factor"], where


# --- the notebook controller ------------------------------------------------------------------


def test_controller_command_and_flags(out):
    service = _service(out, controller.CONTAINER, controller.SERVICE)
    command, flags = CONTROLLER["command"], CONTROLLER["flags"]
    assert service.command.split()[0] == command.value, str(command.source)
    ours = _flags(service.command)
    assert set(ours) <= set(flags.value), f"flags: {flags.source}"
    assert ours["metrics-addr"] == flags.value["metrics-addr"], str(flags.source)
    assert ours["probe-addr"] == flags.value["probe-addr"], str(flags.source)
    assert ours["enable-leader-election"] == "true", str(flags.source)
    wd = CONTROLLER["working-dir"]
    assert service.working_dir == wd.value, str(wd.source)


def test_controller_environment(out):
    env = _service(out, controller.CONTAINER, controller.SERVICE).environment
    read = CONTROLLER["environment-read"]
    assert set(env) <= set(read.value), f"variables it reads: {read.source}"
    deployed = CONTROLLER["environment"]
    for name in deployed.value:
        if name in ("CULL_IDLE_TIME", "IDLENESS_CHECK_PERIOD"):
            continue  # only with culling on (its own test)
        assert name in env, f"{name}: {deployed.source}"
    values = CONTROLLER["environment-values"]
    for name, value in values.value.items():
        assert env[name] == value, f"{name}: {values.source}"
    gateway = CONTROLLER["istio-gateway"]
    namespace, _, name = env["ISTIO_GATEWAY"].partition("/")
    assert (namespace, name) == (MODEL, gateway.value.partition("/")[2]), str(gateway.source)


def test_controller_culls_in_minutes():
    unit = CONTROLLER["culling-time-unit"]
    assert unit.value == "minutes"
    layer = controller.pebble_layer(namespace=MODEL, culling_idle_minutes=30)
    env = layer["services"][controller.SERVICE]["environment"]
    assert env["ENABLE_CULLING"] == "true", str(unit.source)
    assert env["CULL_IDLE_TIME"] == "30", str(unit.source)
    assert int(env["IDLENESS_CHECK_PERIOD"]) >= 1, str(unit.source)


def test_controller_ready_check(out):
    check = out.get_container(controller.CONTAINER).plan.checks[controller.READY_CHECK]
    ready = CONTROLLER["ready-endpoint"]
    want = f"http://localhost:{ready.value['port']}{ready.value['path']}"
    assert check.http == {"url": want}, str(ready.source)
    health = CONTROLLER["health-endpoint"]
    assert health.value["port"] == ready.value["port"], str(health.source)


def test_controller_rbac(out, kube):
    allowed = _allowed(kube.get("ClusterRole", f"kubeflow-notebooks-{MODEL}"))
    for fact in (CONTROLLER["rbac"], CONTROLLER["rbac-leader-election"], WEB_APP["rbac"]):
        for rule in fact.value:
            for verb in rule["verbs"]:
                need = (rule["apiGroup"], rule["resource"], verb)
                assert need in allowed, f"{need}: {fact.source}"


def test_controller_may_hold_both_locks_its_election_takes(out, kube):
    allowed = _allowed(kube.get("ClusterRole", f"kubeflow-notebooks-{MODEL}"))
    lock = CONTROLLER["leader-election-lock"]
    groups = {"configmaps": "", "leases": "coordination.k8s.io"}
    for resource in lock.value:
        for verb in ("get", "create", "update"):
            assert (groups[resource], resource, verb) in allowed, f"{resource}: {lock.source}"


def test_notebook_crd(out, kube):
    crd_fact = CONTROLLER["crd"]
    crd = kube.get("CustomResourceDefinition", crd_fact.value["name"])
    assert crd is not None, str(crd_fact.source)
    spec = crd["spec"]
    assert spec["group"] == crd_fact.value["group"], str(crd_fact.source)
    assert spec["scope"] == crd_fact.value["scope"], str(crd_fact.source)
    for key in ("kind", "listKind", "plural", "singular"):
        assert spec["names"][key] == crd_fact.value[key], f"{key}: {crd_fact.source}"
    versions = CONTROLLER["crd-versions"]
    ours = {v["name"]: {"served": v["served"], "storage": v["storage"]} for v in spec["versions"]}
    assert ours == versions.value, str(versions.source)
    status_fields = CONTROLLER["crd-status-fields"]
    for version in spec["versions"]:
        assert version["subresources"] == {"status": {}}, str(versions.source)
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        # An open status keeps every field the controller writes.
        kept = status.get("x-kubernetes-preserve-unknown-fields") or set(
            status_fields.value
        ) <= set(status.get("properties", {}))
        assert kept, str(status_fields.source)
    api = WEB_APP["notebook-api-version"]
    group, _, version = api.value.partition("/")
    assert group == spec["group"] and ours[version]["served"], str(api.source)


@pytest.mark.parametrize("workload", ["notebook-controller", "jupyter-web-app"])
def test_user_roles(out, kube, workload):
    roles = FACTS[workload]["user-roles"]
    for name, want in roles.value.items():
        role = kube.get("ClusterRole", name)
        assert role is not None, f"{name}: {roles.source}"
        key = f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{want['aggregate-to']}"
        assert role["metadata"]["labels"][key] == "true", f"{name}: {roles.source}"
        assert _rules(role) == want["rules"], f"{name}: {roles.source}"


# --- the Jupyter web app ------------------------------------------------------------------------


def test_web_app_command_and_working_dir(out):
    service = _service(out, web_app.CONTAINER, web_app.SERVICE)
    command, wd = WEB_APP["command"], WEB_APP["working-dir"]
    assert service.command == command.value, str(command.source)
    assert service.working_dir == wd.value, str(wd.source)
    port = WEB_APP["port"]
    assert f"--bind 0.0.0.0:{port.value}" in service.command, str(port.source)
    assert web_app.PORT == port.value, str(port.source)


def test_web_app_environment(out):
    env = _service(out, web_app.CONTAINER, web_app.SERVICE).environment
    read = WEB_APP["environment-read"]
    # CHARM_CONFIG_HASH is ours: it changes the plan when the spawner config does.
    assert set(env) - {"CHARM_CONFIG_HASH"} <= set(read.value), str(read.source)
    values = WEB_APP["environment-values"]
    for name, value in values.value.items():
        assert env[name] == value, f"{name}: {values.source}"
    route = WEB_APP["route"]
    assert env["APP_PREFIX"] + "/" == route.value["prefix"], str(route.source)


def test_web_app_reads_the_spawner_config_we_write(ctx, out):
    config = WEB_APP["config-file"]
    assert web_app.CONFIG_FILE == config.value, str(config.source)
    assert "spawnerFormDefaults" in yaml.safe_load(spawner_file(ctx, out)), str(config.source)


def test_web_app_ready_check(out):
    check = out.get_container(web_app.CONTAINER).plan.checks[web_app.READY_CHECK]
    ready = WEB_APP["ready-endpoint"]
    want = f"http://localhost:{ready.value['port']}{ready.value['path']}"
    assert check.http == {"url": want}, str(ready.source)
