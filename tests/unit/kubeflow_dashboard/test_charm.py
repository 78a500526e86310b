"""The kubeflow-dashboard charm: workloads, cluster objects, status, removal."""

from __future__ import annotations

import dataclasses

import ops
import pytest
import yaml
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    APP,
    CONTAINERS,
    MODEL,
    checks_up,
    containers,
    peer_data,
    route_relation,
    services,
    settle,
    state,
    with_relations,
)

from kubeflow_interfaces import istio_ingress_route


def _kinds(kube) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for stored in kube.objects.values():
        kinds.setdefault(stored.body["kind"], set()).add(stored.body["metadata"]["name"])
    return kinds


def test_first_start_runs_the_three_services_and_applies_every_object(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())

    for name in CONTAINERS:
        c = out.get_container(name)
        assert c.service_statuses[name] == ops.pebble.ServiceStatus.ACTIVE
        assert c.plan.checks[services.check_name(name)].level == ops.pebble.CheckLevel.READY
    assert kube.rejected == []
    assert _kinds(kube) == {
        "CustomResourceDefinition": {"profiles.kubeflow.org"},
        "ClusterRole": {
            f"{APP}-{MODEL}",
            "kubeflow-admin",
            "kubeflow-edit",
            "kubeflow-view",
            "kubeflow-kubernetes-admin",
            "kubeflow-kubernetes-edit",
            "kubeflow-kubernetes-view",
        },
        "ClusterRoleBinding": {f"{APP}-{MODEL}"},
        "ConfigMap": {f"{APP}-config"},
    }
    for stored in kube.objects.values():
        labels = stored.body["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == f"{MODEL}-{APP}"
    assert peer_data(out)["manifest-hash"]
    assert out.opened_ports == {testing.TCPPort(8082)}


def test_dashboard_service(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    service = out.get_container("dashboard").plan.services["dashboard"]
    assert service.command == "npm start"
    assert service.working_dir == "/app"
    assert service.environment == {
        "USERID_HEADER": "kubeflow-userid",
        "USERID_PREFIX": "",
        "PROFILES_KFAM_SERVICE_HOST": "localhost",
        "PROFILES_KFAM_SERVICE_PORT": "8081",
        "REGISTRATION_FLOW": "false",
        "DASHBOARD_CONFIGMAP": f"{APP}-config",
        "POD_NAMESPACE": MODEL,
        "LOGOUT_URL": "/oauth2/sign_out",
    }
    check = out.get_container("dashboard").plan.checks["dashboard-ready"]
    assert check.http == {"url": "http://localhost:8082/healthz"}


def test_profile_controller_and_kfam_services(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    controller = out.get_container("profile-controller")
    command = controller.plan.services["profile-controller"].command
    assert command.split() == [
        "/manager",
        "-userid-header=kubeflow-userid",
        "-userid-prefix=''",
        "-workload-identity=''",
        "-namespace-labels-path=/etc/profile-controller/namespace-labels.yaml",
    ]
    labels = yaml.safe_load(
        (
            controller.get_filesystem(ctx) / "etc/profile-controller/namespace-labels.yaml"
        ).read_text()
    )
    assert labels["istio-injection"] == "enabled"
    assert labels["app.kubernetes.io/part-of"] == "kubeflow-profile"
    kfam = out.get_container("kfam").plan
    assert kfam.services["kfam"].command.split() == [
        "/access-management",
        "-userid-header=kubeflow-userid",
        "-userid-prefix=''",
    ]
    assert kfam.checks["kfam-ready"].http == {"url": "http://localhost:8081/kfam/metrics"}


def test_crd_serves_v1_and_validates_the_owner(ctx, kube):
    settle(ctx, state())
    (crd,) = kube.of_kind("CustomResourceDefinition")
    spec = crd["spec"]
    assert spec["scope"] == "Cluster"
    assert spec["names"]["kind"] == "Profile"
    assert [(v["name"], v["served"], v["storage"]) for v in spec["versions"]] == [
        ("v1", True, True),
        ("v1beta1", True, False),
    ]
    good = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "a"}}
    good["spec"] = {"owner": {"kind": "User", "name": "a@example.com"}}
    assert kube.validate(good) is None
    assert kube.validate({**good, "spec": {"owner": {"kind": "User"}}}) is not None
    assert kube.validate({**good, "spec": {"owner": {"kind": "User", "name": ""}}}) is not None
    owner = spec["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert owner["owner"]["properties"]["kind"]["enum"] == ["User", "Group", "ServiceAccount"]


def test_rbac_binds_the_apps_service_account_and_aggregates_roles(ctx, kube):
    settle(ctx, state())
    binding = kube.get("ClusterRoleBinding", f"{APP}-{MODEL}")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": APP, "namespace": MODEL}]
    assert binding["roleRef"]["name"] == f"{APP}-{MODEL}"
    role = kube.get("ClusterRole", f"{APP}-{MODEL}")
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    for wanted in [
        ("kubeflow.org", "profiles"),
        ("", "namespaces"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("security.istio.io", "authorizationpolicies"),
    ]:
        assert wanted in granted
    group = "rbac.authorization.kubeflow.org"
    for name, into in (("admin", None), ("edit", "admin"), ("view", "edit")):
        cr = kube.get("ClusterRole", f"kubeflow-{name}")
        selector = cr["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]
        assert selector == {f"{group}/aggregate-to-kubeflow-{name}": "true"}
        assert "rules" not in cr  # the aggregation controller owns them
        if into:
            assert cr["metadata"]["labels"][f"{group}/aggregate-to-kubeflow-{into}"] == "true"
        part = kube.get("ClusterRole", f"kubeflow-kubernetes-{name}")
        assert part["metadata"]["labels"][f"{group}/aggregate-to-kubeflow-{name}"] == "true"


def test_settled_hooks_write_nothing(ctx, kube):
    out = settle(ctx, state())
    writes = len(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert len(kube.writes) == writes
    assert again.relations == out.relations
    assert again.unit_status == ops.ActiveStatus("no route: serving on port 8082")


def test_upgrade_applies_again(ctx, kube):
    out = settle(ctx, state())
    writes = len(kube.writes)
    ctx.run(ctx.on.upgrade_charm(), out)
    assert len(kube.writes) > writes


def test_active_with_the_route_url(ctx, kube):
    out = settle(ctx, with_relations(state(), route_relation()))
    assert out.unit_status == ops.ActiveStatus("https://kf.example.com/")
    assert out.app_status == ops.ActiveStatus("https://kf.example.com/")


@pytest.mark.parametrize(("tls", "listener"), [(False, 80), (True, 443)])
def test_route_request_is_published(ctx, kube, tls, listener):
    relation = route_relation(tls_enabled=tls)
    out = ctx.run(ctx.on.relation_created(relation), with_relations(state(), relation))
    # What Canonical's kubeflow-dashboard charm asks for (canonical/
    # kubeflow-dashboard-operator src/charm.py, _ambient_mesh_ingress, at
    # 31b1d6b): "/" to the dashboard's port, on 80, or 443 with TLS.
    assert out.get_relation(relation.id).local_app_data == {
        "config": istio_ingress_route.config_json(
            model=MODEL, app=APP, prefix="/", port=8082, listener_port=listener
        )
    }


def test_user_header_from_the_route_reaches_all_three_services(ctx, kube):
    out = settle(ctx, with_relations(state(), route_relation()))
    (relation,) = [r for r in out.relations if r.endpoint == "istio-ingress-route"]
    header = dataclasses.replace(
        relation,
        remote_app_data={
            **relation.remote_app_data,
            "kubeflow_user_header": "x-auth-user",
            "kubeflow_user_prefix": "oidc:",
        },
    )
    changed = ctx.run(
        ctx.on.relation_changed(header),
        dataclasses.replace(out, relations=(out.relations - {relation}) | {header}),
    )
    env = changed.get_container("dashboard").plan.services["dashboard"].environment
    assert (env["USERID_HEADER"], env["USERID_PREFIX"]) == ("x-auth-user", "oidc:")
    for name in ("profile-controller", "kfam"):
        command = changed.get_container(name).plan.services[name].command.split()
        assert "-userid-header=x-auth-user" in command
        assert "-userid-prefix=oidc:" in command
        # The new header is in the service's plan: Pebble restarted it with it.
        assert (
            changed.get_container(name).service_statuses[name] == ops.pebble.ServiceStatus.ACTIVE
        )
    # The route gone, the default again.
    gone = ctx.run(ctx.on.relation_broken(header), changed)
    env = gone.get_container("dashboard").plan.services["dashboard"].environment
    assert (env["USERID_HEADER"], env["USERID_PREFIX"]) == ("kubeflow-userid", "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"kubeflow_user_header": "bad header"},
            "istio-ingress-route: kubeflow_user_header 'bad header' is not a header name",
        ),
        (
            {"external_host": "http://kf/"},
            "istio-ingress-route: external_host 'http://kf/' is not a host name or address",
        ),
    ],
)
def test_invalid_route_data_blocks_and_changes_nothing(ctx, kube, data, message):
    out = settle(ctx, with_relations(state(), route_relation()))
    writes = len(kube.writes)
    (relation,) = [r for r in out.relations if r.endpoint == "istio-ingress-route"]
    bad = dataclasses.replace(relation, remote_app_data={**relation.remote_app_data, **data})
    again = ctx.run(
        ctx.on.relation_changed(bad),
        dataclasses.replace(out, relations=(out.relations - {relation}) | {bad}),
    )
    assert again.unit_status == ops.BlockedStatus(message)
    assert again.app_status == ops.BlockedStatus(message)
    assert len(kube.writes) == writes
    assert again.containers == out.containers
    assert again.get_relation(relation.id).local_app_data == relation.local_app_data


def test_non_leader_runs_services_but_applies_nothing(ctx, kube):
    relation = route_relation()
    out = settle(ctx, with_relations(state(leader=False), relation))
    assert kube.objects == {}
    assert out.get_relation(relation.id).local_app_data == {}
    for name in CONTAINERS:
        assert out.get_container(name).service_statuses[name] == ops.pebble.ServiceStatus.ACTIVE
    assert out.unit_status == ops.ActiveStatus("https://kf.example.com/")


@pytest.mark.parametrize("down", CONTAINERS)
def test_container_not_reachable_waits(ctx, kube, down):
    others = {c for c in containers() if c.name != down}
    base = state(containers=others | {testing.Container(down, can_connect=False)})
    out = ctx.run(ctx.on.config_changed(), base)
    assert out.unit_status == ops.WaitingStatus(f"waiting for the {down} container")
    for c in others:
        assert c.name in out.get_container(c.name).service_statuses
    assert kube.get("ConfigMap", f"{APP}-config", MODEL) is not None  # the cluster side goes on


def test_checks_not_up_yet_waits(ctx, kube):
    out = checks_up(ctx.run(ctx.on.config_changed(), state()))
    down = testing.CheckInfo(
        "kfam-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
    )
    kfam = dataclasses.replace(out.get_container("kfam"), check_infos=frozenset({down}))
    others = {c for c in out.containers if c.name != "kfam"}
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers=others | {kfam}))
    assert again.unit_status == ops.WaitingStatus("kfam is not ready yet")
    assert ctx.run(ctx.on.update_status(), out).unit_status.name == "active"


def test_no_peer_relation_waits_and_applies_nothing(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(relations=set()))
    assert kube.objects == {}
    assert out.app_status == ops.WaitingStatus("waiting for the peer relation")


def test_forbidden_asks_for_trust(ctx, kube, monkeypatch):
    from kubeflow_charms import kubernetes

    def refuse(self, text):
        raise kubernetes.KubernetesError("Forbidden: no", status=403)

    monkeypatch.setattr(kubernetes.Resources, "reconcile", refuse)
    out = settle(ctx, state())
    assert out.app_status == ops.BlockedStatus(
        f"not allowed to manage Kubernetes objects: run `juju trust {APP} --scope=cluster`"
    )
    assert "manifest-hash" not in peer_data(out)


def test_config_change_restarts_the_services_it_touches(ctx, kube):
    out = settle(ctx, state())
    changed = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(
            out,
            config={
                "registration-flow": True,
                "workload-identity": "kubeflow-user@my-project.iam.gserviceaccount.com",
            },
        ),
    )
    env = changed.get_container("dashboard").plan.services["dashboard"].environment
    assert env["REGISTRATION_FLOW"] == "true"
    command = changed.get_container("profile-controller").plan.services["profile-controller"]
    assert "-workload-identity=kubeflow-user@my-project.iam.gserviceaccount.com" in (
        command.command.split()
    )
    kfam = changed.get_container("kfam")
    assert kfam.plan == out.get_container("kfam").plan


def test_remove_deletes_what_the_charm_made(ctx, kube):
    out = settle(ctx, state())
    assert kube.objects
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.objects == {}


def test_a_unit_leaving_deletes_nothing(ctx, kube):
    out = settle(ctx, state())
    count = len(kube.objects)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=1))
    assert len(kube.objects) == count
