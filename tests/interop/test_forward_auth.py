"""Our OIDC gateway against the ecosystem's forward_auth requirer.

The mesh's side is `ForwardAuthRequirer` from charmlibs-interfaces-forward-auth,
the library istio-ingress-k8s uses, in a tiny charm: it lists the apps it
routes with the library, and reads what our real oidc-gateway charm publishes
back through the library (which checks it against the interface's schema).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import ops
import pytest
from charmlibs.interfaces.forward_auth import (
    AuthConfigChangedEvent,
    ForwardAuthRequirer,
    ForwardAuthRequirerConfig,
)
from ops import testing
from unit.oidc_gateway.helpers import APP, CHARM, MODEL, dex_state

MESH_META = {
    "name": "istio",
    "requires": {"forward-auth": {"interface": "forward_auth", "limit": 1}},
}
PROTECTED = ["kubeflow-dashboard", "kubeflow-notebooks"]


class Mesh(ops.CharmBase):
    """The gateway side of the mesh, as a charm using the ecosystem library has it."""

    seen: list[Any] = []  # noqa: RUF012 - what the last run read, for the test

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.auth = ForwardAuthRequirer(
            self, ingress_app_names=ForwardAuthRequirerConfig(ingress_app_names=PROTECTED)
        )
        framework.observe(self.on.config_changed, self._list_apps)
        framework.observe(self.auth.on.auth_config_changed, self._changed)

    def _list_apps(self, _: ops.EventBase) -> None:
        self.auth.update_requirer_relation_data(ForwardAuthRequirerConfig(PROTECTED))

    def _changed(self, event: AuthConfigChangedEvent) -> None:
        relation = self.model.get_relation("forward-auth")
        assert relation is not None and relation.app is not None
        extension = relation.data[relation.app]
        Mesh.seen[:] = [
            event.decisions_address,
            self.auth.get_provider_info(),
            self.auth.is_ready(),
            self.auth.is_protected_app("kubeflow-dashboard"),
            json.loads(extension["kubeflow_user_header"]),
            json.loads(extension["kubeflow_user_prefix"]),
        ]


def _mesh_asks() -> dict[str, str]:
    """The mesh's databag, written by the library's requirer."""
    ctx = testing.Context(Mesh, meta=MESH_META)
    relation = testing.Relation("forward-auth", interface="forward_auth", remote_app_name=APP)
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={relation}))
    return dict(out.get_relation(relation.id).local_app_data)


def _gateway_answers(tmp_path: Path, asked: dict[str, str], **config: Any) -> dict[str, str]:
    """Our real charm's databag on the relation, for the mesh's request."""
    relation = testing.Relation(
        "forward-auth", interface="forward_auth", remote_app_name="istio", remote_app_data=asked
    )
    state = dex_state(tmp_path, config=config)
    others = {r for r in state.relations if r.endpoint != "forward-auth"}
    state = dataclasses.replace(state, relations=others | {relation})
    ctx = testing.Context(CHARM.OidcGatewayCharm, app_name=APP)
    out = ctx.run(ctx.on.relation_changed(relation), state)
    return dict(out.get_relation(relation.id).local_app_data)


def _mesh_reads(answer: dict[str, str], asked: dict[str, str]) -> list[Any]:
    ctx = testing.Context(Mesh, meta=MESH_META)
    relation = testing.Relation(
        "forward-auth",
        interface="forward_auth",
        remote_app_name=APP,
        remote_app_data=answer,
        local_app_data=asked,
    )
    Mesh.seen = []
    ctx.run(ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation}))
    return Mesh.seen


def test_the_library_reads_our_decisions_address_and_headers(tmp_path):
    asked = _mesh_asks()
    assert json.loads(asked["ingress_app_names"]) == PROTECTED

    answer = _gateway_answers(tmp_path, asked)
    seen = _mesh_reads(answer, asked)

    # The library emits auth_config_changed only for data that passes its schema.
    assert seen, "the library did not accept our data"
    address, info, ready, protected, header, prefix = seen
    expected = f"http://{APP}.{MODEL}.svc.cluster.local:4180"
    assert address == expected
    assert info is not None
    assert info.decisions_address == expected
    assert info.app_names == PROTECTED
    assert info.headers == ["kubeflow-userid", "kubeflow-groups"]
    assert ready is True
    assert protected is True
    assert (header, prefix) == ("kubeflow-userid", "")


@pytest.mark.parametrize(
    ("config", "headers", "user"),
    [
        (
            {"userid-header": "X-Auth-User", "userid-prefix": "oidc:", "groups-header": ""},
            ["x-auth-user"],
            ("x-auth-user", "oidc:"),
        ),
        ({"groups-header": "x-groups"}, ["kubeflow-userid", "x-groups"], ("kubeflow-userid", "")),
    ],
)
def test_the_headers_follow_the_gateways_config(tmp_path, config, headers, user):
    asked = _mesh_asks()
    seen = _mesh_reads(_gateway_answers(tmp_path, asked, **config), asked)

    assert seen, "the library did not accept our data"
    assert seen[1].headers == headers
    assert tuple(seen[4:]) == user
