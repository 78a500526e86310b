"""A settled update-status hook stays light: boto3 is loaded only to make a bucket.

Each case runs in a fresh interpreter, because this test session itself
imports boto3 (the S3 server fixture and the bucket tests).
"""

from __future__ import annotations

from charm_loader import run_fresh

SCRIPT = r"""
import json, pathlib, sys, tempfile
from charm_loader import load_charm
from ops import testing
from kubeflow_interfaces import s3

charm = load_charm("minio")
import minio_server

minio_server.LOCAL_ENDPOINT = "http://127.0.0.1:9"  # nothing there: never reached if answered
answered = sys.argv[1] == "answered"
creds = s3.S3Credentials(access_key="rootaccess", secret_key="rootsecret-123")
root = testing.Secret(tracked_content=creds.dump(), owner="app", label="root-credentials")
relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
secrets = {root}
local = {}
if answered:
    shared = testing.Secret(
        tracked_content=creds.dump(),
        owner="app",
        label=f"s3-credentials-{relation.id}",
        remote_grants={relation.id: {"kfp"}},
    )
    secrets.add(shared)
    local = s3.S3ProviderData(
        bucket="mlpipeline",
        endpoint="http://minio.kubeflow.svc.cluster.local:9000",
        region="us-east-1",
        s3_uri_style="path",
        secret_extra=shared.id,
        version=s3.SCHEMA_VERSION,
        lib_version=s3.LIB_VERSION,
    ).dump()
relation = testing.Relation(
    relation.endpoint,
    interface="s3",
    id=relation.id,
    remote_app_name="kfp",
    remote_app_data=relation.remote_app_data,
    local_app_data=local,
)
keys = pathlib.Path(tempfile.mkdtemp())  # MinIO's key files, as the charm wrote them
(keys / "access-key").write_text(creds.access_key)
(keys / "secret-key").write_text(creds.secret_key)
container = testing.Container(
    "minio",
    can_connect=True,
    layers={"minio": minio_server.pebble_layer()},
    service_statuses={"minio": minio_server.ops.pebble.ServiceStatus.ACTIVE},
    mounts={"keys": testing.Mount(location=minio_server.KEYS_DIR, source=keys)},
)
state = testing.State(
    leader=True,
    relations={relation},
    secrets=secrets,
    containers={container},
    storages={testing.Storage("data")},
    opened_ports={testing.TCPPort(9000), testing.TCPPort(9001)},
    model=testing.Model(name="kubeflow"),
)
ctx = testing.Context(charm.MinioCharm)
out = ctx.run(ctx.on.update_status(), state)
print(json.dumps({
    "boto3": "boto3" in sys.modules,
    "botocore": "botocore" in sys.modules,
    "unchanged": out.get_relation(relation.id).local_app_data == local,
    "app_status": f"{out.app_status.name}: {out.app_status.message}",
}))
"""


def _run(case: str) -> dict[str, object]:
    return run_fresh(SCRIPT, case)


def test_answered_update_status_does_not_load_boto3():
    outcome = _run("answered")

    assert outcome == {
        "boto3": False,
        "botocore": False,
        "unchanged": True,
        "app_status": "active: 1 bucket request(s) served",
    }


def test_unanswered_relation_loads_boto3_to_make_its_bucket():
    # The control: the same hook with a bucket to make does load boto3.
    outcome = _run("unanswered")

    assert outcome["boto3"] is True
    assert outcome["unchanged"] is True  # nothing listens there, so nothing is answered


# The same settled hook, its model built from plain databags: nothing here loads pydantic,
# so whether the hook does shows.
SETTLED_SCRIPT = r"""
import json, pathlib, sys, tempfile
from charm_loader import load_charm
from ops import testing
from kubeflow_interfaces import s3

charm = load_charm("minio")
import minio_server

minio_server.LOCAL_ENDPOINT = "http://127.0.0.1:9"  # nothing there: never reached
creds = s3.S3Credentials(access_key="rootaccess", secret_key="rootsecret-123")
root = testing.Secret(tracked_content=creds.dump(), owner="app", label="root-credentials")
request = {
    "bucket": "mlpipeline",
    s3.REQUESTED_SECRETS_KEY: json.dumps(list(s3.SECRET_FIELDS)),
    "version": s3.SCHEMA_VERSION,
    "lib-version": s3.LIB_VERSION,
}
relation = testing.Relation("s3-credentials", interface="s3", remote_app_name="kfp")
shared = testing.Secret(
    tracked_content=creds.dump(),
    owner="app",
    label=f"s3-credentials-{relation.id}",
    remote_grants={relation.id: {"kfp"}},
)
local = {
    "bucket": "mlpipeline",
    "endpoint": "http://minio.kubeflow.svc.cluster.local:9000",
    "region": "us-east-1",
    "s3-uri-style": "path",
    "secret-extra": shared.id,
    "version": s3.SCHEMA_VERSION,
    "lib-version": s3.LIB_VERSION,
}
relation = testing.Relation(
    "s3-credentials",
    interface="s3",
    id=relation.id,
    remote_app_name="kfp",
    remote_app_data=request,
    local_app_data=local,
)
keys = pathlib.Path(tempfile.mkdtemp())  # MinIO's key files, as the charm wrote them
(keys / "access-key").write_text(creds.access_key)
(keys / "secret-key").write_text(creds.secret_key)
container = testing.Container(
    "minio",
    can_connect=True,
    layers={"minio": minio_server.pebble_layer()},
    service_statuses={"minio": minio_server.ops.pebble.ServiceStatus.ACTIVE},
    mounts={"keys": testing.Mount(location=minio_server.KEYS_DIR, source=keys)},
)
state = testing.State(
    leader=True,
    relations={relation},
    secrets={root, shared},
    containers={container},
    storages={testing.Storage("data")},
    opened_ports={testing.TCPPort(9000), testing.TCPPort(9001)},
    model=testing.Model(name="kubeflow"),
)
before = "pydantic" in sys.modules
ctx = testing.Context(charm.MinioCharm)
out = ctx.run(ctx.on.update_status(), state)
print(json.dumps({
    "before": before,
    "pydantic": "pydantic" in sys.modules,
    "unchanged": out.get_relation(relation.id).local_app_data == local,
    "secrets_unchanged": out.secrets == state.secrets,
    "app_status": f"{out.app_status.name}: {out.app_status.message}",
}))
"""


def test_settled_update_status_does_not_load_pydantic():
    outcome = run_fresh(SETTLED_SCRIPT)

    assert outcome == {
        "before": False,
        "pydantic": False,
        "unchanged": True,
        "secrets_unchanged": True,
        "app_status": "active: 1 bucket request(s) served",
    }
