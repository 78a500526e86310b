"""Building blocks of the kubeflow-notebooks charm's unit tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import ops
from charm_loader import load_charm
from ops import testing

from kubeflow_interfaces import istio_ingress_route

CHARM = load_charm("kubeflow-notebooks")
controller = CHARM.notebook_controller  # the charm's workload modules, as it imported them
web_app = CHARM.jupyter_web_app
spawner = CHARM.spawner_config

MODEL = "kubeflow"
PEERS = "notebooks-peers"


def containers(*, can_connect: bool = True) -> set[testing.Container]:
    return {
        testing.Container(controller.CONTAINER, can_connect=can_connect),
        testing.Container(web_app.CONTAINER, can_connect=can_connect),
    }


def route_relation(
    external_host: str | None = "10.0.0.1", *, tls_enabled: bool = False, **kwargs: Any
) -> testing.Relation:
    """The web app's route as istio answers it (None: not served yet)."""
    return istio_ingress_route.relation_for_requirer(
        external_host=external_host, tls_enabled=tls_enabled, **kwargs
    )


def links_relation() -> testing.Relation:
    return testing.Relation(
        "dashboard-links", interface="kubeflow_dashboard_links", remote_app_name="dashboard"
    )


def state(**kwargs: Any) -> testing.State:
    """A leader with both containers, its peer relation and a route, in model `kubeflow`."""
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": containers(),
        "relations": {testing.PeerRelation(PEERS), route_relation()},
        "model": testing.Model(name=MODEL),
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def checks_up(out: testing.State) -> testing.State:
    """Pebble reports both ready checks up, as once the workloads serve."""
    ready = set()
    for c in out.containers:
        name = controller.READY_CHECK if c.name == controller.CONTAINER else web_app.READY_CHECK
        info = testing.CheckInfo(
            name, level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
        )
        ready.add(dataclasses.replace(c, check_infos=frozenset({info})))
    return dataclasses.replace(out, containers=ready)


def settle(ctx: testing.Context, base: testing.State) -> testing.State:
    """config-changed, the workloads come up, then update-status."""
    out = checks_up(ctx.run(ctx.on.config_changed(), base))
    return ctx.run(ctx.on.update_status(), out)


def spawner_file(ctx: testing.Context, out: testing.State) -> str:
    c = out.get_container(web_app.CONTAINER)
    return (c.get_filesystem(ctx) / web_app.CONFIG_FILE.lstrip("/")).read_text()
