"""Real servers on localhost for the registry-to-prediction test.

MariaDB and the mysql charm's own account code come from the workload
tests' fixtures (`workload.fixtures`). The S3 server is moto enforcing IAM
(`workload.servers.s3_server_enforcing_iam`): every request is checked
against the policy the minio charm would give its user, so MLflow writes
with its relation's keys and KServe reads with the profile's.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from serving.mlflow_server import wl
from serving.stores import (
    ARTIFACT_PATH,
    BUCKET,
    MLFLOW_RELATION_ID,
    PROFILE,
    REGION,
    Database,
    Keys,
    ObjectStore,
    minio_users,
)
from workload.fixtures import (  # noqa: F401 - fixtures pytest finds by name
    MySQLServer,
    admin,
    admin_password,
    executor,
    mariadb,
)
from workload.servers import MariaDB, s3_server_enforcing_iam


def _iam_user(iam: Any, name: str, policy: dict[str, Any]) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def store() -> Iterator[ObjectStore]:
    """MLflow's bucket, and users holding the policies the minio charm would give them."""
    with s3_server_enforcing_iam() as url:
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup-secret"}
        iam = boto3.session.Session().client("iam", endpoint_url=url, region_name=REGION, **setup)
        s3 = boto3.session.Session().client("s3", endpoint_url=url, region_name=REGION, **setup)
        s3.create_bucket(Bucket=BUCKET)
        everything = {
            "Version": minio_users.POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}],
        }
        admin_keys = _iam_user(iam, "admin", everything)
        mlflow_keys = _iam_user(
            iam,
            minio_users.relation_user(MLFLOW_RELATION_ID),
            minio_users.relation_policy(BUCKET, ARTIFACT_PATH),
        )
        profile_keys = _iam_user(
            iam,
            minio_users.profile_user(PROFILE),
            # mlflow's relation asks that profiles may read its bucket path (profiles-read).
            minio_users.profile_policy(PROFILE, [minio_users.ReadGrant(BUCKET, ARTIFACT_PATH)]),
        )
        # From here on, every request is checked against its user's policy.
        request = urllib.request.Request(  # noqa: S310 - the local test server
            f"{url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
        yield ObjectStore(url=url, admin=admin_keys, mlflow=mlflow_keys, profile=profile_keys)


@pytest.fixture
def mlflow_database(admin: MySQLServer, mariadb: MariaDB) -> Database:  # noqa: F811
    """The database and account the mysql charm makes for mlflow's `relational-db` relation."""
    from mysql_server import relation_user  # charms/mysql/src, on sys.path by workload.fixtures

    password = secrets.token_urlsafe(18)
    user = relation_user(MLFLOW_RELATION_ID)
    admin.ensure_database(wl.DATABASE)  # the database the mlflow charm asks for
    admin.ensure_user(user, password, wl.DATABASE)
    return Database(mariadb.host, mariadb.port, wl.DATABASE, user, password)
