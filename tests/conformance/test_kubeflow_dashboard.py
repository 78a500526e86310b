"""kubeflow-dashboard against Kubeflow v1.10.0: what the charm renders, fact by fact.

The charm runs under ops.testing against the fake cluster, as in its unit
tests, with istio's gateway-metadata related: the Pebble plans, the file
the profile controller reads and the objects the leader applies are the
charm's own. Each assertion names the fact and where it was read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from charm_loader import charm_dir
from conformance import facts
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    APP,
    CHARM,
    GATEWAY_ACCOUNT,
    ISTIO_MODEL,
    MODEL,
    istio_authorization_policy_crd,
    namespace,
    route_relation,
    services,
    settle,
    state,
)

FACTS = facts.load("kubeflow-dashboard")
ROOT = Path(__file__).resolve().parents[2]
# What "*" stands for in the upstream markers, as far as a controller uses it.
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def fact(workload: str, name: str) -> facts.Fact:
    return FACTS[workload][name]


def why(workload: str, name: str) -> str:
    return f"{workload}.{name} ({fact(workload, name).source})"


@pytest.fixture(scope="module")
def rendered() -> Iterator[tuple[testing.State, FakeKubernetes, testing.Context]]:
    """The charm settled in model `kubeflow`, istio's gateway in its own namespace."""
    with routed_lightkube(FakeKubernetes()) as kube:
        ctx = testing.Context(CHARM.KubeflowDashboardCharm, app_name=APP)
        out = settle(ctx, state())
        assert out.unit_status.name == "active", out.unit_status
        yield out, kube, ctx
        assert kube.rejected == []


def _service(out: testing.State, container: str) -> Any:
    return out.get_container(container).plan.services[container]


def _check_url(out: testing.State, container: str) -> str:
    check = out.get_container(container).plan.checks[services.check_name(container)]
    assert check.http is not None
    return check.http["url"]


def _flags(command: str) -> dict[str, str | None]:
    """-name=value (or a bare -name) from a command line; the binary left out."""
    found: dict[str, str | None] = {}
    for word in command.split()[1:]:
        name, _, value = word.lstrip("-").partition("=")
        found[name] = value if value else None
    return found


def _grants(rules: list[dict[str, Any]], *, named: bool = False) -> set[tuple[str, str, str]]:
    """(group, resource, verb) a list of rules grants; rules limited to names only if `named`."""
    out = set()
    for rule in rules:
        if rule.get("resourceNames") and not named:
            continue
        verbs = ALL_VERBS if rule["verbs"] == ["*"] else rule["verbs"]
        out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in verbs}
    return out


def _our_cluster_role(kube: FakeKubernetes) -> dict[str, Any]:
    role = kube.get("ClusterRole", f"{APP}-{MODEL}")
    assert role is not None
    return role


def _resources() -> dict[str, str]:
    meta = yaml.safe_load((charm_dir("kubeflow-dashboard") / "charmcraft.yaml").read_text())
    return {
        name: meta["resources"][spec["resource"]]["upstream-source"]
        for name, spec in meta["containers"].items()
    }


# --- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["dashboard", "profile-controller", "kfam"])
def test_images_are_the_releases(container):
    image = fact(container, "image").value
    assert _resources()[container] == image, why(container, "image")
    bundle = yaml.safe_load((ROOT / "bundle" / "bundle.yaml").read_text())
    resources = bundle["applications"][APP]["resources"]
    assert resources[f"{container}-image"] == image, why(container, "image")


# --- central dashboard ---------------------------------------------------------------------


def test_dashboard_runs_as_its_image_does(rendered):
    out, _, _ = rendered
    service = _service(out, "dashboard")
    assert service.working_dir == fact("dashboard", "working-dir").value, why(
        "dashboard", "working-dir"
    )
    assert service.user == fact("dashboard", "user").value, why("dashboard", "user")
    assert service.command == fact("dashboard", "command").value, why("dashboard", "command")


def test_dashboard_port_and_health(rendered):
    out, _, _ = rendered
    port = fact("dashboard", "port").value
    assert services.DASHBOARD_PORT == port, why("dashboard", "port")
    assert testing.TCPPort(port) in out.opened_ports, why("dashboard", "port")
    health = fact("dashboard", "health").value
    assert _check_url(out, "dashboard") == f"http://localhost:{health['port']}{health['path']}", (
        why("dashboard", "health")
    )


def test_dashboard_environment(rendered):
    out, _, _ = rendered
    env = _service(out, "dashboard").environment
    for name in ("env", "env-kubernetes"):
        for variable in fact("dashboard", name).value:
            assert variable in env, f"{variable}: {why('dashboard', name)}"
    # KFAM in the same pod, where the dashboard looks for it.
    kfam_url = fact("dashboard", "kfam-url").value
    assert env["PROFILES_KFAM_SERVICE_HOST"] == "localhost"
    assert env["PROFILES_KFAM_SERVICE_PORT"] == str(kfam_url["port"]), why("dashboard", "kfam-url")
    assert fact("kfam", "port").value == kfam_url["port"], why("kfam", "port")
    assert env["LOGOUT_URL"] == fact("dashboard", "logout-url").value, why(
        "dashboard", "logout-url"
    )
    assert env["POD_NAMESPACE"] == MODEL


def test_dashboard_configmap(rendered):
    out, kube, _ = rendered
    env = _service(out, "dashboard").environment
    configmap = kube.get("ConfigMap", env["DASHBOARD_CONFIGMAP"], env["POD_NAMESPACE"])
    assert configmap is not None, why("dashboard", "env-kubernetes")
    assert set(configmap["data"]) == set(fact("dashboard", "configmap-keys").value), why(
        "dashboard", "configmap-keys"
    )


@pytest.mark.parametrize("workload", ["dashboard", "profile-controller", "kfam"])
def test_rbac_covers_what_each_workload_calls(rendered, workload):
    # All three run as the application's service account in one pod.
    _, kube, _ = rendered
    ours = _grants(_our_cluster_role(kube)["rules"])
    for wanted in sorted(_grants(fact(workload, "rbac").value)):
        assert wanted in ours, f"{wanted}: {why(workload, 'rbac')}"


# --- profile controller --------------------------------------------------------------------


def test_profile_controller_runs_as_its_image_does(rendered):
    out, _, _ = rendered
    service = _service(out, "profile-controller")
    w = "profile-controller"
    assert service.working_dir == fact(w, "working-dir").value, why(w, "working-dir")
    assert service.user_id == fact(w, "user-id").value, why(w, "user-id")
    assert service.command.split()[0] == fact(w, "command").value, why(w, "command")


def test_profile_controller_flags(rendered):
    out, _, ctx = rendered
    w = "profile-controller"
    flags = _flags(_service(out, w).command)
    assert set(flags) <= set(fact(w, "flags").value), why(w, "flags")
    assert set(fact(w, "flags-passed").value) <= set(flags), why(w, "flags-passed")
    path = fact(w, "namespace-labels-path").value
    assert flags["namespace-labels-path"] == path, why(w, "namespace-labels-path")
    # The file as the charm pushes it (a Context keeps a container's files for one run).
    pushed = ctx.run(ctx.on.config_changed(), state())
    written = pushed.get_container(w).get_filesystem(ctx) / path.lstrip("/")
    labels = yaml.safe_load(written.read_text())
    assert fact(w, "namespace-labels").value.items() <= labels.items(), why(w, "namespace-labels")


def test_profile_controller_ports_and_health(rendered):
    out, _, _ = rendered
    w = "profile-controller"
    assert services.CONTROLLER_METRICS_PORT == fact(w, "metrics-port").value, why(
        w, "metrics-port"
    )
    health = fact(w, "health").value
    assert _check_url(out, w) == f"http://localhost:{health['port']}{health['path']}", why(
        w, "health"
    )
    # Nothing else in the pod listens where the manager does.
    taken = {services.DASHBOARD_PORT, services.KFAM_PORT}
    assert not {health["port"], fact(w, "metrics-port").value} & taken


def test_profile_controller_environment_names_our_gateway(rendered):
    out, _, _ = rendered
    w = "profile-controller"
    env = _service(out, w).environment
    for variable in fact(w, "env").value:
        assert variable in env, f"{variable}: {why(w, 'env')}"
    default = fact(w, "gateway-principal-default").value
    shape = re.compile(r"^(?P<domain>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
    trust_domain = shape.match(default)
    assert trust_domain is not None, why(w, "gateway-principal-default")
    for variable in fact(w, "env").value:
        ours = shape.match(env[variable])
        assert ours is not None, f"{variable}: {why(w, 'gateway-principal-default')}"
        assert ours["domain"] == trust_domain["domain"], why(w, "gateway-principal-default")
    gateway = env["ISTIO_INGRESS_GATEWAY_PRINCIPAL"]
    assert gateway == f"cluster.local/ns/{ISTIO_MODEL}/sa/{GATEWAY_ACCOUNT}"
    assert gateway != default, why(w, "gateway-principal-default")


def test_owner_policy_trusts_the_header_only_from_the_gateway_and_pipelines_ui(rendered):
    out, _, _ = rendered
    w = "profile-controller"
    env = _service(out, w).environment
    wanted = fact(w, "owner-policy").value["header-rule-principals"]
    # The identities the owner's header is trusted from are the gateway's, as istio names it,
    # and the pipelines UI's: set, and not a wildcard.
    principals = [env[variable] for variable in wanted]
    assert principals == [
        f"cluster.local/ns/{ISTIO_MODEL}/sa/{GATEWAY_ACCOUNT}",
        f"cluster.local/ns/{MODEL}/sa/kfp",
    ], why(w, "owner-policy")
    assert not any("*" in p for p in principals), why(w, "owner-policy")


def test_profile_controller_elects_a_leader_it_may_hold(rendered):
    out, kube, _ = rendered
    w = "profile-controller"
    flags = _flags(_service(out, w).command)
    assert "leader-elect" in flags and flags["leader-elect"] is None, why(w, "flags")
    # The release ignores -leader-election-namespace: the Lease is in the pod's namespace.
    assert "leader-election-namespace" not in flags, why(w, "leader-election-namespace")
    namespace_ = MODEL
    lock = fact(w, "leader-election-lock").value
    lease = fact(w, "leader-election-id").value
    assert services.LEADER_ELECTION_ID == lease, why(w, "leader-election-id")
    role = kube.get("Role", f"{APP}-leader-election", namespace_)
    assert role is not None, why(w, "leader-election-lock")
    assert (lock["apiGroup"], lock["resource"], "create") in _grants(role["rules"])
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            assert rule["resourceNames"] == [lease], why(w, "leader-election-id")
    held = _grants(role["rules"], named=True)
    for verb in ("get", "update"):
        assert (lock["apiGroup"], lock["resource"], verb) in held, why(w, "leader-election-lock")


def test_profile_controller_may_write_quotas_and_bind_the_roles(rendered):
    _, kube, _ = rendered
    w = "profile-controller"
    role = _our_cluster_role(kube)
    ours = _grants(role["rules"])
    for verb in ("create", "update", "delete"):
        assert ("", "resourcequotas", verb) in ours, why(w, "writes-resourcequotas")
    bind = [r for r in role["rules"] if r["verbs"] == ["bind"]]
    assert bind, why(w, "binds-roles")
    assert set(fact(w, "binds-roles").value) <= set(bind[0]["resourceNames"]), why(
        w, "binds-roles"
    )


# --- KFAM ------------------------------------------------------------------------------------


def test_kfam_runs_as_its_image_does(rendered):
    out, _, _ = rendered
    service = _service(out, "kfam")
    assert service.working_dir == fact("kfam", "working-dir").value, why("kfam", "working-dir")
    assert service.user_id == fact("kfam", "user-id").value, why("kfam", "user-id")
    assert service.command.split()[0] == fact("kfam", "command").value, why("kfam", "command")
    assert set(_flags(service.command)) <= set(fact("kfam", "flags").value), why("kfam", "flags")


def test_kfam_port_health_and_environment(rendered):
    out, _, _ = rendered
    assert services.KFAM_PORT == fact("kfam", "port").value, why("kfam", "port")
    health = fact("kfam", "health").value
    assert _check_url(out, "kfam") == f"http://localhost:{health['port']}{health['path']}", why(
        "kfam", "health"
    )
    env = _service(out, "kfam").environment
    for variable in fact("kfam", "env").value:
        assert variable in env, f"{variable}: {why('kfam', 'env')}"
    controller = _service(out, "profile-controller").environment
    for variable in fact("kfam", "env").value:  # the same identities for both
        assert env[variable] == controller[variable], why("kfam", "env")


def test_a_contributor_is_what_kfam_would_make(rendered):
    out, kube, ctx = rendered
    from lightkube.generic_resource import create_global_resource
    from lightkube.models.meta_v1 import ObjectMeta

    istio_authorization_policy_crd(kube)
    profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
    kube.client().create(
        profile(metadata=ObjectMeta(name="team"), spec={"owner": {"kind": "User", "name": "a@b"}})
    )
    namespace(kube, "team")
    example = fact("kfam", "binding-name").value
    ctx.run(
        ctx.on.action(
            "add-contributor",
            params={"profile": "team", "user": example["user"], "role": example["role"]},
        ),
        out,
    )
    name = ctx.action_results["binding"]
    assert name == example["name"], why("kfam", "binding-name")
    binding = kube.get("RoleBinding", name, "team")
    assert binding is not None, why("kfam", "binding-name")
    annotations = fact("kfam", "binding-annotations").value
    assert binding["metadata"]["annotations"] == annotations, why("kfam", "binding-annotations")
    assert binding["roleRef"]["name"] == fact("kfam", "binding-role").value, why(
        "kfam", "binding-role"
    )
    policy = kube.get("AuthorizationPolicy", name, "team")
    assert policy is not None, why("kfam", "policy")
    env = _service(out, "kfam").environment
    wanted = fact("kfam", "policy").value
    header = _service(out, "dashboard").environment["USERID_HEADER"]
    (rule,) = policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"principals": [env[p] for p in wanted["principals"]]}}], (
        why("kfam", "policy")
    )
    assert rule["when"][0]["key"] == wanted["key"].format(userid_header=header), why(
        "kfam", "policy"
    )


def _annotated(kube: FakeKubernetes, kind: str, name: str, ns: str, user: str, role: str) -> None:
    """A RoleBinding or AuthorizationPolicy annotated as KFAM and the profile controller do."""
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    metadata = {"name": name, "namespace": ns, "annotations": {"user": user, "role": role}}
    if kind == "RoleBinding":
        obj: Any = RoleBinding.from_dict(
            {
                "metadata": metadata,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"kubeflow-{role}",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    else:
        policy = create_namespaced_resource(
            "security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"
        )
        obj = policy.from_dict(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": metadata,
                "spec": {"rules": [{"when": [{"key": "request.headers[x]", "values": [user]}]}]},
            }
        )
    kube.client().create(obj)


def test_a_contributor_is_removed_as_kfam_lists_them(rendered):
    out, kube, ctx = rendered
    from lightkube.generic_resource import create_global_resource
    from lightkube.models.meta_v1 import ObjectMeta

    istio_authorization_policy_crd(kube)
    profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
    owner, user, ns = "owner@example.com", "member@example.com", "shared"
    kube.client().create(
        profile(metadata=ObjectMeta(name=ns), spec={"owner": {"kind": "User", "name": owner}})
    )
    namespace(kube, ns)
    objects = fact("kfam", "owner-objects").value
    _annotated(kube, "RoleBinding", objects["binding"], ns, owner, objects["role"])
    _annotated(kube, "AuthorizationPolicy", objects["policy"], ns, owner, objects["role"])
    prefixed = dataclasses.replace(
        out, relations=set(out.relations) | {route_relation(user_prefix="oidc:")}
    )
    ctx.run(
        ctx.on.action("add-contributor", params={"profile": ns, "user": user, "role": "edit"}),
        prefixed,
    )
    policy = kube.get("AuthorizationPolicy", ctx.action_results["binding"], ns)
    assert policy is not None
    assert fact("kfam", "policy-annotations").value == "bare-user"
    assert policy["metadata"]["annotations"]["user"] == user, why("kfam", "policy-annotations")
    # A binding of every role KFAM lists, under names of its own.
    for role in fact("kfam", "lists-bindings-by").value["roles"]:
        _annotated(kube, "RoleBinding", f"by-hand-{role}", ns, user, role)
    ctx.run(ctx.on.action("remove-contributor", params={"profile": ns, "user": user}), out)
    left = {
        (o["kind"], o["metadata"]["name"])
        for kind in ("RoleBinding", "AuthorizationPolicy")
        for o in kube.of_kind(kind)
        if o["metadata"]["namespace"] == ns
    }
    assert left == {
        ("RoleBinding", objects["binding"]),
        ("AuthorizationPolicy", objects["policy"]),
    }, why("kfam", "lists-bindings-by")


@pytest.mark.parametrize("pattern", fact("kfam", "policy-wildcards").value)
def test_no_user_id_is_a_mesh_wildcard(rendered, pattern):
    out, kube, ctx = rendered
    user = pattern.replace("abc", "member@example.com")
    before = {k: repr(v.body) for k, v in kube.objects.items()}
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(
            ctx.on.action(
                "add-contributor", params={"profile": "x", "user": user, "role": "edit"}
            ),
            out,
        )
    assert "'*' is a wildcard" in failed.value.message, why("kfam", "policy-wildcards")
    assert {k: repr(v.body) for k, v in kube.objects.items()} == before


# --- the Profile CRD -------------------------------------------------------------------------


def _crd(kube: FakeKubernetes) -> dict[str, Any]:
    crd = kube.get("CustomResourceDefinition", "profiles.kubeflow.org")
    assert crd is not None
    return crd


def test_profile_crd_names(rendered):
    _, kube, _ = rendered
    spec = _crd(kube)["spec"]
    names = fact("profile-crd", "names").value
    assert spec["group"] == names["group"], why("profile-crd", "names")
    assert spec["scope"] == names["scope"], why("profile-crd", "names")
    for key in ("kind", "listKind", "plural", "singular"):
        assert spec["names"][key] == names[key], why("profile-crd", "names")


def test_profile_crd_versions(rendered):
    _, kube, _ = rendered
    versions = _crd(kube)["spec"]["versions"]
    served = [{k: v[k] for k in ("name", "served", "storage")} for v in versions]
    assert served == fact("profile-crd", "versions").value, why("profile-crd", "versions")
    # KFAM reads and writes Profiles at its own version.
    group, version = fact("kfam", "profile-version").value.split("/")
    assert group == _crd(kube)["spec"]["group"]
    assert version in {v["name"] for v in versions if v["served"]}, why("kfam", "profile-version")


def test_profile_crd_schema(rendered):
    _, kube, _ = rendered
    for version in _crd(kube)["spec"]["versions"]:
        assert ("status" in version.get("subresources", {})) is fact(
            "profile-crd", "status-subresource"
        ).value, why("profile-crd", "status-subresource")
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        assert set(fact("profile-crd", "spec-fields").value) <= set(spec), why(
            "profile-crd", "spec-fields"
        )
        assert spec["owner"]["required"] == fact("profile-crd", "owner-required").value, why(
            "profile-crd", "owner-required"
        )


# --- Kubeflow's user roles -------------------------------------------------------------------


def test_aggregated_roles_are_kubeflows(rendered):
    _, kube, _ = rendered
    for name, wanted in fact("kubeflow-roles", "aggregation").value.items():
        role = kube.get("ClusterRole", name)
        assert role is not None, why("kubeflow-roles", "aggregation")
        selectors = role["aggregationRule"]["clusterRoleSelectors"]
        assert selectors == [{"matchLabels": {wanted["selects"]: "true"}}], why(
            "kubeflow-roles", "aggregation"
        )
        labels = {
            k: v
            for k, v in role["metadata"].get("labels", {}).items()
            if k.startswith("rbac.authorization.kubeflow.org/")
        }
        assert labels == wanted["labels"], why("kubeflow-roles", "aggregation")


@pytest.mark.parametrize(
    "name", ["kubeflow-kubernetes-admin", "kubeflow-kubernetes-edit", "kubeflow-kubernetes-view"]
)
def test_kubernetes_roles_grant_exactly_what_kubeflows_do(rendered, name):
    _, kube, _ = rendered
    role = kube.get("ClusterRole", name)
    assert role is not None, why("kubeflow-roles", name)
    wanted = fact("kubeflow-roles", name).value
    assert _grants(role["rules"]) == _grants(wanted["rules"]), why("kubeflow-roles", name)
    for label, value in wanted["labels"].items():
        assert role["metadata"]["labels"].get(label) == value, why("kubeflow-roles", name)
