"""The `pod-defaults` relation: the PodDefault that lets a profile's pods use the Pipelines API.

The resource dispatcher puts one PodDefault, `access-ml-pipeline`, in every
profile namespace. A pod labelled `access-ml-pipeline: "true"` (the notebook
form lists it as a configuration) gets what upstream's gives it (kubeflow/
manifests v1.10.0 tests/gh-actions/kf-objects/poddefaults.access-ml-pipeline.
kubeflow-user-example-com.yaml):

- a projected ServiceAccount token with the audience the API server checks
  bearer tokens against (`pipelines.kubeflow.org`), mounted read-only at
  /var/run/secrets/kubeflow/pipelines;
- `KF_PIPELINES_SA_TOKEN_PATH` naming the token file there, which the SDK's
  `kfp.Client()` reads (kubeflow/pipelines 2.4.1 sdk/python/kfp/client/
  __init__.py, set_volume_credentials.py).

No API address is set, as upstream sets none: `kfp.Client()` without a host
finds `ml-pipeline.<namespace>.svc.cluster.local:8888` (namespace `kubeflow`
unless given) and adds the token; with a host from `KF_PIPELINES_ENDPOINT` it
would skip the token (sdk/python/kfp/client/client.py).

With the `cache` option off the PodDefault also sets
`KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT=true`: the SDK reads it when
`kfp.dsl` is imported and then compiles each task with caching off unless the
task or the run says otherwise (sdk/python/kfp/dsl/pipeline_context.py). KFP
2.4.1 has no server-side switch for v2 caching: the driver only reads each
task's own setting (backend/src/v2/driver/driver.go).

The PodDefault is the same in every namespace and holds no credential. Only
the leader writes it; nothing is sent until the relation exists.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import ops
from kfp_config import KfpConfig

from kubeflow_interfaces.kubernetes_manifests import ManifestsRequirer

logger = logging.getLogger(__name__)

POD_DEFAULTS = "pod-defaults"
NAME = "access-ml-pipeline"
SELECTOR_LABEL = "access-ml-pipeline"
DESCRIPTION = "Allow access to Kubeflow Pipelines"
TOKEN_AUDIENCE = "pipelines.kubeflow.org"  # noqa: S105 - an audience
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"  # noqa: S105 - a path
TOKEN_FILE = "token"  # noqa: S105 - a file name
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # noqa: S105 - a variable's name
TOKEN_EXPIRATION_SECONDS = 7200
VOLUME = "volume-kf-pipeline-token"
NO_CACHE_ENV = "KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT"


def pod_default(config: KfpConfig) -> dict[str, Any]:
    """The `access-ml-pipeline` PodDefault, for every profile namespace."""
    env = [{"name": TOKEN_PATH_ENV, "value": f"{TOKEN_DIR}/{TOKEN_FILE}"}]
    if not config.cache:
        env.append({"name": NO_CACHE_ENV, "value": "true"})
    token = {
        "path": TOKEN_FILE,
        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
        "audience": TOKEN_AUDIENCE,
    }
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": NAME},
        "spec": {
            "desc": DESCRIPTION,
            "selector": {"matchLabels": {SELECTOR_LABEL: "true"}},
            "env": env,
            "volumes": [
                {"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}}
            ],
            "volumeMounts": [{"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}],
        },
    }


def publish(
    charm: ops.CharmBase, config: KfpConfig, record: MutableMapping[str, str] | None = None
) -> None:
    """Leader: hand the dispatcher the PodDefault (only what changed is written).

    `record` notes what each relation's secret holds (see `ManifestsRequirer.publish`).
    """
    if not charm.unit.is_leader() or not charm.model.relations[POD_DEFAULTS]:
        return
    if ManifestsRequirer(charm, POD_DEFAULTS).publish([pod_default(config)], record):
        logger.info("handed the dispatcher the %s PodDefault", NAME)


def revoke(
    charm: ops.CharmBase,
    event: ops.RelationBrokenEvent,
    record: MutableMapping[str, str] | None = None,
) -> None:
    """Leader: remove the secret that held a departing relation's PodDefault."""
    if charm.unit.is_leader():
        ManifestsRequirer(charm, POD_DEFAULTS).revoke(event.relation, record)
