"""The `list-stuck-runs` action.

Workflow fields as Argo v3.4.17 names them (argoproj/argo-workflows
pkg/apis/workflow/v1alpha1/workflow_types.go: status.phase, startedAt, message,
nodes.<id>.{phase, message, startedAt, displayName}; workflow_phase.go: the phases);
the run id label as KFP 2.4.1 sets it (kubeflow/pipelines backend/src/common/util/
consts.go, LabelKeyWorkflowRunId = pipeline/runid).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes
from ops import testing
from unit.kfp.helpers import CHARM, workloads

from kubeflow_charms.kubernetes import render

kfp_actions = CHARM.kfp_actions
MANIFESTS = CHARM.kfp_cluster.MANIFESTS
NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def _ago(minutes: float) -> str:
    return (NOW - datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _workflow(
    namespace: str,
    name: str,
    *,
    created: float,
    phase: str | None = None,
    started: float | None = None,
    message: str | None = None,
    nodes: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "creationTimestamp": _ago(created),
    }
    if run_id:
        metadata["labels"] = {"pipeline/runid": run_id}
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if started is not None:
        status["startedAt"] = _ago(started)
    if message is not None:
        status["message"] = message
    if nodes is not None:
        status["nodes"] = nodes
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {"entrypoint": "main", "templates": [{"name": "main"}]},
    }
    if status:
        body["status"] = status
    return body


def _node(phase: str, message: str = "", started: float | None = None, name: str = "") -> dict:
    node: dict[str, Any] = {"id": name, "name": name, "displayName": name, "type": "Pod"}
    node["phase"] = phase
    if message:
        node["message"] = message
    if started is not None:
        node["startedAt"] = _ago(started)
    return node


WORKFLOWS = [
    # Waiting on an unschedulable step for two hours.
    _workflow(
        "alice",
        "train-abc12",
        created=121,
        phase="Running",
        started=120,
        run_id="7f1c0e7e-run-1",
        nodes={
            "train-abc12": _node("Running", name="train-abc12", started=120),
            "train-abc12-1": _node("Succeeded", "done", started=119, name="prep"),
            "train-abc12-2": _node(
                "Pending", "Unschedulable: 0/3 nodes are available", started=100, name="gpu-step"
            ),
            "train-abc12-3": _node("Failed", "later failure", started=90, name="other"),
        },
    ),
    # Held back by Argo's parallelism: pending, never started, its own message.
    _workflow(
        "bob",
        "etl-xyz",
        created=300,
        phase="Pending",
        message="Workflow processing has been postponed because too many workflows are running",
        run_id="run-2",
    ),
    # Not yet seen by the controller: no status at all.
    _workflow("bob", "fresh-but-old", created=90),
    # Running, but only for ten minutes.
    _workflow("alice", "recent", created=11, phase="Running", started=10),
    # Finished long ago.
    _workflow("alice", "done", created=600, phase="Succeeded", started=600),
    _workflow("bob", "failed", created=600, phase="Failed", started=600, message="boom"),
]


@pytest.fixture
def cluster(kube: FakeKubernetes, monkeypatch: pytest.MonkeyPatch) -> FakeKubernetes:
    """The fake cluster with Argo's Workflow CRD (the charm's own) and WORKFLOWS; time is NOW."""
    import lightkube.codecs

    client = kube.client()
    for doc in lightkube.codecs.load_all_yaml(render(MANIFESTS, ["crds.yaml.j2"], {})):
        if doc.metadata.name == "workflows.argoproj.io":
            client.create(doc)
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    for namespace in ("alice", "bob"):
        client.create(Namespace(metadata=ObjectMeta(name=namespace)))
    workflow = create_namespaced_resource("argoproj.io", "v1alpha1", "Workflow", "workflows")
    for body in WORKFLOWS:
        client.create(workflow.from_dict(body))
    # The API server dates what it creates (the fake keeps no date): these were made
    # in the past.
    for body in WORKFLOWS:
        meta = body["metadata"]
        key = ("argoproj.io/v1alpha1", "workflows", meta["namespace"], meta["name"])
        kube.objects[key].body["metadata"]["creationTimestamp"] = meta["creationTimestamp"]
    monkeypatch.setattr(kfp_actions, "_now", NOW.timestamp)
    return kube


def _state(leader: bool = True) -> testing.State:
    containers = {testing.Container(w.container, can_connect=True) for w in workloads.WORKLOADS}
    return testing.State(
        leader=leader, containers=containers, model=testing.Model(name="kubeflow")
    )


def _run(params: dict[str, Any], leader: bool = True) -> tuple[testing.Context, list[dict]]:
    ctx = testing.Context(CHARM.KfpCharm)
    ctx.run(ctx.on.action("list-stuck-runs", params=params), _state(leader))
    assert ctx.action_results is not None
    runs = yaml.safe_load(ctx.action_results["runs"])
    assert ctx.action_results["count"] == len(runs)
    return ctx, runs


@pytest.mark.parametrize("leader", [True, False])
def test_lists_the_runs_waiting_longer_than_the_default_hour(cluster, leader):
    _, runs = _run({}, leader=leader)
    assert [(r["namespace"], r["name"]) for r in runs] == [
        ("bob", "etl-xyz"),
        ("alice", "train-abc12"),
        ("bob", "fresh-but-old"),
    ]
    etl, train, fresh = runs
    assert train == {
        "namespace": "alice",
        "name": "train-abc12",
        "phase": "Running",
        "started": _ago(120),
        "created": _ago(121),
        "run-id": "7f1c0e7e-run-1",
        # The earliest pending or failed node that says why.
        "message": "Unschedulable: 0/3 nodes are available",
        "node": "gpu-step",
    }
    assert etl["phase"] == "Pending"
    assert etl["started"] == ""
    assert etl["run-id"] == "run-2"
    assert etl["message"].startswith("Workflow processing has been postponed")
    assert "node" not in etl
    assert fresh["phase"] == "(none yet)"
    assert fresh["run-id"] == ""


def test_older_than_and_namespace_narrow_the_list(cluster):
    _, runs = _run({"older-than": 5, "namespace": "alice"})
    assert [r["name"] for r in runs] == ["train-abc12", "recent"]
    _, runs = _run({"older-than": 200})
    assert [r["name"] for r in runs] == ["etl-xyz"]


def test_no_stuck_runs_gives_an_empty_list(cluster):
    ctx, runs = _run({"namespace": "nobody"})
    assert runs == []
    assert ctx.action_results == {"count": 0, "runs": "[]"}


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"older-than": 0}, "older-than: must be a whole number of minutes, at least 1"),
        ({"older-than": -3}, "older-than: must be a whole number of minutes, at least 1"),
        ({"namespace": "Not_A_Namespace"}, "namespace: 'Not_A_Namespace' is not a namespace"),
        ({"namespace": "a" * 64}, "is not a namespace name"),
    ],
)
def test_bad_parameters_fail_with_a_message(kube, params, problem):
    ctx = testing.Context(CHARM.KfpCharm)
    with pytest.raises(testing.ActionFailed) as e:
        ctx.run(ctx.on.action("list-stuck-runs", params=params), _state())
    assert problem in e.value.message
    assert "Traceback" not in e.value.message
    assert kube.lists == 0  # nothing was asked of the API


@pytest.mark.parametrize("value", [True, 2.5, "60"])
def test_parameters_of_the_wrong_type_are_refused(value):
    with pytest.raises(kfp_actions.ParamsError, match=r"^older-than: "):
        kfp_actions.StuckRunsParams.parse({"older-than": value})


def test_defaults():
    assert kfp_actions.StuckRunsParams.parse({}) == kfp_actions.StuckRunsParams(60, None)


@pytest.mark.parametrize(("status", "reason"), [(403, "Forbidden"), (500, "InternalError")])
def test_an_api_error_fails_with_its_http_status(kube, monkeypatch, status, reason):
    from lightkube import Client

    def refuse(self, *args, **kwargs):
        import httpx
        from lightkube.core.exceptions import ApiError

        body = {"kind": "Status", "code": status, "reason": reason, "message": "no"}
        raise ApiError(response=httpx.Response(status, json=body))

    monkeypatch.setattr(Client, "list", refuse)
    ctx = testing.Context(CHARM.KfpCharm)
    with pytest.raises(testing.ActionFailed) as e:
        ctx.run(ctx.on.action("list-stuck-runs"), _state())
    assert f"HTTP {status}" in e.value.message
    assert reason in e.value.message


def test_without_the_workflow_crd_the_api_says_not_found(kube):
    ctx = testing.Context(CHARM.KfpCharm)
    with pytest.raises(testing.ActionFailed) as e:
        ctx.run(ctx.on.action("list-stuck-runs"), _state())
    assert "HTTP 404" in e.value.message


def test_the_action_is_declared_as_implemented():
    from charm_loader import charm_dir

    meta = yaml.safe_load((charm_dir("kfp") / "charmcraft.yaml").read_text())
    action = meta["actions"]["list-stuck-runs"]
    assert set(action["params"]) == {"older-than", "namespace"}
    assert action["params"]["older-than"]["default"] == kfp_actions.DEFAULT_OLDER_THAN
    assert action["params"]["older-than"]["minimum"] == 1
    assert action["additionalProperties"] is False


def test_lightkube_is_imported_only_when_the_action_runs():
    from charm_loader import run_fresh

    result = run_fresh(
        "import json, sys\n"
        "from charm_loader import load_charm\n"
        "load_charm('kfp')\n"
        "print(json.dumps({'lightkube': 'lightkube' in sys.modules}))\n"
    )
    assert result == {"lightkube": False}
