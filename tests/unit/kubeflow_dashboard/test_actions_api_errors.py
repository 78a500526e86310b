"""Every profile action fails with a message, not a traceback, when Kubernetes is unreachable."""

from __future__ import annotations

import httpx
import pytest
from ops import testing
from unit.kubeflow_dashboard.helpers import BOB, action_fails, snapshot, state

ACTIONS = [
    ("create-profile", {"name": "team-b", "owner": BOB}),
    ("add-contributor", {"profile": "team-a", "user": BOB, "role": "edit"}),
    ("remove-contributor", {"profile": "team-a", "user": BOB}),
    ("list-profiles", {}),
]


def _unreachable(error: type[httpx.TransportError]):
    def handle(request: httpx.Request) -> httpx.Response:
        raise error("connection refused", request=request)

    return handle


@pytest.mark.parametrize(("action", "params"), ACTIONS)
@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
def test_an_unreachable_api_fails_the_action(ctx, cluster, monkeypatch, action, params, error):
    monkeypatch.setattr(cluster, "handle", _unreachable(error))
    message = action_fails(ctx, cluster, action, "", **params)
    assert message == "the Kubernetes API is unreachable: connection refused"


@pytest.mark.parametrize(("action", "params"), ACTIONS)
def test_no_credentials_outside_a_cluster_fail_the_action(
    ctx, tmp_path, monkeypatch, action, params
):
    # No fake cluster: lightkube looks for the pod's service account, then a kubeconfig.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), state())
    assert failed.value.message.startswith("no Kubernetes API credentials: ")


def test_bad_parameters_are_reported_before_the_api_is_needed(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("create-profile", params={"name": "x", "owner": "*"}), state())
    assert failed.value.message.startswith("owner: '*' is not a user id")


def test_a_removal_cut_short_is_finished_by_running_it_again(ctx, cluster, monkeypatch):
    ctx.run(
        ctx.on.action(
            "add-contributor", params={"profile": "team-a", "user": BOB, "role": "edit"}
        ),
        state(),
    )
    answer = cluster.handle

    def lost_at_the_policy(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and "authorizationpolicies" in request.url.path:
            raise httpx.ConnectError("connection reset", request=request)
        return answer(request)

    monkeypatch.setattr(cluster, "handle", lost_at_the_policy)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(
            ctx.on.action("remove-contributor", params={"profile": "team-a", "user": BOB}), state()
        )
    assert failed.value.message == "the Kubernetes API is unreachable: connection reset"
    assert cluster.of_kind("AuthorizationPolicy") != []

    monkeypatch.setattr(cluster, "handle", answer)
    before = snapshot(cluster)
    ctx.run(
        ctx.on.action("remove-contributor", params={"profile": "team-a", "user": BOB}), state()
    )
    assert snapshot(cluster) != before
    assert cluster.of_kind("AuthorizationPolicy") == []
    assert ctx.action_results["removed-bindings"] == "none"
