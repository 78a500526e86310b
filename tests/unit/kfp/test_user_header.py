"""The login's user-id header and prefix, as istio passes them over istio-ingress-route.

The UI and the API server read them (KUBEFLOW_USERID_HEADER, KUBEFLOW_USERID_PREFIX), and
the mesh's policies require that header: the pod's own, and the artifact server's in
every profile namespace. The keys on the relation are ours (kubeflow_interfaces.
istio_ingress_route), which the istio charm writes from the OIDC gateway's
`userid-header` and `userid-prefix`.
"""

from __future__ import annotations

import dataclasses

import ops
import pytest
from bundle.fake_kubernetes import FakeKubernetes
from ops import testing
from unit.kfp import test_profile_workloads as profiles
from unit.kfp.helpers import CHARM, kfp_config, kfp_route, workloads

from kubeflow_interfaces import istio_ingress_route as iir

wl = workloads
APP = profiles.APP
MODEL = profiles.MODEL
HEADER = "x-auth-request-email"
PREFIX = "oidc:"
HEADER_TRUSTING = (wl.API_SERVER, wl.UI)

cluster = profiles.cluster  # the fake cluster with Istio's kind and three profile namespaces


def _route(header: str | None = None, prefix: str | None = None, **kwargs) -> testing.Relation:
    return iir.relation_for_requirer(
        kfp_route.ROUTE, user_header=header, user_prefix=prefix, **kwargs
    )


def _env(out: testing.State, workload: wl.Workload) -> dict[str, str]:
    service = out.get_container(workload.container).plan.services[workload.service]
    return dict(service.environment)


def _pod_policy_key(kube: FakeKubernetes) -> str:
    policy = kube.get("AuthorizationPolicy", f"{APP}-user-header", MODEL)
    assert policy is not None
    (when,) = policy["spec"]["rules"][1]["when"]
    assert when["notValues"] == ["*"]
    return when["key"]


def _artifact_policy_key(kube: FakeKubernetes, namespace: str) -> str:
    policy = kube.get("AuthorizationPolicy", wl.UI_ARTIFACT_SERVICE, namespace)
    assert policy is not None
    (when,) = policy["spec"]["rules"][1]["when"]
    assert when["notValues"] == ["*"]
    return when["key"]


def _with_route(out: testing.State, route: testing.Relation) -> testing.State:
    """`out` with istio's side of the route relation saying something else now."""
    old = out.get_relation(route.id)
    new = dataclasses.replace(old, remote_app_data=dict(route.remote_app_data))
    return dataclasses.replace(out, relations=(out.relations - {old}) | {new})


def _layers(out: testing.State) -> dict[str, dict]:
    return {
        w.container: {
            n: layer.to_dict() for n, layer in out.get_container(w.container).layers.items()
        }
        for w in wl.WORKLOADS
    }


def test_the_defaults_are_the_interfaces():
    assert (wl.USER_HEADER, wl.USER_PREFIX) == (iir.DEFAULT_USER_HEADER, iir.DEFAULT_USER_PREFIX)


def test_the_layers_carry_the_header_and_prefix_given():
    layers = wl.layers(
        kfp_config.KfpConfig(),
        namespace=MODEL,
        pod_name="kfp-0",
        leader=True,
        user_header=(HEADER, PREFIX),
    )
    for workload in HEADER_TRUSTING:
        (service,) = layers[workload.container]["services"].values()
        env = service["environment"]
        assert (env["KUBEFLOW_USERID_HEADER"], env["KUBEFLOW_USERID_PREFIX"]) == (HEADER, PREFIX)


def test_istios_header_and_prefix_reach_the_workloads_and_the_policies(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    state = profiles._state(profiles._dispatcher(), _route(HEADER, PREFIX))
    out = profiles._settle(ctx, state)
    assert out.unit_status == ops.ActiveStatus()
    for workload in HEADER_TRUSTING:
        env = _env(out, workload)
        assert env["KUBEFLOW_USERID_HEADER"] == HEADER, workload.service
        assert env["KUBEFLOW_USERID_PREFIX"] == PREFIX, workload.service
    assert _pod_policy_key(cluster) == f"request.headers[{HEADER}]"
    for namespace in ("alice", "bob"):
        assert _artifact_policy_key(cluster, namespace) == f"request.headers[{HEADER}]"


def test_a_header_in_capitals_is_used_in_lower_case(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = profiles._settle(ctx, profiles._state(_route("X-Auth-Request-Email")))
    assert _env(out, wl.API_SERVER)["KUBEFLOW_USERID_HEADER"] == HEADER
    assert _pod_policy_key(cluster) == f"request.headers[{HEADER}]"


def test_a_new_header_from_istio_updates_the_workloads_and_the_policies(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    route = _route()
    out = profiles._settle(ctx, profiles._state(profiles._dispatcher(), route))
    assert _env(out, wl.UI)["KUBEFLOW_USERID_HEADER"] == "kubeflow-userid"
    assert _pod_policy_key(cluster) == "request.headers[kubeflow-userid]"
    assert _artifact_policy_key(cluster, "alice") == "request.headers[kubeflow-userid]"
    changed = _with_route(out, _route(HEADER, PREFIX, id=route.id))
    again = ctx.run(ctx.on.relation_changed(changed.get_relation(route.id)), changed)
    assert again.unit_status == ops.ActiveStatus()
    for workload in HEADER_TRUSTING:
        env = _env(again, workload)
        assert (env["KUBEFLOW_USERID_HEADER"], env["KUBEFLOW_USERID_PREFIX"]) == (HEADER, PREFIX)
    assert _pod_policy_key(cluster) == f"request.headers[{HEADER}]"
    for namespace in ("alice", "bob"):
        assert _artifact_policy_key(cluster, namespace) == f"request.headers[{HEADER}]"


@pytest.mark.parametrize(
    ("header", "prefix", "problem"),
    [
        ("x user", None, "kubeflow_user_header 'x user' is not a header name"),
        ("x-user*", None, "kubeflow_user_header 'x-user*' contains *"),
        (None, "oidc: ", "kubeflow_user_prefix must be at most 128 printable characters"),
    ],
)
def test_a_bad_header_from_istio_is_blocked_and_changes_nothing(cluster, header, prefix, problem):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    route = _route(HEADER, PREFIX)
    out = profiles._settle(ctx, profiles._state(profiles._dispatcher(), route))
    writes = list(cluster.writes)
    bad = _with_route(out, _route(header, prefix, id=route.id))
    again = ctx.run(ctx.on.relation_changed(bad.get_relation(route.id)), bad)
    assert isinstance(again.unit_status, ops.BlockedStatus)
    assert again.unit_status.message.startswith(f"{kfp_route.ROUTE}: ")
    assert problem in again.unit_status.message
    # The workloads and the policies keep the login's last valid header: nothing opens.
    assert cluster.writes == writes
    assert _layers(again) == _layers(out)
    assert _pod_policy_key(cluster) == f"request.headers[{HEADER}]"
    # Blocked on later hooks too, until istio says something valid.
    later = ctx.run(ctx.on.update_status(), again)
    assert later.unit_status == again.unit_status
    fixed = _with_route(later, _route(HEADER, PREFIX, id=route.id))
    healed = ctx.run(ctx.on.relation_changed(fixed.get_relation(route.id)), fixed)
    assert healed.unit_status == ops.ActiveStatus()


def test_a_bad_header_from_istio_before_anything_is_applied_applies_nothing(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    out = profiles._settle(ctx, profiles._state(profiles._dispatcher(), _route("x user")))
    assert out.unit_status == ops.BlockedStatus(
        f"{kfp_route.ROUTE}: kubeflow_user_header 'x user' is not a header name"
    )
    assert cluster.of_kind("AuthorizationPolicy") == []
    for workload in HEADER_TRUSTING:
        assert out.get_container(workload.container).plan.services == {}, workload.service


def test_resync_with_a_bad_header_from_istio_fails_and_changes_nothing(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    route = _route()
    out = profiles._settle(ctx, profiles._state(profiles._dispatcher(), route))
    bad = _with_route(out, _route("x user", id=route.id))
    writes = list(cluster.writes)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("resync-profiles"), bad)
    assert failed.value.message.startswith(f"{kfp_route.ROUTE}: kubeflow_user_header")
    assert cluster.writes == writes


def test_resync_applies_istios_header(cluster):
    ctx = testing.Context(CHARM.KfpCharm, app_name=APP)
    route = _route(HEADER, PREFIX)
    out = profiles._settle(ctx, profiles._state(profiles._dispatcher(), route))
    cluster.delete("AuthorizationPolicy", wl.UI_ARTIFACT_SERVICE, "alice")
    ctx.run(ctx.on.action("resync-profiles"), out)
    assert _artifact_policy_key(cluster, "alice") == f"request.headers[{HEADER}]"
