"""resource-dispatcher against Kubeflow 1.10.0's PodDefault webhook, and its kubectl image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import CHARMS
from conformance import facts
from ops import testing
from unit.resource_dispatcher.helpers import (
    CHARM,
    CLUSTER_CA,
    MODEL,
    containers,
    namespace_watch,
    state,
    watch_mount,
    watch_token,
    webhook,
)

FACTS = facts.load("resource-dispatcher")
WEBHOOK = FACTS["poddefaults-webhook"]
WATCH = FACTS["namespace-watch"]
JUJU = FACTS["juju"]
META = yaml.safe_load((CHARMS / "resource-dispatcher" / "charmcraft.yaml").read_text())
BUNDLE = yaml.safe_load((CHARMS.parent / "bundle" / "bundle.yaml").read_text())


@pytest.fixture(autouse=True)
def cluster_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster CA where the charm container reads it (its own token volume)."""
    path = tmp_path / "ca.crt"
    path.write_text(CLUSTER_CA)
    monkeypatch.setattr(watch_token, "CHARM_CA", path)


@pytest.fixture
def out(kube) -> testing.State:
    """The leader after its first hook."""
    ctx = testing.Context(CHARM.ResourceDispatcherCharm)
    return ctx.run(ctx.on.config_changed(), state())


def _hook(kube: FakeKubernetes) -> dict[str, Any]:
    (config,) = kube.of_kind("MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    return hook


def _flags(command: str) -> dict[str, str]:
    return {
        name: value
        for name, _, value in (w.lstrip("-").partition("=") for w in command.split()[1:])
    }


# --- images ---------------------------------------------------------------------------------


def test_webhook_image_is_the_published_one():
    image, published = WEBHOOK["image"], WEBHOOK["image-published-as"]
    upstream = META["resources"]["poddefaults-webhook-image"]["upstream-source"]
    assert upstream == image.value, str(image.source)
    assert upstream.rpartition(":")[0] == published.value, str(published.source)


def test_kubectl_image_is_one_kubeflow_names():
    image = WATCH["image"]
    upstream = META["resources"]["kubectl-image"]["upstream-source"]
    assert upstream == image.value, str(image.source)


# --- the webhook's process ------------------------------------------------------------------


def test_webhook_command_flags_and_files(out):
    service = out.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE]
    command, wd = WEBHOOK["command"], WEBHOOK["working-dir"]
    assert service.command.split()[0] == command.value, str(command.source)
    assert service.working_dir == wd.value, str(wd.source)
    flags = _flags(service.command)
    known = WEBHOOK["flags"]
    assert set(flags) <= set(known.value), str(known.source)
    files = WEBHOOK["certificate-files"]
    for flag, path in files.value.items():
        assert flags[flag] == path, f"{flag}: {files.source}"
    port = WEBHOOK["port"]
    assert int(flags.get("webhookPort", port.value)) == port.value, str(port.source)
    assert webhook.PORT == port.value, str(port.source)


def test_webhook_ready_check_is_on_its_port(out):
    check = out.get_container(webhook.CONTAINER).plan.checks[webhook.READY_CHECK]
    port = WEBHOOK["port"]
    assert check.tcp == {"port": port.value}, str(port.source)


# --- the webhook configuration and its Service ---------------------------------------------------


def test_the_api_server_sends_a_review_the_webhook_answers(out, kube):
    hook = _hook(kube)
    versions = WEBHOOK["admission-review-versions"]
    assert hook["admissionReviewVersions"] == versions.value, str(versions.source)
    # The API server sends the first version it knows, and checks apiVersion/kind on
    # answers to those versions only: the webhook's answers have none.
    picked = WEBHOOK["apiserver-review-version"]
    checked = WEBHOOK["apiserver-checks-type-meta"]
    answer = WEBHOOK["answer-has-type-meta"]
    sent = next(v for v in hook["admissionReviewVersions"] if v in ("v1", "v1beta1"))
    assert answer.value or sent not in checked.value, (
        f"{picked.source}; {checked.source}; {answer.source}"
    )


def test_webhook_configuration(out, kube):
    hook = _hook(kube)
    want = WEBHOOK["webhook"]
    for key, value in want.value.items():
        assert hook[key] == value, f"{key}: {want.source}"
    path = WEBHOOK["path"]
    assert hook["clientConfig"]["service"]["path"] == path.value, str(path.source)
    assert hook["clientConfig"]["service"]["namespace"] == MODEL
    label = WATCH["profile-namespace-label"]
    assert hook["namespaceSelector"] == {"matchLabels": label.value}, str(label.source)
    reinvocation = WEBHOOK["reinvocation"]
    assert hook.get("reinvocationPolicy", "Never") == "Never", str(reinvocation.source)


def test_webhook_service(out, kube):
    hook = _hook(kube)
    service = hook["clientConfig"]["service"]
    svc = kube.get("Service", service["name"], service["namespace"])
    assert svc is not None
    (port,) = svc["spec"]["ports"]
    want_port, target = WEBHOOK["service-port"], WEBHOOK["port"]
    assert port["port"] == want_port.value == service["port"], str(want_port.source)
    assert port["targetPort"] == target.value, str(target.source)


# --- the PodDefault kind ---------------------------------------------------------------------


def test_pod_default_crd(out, kube):
    crd_fact = WEBHOOK["crd"]
    crd = kube.get("CustomResourceDefinition", crd_fact.value["name"])
    assert crd is not None, str(crd_fact.source)
    spec = crd["spec"]
    assert spec["group"] == crd_fact.value["group"], str(crd_fact.source)
    assert spec["scope"] == crd_fact.value["scope"], str(crd_fact.source)
    for key in ("kind", "listKind", "plural", "singular"):
        assert spec["names"][key] == crd_fact.value[key], f"{key}: {crd_fact.source}"
    assert [v["name"] for v in spec["versions"] if v["served"]] == crd_fact.value["versions"]
    (version,) = spec["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = WEBHOOK["crd-spec-fields"]
    # Fields the schema does not name are dropped by the API server.
    assert set(schema["properties"]) == set(fields.value), str(fields.source)
    required = WEBHOOK["crd-spec-required"]
    assert schema["required"] == required.value, str(required.source)
    # The dispatcher's PodDefaults are of the version the CRD serves.
    pod_defaults = [k for k in CHARM.DISPATCHED_KINDS if k.kind == "PodDefault"]
    assert [k.api_version for k in pod_defaults] == [f"{spec['group']}/v1alpha1"]


def test_user_roles(out, kube):
    roles = WEBHOOK["user-roles"]
    for name, want in roles.value.items():
        role = kube.get("ClusterRole", name)
        assert role is not None, f"{name}: {roles.source}"
        key = f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{want['aggregate-to']}"
        assert role["metadata"]["labels"][key] == "true", f"{name}: {roles.source}"
        rules = [{"resources": r["resources"], "verbs": r["verbs"]} for r in role["rules"]]
        assert rules == want["rules"], f"{name}: {roles.source}"


# --- the namespace watch ---------------------------------------------------------------------


def test_watch_runs_kubectl_under_the_image_shell(out):
    service = out.get_container(namespace_watch.CONTAINER).plan.services[namespace_watch.SERVICE]
    shell, kubectl = WATCH["shell"], WATCH["kubectl"]
    assert service.command.startswith(f"{shell.value} -c "), str(shell.source)
    # kubectl is found on the PATH (/usr/bin).
    script = namespace_watch.script()
    assert script.startswith("kubectl "), str(kubectl.source)
    assert kubectl.value.rpartition("/")[0] == "/usr/bin", str(kubectl.source)
    label = WATCH["profile-namespace-label"]
    ((key, value),) = label.value.items()
    assert f"-l {key}={value}" in script, str(label.source)


# --- the watch's token: never the pod's ------------------------------------------------------


def test_watch_storage_is_mounted_where_the_pod_token_would_go():
    directory = WATCH["pod-token-directory"]
    skipped = WATCH["pod-token-skipped-where-mounted"]
    assert watch_token.TOKEN_DIR == directory.value, str(directory.source)
    mounts = META["containers"][namespace_watch.CONTAINER]["mounts"]
    # A volume mounted there keeps the pod's token out of this container.
    assert {"storage": watch_token.STORAGE, "location": directory.value} in mounts, (
        f"{directory.source}; {skipped.source}"
    )
    # Juju mounts a storage in a workload container only where its `mounts` say, and in the
    # charm container at the storage's own location: the charm keeps the pod's token.
    placement = JUJU["workload-container-storage-mounts"]
    storage = META["storage"][watch_token.STORAGE]
    assert storage.get("location") != directory.value, str(placement.source)
    others = [c for name, c in META["containers"].items() if name != namespace_watch.CONTAINER]
    assert not [c for c in others if c.get("mounts")], str(placement.source)
    # Juju itself mounts nothing of its own at the token directory.
    own = JUJU["workload-container-juju-mounts"]
    assert not [m for m in own.value if m.startswith("/var/run/secrets")], str(own.source)


def test_watch_token_files_are_those_kubectl_reads(kube):
    names = WATCH["in-cluster-files"]
    needs_token = WATCH["in-cluster-needs-token-file"]
    mount = watch_mount()
    ctx = testing.Context(CHARM.ResourceDispatcherCharm)
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(mount=mount)))
    source = Path(mount.source)
    assert sorted(p.name for p in source.iterdir()) == sorted(names.value.values()), str(
        names.source
    )
    assert (source / names.value["token"]).read_text(), str(needs_token.source)
    assert (source / names.value["namespace"]).read_text() == MODEL, str(names.source)
    assert (source / names.value["ca"]).read_text() == CLUSTER_CA, str(names.source)
    watch = out.get_container(namespace_watch.CONTAINER)
    assert watch.service_statuses[namespace_watch.SERVICE].value == "active"


def test_watch_token_belongs_to_the_image_user():
    user = WATCH["image-user"]
    assert watch_token.OWNER == user.value, str(user.source)
    # The charm does not run the container as another user.
    assert "uid" not in META["containers"][namespace_watch.CONTAINER], str(user.source)


def test_bundle_keeps_the_watch_credentials_in_an_emptydir():
    providers = JUJU["emptydir-storage-providers"]
    directive = BUNDLE["applications"]["resource-dispatcher"]["storage"][watch_token.STORAGE]
    pool = next(part for part in directive.split(",") if not part[0].isdigit())
    assert pool in providers.value, str(providers.source)
