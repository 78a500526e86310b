"""mlflow against MLflow 2.22.0: its Pebble layer, migration, route and profile objects."""

from __future__ import annotations

import dataclasses
import shlex

import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.mlflow.helpers import mlflow_profiles
from unit.mlflow.helpers import workload as wl

from kubeflow_interfaces.s3 import is_valid_bucket_name

FACTS = facts.load("mlflow")
META = yaml.safe_load((CHARMS / "mlflow" / "charmcraft.yaml").read_text())
SETTINGS = wl.ServerSettings(
    db_host="mysql-primary",
    db_port=3306,
    db_user="relation-7",
    db_password="secret-password",
    s3_endpoint="http://minio.kubeflow.svc.cluster.local:9000",
    s3_bucket="mlflow",
    s3_path="artifacts",
    s3_region="us-east-1",
    s3_access_key="relation-8",
    s3_secret_key="secret-key",
)
LAYER = wl.server_layer(SETTINGS)
SERVICE = LAYER["services"][wl.SERVICE]


def _fact(name: str):
    return facts.value("mlflow", "mlflow-server", name)


def _argv() -> list[str]:
    shell, flag, script = shlex.split(SERVICE["command"])
    assert (shell, flag) == ("/bin/sh", "-c")
    return shlex.split(script.split("exec ", 1)[1])


def test_image_is_the_rock_the_facts_name():
    assert META["resources"]["oci-image"]["upstream-source"] == _fact("image")
    assert wl.MLFLOW_VERSION in _fact("image")
    assert {"uid": wl.USER_ID, "gid": wl.GROUP_ID} == _fact("workload-user")
    assert SERVICE["user-id"] == wl.USER_ID and SERVICE["group-id"] == wl.GROUP_ID


def test_every_server_flag_exists_in_the_release():
    options = set(_fact("server-options"))
    argv = _argv()
    assert argv[:2] == ["mlflow", "server"]
    flags = [a[2:] for a in argv[2:] if a.startswith("--") and " " not in a]
    assert flags and set(flags) <= options


def test_artifacts_are_proxied_to_the_bucket():
    argv = _argv()
    assert "--serve-artifacts" in argv
    # No default root: new experiments get the proxy's root, mlflow-artifacts:/.
    assert "--default-artifact-root" not in argv
    assert _fact("proxied-artifact-root") == "mlflow-artifacts:/"
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://mlflow/artifacts"


def test_the_backend_store_comes_from_the_environment_only():
    assert "--backend-store-uri" not in _argv()
    env = dict(line.split("=", 1) for line in wl.secrets_env(SETTINGS).splitlines())
    assert _fact("backend-store-env") in env
    assert env[_fact("backend-store-env")].startswith("mysql+pymysql://")
    assert env[_fact("backend-store-env")].endswith(f"/{_fact('database-name')}")
    assert "secret-password" not in str(LAYER)


def test_port_workers_and_health_check():
    argv = _argv()
    assert argv[argv.index("--port") + 1] == str(_fact("port")) == str(wl.PORT)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert wl.DEFAULT_WORKERS == _fact("default-workers")
    check = LAYER["checks"][wl.CHECK]
    assert check["http"]["url"] == f"http://localhost:{wl.PORT}{_fact('health-path')}"
    assert check["level"] == "ready"


def test_s3_environment_names():
    env = SERVICE["environment"]
    assert "MLFLOW_S3_ENDPOINT_URL" in _fact("client-environment")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == SETTINGS.s3_endpoint
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert _fact("s3-ca-bundle") not in env  # no CA chain from the object store: none set
    with_ca = dataclasses.replace(SETTINGS, s3_ca_file=wl.CA_FILE)
    assert wl.server_environment(with_ca)[_fact("s3-ca-bundle")] == wl.CA_FILE


def test_options_mlflow_also_reads_from_the_environment_are_always_given():
    # A Service named like the app puts MLFLOW_PORT=tcp://... in the pod's environment.
    argv = _argv()
    for variable in _fact("options-from-environment"):
        option = "--" + variable.removeprefix("MLFLOW_").lower()
        assert option in argv, option
        assert not argv[argv.index(option) + 1].startswith("-")


def test_gunicorn_opts_is_the_request_timeout():
    argv = _argv()
    opts = shlex.split(argv[argv.index("--gunicorn-opts") + 1])
    assert opts == [_fact("gunicorn-opts"), str(SETTINGS.request_timeout)]


def test_migration_runs_db_upgrade_after_initializing_an_empty_database():
    command = wl.migrate_command()
    assert command[:2] == ["/bin/sh", "-c"]
    assert _fact("db-upgrade") == "mlflow db upgrade URL"
    assert command[2].endswith('exec mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"')
    for function in _fact("empty-database"):
        assert f"utils.{function}(" in command[2]
    assert wl.parse_version(_fact("version-output")) == wl.MLFLOW_VERSION


def test_route_and_database_as_canonicals_charm():
    import mlflow_route

    assert f"{mlflow_route.PREFIX}/" == _fact("route")["prefix"]
    assert mlflow_route.REWRITE == _fact("route")["rewrite"]
    # With the prefix rewritten away the server needs no --static-prefix (which would move
    # the UI and its ajax-api paths but not /api/2.0 nor /health).
    assert "--static-prefix" not in _argv()
    assert wl.DATABASE == _fact("database-name")


def test_profile_objects_use_the_clients_environment_names():
    pod_default = mlflow_profiles.pod_default(
        s3_endpoint=SETTINGS.s3_endpoint,
        artifacts_root="s3://mlflow/artifacts",
        default_experiment="team",
    )
    names = {e["name"] for e in pod_default["spec"]["env"]}
    secret = mlflow_profiles.tracking_secret(wl.tracking_uri("mlflow", "kubeflow"))
    names |= set(secret["stringData"])
    assert set(_fact("client-environment")) <= names


def test_the_default_bucket_and_experiment_limits():
    assert is_valid_bucket_name(META["config"]["options"]["artifact-bucket"]["default"])
    import mlflow_config

    assert mlflow_config.MAX_EXPERIMENT_NAME == _fact("experiment-name-length")
