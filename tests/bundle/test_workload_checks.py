"""Pebble checks as the workloads answer them, and charms that say when a workload fails.

A check is up only while a running service of its container answers its port
(and, for HTTP, its path); a service that exits, answers 500 or stops
listening takes its checks down, and Juju tells the charm
(pebble-check-failed, then -recovered once it works again).
"""

from __future__ import annotations

from pathlib import Path

import ops
import pytest
from bundle.simulator import BUNDLE, HookRecord, Model
from bundle.workloads import Workloads
from ops import testing

DOWN, UP = ops.pebble.CheckStatus.DOWN, ops.pebble.CheckStatus.UP


def _container(**services: ops.pebble.ServiceStatus) -> testing.Container:
    """A dashboard-like container: the dashboard and KFAM, each with its check."""
    layer = {
        "services": {
            "dashboard": {"override": "replace", "command": "npm start"},
            "kfam": {"override": "replace", "command": "/access-management"},
        },
        "checks": {
            "dashboard-ready": {
                "override": "replace",
                "level": "ready",
                "http": {"url": "http://localhost:8082/healthz"},
            },
            "kfam-ready": {
                "override": "replace",
                "level": "ready",
                "http": {"url": "http://localhost:8081/metrics"},
            },
            "wrong-path": {"override": "replace", "http": {"url": "http://localhost:8082/nope"}},
            "wrong-port": {"override": "replace", "tcp": {"port": 9999}},
        },
    }
    return testing.Container(
        "dashboard",
        can_connect=True,
        layers={"dashboard": ops.pebble.Layer(layer)},  # type: ignore[arg-type]
        service_statuses=services,
    )


def _checks(state: testing.State) -> dict[str, ops.pebble.CheckStatus]:
    (container,) = state.containers
    return {info.name: info.status for info in container.check_infos}


def test_a_check_is_up_only_when_its_own_service_answers_its_port_and_path():
    workloads = Workloads()
    active, inactive = ops.pebble.ServiceStatus.ACTIVE, ops.pebble.ServiceStatus.INACTIVE
    both = testing.State(containers={_container(dashboard=active, kfam=active)})
    out = workloads.after_hook("kubeflow-dashboard", both, unit="kubeflow-dashboard/0")
    assert _checks(out) == {
        "dashboard-ready": UP,
        "kfam-ready": UP,
        "wrong-path": DOWN,  # the dashboard answers /healthz on 8082, not /nope
        "wrong-port": DOWN,  # nothing listens on 9999
    }
    # KFAM stopped: its check goes down, the dashboard's stays up.
    one = testing.State(containers={_container(dashboard=active, kfam=inactive)})
    out = workloads.after_hook("kubeflow-dashboard", one, unit="kubeflow-dashboard/0")
    assert _checks(out)["kfam-ready"] == DOWN
    assert _checks(out)["dashboard-ready"] == UP


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("answers 500", {"dashboard-ready": DOWN, "wrong-port": DOWN}),
        ("does not listen", {"dashboard-ready": DOWN, "wrong-port": DOWN}),
        ("exits", {"dashboard-ready": DOWN, "wrong-port": DOWN}),
    ],
)
def test_a_broken_service_fails_its_checks(how, expected):
    workloads = Workloads()
    workloads.faults[("kubeflow-dashboard/0", "dashboard")] = how
    active = ops.pebble.ServiceStatus.ACTIVE
    state = testing.State(containers={_container(dashboard=active, kfam=active)})
    out = workloads.after_hook("kubeflow-dashboard", state, unit="kubeflow-dashboard/0")
    checks = _checks(out)
    assert {name: checks[name] for name in expected} == expected
    assert checks["kfam-ready"] == UP
    (container,) = out.containers
    exited = container.service_statuses["dashboard"] == ops.pebble.ServiceStatus.ERROR
    assert exited == (how == "exits")


# Each charm's services, broken one way or another, and what the charm says then.
FAILURES = [
    ("mysql/0", "mysqld", "does not listen", "mysqld is not ready"),
    ("minio/0", "minio", "answers 500", "MinIO is not ready yet (check minio-ready)"),
    ("istio/0", "istiod", "answers 500", "istiod is not ready"),
    ("dex/0", "dex", "exits", "waiting for Dex to be ready"),
    ("oidc-gateway/0", "oauth2-proxy", "answers 500", "oauth2-proxy is not ready"),
    ("kubeflow-dashboard/0", "dashboard", "exits", "dashboard is not ready"),
    ("kubeflow-dashboard/0", "kfam", "does not listen", "kfam is not ready"),
    ("kubeflow-dashboard/0", "profile-controller", "answers 500", "profile-controller is not"),
    ("kubeflow-notebooks/0", "jupyter-web-app", "answers 500", "Jupyter web app is not ready"),
    ("kubeflow-notebooks/0", "notebook-controller", "exits", "starting the notebook controller"),
    (
        "resource-dispatcher/0",
        "poddefaults-webhook",
        "does not listen",
        "the PodDefault webhook is not ready yet (check webhook-ready)",
    ),
    ("kfp/0", "api-server", "answers 500", "api-server is not ready (check api-server-ready"),
    ("kfp/0", "metadata-envoy", "exits", "metadata-envoy is not ready (check metadata-envoy"),
    (
        "kfp/0",
        "workflow-controller",
        "does not listen",
        "workflow-controller is not ready (check workflow-controller-alive fails)",
    ),
]


@pytest.mark.parametrize(("unit", "service", "how", "said"), FAILURES)
def test_a_failing_workload_is_reported_until_it_works_again(
    settled_models, tmp_path: Path, unit, service, how, said
):
    model: Model = settled_models.own(tmp_path)
    app = unit.split("/")[0]
    before = dict(model.statuses), dict(model.app_statuses)

    model.break_workload(unit, service, how)

    assert model.hooks[-1].event.endswith("-pebble-check-failed")
    status = model.statuses[unit]
    assert status.name in ("waiting", "maintenance", "blocked"), status
    assert said in status.message
    assert model.app_statuses[app] == status

    model.mend_workload(unit, service)

    assert model.hooks[-1].event.endswith("-pebble-check-recovered")
    assert (dict(model.statuses), dict(model.app_statuses)) == before
    assert model.update_status(unit) == []


def test_an_unknown_way_to_break_is_refused(settled_models, tmp_path: Path):
    model: Model = settled_models.own(tmp_path)
    with pytest.raises(ValueError, match="exits"):
        model.break_workload("dex/0", "dex", "catches fire")


# kfp's checked services and their checks (kfp_workloads' layers); the persistence
# agent, the scheduled-workflow and viewer controllers have none (no probes upstream).
KFP_CHECKS = {
    "api-server": "api-server-ready",
    "ui": "ui-ready",
    "metadata-grpc": "metadata-grpc-ready",
    "metadata-envoy": "metadata-envoy-ready",
    "workflow-controller": "workflow-controller-alive",
    "visualization-server": "visualization-server-ready",
}


def _kfp_checks(model: Model) -> dict[str, ops.pebble.CheckStatus]:
    unit = model.unit("kfp/0")
    return {info.name: info.status for c in unit.state.containers for info in c.check_infos}


OVERLAYS = sorted((BUNDLE.parent / "overlays").glob("*.yaml"))


@pytest.mark.parametrize(
    "overlays",
    [pytest.param([], id="bundle")] + [pytest.param([o], id=o.stem) for o in OVERLAYS],
)
def test_every_checked_kfp_service_answers_where_its_check_asks(settled_models, overlays):
    model = settled_models.settled(overlays)
    assert _kfp_checks(model) == dict.fromkeys(KFP_CHECKS.values(), UP)


@pytest.mark.parametrize(
    ("service", "how"),
    [
        ("api-server", "answers 500"),
        ("ui", "does not listen"),
        ("metadata-grpc", "does not listen"),
        ("metadata-envoy", "exits"),
        ("workflow-controller", "answers 500"),
        ("visualization-server", "answers 500"),
    ],
)
def test_a_broken_kfp_service_takes_only_its_own_check_down(
    settled_models, tmp_path: Path, service, how
):
    model: Model = settled_models.own(tmp_path)
    model.break_workload("kfp/0", service, how)

    assert model.hooks[-1] == HookRecord("kfp/0", f"{service}-pebble-check-failed")
    expected = dict.fromkeys(KFP_CHECKS.values(), UP) | {KFP_CHECKS[service]: DOWN}
    assert _kfp_checks(model) == expected

    model.mend_workload("kfp/0", service)

    assert model.hooks[-1] == HookRecord("kfp/0", f"{service}-pebble-check-recovered")
    assert _kfp_checks(model) == dict.fromkeys(KFP_CHECKS.values(), UP)
    assert model.update_status("kfp/0") == []
