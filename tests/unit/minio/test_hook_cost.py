"""A settled update-status hook stays light: boto3 and the minio SDK stay unloaded.

boto3 is loaded only to make a bucket, the minio SDK only to change MinIO's users.

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
import minio_users

minio_server.LOCAL_ENDPOINT = "http://127.0.0.1:9"  # nothing there: never reached if answered
answered = sys.argv[1] == "answered"
user_made = sys.argv[1] != "new-user"
creds = s3.S3Credentials(access_key="rootaccess", secret_key="rootsecret-123")
root = testing.Secret(tracked_content=creds.dump(), owner="app", label="root-credentials")
relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
name = minio_users.relation_user(relation.id)
scoped = s3.S3Credentials(access_key=name, secret_key="scoped-secret-123")
policy = minio_users.relation_policy("mlpipeline", None)
users = {name: {"key": scoped.secret_key, "policy": minio_users.policy_digest(policy)}}
secrets = {root}
if user_made:
    secrets.add(testing.Secret(
        tracked_content={"users": json.dumps(users)}, owner="app", label="scoped-users"))
local = {}
if answered:
    shared = testing.Secret(
        tracked_content=scoped.dump(),
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
    check_infos={
        testing.CheckInfo(minio_server.ALIVE_CHECK, level="alive"),
        testing.CheckInfo(minio_server.READY_CHECK, level="ready"),
    },
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
    "minio": "minio" in sys.modules,
    "unchanged": out.get_relation(relation.id).local_app_data == local,
    "app_status": f"{out.app_status.name}: {out.app_status.message}",
}))
"""


def _run(case: str) -> dict[str, object]:
    return run_fresh(SCRIPT, case)


def test_answered_update_status_does_not_load_boto3_or_minio():
    outcome = _run("answered")

    assert outcome == {
        "boto3": False,
        "botocore": False,
        "minio": False,
        "unchanged": True,
        "app_status": "active: 1 bucket request(s) served",
    }


def test_unanswered_relation_loads_boto3_to_make_its_bucket():
    # The control: the same hook with a bucket to make does load boto3.
    outcome = _run("unanswered")

    assert outcome["boto3"] is True
    assert outcome["minio"] is False  # its user is made already
    assert outcome["unchanged"] is True  # nothing listens there, so nothing is answered


def test_relation_without_user_loads_the_minio_sdk_to_make_it():
    # The control: a user to make loads the admin client (and MinIO is not there).
    outcome = _run("new-user")

    assert outcome["minio"] is True
    assert outcome["unchanged"] is True
    assert str(outcome["app_status"]).startswith("waiting: MinIO users: cannot reach MinIO")


# The same settled hook, its model built from plain databags: nothing here loads pydantic,
# so whether the hook does shows.
SETTLED_SCRIPT = r"""
import json, pathlib, sys, tempfile
from charm_loader import load_charm
import ops
from ops import testing
from kubeflow_interfaces import s3

charm = load_charm("minio")
import minio_server
import minio_users

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
name = minio_users.relation_user(relation.id)
scoped = s3.S3Credentials(access_key=name, secret_key="scoped-secret-123")
users = testing.Secret(
    tracked_content={"users": json.dumps({name: {
        "key": scoped.secret_key,
        "policy": minio_users.policy_digest(minio_users.relation_policy("mlpipeline", None)),
    }})},
    owner="app",
    label="scoped-users",
)
shared = testing.Secret(
    tracked_content=scoped.dump(),
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
    check_infos={
        testing.CheckInfo(minio_server.ALIVE_CHECK, level="alive"),
        testing.CheckInfo(minio_server.READY_CHECK, level="ready"),
    },
    mounts={"keys": testing.Mount(location=minio_server.KEYS_DIR, source=keys)},
)
state = testing.State(
    leader=True,
    relations={relation},
    secrets={root, users, shared},
    containers={container},
    storages={testing.Storage("data")},
    opened_ports={testing.TCPPort(9000), testing.TCPPort(9001)},
    model=testing.Model(name="kubeflow"),
)
before = "pydantic" in sys.modules
ctx = testing.Context(charm.MinioCharm)
# Count what the hook asks Pebble, by request.
asks = []
for name in ("can_connect", "get_services", "get_plan", "get_checks"):
    original = getattr(ops.Container, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
        asks.append(_name)
        return _original(self, *args, **kwargs)
    setattr(ops.Container, name, record)
out = ctx.run(ctx.on.update_status(), state)
print(json.dumps({
    "before": before,
    "pebble_asks": asks,
    "pydantic": "pydantic" in sys.modules,
    "minio": "minio" in sys.modules,
    "unchanged": out.get_relation(relation.id).local_app_data == local,
    "secrets_unchanged": out.secrets == state.secrets,
    "app_status": f"{out.app_status.name}: {out.app_status.message}",
}))
"""


def test_settled_update_status_does_not_load_pydantic():
    outcome = run_fresh(SETTLED_SCRIPT)

    # Pebble is asked once whether it answers and MinIO runs: the rest of the
    # hook reuses what the reconcile found; the status asks whether MinIO is ready.
    assert outcome.pop("pebble_asks") == ["can_connect", "get_plan", "get_services", "get_checks"]
    assert outcome == {
        "before": False,
        "pydantic": False,
        "minio": False,
        "unchanged": True,
        "secrets_unchanged": True,
        "app_status": "active: 1 bucket request(s) served",
    }
