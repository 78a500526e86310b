"""The kfp charm's day-2 action `list-stuck-runs`.

A run that never finishes (its pods unschedulable, an image that does not
pull, a step waiting on Argo's `parallelism`) shows in the UI as "running"
with no hint why, and only in its own namespace. The action lists, over all
profile namespaces or one, the Argo Workflows (argoproj.io/v1alpha1) whose
phase is still Pending, Running or unset (argo-workflows v3.4.17
pkg/apis/workflow/v1alpha1/workflow_phase.go) and that started (or, not
started, were created) longer ago than `older-than` minutes; for each its
namespace, name, phase, start, the KFP run id (the label `pipeline/runid`,
kubeflow/pipelines 2.4.1 backend/src/common/util/consts.go) and why it waits:
the message of its first pending or failed node (workflow_types.go NodeStatus),
else the workflow's own.

It only reads, so any unit may run it. lightkube is imported only here, when
the action runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any

import ops

from kubeflow_charms.kubernetes import KubernetesError, api_errors
from kubeflow_interfaces.kubernetes_manifests import is_namespace_name

LIST_STUCK_RUNS = "list-stuck-runs"
DEFAULT_OLDER_THAN = 60  # minutes
STUCK_PHASES = ("", "Pending", "Running")
WAITING_NODE_PHASES = ("Pending", "Failed", "Error")
RUN_ID_LABEL = "pipeline/runid"


class ParamsError(ValueError):
    """The action's parameters are not usable; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class StuckRunsParams:
    """The parameters of `list-stuck-runs`, checked."""

    older_than: int = DEFAULT_OLDER_THAN
    namespace: str | None = None

    @classmethod
    def parse(cls, params: dict[str, Any]) -> StuckRunsParams:
        """The parameters from the action's params; raises ParamsError."""
        unknown = sorted(set(params) - {"older-than", "namespace"})
        if unknown:
            raise ParamsError(f"unknown parameter {unknown[0]!r}")
        older_than = params.get("older-than", DEFAULT_OLDER_THAN)
        if isinstance(older_than, bool) or not isinstance(older_than, int) or older_than < 1:
            raise ParamsError(
                f"older-than: must be a whole number of minutes, at least 1, not {older_than!r}"
            )
        namespace = params.get("namespace")
        if namespace is not None and not is_namespace_name(namespace):
            raise ParamsError(f"namespace: {namespace!r} is not a namespace name")
        return cls(older_than=older_than, namespace=namespace or None)


def _time(value: Any) -> datetime.datetime | None:
    """A timestamp as the API gives it (RFC 3339 text, or lightkube's datetime)."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _text(when: datetime.datetime | None) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


def _waiting_node(status: dict[str, Any]) -> dict[str, Any] | None:
    """The earliest node that is pending or failed and says why, or None."""
    nodes = status.get("nodes")
    if not isinstance(nodes, dict):
        return None
    found = [
        (str(node.get("startedAt") or "~"), str(node_id), node)
        for node_id, node in nodes.items()
        if isinstance(node, dict)
        and node.get("phase") in WAITING_NODE_PHASES
        and node.get("message")
    ]
    return min(found, key=lambda f: (f[0], f[1]))[2] if found else None


def stuck_run(workflow: dict[str, Any], now: float, older_than: int) -> dict[str, str] | None:
    """What the action reports of one Workflow, or None when it is not stuck."""
    metadata = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    phase = status.get("phase") or ""
    if phase not in STUCK_PHASES:
        return None
    started = _time(status.get("startedAt"))
    since = started or _time(metadata.get("creationTimestamp"))
    if since is None or now - since.timestamp() < older_than * 60:
        return None
    node = _waiting_node(status)
    run: dict[str, str] = {
        "namespace": str(metadata.get("namespace") or ""),
        "name": str(metadata.get("name") or ""),
        "phase": phase or "(none yet)",
        "started": _text(started),
        "created": _text(_time(metadata.get("creationTimestamp"))),
        "run-id": str((metadata.get("labels") or {}).get(RUN_ID_LABEL, "")),
        "message": str(status.get("message") or ""),
    }
    if node is not None:
        run["node"] = str(node.get("displayName") or node.get("name") or "")
        run["message"] = str(node["message"])
    return run


def stuck_runs(
    workflows: list[dict[str, Any]], now: float, older_than: int
) -> list[dict[str, str]]:
    """The stuck runs among `workflows`, the longest waiting first."""
    runs = [r for w in workflows if (r := stuck_run(w, now, older_than)) is not None]
    return sorted(runs, key=lambda r: (r["started"] or r["created"], r["namespace"], r["name"]))


def list_workflows(field_manager: str, model: str, namespace: str | None) -> list[dict[str, Any]]:
    """Every Workflow in `namespace`, or in all namespaces; raises KubernetesError."""
    with api_errors():
        from lightkube import ALL_NS, Client
        from lightkube.generic_resource import create_namespaced_resource

        workflow = create_namespaced_resource("argoproj.io", "v1alpha1", "Workflow", "workflows")
        client = Client(namespace=model, field_manager=field_manager)
        return [w.to_dict() for w in client.list(workflow, namespace=namespace or ALL_NS)]


def _now() -> float:
    return time.time()


def on_list_stuck_runs(charm: ops.CharmBase, event: ops.ActionEvent) -> None:
    """Run `list-stuck-runs`: bad parameters and API errors fail it with a message."""
    import yaml

    try:
        params = StuckRunsParams.parse(dict(event.params))
    except ParamsError as e:
        event.fail(str(e))
        return
    try:
        workflows = list_workflows(charm.app.name, charm.model.name, params.namespace)
    except KubernetesError as e:
        refused = f"the Kubernetes API refused (HTTP {e.status}): " if e.status else ""
        event.fail(f"listing the Argo Workflows failed: {refused}{e}")
        return
    runs = stuck_runs(workflows, _now(), params.older_than)
    event.set_results(
        {
            "count": len(runs),
            "runs": yaml.safe_dump(runs, sort_keys=False) if runs else "[]",
        }
    )
