"""From MLflow's registry to a KServe prediction, on real servers on localhost.

1. MariaDB holds the database and account the mysql charm makes for mlflow;
   the S3 server enforces the policies the minio charm gives mlflow's
   relation keys and the profile's keys.
2. The real MLflow server (PyPI, the charm image's version) runs with the
   command and environment of the mlflow charm's Pebble layer, after the
   charm's migration command has set up the schema.
3. A client that knows only the tracking URI logs a run with parameters,
   metrics and a scikit-learn model through the server, registers the model
   and reads it back through the registry; the server wrote the artifacts
   under `<artifacts destination>/<experiment>/<run>/artifacts/`.
4. The version's `mlflow-artifacts:/` source, mapped to that S3 prefix, is
   downloaded by KServe v0.14.1's storage code with only the environment its
   webhook gives the storage initializer from the profile's Secret and
   ServiceAccount, loaded as the sklearnserver loads a model, and served by
   `kserve.ModelServer`; its v1 prediction over HTTP equals the model's.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow_profiles  # the mlflow charm's: charms/mlflow/src, on sys.path by mlflow_server
import numpy as np
import profile_manifests  # the minio charm's: charms/minio/src, on sys.path by serving.stores
import pytest
from botocore.exceptions import ClientError
from serving import kserve_storage
from serving.mlflow_server import base_environment, migrate, serve, wl, write_secrets
from serving.stores import ARTIFACT_PATH, BUCKET, PROFILE, REGION, Database, ObjectStore
from workload.servers import free_port

from kubeflow_interfaces.s3 import S3Credentials

HERE = Path(__file__).resolve().parent
KSERVE_SRC = HERE.parents[1] / "charms" / "kserve" / "src"
if str(KSERVE_SRC) not in sys.path:
    sys.path.insert(0, str(KSERVE_SRC))

import kserve_profiles  # noqa: E402 - the kserve charm's ServiceAccount for every profile

MODEL_NAME = "iris-like"
# The ServiceAccount the kserve charm hands each profile, listing the profile's
# object-store Secret.
SERVICE_ACCOUNT = kserve_profiles.NAME
# MLflow 2.22.0 with artifact proxying records artifact locations under this
# scheme (mlflow/store/tracking/__init__.py, DEFAULT_ARTIFACTS_URI in the
# mlflow 2.22.0 wheel): the server writes `mlflow-artifacts:/<rest>` to
# `<--artifacts-destination>/<rest>` (mlflow/server/handlers.py,
# _get_artifact_repo_mlflow_artifacts).
PROXY_SCHEME = "mlflow-artifacts:"


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated classes of four features, 30 samples each."""
    rng = np.random.default_rng(15)
    centres = np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 4]], dtype=float)
    x = np.concatenate([rng.normal(c, 0.8, size=(30, 4)) for c in centres])
    y = np.repeat([0, 1, 2], 30)
    return x, y


def s3_uri(source: str, artifacts_root: str) -> str:
    """The S3 URI of an artifact the server recorded as `mlflow-artifacts:/<rest>`.

    `artifacts_root`: `MLFLOW_ARTIFACTS_S3_ROOT`, which the mlflow charm's
    PodDefault gives a profile's pods (issue 15's contract, point 5).
    """
    parts = urlsplit(source)
    assert f"{parts.scheme}:" == PROXY_SCHEME and not parts.netloc, source
    return f"{artifacts_root}/{parts.path.lstrip('/')}"


def profile_objects(store: ObjectStore) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The profile's ServiceAccount for predictors and its object-store Secret.

    The Secret is the minio charm's, with the profile's keys and KServe's S3
    annotations for this store (`profile_manifests`).
    """
    secret = profile_manifests.credentials_secret(
        S3Credentials(access_key=store.profile.access_key, secret_key=store.profile.secret_key),
        PROFILE,
        annotations=profile_manifests.kserve_annotations(store.url, REGION),
    )
    account = kserve_profiles.service_account(secret["metadata"]["name"])
    account["metadata"]["namespace"] = PROFILE  # the dispatcher puts it in each profile
    return account, {secret["metadata"]["name"]: secret}


def _http_json(url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the local model server
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        return json.loads(answer.read())


def _wait_model_ready(process: subprocess.Popen, url: str, log_file: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the model server exited with {process.returncode}:\n{tail}")
        try:
            if _http_json(url, timeout=2).get("ready") is True:
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the model server not ready:\n{log_file.read_text()[-4000:]}")
        time.sleep(0.3)


def test_a_model_registered_in_mlflow_is_served_by_kserve_from_the_registry(
    store: ObjectStore,
    mlflow_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    home = tmp_path / "home"
    home.mkdir()

    # --- 2. the charm's MLflow server ------------------------------------------------
    settings = wl.ServerSettings(
        db_host=mlflow_database.host,
        db_port=mlflow_database.port,
        db_user=mlflow_database.user,
        db_password=mlflow_database.password,
        db_name=mlflow_database.name,
        s3_endpoint=store.url,
        s3_bucket=BUCKET,
        s3_path=ARTIFACT_PATH,
        s3_region=REGION,
        s3_access_key=store.mlflow.access_key,
        s3_secret_key=store.mlflow.secret_key,
        workers=2,
        port=free_port(),
    )
    charm_layer = wl.server_layer(settings)
    local_layer = wl.server_layer(settings, user=False)
    # Only who runs it differs: this machine's user, not the rock's.
    charm_service = charm_layer["services"][wl.SERVICE]
    assert {k: v for k, v in charm_service.items() if k not in ("user-id", "group-id")} == (
        local_layer["services"][wl.SERVICE]
    )
    assert charm_layer["checks"] == local_layer["checks"]
    secrets_file = tmp_path / "server.env"
    write_secrets(settings, secrets_file)

    migrated = migrate(secrets_file, home)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    import mlflow
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations"))
    assert head.get_current_head() is not None
    version = mlflow_database_scalar(mlflow_database, "SELECT version_num FROM alembic_version")
    assert version == head.get_current_head()
    again = migrate(secrets_file, home)  # every upgrade-charm runs it: a migrated schema stays
    assert again.returncode == 0, again.stderr[-3000:]

    with serve(local_layer, secrets_file, home, tmp_path / "mlflow.log") as ran:
        # What ran is the charm's command with only the secrets file moved ...
        charm_argv = shlex.split(charm_service["command"])
        assert len(ran["argv"]) == len(charm_argv)
        moved = [(a, b) for a, b in zip(ran["argv"], charm_argv, strict=True) if a != b]
        assert [b.replace(wl.SECRETS_FILE, str(secrets_file)) for _, b in moved] == [
            a for a, _ in moved
        ]
        assert len(moved) == 1  # the one `sh -c` script
        # ... in the layer's environment over the bare base any process starts with.
        base = base_environment(home)
        assert ran["environment"] == base | charm_service["environment"]
        assert not set(base) & set(charm_service["environment"])

        # --- 3. a client with the tracking URI only -------------------------------------
        for name in list(os.environ):
            if name.startswith(("AWS_", "MLFLOW_", "S3_")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{settings.port}")
        monkeypatch.setenv("HOME", str(home))  # no ~/.aws either
        run_id, experiment_id, model, x = log_and_register()
        mlflow_version = read_back(run_id, model, x)

    source = mlflow_version["source"]
    assert source == f"{PROXY_SCHEME}/{experiment_id}/{run_id}/artifacts/model"
    prefix = f"{ARTIFACT_PATH}/{experiment_id}/{run_id}/artifacts/model/"
    admin = store.client(store.admin)
    listed = admin.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    keys = {o["Key"].removeprefix(prefix) for o in listed.get("Contents", [])}
    assert {"MLmodel", "model.pkl"} <= keys, keys
    every = admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert all(o["Key"].startswith(f"{ARTIFACT_PATH}/") for o in every), every

    # --- 4. KServe: the storage initializer, then the predictor ----------------------------
    pod_default = mlflow_profiles.pod_default(
        s3_endpoint=store.url, artifacts_root=wl.artifacts_destination(settings)
    )
    in_pods = {e["name"]: e["value"] for e in pod_default["spec"]["env"]}
    artifacts_root = in_pods[mlflow_profiles.ARTIFACTS_ROOT_ENV]
    assert ran["argv"][-1].endswith(f"--artifacts-destination {artifacts_root}")
    uri = s3_uri(source, artifacts_root)
    assert uri == f"s3://{BUCKET}/{prefix.rstrip('/')}"
    account, secrets = profile_objects(store)
    env = kserve_storage.storage_initializer_env(account, secrets)
    endpoint = urlsplit(store.url).netloc
    assert env == {
        "AWS_ACCESS_KEY_ID": store.profile.access_key,
        "AWS_SECRET_ACCESS_KEY": store.profile.secret_key,
        "S3_USE_HTTPS": "0",
        "S3_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": f"http://{endpoint}",
        "AWS_DEFAULT_REGION": REGION,
    }
    model_dir = tmp_path / "mnt-models"  # the emptyDir at /mnt/models
    downloaded = subprocess.run(
        [sys.executable, str(HERE / "storage_initializer.py"), uri, str(model_dir)],
        env=base_environment(home) | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert downloaded.returncode == 0, downloaded.stderr[-3000:]
    # The profile's keys read MLflow's artifacts; they cannot change them.
    with pytest.raises(ClientError, match="AccessDenied"):
        store.client(store.profile).put_object(Bucket=BUCKET, Key=f"{prefix}MLmodel", Body=b"x")
    files = {p.name for p in model_dir.iterdir()}
    assert {"MLmodel", "model.pkl"} <= files, files
    extensions = tuple(kserve_storage.SKLEARN["model-extensions"])
    assert [f for f in files if f.endswith(extensions)] == ["model.pkl"]  # exactly one

    http_port = free_port()
    log_file = tmp_path / "predictor.log"
    args = [
        a.replace("{{.Name}}", MODEL_NAME)
        .replace("/mnt/models", str(model_dir))
        .replace("8080", str(http_port))
        for a in kserve_storage.SKLEARN["args"]
    ]
    with open(log_file, "wb") as log:
        predictor = subprocess.Popen(
            [sys.executable, str(HERE / "predictor.py"), *args, f"--grpc_port={free_port()}"],
            env=base_environment(home),  # the predictor container: no credentials at all
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{http_port}"
        _wait_model_ready(predictor, f"{base_url}/v1/models/{MODEL_NAME}", log_file)
        path = kserve_storage.MODEL_SERVER["v1-predict-path"].format(model_name=MODEL_NAME)
        answer = _http_json(f"{base_url}{path}", {"instances": x.tolist()})
    finally:
        predictor.terminate()
        predictor.wait(timeout=30)
    assert answer == {"predictions": model.predict(x).tolist()}
    assert len(set(answer["predictions"])) == 3  # every class, not one answer for all


def mlflow_database_scalar(database: Database, sql: str) -> str:
    """One value, read with the mlflow account itself (PyMySQL, as the server connects)."""
    import pymysql

    connection = pymysql.connect(
        host=database.host,
        port=database.port,
        user=database.user,
        password=database.password,
        database=database.name,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return str(cursor.fetchone()[0])
    finally:
        connection.close()


def log_and_register() -> tuple[str, str, Any, np.ndarray]:
    """Train, log a run with its parameters, metrics and model, register the model."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    model = LogisticRegression(C=0.5, max_iter=300).fit(x, y)
    experiment_id = mlflow.create_experiment("registry-to-prediction")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({"C": 0.5, "max_iter": 300})
        mlflow.log_metric("accuracy", float(model.score(x, y)))
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.sklearn.log_model(
            model,
            artifact_path="model",
            signature=infer_signature(x, model.predict(x)),
            registered_model_name=MODEL_NAME,
        )
    assert experiment_id != "0"
    return run.info.run_id, experiment_id, model, x


def read_back(run_id: str, model: Any, x: np.ndarray) -> dict[str, str]:
    """Read the run and the registered version back through the server."""
    import mlflow.pyfunc
    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params == {"C": "0.5", "max_iter": "300"}
    assert run.data.metrics["accuracy"] > 0.9
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.9, 0.5, 0.3]
    registered = client.get_registered_model(MODEL_NAME)
    assert [v.version for v in registered.latest_versions] == ["1"]
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == run_id
    assert version.status == "READY"
    # The registry's copy, downloaded through the server's artifact proxy, predicts the same.
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    assert np.array_equal(np.asarray(loaded.predict(x)), model.predict(x))
    return {"source": version.source, "run_id": version.run_id}
