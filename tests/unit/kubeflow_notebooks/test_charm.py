"""The charm: workloads under Pebble, cluster objects, relations, status, removal."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
import yaml
from ops import testing
from unit.kubeflow_notebooks.helpers import (
    MODEL,
    PEERS,
    checks_up,
    containers,
    controller,
    links_relation,
    route_relation,
    settle,
    spawner_file,
    state,
    web_app,
)

from kubeflow_interfaces import istio_ingress_route


def _kinds(kube) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for stored in kube.objects.values():
        kinds.setdefault(stored.body["kind"], set()).add(stored.body["metadata"]["name"])
    return kinds


def test_leader_starts_both_workloads_and_applies_the_objects(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())

    c = out.get_container(controller.CONTAINER)
    service = c.plan.services[controller.SERVICE]
    assert service.command.startswith("/manager ")
    assert "--enable-leader-election" in service.command
    assert "--probe-addr=:8081" in service.command
    assert service.environment["USE_ISTIO"] == "true"
    assert service.environment["ISTIO_GATEWAY"] == f"{MODEL}/kubeflow-gateway"
    assert service.environment["CLUSTER_DOMAIN"] == "cluster.local"
    assert service.environment["ENABLE_CULLING"] == "false"
    assert c.service_statuses[controller.SERVICE] == ops.pebble.ServiceStatus.ACTIVE
    # Its readiness endpoint (kubeflow/kubeflow v1.10.0, components/notebook-controller/main.go).
    assert c.plan.checks[controller.READY_CHECK].http == {"url": "http://localhost:8081/readyz"}

    w = out.get_container(web_app.CONTAINER)
    service = w.plan.services[web_app.SERVICE]
    assert "--bind 0.0.0.0:5000" in service.command
    assert service.working_dir == "/src"
    assert service.environment["APP_PREFIX"] == "/jupyter"
    assert service.environment["USERID_HEADER"] == "kubeflow-userid"
    assert service.environment["USERID_PREFIX"] == ""
    assert service.environment["APP_SECURE_COOKIES"] == "false"  # the route's URL is http
    assert w.service_statuses[web_app.SERVICE] == ops.pebble.ServiceStatus.ACTIVE
    # Served without a user header (kubeflow/kubeflow v1.10.0,
    # components/crud-web-apps/common/backend/kubeflow/kubeflow/crud_backend/probes.py).
    assert w.plan.checks[web_app.READY_CHECK].http == {
        "url": "http://localhost:5000/healthz/readiness"
    }
    assert "spawnerFormDefaults" in yaml.safe_load(spawner_file(ctx, out))
    assert testing.TCPPort(5000) in out.opened_ports

    assert kube.rejected == []
    kinds = _kinds(kube)
    assert kinds["CustomResourceDefinition"] == {"notebooks.kubeflow.org"}
    assert kinds["ClusterRole"] == {
        f"kubeflow-notebooks-{MODEL}",
        "kubeflow-notebook-ui-admin",
        "kubeflow-notebook-ui-edit",
        "kubeflow-notebook-ui-view",
        "kubeflow-notebooks-edit",
        "kubeflow-notebooks-view",
    }
    binding = kube.get("ClusterRoleBinding", f"kubeflow-notebooks-{MODEL}")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeflow-notebooks", "namespace": MODEL}
    ]
    crd = kube.get("CustomResourceDefinition", "notebooks.kubeflow.org")
    versions = {v["name"]: v["storage"] for v in crd["spec"]["versions"]}
    assert versions == {"v1": True, "v1beta1": False, "v1alpha1": False}
    peer = out.get_relations(PEERS)[0]
    assert peer.local_app_data["manifest-hash"]


def test_rbac_covers_what_the_workloads_do(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())

    role = kube.get("ClusterRole", f"kubeflow-notebooks-{MODEL}")
    allowed = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for needed in [
        ("kubeflow.org", "notebooks", "create"),
        ("kubeflow.org", "notebooks/status", "update"),
        ("kubeflow.org", "poddefaults", "list"),
        ("apps", "statefulsets", "create"),
        ("", "services", "create"),
        ("", "events", "create"),
        ("", "persistentvolumeclaims", "create"),
        ("networking.istio.io", "virtualservices", "create"),
        ("storage.k8s.io", "storageclasses", "list"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ]:
        assert needed in allowed, needed
    for name, aggregate in (
        ("kubeflow-notebook-ui-edit", "edit"),
        ("kubeflow-notebook-ui-view", "view"),
        ("kubeflow-notebook-ui-admin", "admin"),
        ("kubeflow-notebooks-edit", "edit"),
        ("kubeflow-notebooks-view", "view"),
    ):
        labels = kube.get("ClusterRole", name)["metadata"]["labels"]
        key = f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{aggregate}"
        assert labels[key] == "true"


def _grants(kube, aggregate: str) -> set[tuple[str, str]]:
    """(resource, verb) in kubeflow.org given by the roles aggregated into kubeflow-<aggregate>."""
    key = f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{aggregate}"
    return {
        (resource, verb)
        for role in kube.of_kind("ClusterRole")
        if role["metadata"].get("labels", {}).get(key) == "true"
        for rule in role["rules"]
        if "kubeflow.org" in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_profile_users_get_what_upstream_gives_them(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())

    # kubeflow/manifests v1.10.0: the web app's kubeflow-notebook-ui-* roles
    # (apps/jupyter/jupyter-web-app/upstream/base/cluster-role.yaml) and the
    # controller's kubeflow-notebooks-* roles
    # (apps/jupyter/notebook-controller/upstream/rbac/user_cluster_roles.yaml).
    edit = _grants(kube, "edit")
    for verb in ("get", "list", "watch", "create", "delete", "deletecollection", "patch"):
        assert ("notebooks", verb) in edit, verb
        assert ("notebooks/status", verb) in edit, verb
    for verb in ("get", "list", "create", "delete"):
        assert ("poddefaults", verb) in edit, verb
        assert ("notebooks/finalizers", verb) in edit, verb
    view = _grants(kube, "view")
    assert {v for r, v in view if r == "notebooks/status"} == {"get", "list", "watch"}
    assert {v for r, v in view if r == "notebooks"} == {"get", "list", "watch"}
    assert not {v for _, v in view} - {"get", "list", "watch"}


def test_a_notebook_of_each_version_is_accepted(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())
    client = kube.client()
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.core_v1 import Namespace

    client.create(Namespace.from_dict({"metadata": {"name": "user"}}))  # a profile's
    for version in ("v1", "v1beta1"):
        notebook = create_namespaced_resource("kubeflow.org", version, "Notebook", "notebooks")
        client.create(
            notebook(
                metadata={"name": f"nb-{version}", "namespace": "user"},
                spec={"template": {"spec": {"containers": [{"name": "nb", "image": "x"}]}}},
            )
        )
    assert len(kube.of_kind("Notebook")) == 2


def test_settled_model_is_active_and_writes_nothing(ctx, kube):
    out = settle(ctx, state(relations={testing.PeerRelation(PEERS), route_relation()}))
    writes = len(kube.writes)

    again = ctx.run(ctx.on.update_status(), out)

    assert again.unit_status == ops.ActiveStatus()
    assert again.app_status == ops.ActiveStatus()
    assert len(kube.writes) == writes
    assert again.relations == out.relations
    for name in (controller.CONTAINER, web_app.CONTAINER):
        assert again.get_container(name).plan == out.get_container(name).plan


def test_route_request_and_dashboard_link_are_published(ctx, kube):
    links = links_relation()
    route = route_relation()
    out = ctx.run(
        ctx.on.config_changed(), state(relations={testing.PeerRelation(PEERS), route, links})
    )

    # /jupyter/... reaches the web app as /...: the prefix replaced by /.
    assert out.get_relation(route.id).local_app_data == {
        "config": istio_ingress_route.config_json(
            model=MODEL, app="kubeflow-notebooks", prefix="/jupyter", port=5000, rewrite="/"
        )
    }
    published = json.loads(out.get_relation(links.id).local_app_data["dashboard_links"])
    assert published == [
        {
            "text": "Notebooks",
            "link": "/jupyter/",
            "location": "menu",
            "icon": "book",
            "type": "item",
            "desc": "",
        }
    ]


def test_https_route_makes_cookies_secure(ctx, kube):
    base = state(
        relations={
            testing.PeerRelation(PEERS),
            route_relation("kf.example.com", tls_enabled=True),
        }
    )
    out = ctx.run(ctx.on.config_changed(), base)
    env = out.get_container(web_app.CONTAINER).plan.services[web_app.SERVICE].environment
    assert env["APP_SECURE_COOKIES"] == "true"


def test_user_header_from_the_route_restarts_the_web_app(ctx, kube):
    out = settle(ctx, state())
    (route,) = [r for r in out.relations if r.endpoint == "istio-ingress-route"]
    told = dataclasses.replace(
        route,
        remote_app_data={
            **route.remote_app_data,
            "kubeflow_user_header": "x-auth-user",
            "kubeflow_user_prefix": "oidc:",
        },
    )

    again = ctx.run(
        ctx.on.relation_changed(told),
        dataclasses.replace(out, relations=(out.relations - {route}) | {told}),
    )

    env = again.get_container(web_app.CONTAINER).plan.services[web_app.SERVICE].environment
    assert (env["USERID_HEADER"], env["USERID_PREFIX"]) == ("x-auth-user", "oidc:")
    controller_plan = again.get_container(controller.CONTAINER).plan
    assert controller_plan == out.get_container(controller.CONTAINER).plan


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"kubeflow_user_prefix": "with space"},
            "istio-ingress-route: kubeflow_user_prefix must be at most 128 printable",
        ),
        ({"external_host": "a/b"}, "istio-ingress-route: external_host 'a/b' is not a host"),
    ],
)
def test_invalid_route_data_blocks_and_changes_nothing(ctx, kube, data, message):
    out = settle(ctx, state())
    writes = len(kube.writes)
    (route,) = [r for r in out.relations if r.endpoint == "istio-ingress-route"]
    bad = dataclasses.replace(route, remote_app_data={**route.remote_app_data, **data})

    again = ctx.run(
        ctx.on.relation_changed(bad),
        dataclasses.replace(out, relations=(out.relations - {route}) | {bad}),
    )

    assert again.unit_status.name == "blocked"
    assert again.unit_status.message.startswith(message)
    assert again.app_status == again.unit_status
    assert len(kube.writes) == writes
    assert again.containers == out.containers
    assert again.get_relation(route.id).local_app_data == route.local_app_data


def test_culling_sets_the_controller_environment(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(config={"culling-idle-minutes": 60}))
    env = out.get_container(controller.CONTAINER).plan.services[controller.SERVICE].environment
    assert env["ENABLE_CULLING"] == "true"
    assert env["CULL_IDLE_TIME"] == "60"
    assert env["IDLENESS_CHECK_PERIOD"] == "5"


def test_config_change_restarts_the_web_app_with_the_new_form(ctx, kube):
    out = settle(ctx, state())
    before = out.get_container(web_app.CONTAINER).plan.services[web_app.SERVICE].environment
    changed = dataclasses.replace(out, config={"workspace-volume-size": "20Gi"})

    again = ctx.run(ctx.on.config_changed(), changed)

    after = again.get_container(web_app.CONTAINER).plan.services[web_app.SERVICE].environment
    assert after["CHARM_CONFIG_HASH"] != before["CHARM_CONFIG_HASH"]
    form = yaml.safe_load(spawner_file(ctx, again))["spawnerFormDefaults"]
    size = form["workspaceVolume"]["value"]["newPvc"]["spec"]["resources"]["requests"]
    assert size == {"storage": "20Gi"}


def test_non_leader_runs_the_workloads_but_applies_nothing(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(leader=False))

    assert kube.writes == []
    assert out.get_container(controller.CONTAINER).plan.services
    assert out.get_container(web_app.CONTAINER).plan.services
    route = next(r for r in out.relations if r.endpoint == "istio-ingress-route")
    assert route.local_app_data == {}


def test_non_leader_settles_active(ctx, kube):
    out = settle(ctx, state(leader=False))
    assert out.unit_status == ops.ActiveStatus()
    assert kube.writes == []


def test_containers_not_ready(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(can_connect=False)))

    assert out.unit_status == ops.WaitingStatus("waiting for the notebook-controller container")
    for name in (controller.CONTAINER, web_app.CONTAINER):
        assert not out.get_container(name).plan.services
    # The leader applies the cluster's objects all the same.
    assert kube.get("CustomResourceDefinition", "notebooks.kubeflow.org") is not None


def test_checks_down_is_waiting(ctx, kube):
    out = settle(ctx, state())
    down = {
        dataclasses.replace(
            c,
            check_infos=frozenset(
                dataclasses.replace(i, status=ops.pebble.CheckStatus.DOWN, failures=3)
                for i in c.check_infos
            ),
        )
        for c in out.containers
    }
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers=down))
    assert again.unit_status == ops.WaitingStatus("the notebook controller is not ready yet")


def test_stopped_service_is_started_again(ctx, kube):
    out = settle(ctx, state())
    c = out.get_container(web_app.CONTAINER)
    stopped = dataclasses.replace(
        c, service_statuses={web_app.SERVICE: ops.pebble.ServiceStatus.INACTIVE}
    )
    others = {x for x in out.containers if x.name != web_app.CONTAINER}
    base = dataclasses.replace(out, containers=others | {stopped})
    # A stopped service is started again by the next hook.
    again = ctx.run(ctx.on.update_status(), base)
    w = again.get_container(web_app.CONTAINER)
    assert w.service_statuses[web_app.SERVICE] == ops.pebble.ServiceStatus.ACTIVE


def test_without_a_route_is_blocked(ctx, kube):
    out = settle(ctx, state(relations={testing.PeerRelation(PEERS)}))
    assert out.unit_status == ops.BlockedStatus(
        "the web app is not reachable: relate istio-ingress-route"
    )


def test_route_without_url_is_waiting(ctx, kube):
    base = state(relations={testing.PeerRelation(PEERS), route_relation(None)})
    out = settle(ctx, base)
    assert out.unit_status == ops.WaitingStatus("waiting for the route's URL")


def test_without_peer_relation_waits_and_applies_nothing(ctx, kube):
    out = settle(ctx, state(relations={route_relation()}))
    assert out.unit_status == ops.WaitingStatus("waiting for the peer relation")
    assert kube.writes == []


def test_forbidden_api_asks_for_trust(ctx, kube, monkeypatch):
    from kubeflow_charms import kubernetes

    def refuse(self, text):
        raise kubernetes.KubernetesError("Forbidden: no", status=403)

    monkeypatch.setattr(kubernetes.Resources, "reconcile", refuse)
    out = settle(ctx, state())
    assert out.unit_status == ops.BlockedStatus(
        "not allowed to manage Kubernetes objects: "
        "run `juju trust kubeflow-notebooks --scope=cluster`"
    )


def test_trust_removed_from_a_settled_charm_blocks_it_on_update_status(ctx, kube):
    from bundle.fake_kubernetes import routed_lightkube

    out = settle(ctx, state(relations={testing.PeerRelation(PEERS), route_relation()}))
    assert out.unit_status == ops.ActiveStatus()
    app = "kubeflow-notebooks"
    with routed_lightkube(kube, MODEL, app=app, trusted=False):  # `juju trust --remove`
        blocked = ctx.run(ctx.on.update_status(), out)
    assert blocked.unit_status == ops.BlockedStatus(
        f"not allowed to manage Kubernetes objects: run `juju trust {app} --scope=cluster`"
    )
    assert kube.forbidden
    with routed_lightkube(kube, MODEL, app=app, trusted=True):
        again = ctx.run(ctx.on.update_status(), blocked)
    assert again.unit_status == ops.ActiveStatus()


def test_upgrade_reapplies_even_when_settled(ctx, kube):
    out = settle(ctx, state())
    writes = len(kube.writes)
    ctx.run(ctx.on.upgrade_charm(), out)
    assert len(kube.writes) > writes


def test_remove_deletes_what_the_charm_made(ctx, kube):
    out = settle(ctx, state())
    assert kube.made()

    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))

    assert kube.made() == {}
    deleted = {(kind, name) for verb, kind, name in kube.writes if verb == "delete"}
    assert ("CustomResourceDefinition", "notebooks.kubeflow.org") in deleted
    assert ("ClusterRoleBinding", f"kubeflow-notebooks-{MODEL}") in deleted


def test_a_unit_leaving_deletes_nothing(ctx, kube):
    out = settle(ctx, state())
    count = len(kube.objects)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=2))
    assert len(kube.objects) == count


def test_checks_up_helper_covers_both(ctx, kube):
    out = checks_up(ctx.run(ctx.on.config_changed(), state()))
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == ops.ActiveStatus()
