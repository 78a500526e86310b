"""The katib charm's reconcile: workloads, objects, statuses, leadership, settled hooks."""

from __future__ import annotations

import dataclasses
import json

import ops
import yaml
from ops import testing
from unit.katib.helpers import (
    APP,
    DB_PASSWORD,
    MODEL,
    TRAIN_JOB,
    running,
    service,
    state,
)
from unit.katib.helpers import (
    workloads as wl,
)
from webhook_charms import certificates_secret

from kubeflow_interfaces import trial_kinds


def _settled(ctx, **kwargs) -> testing.State:
    out = ctx.run(ctx.on.config_changed(), state(**kwargs))
    return ctx.run(ctx.on.config_changed(), out)


def _stored(out: testing.State, name: str) -> dict:
    return next(s for s in out.stored_states if s.name == name).content


def test_the_leader_runs_every_workload_and_applies_its_objects(ctx, kube):
    out = _settled(ctx)
    assert out.unit_status == ops.ActiveStatus()
    for workload in wl.WORKLOADS:
        assert running(out, workload), workload.service
    controller = service(out, wl.CONTROLLER)
    assert controller.command == "./katib-controller --katib-config=/etc/katib/katib-config.yaml"
    assert controller.environment["KATIB_CORE_NAMESPACE"] == MODEL
    ui = service(out, wl.UI)
    assert ui.environment["APP_DISABLE_AUTH"] == "false"
    for kind, name in [
        ("CustomResourceDefinition", "experiments.kubeflow.org"),
        ("CustomResourceDefinition", "trials.kubeflow.org"),
        ("CustomResourceDefinition", "suggestions.kubeflow.org"),
        ("ValidatingWebhookConfiguration", "katib.kubeflow.org"),
        ("MutatingWebhookConfiguration", "katib.kubeflow.org"),
        ("ClusterRole", "kubeflow-katib-edit"),
    ]:
        assert kube.get(kind, name) is not None, name
    for name in ("katib-config", "trial-templates"):
        assert kube.get("ConfigMap", name, MODEL) is not None
    for name in ("katib-controller", "katib-db-manager", "katib-ui"):
        assert kube.get("Service", name, MODEL) is not None


def test_the_db_account_stays_out_of_the_plan_and_goes_into_a_private_file(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    db = service(out, wl.DB_MANAGER)
    plan = yaml.safe_dump(out.get_container(wl.DB_MANAGER.container).plan.to_dict())
    assert DB_PASSWORD not in plan and "relation-7" not in plan
    assert db.command.startswith("/bin/sh -c ")
    assert db.environment["DB_NAME"] == "mysql"
    fs = out.get_container(wl.DB_MANAGER.container).get_filesystem(ctx)
    env = (fs / wl.DB_ENV_FILE.lstrip("/")).read_text()
    assert f"DB_PASSWORD={DB_PASSWORD}\n" in env
    assert "KATIB_MYSQL_DB_HOST=mysql-primary.kubeflow.svc\n" in env
    assert "KATIB_MYSQL_DB_DATABASE=katib\n" in env


def test_the_leader_asks_for_the_database_katib(ctx, kube):
    from ops import testing as t

    out = ctx.run(
        ctx.on.config_changed(),
        state(db=False, relations={t.Relation("relational-db", interface="mysql_client")}),
    )
    relation = out.get_relation(next(r.id for r in out.relations if r.endpoint == "relational-db"))
    requests = json.loads(relation.local_app_data["requests"])
    assert [r["resource"] for r in requests] == ["katib"]
    assert out.unit_status == ops.WaitingStatus("waiting for the katib database from remote")
    assert not running(out, wl.DB_MANAGER)


def test_missing_relations_block_and_stop_what_needs_them(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(db=False, gateway=False))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert not running(out, wl.DB_MANAGER)
    assert not running(out, wl.UI)
    assert running(out, wl.CONTROLLER)


def test_a_follower_runs_no_controller_and_the_service_points_at_the_leader(ctx, kube):
    leader = _settled(ctx)
    svc = kube.get("Service", "katib-controller", MODEL)
    assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-0"}
    follower = ctx.run(ctx.on.update_status(), dataclasses.replace(leader, leader=False))
    assert not running(follower, wl.CONTROLLER)
    assert running(follower, wl.UI) and running(follower, wl.DB_MANAGER)
    follower_ctx = testing.Context(ctx.charm_spec.charm_type, app_name=APP, unit_id=1)
    other = follower_ctx.run(
        follower_ctx.on.config_changed(),
        dataclasses.replace(state(leader=False), secrets=leader.secrets),
    )
    assert not running(other, wl.CONTROLLER)
    checks = other.get_container(wl.CONTROLLER.container).plan.checks
    assert wl.CONTROLLER.check not in checks or checks[wl.CONTROLLER.check].startup == "disabled"


def test_a_new_leader_points_the_webhook_service_at_itself_and_starts_the_controller(ctx, kube):
    first = _settled(ctx)
    new_ctx = testing.Context(ctx.charm_spec.charm_type, app_name=APP, unit_id=1)
    follower = new_ctx.run(
        new_ctx.on.config_changed(),
        dataclasses.replace(state(leader=False), secrets=first.secrets, relations=first.relations),
    )
    assert not running(follower, wl.CONTROLLER)
    out = new_ctx.run(new_ctx.on.leader_elected(), dataclasses.replace(follower, leader=True))
    assert running(out, wl.CONTROLLER)
    svc = kube.get("Service", "katib-controller", MODEL)
    assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-1"}


def test_a_settled_update_status_writes_nothing(ctx, kube):
    out = _settled(ctx)
    assert _stored(out, "_settled")["active"] is True
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == ops.ActiveStatus()
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states
    assert again.secrets == out.secrets
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert again.get_container(c).layers == out.get_container(c).layers


def test_a_deleted_object_is_restored_by_update_status(ctx, kube):
    out = _settled(ctx)
    kube.delete("Service", "katib-db-manager", MODEL)
    kube.delete("ConfigMap", "katib-config", MODEL)
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("Service", "katib-db-manager", MODEL) is not None
    assert kube.get("ConfigMap", "katib-config", MODEL) is not None


def test_a_stopped_service_is_started_again_by_update_status(ctx, kube):
    out = _settled(ctx)
    container = out.get_container(wl.UI.container)
    stopped = dataclasses.replace(
        container, service_statuses={wl.UI.service: testing.pebble.ServiceStatus.INACTIVE}
    )
    others = {c for c in out.containers if c.name != container.name}
    again = ctx.run(
        ctx.on.update_status(), dataclasses.replace(out, containers=others | {stopped})
    )
    assert running(again, wl.UI)


def test_removal_prunes_everything_but_the_crds(ctx, kube):
    out = _settled(ctx)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.get("Service", "katib-controller", MODEL) is None
    assert kube.get("MutatingWebhookConfiguration", "katib.kubeflow.org") is None
    assert kube.get("ClusterRole", "kubeflow-katib-edit") is None
    assert kube.get("ConfigMap", "katib-config", MODEL) is None
    assert kube.get("CustomResourceDefinition", "experiments.kubeflow.org") is not None


def test_trial_kinds_add_the_kind_its_rbac_and_a_template_and_restart_the_controller(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    before = service(out, wl.CONTROLLER).environment[wl.CONFIG_HASH]
    relation = trial_kinds.relation_for_requirer([TRAIN_JOB])
    related = ctx.run(
        ctx.on.relation_changed(relation),
        dataclasses.replace(out, relations=out.relations | {relation}),
    )
    assert service(related, wl.CONTROLLER).environment[wl.CONFIG_HASH] != before
    config = yaml.safe_load(
        kube.get("ConfigMap", "katib-config", MODEL)["data"]["katib-config.yaml"]
    )
    assert (
        "TrainJob.v1alpha1.trainer.kubeflow.org" in config["init"]["controller"]["trialResources"]
    )
    rules = kube.get("ClusterRole", f"{APP}-controller")["rules"]
    assert {
        "apiGroups": ["trainer.kubeflow.org"],
        "resources": ["trainjobs"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    } in rules
    assert {
        "apiGroups": ["jobset.x-k8s.io"],
        "resources": ["jobsets"],
        "verbs": ["get", "list", "watch"],
    } in rules
    templates = kube.get("ConfigMap", "trial-templates", MODEL)["data"]
    assert yaml.safe_load(templates["trainJobTemplate"])["kind"] == "TrainJob"
    fs = related.get_container(wl.CONTROLLER.container).get_filesystem(ctx)
    assert "TrainJob.v1alpha1" in (fs / wl.CONFIG_FILE.lstrip("/")).read_text()


def test_bad_trial_kinds_block_and_change_nothing(ctx, kube):
    out = _settled(ctx)
    writes = list(kube.writes)
    bad = testing.Relation(
        "trial-kinds", interface="kubeflow_trial_kinds", remote_app_data={"trial_kinds": "[{"}
    )
    after = ctx.run(
        ctx.on.relation_changed(bad), dataclasses.replace(out, relations=out.relations | {bad})
    )
    assert isinstance(after.unit_status, ops.BlockedStatus)
    assert "trial-kinds" in after.unit_status.message
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert after.get_container(c).layers == out.get_container(c).layers


def test_route_and_links_are_published(ctx, kube):
    from kubeflow_interfaces import istio_ingress_route as iir

    route = testing.Relation("istio-ingress-route", interface="istio_ingress_route")
    links = testing.Relation("dashboard-links", interface="kubeflow_dashboard_links")
    out = ctx.run(ctx.on.config_changed(), state(relations={route, links}))
    config = json.loads(out.get_relation(route.id).local_app_data[iir.CONFIG_KEY])
    assert json.dumps(config).count("/katib") >= 1
    assert "katib-ui" in json.dumps(config)
    assert "/katib/" in json.dumps(dict(out.get_relation(links.id).local_app_data))


def test_the_certificates_are_made_on_the_first_leader_hook(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    assert certificates_secret(out).latest_content["tls-cert"].startswith("-----BEGIN")


def _with_account(username: str, password: str) -> testing.State:
    from kubeflow_interfaces import mysql_client

    relation, secret = mysql_client.relation_for_requirer(
        "relational-db",
        database="katib",
        username=username,
        password=password,
        endpoints="mysql-primary.kubeflow.svc:3306",
    )
    return state(db=False, relations={relation}, secrets={secret})


def test_a_password_with_at_and_slash_reaches_the_db_manager(ctx, kube):
    # The driver finds the last '/' and the last '@' before it (go-sql-driver/mysql
    # v1.5.0, dsn.go:296-310): the password may hold both.
    out = ctx.run(ctx.on.config_changed(), _with_account("relation-7", "p@ss/w:rd"))
    assert running(out, wl.DB_MANAGER)
    fs = out.get_container(wl.DB_MANAGER.container).get_filesystem(ctx)
    assert "DB_PASSWORD=p@ss/w:rd\n" in (fs / wl.DB_ENV_FILE.lstrip("/")).read_text()


def test_an_account_name_with_a_colon_blocks_and_starts_nothing(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), _with_account("relation:7", "secret-password"))
    assert out.unit_status == ops.BlockedStatus(
        "relational-db: mysql: the account's name holds ':', which the DB manager cannot pass on"
    )
    assert "secret-password" not in out.unit_status.message
    assert not running(out, wl.DB_MANAGER)
    assert not out.get_container(wl.DB_MANAGER.container).layers


def test_the_ui_reads_the_user_header_the_login_sets(ctx, kube):
    from kubeflow_interfaces import istio_ingress_route as iir

    route = iir.relation_for_requirer(user_header="x-auth-user", user_prefix="oidc:")
    out = ctx.run(ctx.on.relation_changed(route), state(relations={route}))
    env = service(out, wl.UI).environment
    assert (env["USERID_HEADER"], env["USERID_PREFIX"]) == ("x-auth-user", "oidc:")
    # Without istio's word, Katib's header and no prefix (what the login sets by default).
    default = service(_settled(ctx), wl.UI).environment
    assert (default["USERID_HEADER"], default["USERID_PREFIX"]) == ("kubeflow-userid", "")


def test_a_bad_user_header_blocks_and_changes_nothing(ctx, kube):
    from kubeflow_interfaces import istio_ingress_route as iir

    out = _settled(ctx)
    writes = list(kube.writes)
    bad = iir.relation_for_requirer(user_header="no spaces allowed")
    after = ctx.run(
        ctx.on.relation_changed(bad), dataclasses.replace(out, relations=out.relations | {bad})
    )
    assert isinstance(after.unit_status, ops.BlockedStatus)
    assert after.unit_status.message.startswith("istio-ingress-route: kubeflow_user_header")
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert after.get_container(c).layers == out.get_container(c).layers
