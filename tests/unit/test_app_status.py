"""Every charm: an application's status never looks better than its leader unit's.

The leader sets the application status and knows only its own unit's status,
so a Blocked or Waiting leader unit must show on the application too: at
least as bad, and with the unit's message when both are of the same level.
Each case builds the state with the charm's own unit-test helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from charm_loader import load_charm
from ops import testing
from unit.dex import helpers as dex
from unit.istio import helpers as istio
from unit.knative_serving import helpers as knative
from unit.kubeflow_dashboard import helpers as dashboard
from unit.kubeflow_notebooks import helpers as notebooks
from unit.kubeflow_trainer import helpers as trainer
from unit.mlflow import helpers as mlflow
from unit.mysql import helpers as mysql
from unit.oidc_gateway import helpers as oidc
from unit.resource_dispatcher import helpers as dispatcher

MINIO = load_charm("minio")
# ops' order of statuses, worst last (CollectStatusEvent).
RANK = {"active": 1, "waiting": 2, "maintenance": 3, "blocked": 4}
NOT_READY = ("waiting", "maintenance")

Case = Callable[[Path], tuple[type, testing.State, dict[str, Any]]]


def _minio_state(**kwargs: Any) -> testing.State:
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": {testing.Container("minio", can_connect=True)},
        "storages": {testing.Storage("data")},
        "model": testing.Model(name="kubeflow"),
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def _mysql_state(tmp_path: Path, **kwargs: Any) -> testing.State:
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": {mysql.mysql_container(tmp_path)},
        "storages": {mysql.storage()},
        "secrets": {mysql.credentials_secret()},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


CASES: dict[tuple[str, tuple[str, ...]], Case] = {
    ("dex-no-route", NOT_READY): lambda tmp: (
        dex.CHARM.DexCharm,
        dex.make_state(relations=(dex.peers(),)),
        {},
    ),
    ("dex-bad-config", ("blocked",)): lambda tmp: (
        dex.CHARM.DexCharm,
        dex.make_state(config={"connectors": "- type: [unclosed"}),
        {},
    ),
    ("istio-no-pebble", NOT_READY): lambda tmp: (
        istio.CHARM.IstioCharm,
        istio.state(containers={istio.container(can_connect=False)}),
        {},
    ),
    ("istio-bad-config", ("blocked",)): lambda tmp: (
        istio.CHARM.IstioCharm,
        istio.state(config={"gateway-service-type": "Bogus"}),
        {},
    ),
    ("dashboard-no-pebble", NOT_READY): lambda tmp: (
        dashboard.CHARM.KubeflowDashboardCharm,
        dashboard.state(containers=dashboard.containers(can_connect=False)),
        {},
    ),
    ("dashboard-bad-config", ("blocked",)): lambda tmp: (
        dashboard.CHARM.KubeflowDashboardCharm,
        dashboard.state(config={"menu-order": "Notebooks"}),
        {},
    ),
    ("notebooks-no-pebble", NOT_READY): lambda tmp: (
        notebooks.CHARM.NotebooksCharm,
        notebooks.state(containers=notebooks.containers(can_connect=False)),
        {},
    ),
    ("notebooks-bad-config", ("blocked",)): lambda tmp: (
        notebooks.CHARM.NotebooksCharm,
        notebooks.state(config={"cpu-default": "lots"}),
        {},
    ),
    ("minio-no-pebble", NOT_READY): lambda tmp: (
        MINIO.MinioCharm,
        _minio_state(containers={testing.Container("minio", can_connect=False)}),
        {},
    ),
    ("minio-bad-config", ("blocked",)): lambda tmp: (
        MINIO.MinioCharm,
        _minio_state(config={"mode": "gateway"}),
        {},
    ),
    ("mysql-no-pebble", NOT_READY): lambda tmp: (
        mysql.CHARM.MySQLCharm,
        _mysql_state(tmp, containers={mysql.mysql_container(tmp, can_connect=False)}),
        {},
    ),
    ("mysql-bad-config", ("blocked",)): lambda tmp: (
        mysql.CHARM.MySQLCharm,
        _mysql_state(tmp, config={"max-connections": 1}),
        {},
    ),
    ("oidc-gateway-no-pebble", NOT_READY): lambda tmp: (
        oidc.CHARM.OidcGatewayCharm,
        oidc.dex_state(tmp, containers={oidc.proxy_container(tmp, can_connect=False)}),
        {"app_name": oidc.APP},
    ),
    ("oidc-gateway-bad-config", ("blocked",)): lambda tmp: (
        oidc.CHARM.OidcGatewayCharm,
        oidc.dex_state(tmp, config={"scopes": "profile email"}),
        {"app_name": oidc.APP},
    ),
    ("kubeflow-trainer-no-pebble", NOT_READY): lambda tmp: (
        trainer.CHARM.KubeflowTrainerCharm,
        trainer.state(containers=trainer.containers(can_connect=False)),
        {"app_name": trainer.APP},
    ),
    ("kubeflow-trainer-bad-config", ("blocked",)): lambda tmp: (
        trainer.CHARM.KubeflowTrainerCharm,
        trainer.state(config={"gpu-placement": '{"gpus-per-node": "many"}'}),
        {"app_name": trainer.APP},
    ),
    ("mlflow-no-pebble", NOT_READY): lambda tmp: (
        mlflow.CHARM.MlflowCharm,
        mlflow.state(containers={mlflow.container(can_connect=False)}),
        {"app_name": mlflow.APP},
    ),
    ("mlflow-bad-config", ("blocked",)): lambda tmp: (
        mlflow.CHARM.MlflowCharm,
        mlflow.state(config={"workers": 0}),
        {"app_name": mlflow.APP},
    ),
    ("mlflow-migration-failed", ("blocked",)): lambda tmp: (
        mlflow.CHARM.MlflowCharm,
        mlflow.state(containers={mlflow.container(migrate=mlflow.migrate_exec(1))}),
        {"app_name": mlflow.APP},
    ),
    ("knative-serving-no-pebble", NOT_READY): lambda tmp: (
        knative.CHARM.KnativeServingCharm,
        knative.state(
            gateway=False,
            containers=knative.containers(can_connect=False),
            relations={testing.Relation("gateway-metadata", interface="gateway_metadata")},
        ),
        {"app_name": knative.APP},
    ),
    ("knative-serving-bad-config", ("blocked",)): lambda tmp: (
        knative.CHARM.KnativeServingCharm,
        knative.state(config={"stable-window": "1s"}),
        {"app_name": knative.APP},
    ),
    ("resource-dispatcher-no-pebble", NOT_READY): lambda tmp: (
        dispatcher.CHARM.ResourceDispatcherCharm,
        dispatcher.state(containers=dispatcher.containers(can_connect=False)),
        {},
    ),
}


@pytest.mark.parametrize(("name", "expected"), list(CASES), ids=[n for n, _ in CASES])
def test_app_status_is_no_better_than_the_leader_units(tmp_path, name, expected):
    charm, state, ctx_kwargs = CASES[(name, expected)](tmp_path)
    ctx = testing.Context(charm, **ctx_kwargs)
    with routed_lightkube(FakeKubernetes()) as fake:
        out = ctx.run(ctx.on.config_changed(), state)
    assert fake.rejected == []

    unit, app = out.unit_status, out.app_status
    # The case is what it says: the leader unit is not ready, or blocked.
    assert unit.name in expected, unit
    assert RANK[app.name] >= RANK[unit.name], f"app {app!r} looks better than its unit {unit!r}"
    if app.name == unit.name:
        assert app.message == unit.message
