"""Building blocks of the katib charm's unit tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from charm_loader import load_charm
from ops import testing
from unit import gateway_metadata
from unit.pebble_services import running, service

from kubeflow_interfaces import mysql_client
from kubeflow_interfaces.trial_kinds import OwnedResources, TrialKind

CHARM = load_charm("katib")
# The charm's own modules, as it imported them.
import katib_cluster  # noqa: E402
import katib_config  # noqa: E402
import katib_data  # noqa: E402
import katib_workloads as workloads  # noqa: E402

MODEL = "kubeflow"
APP = "katib"
PEERS = "katib-peers"
DB_PASSWORD = "db-Password-7"
# Where the bundle's istio charm runs its gateway, and as whom (its gateway-metadata).
GATEWAY_NAMESPACE = "istio-system"

# TrainJob as kubeflow-trainer offers it (Katib v0.19.0's defaults for it:
# kubeflow/katib v0.19.0 pkg/apis/controller/experiments/v1beta1/constants.go).
TRAIN_JOB = TrialKind(
    kind="TrainJob",
    api_version="trainer.kubeflow.org/v1alpha1",
    plural="trainjobs",
    success_condition='status.conditions.#(type=="Complete")#|#(status=="True")#',
    failure_condition='status.conditions.#(type=="Failed")#|#(status=="True")#',
    primary_pod_labels={
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    },
    primary_container="node",
    owned=(OwnedResources("jobset.x-k8s.io", ("jobsets",)),),
)


def gateway_relation(**kwargs: Any) -> testing.Relation:
    """Istio's gateway-metadata, made by the ecosystem's own model."""
    return gateway_metadata.gateway_relation(
        GATEWAY_NAMESPACE, deployment="istio-ingressgateway-workload", **kwargs
    )


def db_relation() -> tuple[testing.Relation, testing.Secret]:
    """Mysql's answer for the database katib."""
    return mysql_client.relation_for_requirer(
        katib_data.DATABASE,
        database="katib",
        username="relation-7",
        password=DB_PASSWORD,
        endpoints="mysql-primary.kubeflow.svc:3306",
    )


def containers(can_connect: bool = True) -> set[testing.Container]:
    """Every workload container of the pod."""
    return {testing.Container(w.container, can_connect=can_connect) for w in workloads.WORKLOADS}


def state(
    leader: bool = True, *, db: bool = True, gateway: bool = True, **kwargs
) -> testing.State:
    """A unit of the charm with its peer relation, and by default the database and gateway."""
    relations: set[testing.Relation] = {testing.PeerRelation(PEERS)}
    secrets: set[testing.Secret] = set()
    if db:
        relation, secret = db_relation()
        relations.add(relation)
        secrets.add(secret)
    if gateway:
        relations.add(gateway_relation())
    relations |= set(kwargs.pop("relations", ()))
    secrets |= set(kwargs.pop("secrets", ()))
    defaults: dict[str, Any] = {
        "leader": leader,
        "containers": containers(),
        "relations": relations,
        "secrets": secrets,
        "model": testing.Model(name=MODEL),
    }
    return testing.State(**(defaults | kwargs))


def replace_container(state: testing.State, container: testing.Container) -> testing.State:
    """The state with one container replaced."""
    others = {c for c in state.containers if c.name != container.name}
    return dataclasses.replace(state, containers=others | {container})


__all__ = [
    "CHARM",
    "katib_cluster",
    "katib_config",
    "katib_data",
    "running",
    "service",
    "workloads",
]
