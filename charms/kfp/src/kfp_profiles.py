"""The `config-maps` relation: what each profile namespace's runs read, via the dispatcher.

Two ConfigMaps go to every profile namespace:

- `metadata-grpc-configmap`, the same in all: where MLMD is
  (`METADATA_GRPC_SERVICE_HOST`, `METADATA_GRPC_SERVICE_PORT`). Every step of
  a v2 run takes its environment from it, and the driver and importer are
  given MLMD's address from those variables;
- `kfp-launcher`, one per profile, pinned to its namespace: the
  `defaultPipelineRoot` (the config's template with the namespace filled in)
  and `providers`, which point the launcher at the object store the
  object-storage relation gave, with the keys from the Secret
  `minio-credentials` that the object store's charm puts in each profile
  namespace (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). Without
  `providers` the launcher would look for `minio-service.kubeflow:9000` and
  a Secret `mlpipeline-minio-artifact` that no profile has. No keys travel
  here: the ConfigMap names the Secret only.

Until the dispatcher lists the profile namespaces (Canonical's never does),
only the MLMD ConfigMap is sent; until the object store is known, nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import kfp_workloads as wl
import ops
from kfp_config import KfpConfig

from kubeflow_interfaces.kubernetes_manifests import InvalidManifestsError, ManifestsRequirer

logger = logging.getLogger(__name__)

CONFIG_MAPS = "config-maps"
LAUNCHER_CONFIG_MAP = "kfp-launcher"
MLMD_CONFIG_MAP = "metadata-grpc-configmap"
# The per-profile Secret the object store's charm (minio) hands the dispatcher.
CREDENTIALS_SECRET = "minio-credentials"  # noqa: S105 - an object name
ACCESS_KEY_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a key's name
# The region the launcher's own MinIO default uses, when the store names none.
DEFAULT_REGION = "minio"


def _config_map(name: str, data: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, str] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def mlmd_config_map(model: str) -> dict[str, Any]:
    """Where MLMD is, for the runs in every profile namespace."""
    data = {
        "METADATA_GRPC_SERVICE_HOST": f"metadata-grpc-service.{model}",
        "METADATA_GRPC_SERVICE_PORT": str(wl.Ports.MLMD_SERVICE),
    }
    return _config_map(MLMD_CONFIG_MAP, data)


def providers(store: wl.ObjectStore) -> str:
    """The launcher's `providers`: the store's endpoint, the profile's Secret for the keys."""
    default = {
        "endpoint": f"{store.host}:{store.port}",
        "region": store.region or DEFAULT_REGION,
        "disableSSL": not store.secure,
        "forcePathStyle": True,
        "credentials": {
            "fromEnv": False,
            "secretRef": {
                "secretName": CREDENTIALS_SECRET,
                "accessKeyKey": ACCESS_KEY_KEY,
                "secretKeyKey": SECRET_KEY_KEY,
            },
        },
    }
    # JSON is YAML: the launcher reads the value as YAML.
    return json.dumps({"minio": {"default": default}, "s3": {"default": default}}, sort_keys=True)


def launcher_config_map(config: KfpConfig, store: wl.ObjectStore, namespace: str) -> dict:
    """The `kfp-launcher` ConfigMap of one profile namespace, pinned there."""
    data = {"defaultPipelineRoot": config.pipeline_root(namespace), "providers": providers(store)}
    return _config_map(LAUNCHER_CONFIG_MAP, data, namespace)


def objects(
    config: KfpConfig, store: wl.ObjectStore, model: str, namespaces: frozenset[str] | None
) -> list[dict[str, Any]]:
    """Every ConfigMap to hand over: MLMD's for all, then one launcher's per profile."""
    launchers = [launcher_config_map(config, store, ns) for ns in sorted(namespaces or ())]
    return [mlmd_config_map(model), *launchers]


def publish(
    charm: ops.CharmBase,
    config: KfpConfig,
    store: wl.ObjectStore | None,
    record: MutableMapping[str, str] | None = None,
) -> str | None:
    """Leader: hand the dispatcher the ConfigMaps; a problem with its data, or None.

    A namespace list that does not parse changes nothing. `record` notes what
    each relation's secret holds (see `ManifestsRequirer.publish`).
    """
    if not charm.unit.is_leader() or store is None or not charm.model.relations[CONFIG_MAPS]:
        return None
    requirer = ManifestsRequirer(charm, CONFIG_MAPS)
    try:
        namespaces = requirer.profile_namespaces()
    except InvalidManifestsError as e:
        logger.warning("%s: %s", CONFIG_MAPS, e)
        return f"{CONFIG_MAPS}: {e}"
    if requirer.publish(objects(config, store, charm.model.name, namespaces), record):
        logger.info("handed the dispatcher the ConfigMaps of %d profiles", len(namespaces or ()))
    return None


def revoke(
    charm: ops.CharmBase,
    event: ops.RelationBrokenEvent,
    record: MutableMapping[str, str] | None = None,
) -> None:
    """Leader: remove the secret that held a departing relation's ConfigMaps."""
    if charm.unit.is_leader():
        ManifestsRequirer(charm, CONFIG_MAPS).revoke(event.relation, record)
