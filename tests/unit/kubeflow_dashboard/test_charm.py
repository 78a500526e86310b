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
    GATEWAY,
    GATEWAY_PRINCIPAL,
    MODEL,
    checks_up,
    containers,
    gateway_metadata,
    gateway_relation,
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
    for stored in kube.made().values():
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
        "Role": {f"{APP}-leader-election"},
        "RoleBinding": {f"{APP}-leader-election"},
        "ConfigMap": {f"{APP}-config"},
        "NetworkPolicy": {f"{APP}-ingress"},
    }
    for stored in kube.made().values():
        labels = stored.body["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == f"{MODEL}-{APP}"
    assert peer_data(out)["manifest-hash"]
    assert out.opened_ports == {testing.TCPPort(8082)}


def test_dashboard_service(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    service = out.get_container("dashboard").plan.services["dashboard"]
    assert service.command == "npm start"
    # The image's WORKDIR and USER (kubeflow/kubeflow v1.10.0,
    # components/centraldashboard/Dockerfile): `npm start` needs package.json there.
    assert service.working_dir == "/usr/src/app"
    assert (service.user, service.group) == ("node", "node")
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
        "-leader-elect",
    ]
    service = controller.plan.services["profile-controller"]
    assert (service.user_id, service.group_id) == (65532, 65532)
    # The manager's probe address (kubeflow/kubeflow v1.10.0,
    # components/profile-controller/main.go: health-probe-bind-address :9876).
    assert controller.plan.checks["profile-controller-ready"].http == {
        "url": "http://localhost:9876/readyz"
    }
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
    # KFAM serves /metrics, not under /kfam (kubeflow/kubeflow v1.10.0,
    # components/access-management/kfam/routers.go).
    assert kfam.checks["kfam-ready"].http == {"url": "http://localhost:8081/metrics"}
    assert (kfam.services["kfam"].user_id, kfam.services["kfam"].group_id) == (65532, 65532)


def test_the_gateways_identity_from_istio_reaches_the_controller_and_kfam(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    # Read with os.Getenv by profile_controller.go and kfam/bindings.go (kubeflow/kubeflow
    # v1.10.0); their defaults name istio-system and kubeflow, not where ours run.
    controller = out.get_container("profile-controller").plan.services["profile-controller"]
    assert controller.environment["ISTIO_INGRESS_GATEWAY_PRINCIPAL"] == GATEWAY_PRINCIPAL
    assert controller.environment["NOTEBOOK_CONTROLLER_PRINCIPAL"] == (
        f"cluster.local/ns/{MODEL}/sa/kubeflow-notebooks"
    )
    assert controller.environment["KFP_UI_PRINCIPAL"] == f"cluster.local/ns/{MODEL}/sa/kfp"
    kfam = out.get_container("kfam").plan.services["kfam"]
    assert kfam.environment == {
        "ISTIO_INGRESS_GATEWAY_PRINCIPAL": GATEWAY_PRINCIPAL,
        "KFP_UI_PRINCIPAL": f"cluster.local/ns/{MODEL}/sa/kfp",
    }


def test_a_moved_gateway_restarts_the_controller_and_kfam(ctx, kube):
    out = settle(ctx, state())
    (relation,) = [r for r in out.relations if r.endpoint == GATEWAY]
    moved = dataclasses.replace(
        relation,
        remote_app_data={"metadata": gateway_metadata(namespace="mesh", service_account="gw")},
    )
    changed = ctx.run(
        ctx.on.relation_changed(moved),
        dataclasses.replace(out, relations=(out.relations - {relation}) | {moved}),
    )
    for name in ("profile-controller", "kfam"):
        env = changed.get_container(name).plan.services[name].environment
        assert env["ISTIO_INGRESS_GATEWAY_PRINCIPAL"] == "cluster.local/ns/mesh/sa/gw"
    assert changed.get_container("dashboard").plan == out.get_container("dashboard").plan


def test_principals_from_config(ctx, kube):
    config = {
        "notebook-controller-principal": "cluster.local/ns/nb/sa/controller",
        "kfp-ui-principal": "cluster.local/ns/kfp/sa/ml-pipeline-ui",
    }
    out = ctx.run(ctx.on.config_changed(), state(config=config))
    env = out.get_container("profile-controller").plan.services["profile-controller"].environment
    assert env["NOTEBOOK_CONTROLLER_PRINCIPAL"] == "cluster.local/ns/nb/sa/controller"
    assert env["KFP_UI_PRINCIPAL"] == "cluster.local/ns/kfp/sa/ml-pipeline-ui"
    env = out.get_container("kfam").plan.services["kfam"].environment
    assert env["KFP_UI_PRINCIPAL"] == "cluster.local/ns/kfp/sa/ml-pipeline-ui"


def _without_gateway(**kw) -> testing.State:
    base = state(**kw)
    return dataclasses.replace(
        base, relations={r for r in base.relations if r.endpoint != GATEWAY}
    )


def test_without_the_gateway_relation_only_the_dashboard_runs_and_the_charm_blocks(ctx, kube):
    out = settle(ctx, _without_gateway())
    message = (
        "add the gateway-metadata relation to istio: "
        "the profile controller and KFAM need the gateway's identity"
    )
    assert out.unit_status == ops.BlockedStatus(message)
    assert out.app_status == ops.BlockedStatus(message)
    dashboard = out.get_container("dashboard")
    assert dashboard.service_statuses["dashboard"] == ops.pebble.ServiceStatus.ACTIVE
    for name in ("profile-controller", "kfam"):
        assert out.get_container(name).plan.services == {}
    # The cluster side does not wait: the CRD and RBAC are there for when they start.
    assert kube.get("ConfigMap", f"{APP}-config", MODEL) is not None


def test_related_but_no_metadata_yet_waits(ctx, kube):
    empty = gateway_relation()
    empty = dataclasses.replace(empty, remote_app_data={})
    base = _without_gateway()
    out = settle(ctx, dataclasses.replace(base, relations=set(base.relations) | {empty}))
    assert out.unit_status == ops.WaitingStatus("waiting for istio's gateway-metadata")
    for name in ("profile-controller", "kfam"):
        assert out.get_container(name).plan.services == {}
    # Then istio answers: both start.
    answered = dataclasses.replace(empty, remote_app_data={"metadata": gateway_metadata()})
    again = ctx.run(
        ctx.on.relation_changed(answered),
        dataclasses.replace(out, relations=(out.relations - {empty}) | {answered}),
    )
    for name in ("profile-controller", "kfam"):
        service = again.get_container(name).plan.services[name]
        assert service.environment["ISTIO_INGRESS_GATEWAY_PRINCIPAL"] == GATEWAY_PRINCIPAL


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("not json", "gateway-metadata: metadata is not JSON"),
        ("[1]", "gateway-metadata: metadata is not a JSON object"),
        (
            '{"namespace": "Istio System", "service_account": "gw"}',
            "gateway-metadata: namespace 'Istio System' is not a namespace name",
        ),
        (
            '{"namespace": "istio"}',
            "gateway-metadata: service_account None is not a service account name",
        ),
    ],
)
def test_invalid_gateway_metadata_blocks_and_changes_nothing(ctx, kube, metadata, message):
    out = settle(ctx, state())
    writes = len(kube.writes)
    (relation,) = [r for r in out.relations if r.endpoint == GATEWAY]
    bad = dataclasses.replace(relation, remote_app_data={"metadata": metadata})
    again = ctx.run(
        ctx.on.relation_changed(bad),
        dataclasses.replace(out, relations=(out.relations - {relation}) | {bad}),
    )
    assert again.unit_status == ops.BlockedStatus(message)
    assert again.app_status == ops.BlockedStatus(message)
    assert len(kube.writes) == writes
    assert again.containers == out.containers


def test_a_service_that_fails_to_start_does_not_keep_the_others_down(ctx, kube, monkeypatch):
    # As the dashboard did with a working directory its image does not have: Pebble's
    # replan fails. The profile controller and KFAM, configured after it, still start.
    replan = ops.Container.replan

    def failing(self):
        if self.name == "dashboard":
            change = ops.pebble.Change.from_dict(
                {
                    "id": "1",
                    "kind": "replan",
                    "summary": "",
                    "status": "Error",
                    "ready": True,
                    "spawn-time": "2025-01-01T00:00:00Z",
                    "err": "cannot start service: chdir /app: no such file or directory",
                }
            )
            raise ops.pebble.ChangeError(change.err or "", change)
        replan(self)

    monkeypatch.setattr(ops.Container, "replan", failing)
    out = ctx.run(ctx.on.config_changed(), state())
    for name in ("profile-controller", "kfam"):
        assert out.get_container(name).service_statuses[name] == ops.pebble.ServiceStatus.ACTIVE
    assert out.unit_status == ops.BlockedStatus(
        "dashboard failed to start: cannot start service: chdir /app: no such file or directory"
    )


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
        # Istio reads `*` at either end of a match value as a wildcard.
        (
            {"kubeflow_user_prefix": "*"},
            "istio-ingress-route: the user-id header or prefix contains *",
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
    assert kube.made() == {}
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
    out = ctx.run(ctx.on.config_changed(), state(relations={gateway_relation()}))
    assert kube.made() == {}
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
    assert kube.made()
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.made() == {}


def test_a_unit_leaving_deletes_nothing(ctx, kube):
    out = settle(ctx, state())
    count = len(kube.objects)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=1))
    assert len(kube.objects) == count


def _grants(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_kubeflow_roles_grant_what_kubeflows_own_do(ctx, kube):
    # Parts of Kubeflow's roles the charm's roles once left out (kubeflow/manifests
    # v1.10.0 common/kubeflow-roles/base/cluster-roles.yaml): the full comparison is in
    # tests/conformance/test_kubeflow_dashboard.py.
    settle(ctx, state())
    admin = _grants(kube.get("ClusterRole", "kubeflow-kubernetes-admin"))
    edit = _grants(kube.get("ClusterRole", "kubeflow-kubernetes-edit"))
    view = _grants(kube.get("ClusterRole", "kubeflow-kubernetes-view"))
    assert ("authorization.k8s.io", "localsubjectaccessreviews", "create") in admin
    assert ("rbac.authorization.k8s.io", "roles", "deletecollection") in admin
    assert ("", "secrets", "get") in edit  # notebooks mount the profile's secrets
    assert ("", "serviceaccounts", "impersonate") in edit
    assert ("networking.k8s.io", "networkpolicies", "create") in edit
    assert ("autoscaling", "horizontalpodautoscalers", "update") in edit
    assert ("", "namespaces", "list") in view
    assert ("policy", "poddisruptionbudgets", "get") in view
    assert ("", "secrets", "get") not in view


def test_the_profile_controller_may_hold_its_lease(ctx, kube):
    # controller-runtime v0.12.1 (the profile controller's, go.mod at kubeflow/kubeflow
    # v1.10.0) elects with a coordination.k8s.io Lease in the namespace it is given.
    settle(ctx, state())
    name = f"{APP}-leader-election"
    role = kube.get("Role", name, MODEL)
    assert ("coordination.k8s.io", "leases", "update") in _grants(role)
    assert ("", "events", "create") in _grants(role)
    binding = kube.get("RoleBinding", name, MODEL)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": APP, "namespace": MODEL}]
