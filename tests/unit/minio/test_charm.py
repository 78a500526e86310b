"""Unit tests of the minio charm: config, modes, Pebble, leadership, relations, actions."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

# The charm's module, on the path once conftest has loaded the charm.
import minio_users
import ops
import pytest
from ops import testing

from kubeflow_interfaces import s3

CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUSGVsbG8gdGVzdCBjZXJ0aWZpY2F0ZTAKBggqhkjOPQQD\n"
    "AjAPMQ0wCwYDVQQDDAR0ZXN0MB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAwMDAw\n"
    "-----END CERTIFICATE-----\n"
)
SERVICE_URL = "http://minio.kubeflow.svc.cluster.local:9000"


KEYS_DIR = "/etc/minio/root"  # where the charm writes MinIO's root keys
_KEYS_ROOT: list[pathlib.Path] = []


@pytest.fixture(autouse=True)
def _keys_root(tmp_path: pathlib.Path):
    _KEYS_ROOT[:] = [tmp_path]


def container(**kwargs: Any) -> testing.Container:
    """The workload container; its key directory is a mount, so it outlives one run."""
    kwargs.setdefault("can_connect", True)
    source = _KEYS_ROOT[0] / "keys"  # one per test: equal containers stay equal
    source.mkdir(exist_ok=True)
    kwargs.setdefault("mounts", {"keys": testing.Mount(location=KEYS_DIR, source=source)})
    return testing.Container("minio", **kwargs)


def make_state(
    *,
    leader: bool = True,
    config: dict[str, Any] | None = None,
    relations: tuple[testing.Relation, ...] = (),
    secrets: tuple[testing.Secret, ...] = (),
    workload: testing.Container | None = None,
    **kwargs: Any,
) -> testing.State:
    return testing.State(
        leader=leader,
        config=config or {},
        relations=set(relations),
        secrets=set(secrets),
        containers={workload or container()},
        storages={testing.Storage("data")},
        model=testing.Model(name="kubeflow"),
        **kwargs,
    )


def user_secret(
    access_key: str = "user-access",
    secret_key: str = "user-secret-1",  # noqa: S107 - test data
) -> testing.Secret:
    """Make a user secret the app was granted (owner None: the charm only reads it)."""
    return testing.Secret(tracked_content={"access-key": access_key, "secret-key": secret_key})


def root_secret(
    access_key: str = "rootaccess",
    secret_key: str = "rootsecret-123",  # noqa: S107 - test data
) -> testing.Secret:
    return testing.Secret(
        tracked_content={"access-key": access_key, "secret-key": secret_key},
        owner="app",
        label="root-credentials",
    )


def secret_by_label(state: testing.State, label: str) -> testing.Secret:
    return state.get_secret(label=label)


def root_content(state: testing.State) -> dict[str, str]:
    return dict(secret_by_label(state, "root-credentials").latest_content or {})


def keys_dir(state: testing.State) -> pathlib.Path:
    return pathlib.Path(state.get_container("minio").mounts["keys"].source)


def minio_keys(state: testing.State) -> dict[str, str]:
    """The root keys MinIO reads from its key files."""
    return {name: (keys_dir(state) / name).read_text() for name in ("access-key", "secret-key")}


@pytest.fixture
def pebble_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict]]:
    """Record the charm's writes to Pebble (name, args, keyword args), then let them happen."""
    calls: list[tuple[str, tuple[Any, ...], dict]] = []
    for name in ("push", "make_dir", "remove_path", "add_layer", "replan", "restart", "stop"):
        original = getattr(ops.Container, name)

        def spy(self: ops.Container, *args: Any, _name=name, _original=original, **kwargs: Any):
            calls.append((_name, args, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ops.Container, name, spy)
    return calls


def secret_writes(state: testing.State) -> set[tuple[Any, ...]]:
    """Each secret's id, owner, grants, content and latest revision: what a write changes.

    Refreshing to the latest revision (tracked content) is reading, not writing.
    """
    return {
        (
            s.id,
            s.owner,
            s.label,
            tuple(sorted((s.latest_content or {}).items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in s.remote_grants.items())),
            s._latest_revision,
        )
        for s in state.secrets
    }


def relation_secret(state: testing.State, relation: testing.Relation) -> testing.Secret:
    data = state.get_relation(relation.id).local_app_data
    return state.get_secret(id=data["secret-extra"])


def external_config(secret: testing.Secret, **extra: str) -> dict[str, Any]:
    return {
        "mode": "external",
        "external-endpoint": "https://s3.eu-west-1.amazonaws.com/",
        "external-region": "eu-west-1",
        "external-secret-id": secret.id,
        **extra,
    }


# --- config ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"mode": "server"},
        {"default-bucket": "ml-artifacts"},
        {"default-bucket": "abc"},
        {"external-endpoint": "http://rgw.ceph.svc:7480"},
        {"external-region": "eu-central-1"},
        {"external-region": "default"},
        {"external-uri-style": "host"},
        {"external-uri-style": "path"},
        {"external-ca-chain": CA_PEM},
        {"external-ca-chain": CA_PEM + CA_PEM},
    ],
)
def test_valid_config_server_mode(ctx: testing.Context, local_minio: Any, config: dict[str, str]):
    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)
    assert isinstance(state_out.app_status, testing.ActiveStatus)
    assert "minio" in state_out.get_container("minio").plan.services


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"mode": "gateway"}, "mode"),
        ({"mode": ""}, "mode"),
        ({"external-endpoint": "ftp://files.example.com"}, "external-endpoint"),
        ({"external-endpoint": "s3.amazonaws.com"}, "external-endpoint"),
        ({"external-endpoint": "https://key:pw@s3.example.com"}, "external-endpoint"),
        ({"external-endpoint": "https://s3.example.com/?x=1"}, "external-endpoint"),
        ({"external-endpoint": "https://s3.example.com:99999"}, "external-endpoint"),
        ({"external-region": ""}, "external-region"),
        ({"external-region": "eu west 1"}, "external-region"),
        ({"external-uri-style": "virtual"}, "external-uri-style"),
        ({"external-ca-chain": "not a certificate"}, "external-ca-chain"),
        ({"external-ca-chain": CA_PEM + "trailing junk"}, "external-ca-chain"),
        (
            {"external-ca-chain": "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"},
            "external-ca-chain",
        ),
        ({"default-bucket": "Not_A_Bucket"}, "default-bucket"),
        ({"default-bucket": "ab"}, "default-bucket"),
        ({"default-bucket": ""}, "default-bucket"),
        ({"mode": "external"}, "external-endpoint"),
        (
            {"mode": "external", "external-endpoint": "https://s3.example.com"},
            "external-secret-id",
        ),
    ],
)
def test_invalid_config_blocks_and_leaves_workload(
    ctx: testing.Context, config: dict[str, str], option: str
):
    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith(f"invalid config: {option}:")
    assert isinstance(state_out.app_status, testing.BlockedStatus)
    assert state_out.get_container("minio").plan.services == {}
    assert not state_out.secrets
    assert not state_out.opened_ports


def test_invalid_config_leaves_running_minio_alone(ctx: testing.Context, local_minio: Any):
    settled = ctx.run(ctx.on.config_changed(), make_state())
    plan_before = settled.get_container("minio").plan

    bad = dataclasses.replace(settled, config={"external-uri-style": "virtual"})
    state_out = ctx.run(ctx.on.config_changed(), bad)

    assert state_out.get_container("minio").plan == plan_before
    assert state_out.secrets == settled.secrets
    assert "external-uri-style" in state_out.unit_status.message


def test_root_secret_id_used_as_root_credentials(ctx: testing.Context):
    secret = user_secret("admin-user", "admin-password-1")

    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(config={"root-secret-id": secret.id}, secrets=(secret,)),
    )

    assert root_content(state_out) == {
        "access-key": "admin-user",
        "secret-key": "admin-password-1",
    }
    assert minio_keys(state_out) == {"access-key": "admin-user", "secret-key": "admin-password-1"}
    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"access-key": "only-access"}, "access-key and secret-key"),
        ({"username": "x", "password": "y"}, "access-key and secret-key"),
        ({"access-key": "ab", "secret-key": "long-enough"}, "at least 3"),
        ({"access-key": "a=b", "secret-key": "long-enough"}, "must not contain"),
        ({"access-key": "admin", "secret-key": "short"}, "at least 8"),
        ({"access-key": "admin\nuser", "secret-key": "long-enough"}, "line breaks"),
        ({"access-key": "admin", "secret-key": "long-enough\n"}, "line breaks"),
        ({"access-key": "admin", "secret-key": "long\r\nenough"}, "line breaks"),
        ({"access-key": " admin", "secret-key": "long-enough"}, "whitespace"),
        ({"access-key": "admin", "secret-key": "long-enough "}, "whitespace"),
    ],
)
def test_root_secret_id_malformed_blocks(ctx: testing.Context, content: dict[str, str], why: str):
    secret = testing.Secret(tracked_content=content)

    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(config={"root-secret-id": secret.id}, secrets=(secret,)),
    )

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith("root-secret-id:")
    assert why in state_out.unit_status.message
    assert state_out.get_container("minio").plan.services == {}
    assert not any(s.label == "root-credentials" for s in state_out.secrets)


def test_root_key_with_a_newline_blocks_and_leaves_minio_alone(
    ctx: testing.Context, pebble_writes: list[Any]
):
    keys = user_secret("admin-user", "admin-password-1")
    settled = ctx.run(
        ctx.on.config_changed(), make_state(config={"root-secret-id": keys.id}, secrets=(keys,))
    )
    bad = dataclasses.replace(
        settled.get_secret(id=keys.id),
        latest_content={"access-key": "admin-user", "secret-key": "admin-password-2\n"},
    )
    state_in = dataclasses.replace(
        settled, secrets=(settled.secrets - {settled.get_secret(id=keys.id)}) | {bad}
    )
    pebble_writes.clear()

    state_out = ctx.run(ctx.on.secret_changed(bad), state_in)

    assert state_out.unit_status == testing.BlockedStatus(
        "root-secret-id: secret-key must not contain line breaks or other control characters"
    )
    assert pebble_writes == []
    assert minio_keys(state_out) == {"access-key": "admin-user", "secret-key": "admin-password-1"}
    assert root_content(state_out) == root_content(settled)


def test_root_secret_id_not_granted_blocks(ctx: testing.Context):
    not_granted = testing.Secret(tracked_content={"access-key": "a", "secret-key": "b"})

    state_out = ctx.run(
        ctx.on.config_changed(), make_state(config={"root-secret-id": not_granted.id})
    )

    assert state_out.unit_status == testing.BlockedStatus(
        "root-secret-id: cannot read the secret; grant it to this application"
    )
    assert state_out.get_container("minio").plan.services == {}


def test_root_secret_id_change_updates_root_secret(ctx: testing.Context):
    old_root = root_secret("generated", "generated-secret")
    secret = user_secret("admin-user", "admin-password-1")

    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(config={"root-secret-id": secret.id}, secrets=(secret, old_root)),
    )

    assert root_content(state_out)["access-key"] == "admin-user"
    assert minio_keys(state_out)["access-key"] == "admin-user"


def test_unsetting_root_secret_id_keeps_current_credentials(ctx: testing.Context):
    current = root_secret("admin-user", "admin-password-1")

    state_out = ctx.run(ctx.on.config_changed(), make_state(secrets=(current,)))

    assert root_content(state_out) == {
        "access-key": "admin-user",
        "secret-key": "admin-password-1",
    }
    assert minio_keys(state_out)["access-key"] == "admin-user"


# --- server mode ------------------------------------------------------------------


def test_server_mode_first_start(ctx: testing.Context):
    workload = container()

    state_out = ctx.run(ctx.on.pebble_ready(workload), make_state(workload=workload))

    content = root_content(state_out)
    assert len(content["access-key"]) >= 20
    assert len(content["secret-key"]) >= 40
    out = state_out.get_container("minio")
    service = out.plan.services["minio"]
    assert service.command == "minio server /data --address :9000 --console-address :9001"
    assert service.startup == "enabled"
    assert dict(service.environment) == {
        "MINIO_ROOT_USER_FILE": f"{KEYS_DIR}/access-key",
        "MINIO_ROOT_PASSWORD_FILE": f"{KEYS_DIR}/secret-key",
    }
    assert minio_keys(state_out) == content
    checks = out.plan.checks
    assert checks["minio-alive"].level == ops.pebble.CheckLevel.ALIVE
    assert checks["minio-alive"].http == {"url": "http://localhost:9000/minio/health/live"}
    assert checks["minio-ready"].level == ops.pebble.CheckLevel.READY
    assert checks["minio-ready"].http == {"url": "http://localhost:9000/minio/health/ready"}
    assert out.service_statuses["minio"] == ops.pebble.ServiceStatus.ACTIVE
    assert state_out.opened_ports == {testing.TCPPort(9000), testing.TCPPort(9001)}
    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)
    assert state_out.app_status == testing.ActiveStatus("0 bucket request(s) served")


def test_root_credentials_never_logged(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="logs")
    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))

    content = root_content(state_out)
    logged = " ".join(entry.message for entry in ctx.juju_log)
    assert content["access-key"] not in logged
    assert content["secret-key"] not in logged


def test_pebble_not_ready(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    state_in = make_state(workload=container(can_connect=False), relations=(relation,))

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for Pebble in the minio container"
    )
    # The leader still prepares the credentials, but cannot answer without MinIO.
    assert root_content(state_out)
    assert state_out.get_relation(relation.id).local_app_data == {}
    # The app waits too, for the leader unit's reason first.
    assert state_out.app_status == testing.WaitingStatus(
        "waiting for Pebble in the minio container"
    )
    assert local_minio.buckets() == set()


@pytest.mark.parametrize("source", ["generated", "root-secret-id"])
def test_plan_holds_no_root_key(ctx: testing.Context, source: str):
    keys = user_secret("admin-user", "admin-password-1")
    config = {"root-secret-id": keys.id} if source == "root-secret-id" else {}

    state_out = ctx.run(
        ctx.on.pebble_ready(container()), make_state(config=config, secrets=(keys,))
    )

    out = state_out.get_container("minio")
    rendered = out.plan.to_yaml() + "".join(layer.to_yaml() for layer in out.layers.values())
    content = root_content(state_out)
    assert minio_keys(state_out) == content
    for key in content.values():
        assert key not in rendered


def test_key_files_are_private_to_minios_user(ctx: testing.Context, pebble_writes: list[Any]):
    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state())

    service = state_out.get_container("minio").plan.services["minio"]
    pushed = {args[0]: kwargs for name, args, kwargs in pebble_writes if name == "push"}
    assert set(pushed) == {f"{KEYS_DIR}/access-key", f"{KEYS_DIR}/secret-key"}
    for kwargs in pushed.values():
        assert kwargs["permissions"] == 0o600
        assert (kwargs["user_id"], kwargs["group_id"]) == (service.user_id, service.group_id)
    for name in ("access-key", "secret-key"):
        assert (keys_dir(state_out) / name).stat().st_mode & 0o777 == 0o600
    # Keys are pushed before MinIO starts: without them it would use its defaults.
    names = [name for name, _, _ in pebble_writes]
    assert names.index("replan") > max(i for i, n in enumerate(names) if n == "push")


def test_key_directory_is_made_private(ctx: testing.Context, pebble_writes: list[Any]):
    # Without a mount there, the charm makes the directory itself.
    workload = container(mounts={})

    state_out = ctx.run(ctx.on.pebble_ready(workload), make_state(workload=workload))

    (made,) = [(a, k) for name, a, k in pebble_writes if name == "make_dir"]
    assert made[0] == (KEYS_DIR,)
    assert made[1]["permissions"] == 0o700
    root = state_out.get_container("minio").get_filesystem(ctx)
    assert (root / KEYS_DIR[1:]).stat().st_mode & 0o777 == 0o700


def test_upgrade_takes_the_keys_out_of_an_old_plan(ctx: testing.Context):
    old_layer = ops.pebble.Layer(
        {
            "services": {
                "minio": {
                    "override": "replace",
                    "command": "minio server /data --address :9000 --console-address :9001",
                    "startup": "enabled",
                    "environment": {
                        "MINIO_ROOT_USER": "rootaccess",
                        "MINIO_ROOT_PASSWORD": "rootsecret-123",
                    },
                }
            }
        }
    )
    workload = container(
        layers={"minio": old_layer},
        service_statuses={"minio": ops.pebble.ServiceStatus.ACTIVE},
    )

    state_out = ctx.run(
        ctx.on.upgrade_charm(), make_state(secrets=(root_secret(),), workload=workload)
    )

    out = state_out.get_container("minio")
    assert "rootaccess" not in out.plan.to_yaml()
    assert "rootsecret-123" not in out.plan.to_yaml()
    assert minio_keys(state_out) == {"access-key": "rootaccess", "secret-key": "rootsecret-123"}


def test_minio_restarted_when_not_running(ctx: testing.Context):
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state())
    stopped = dataclasses.replace(
        settled.get_container("minio"),
        service_statuses={"minio": ops.pebble.ServiceStatus.INACTIVE},
    )

    state_out = ctx.run(ctx.on.update_status(), dataclasses.replace(settled, containers={stopped}))

    assert state_out.get_container("minio").service_statuses["minio"] == (
        ops.pebble.ServiceStatus.ACTIVE
    )


def _ready_check(state: testing.State, status: ops.pebble.CheckStatus) -> testing.State:
    workload = state.get_container("minio")
    infos = {
        dataclasses.replace(info, status=status, failures=3 if status.value == "down" else 0)
        if info.name == "minio-ready"
        else info
        for info in workload.check_infos
    }
    return dataclasses.replace(
        state, containers={dataclasses.replace(workload, check_infos=infos)}
    )


def test_a_readiness_check_that_fails_is_reported_until_it_passes(
    ctx: testing.Context, local_minio: Any
):
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state())
    assert settled.unit_status == testing.ActiveStatus(SERVICE_URL)
    down = _ready_check(settled, ops.pebble.CheckStatus.DOWN)
    info = next(i for i in down.get_container("minio").check_infos if i.name == "minio-ready")

    failed = ctx.run(ctx.on.pebble_check_failed(down.get_container("minio"), info), down)

    assert failed.unit_status == testing.WaitingStatus(
        "MinIO is not ready yet (check minio-ready)"
    )
    assert failed.app_status == failed.unit_status
    up = _ready_check(failed, ops.pebble.CheckStatus.UP)
    info = next(i for i in up.get_container("minio").check_infos if i.name == "minio-ready")
    recovered = ctx.run(ctx.on.pebble_check_recovered(up.get_container("minio"), info), up)
    assert recovered.unit_status == testing.ActiveStatus(SERVICE_URL)


def test_more_than_one_unit_blocks_app(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state(planned_units=2))

    assert state_out.app_status == testing.BlockedStatus(
        "server mode runs one unit: scale the application to 1"
    )


# --- leadership -------------------------------------------------------------------


def test_non_leader_waits_for_root_credentials(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state(leader=False))

    assert state_out.unit_status == testing.WaitingStatus("waiting for the root credentials")
    assert state_out.get_container("minio").plan.services == {}
    assert not state_out.secrets


def test_non_leader_runs_minio_with_leader_credentials(ctx: testing.Context):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    state_in = make_state(leader=False, secrets=(root_secret(),), relations=(relation,))

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert minio_keys(state_out) == {"access-key": "rootaccess", "secret-key": "rootsecret-123"}
    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)
    assert state_out.get_relation(relation.id).local_app_data == {}


def test_non_leader_ignores_root_secret_id(ctx: testing.Context):
    # Only the leader reads the user's secret; the others use the app's copy.
    secret = user_secret("admin-user", "admin-password-1")
    state_in = make_state(
        leader=False, config={"root-secret-id": secret.id}, secrets=(root_secret(),)
    )

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert minio_keys(state_out)["access-key"] == "rootaccess"


def test_leader_elected_adopts_existing_root_secret(ctx: testing.Context):
    existing = root_secret()

    state_out = ctx.run(ctx.on.leader_elected(), make_state(secrets=(existing,)))

    assert state_out.secrets == {existing}
    assert minio_keys(state_out)["access-key"] == "rootaccess"


def test_malformed_root_secret_is_replaced(ctx: testing.Context):
    broken = testing.Secret(tracked_content={"junk": "x"}, owner="app", label="root-credentials")

    state_out = ctx.run(ctx.on.config_changed(), make_state(secrets=(broken,)))

    content = root_content(state_out)
    assert set(content) == {"access-key", "secret-key"}
    assert minio_keys(state_out)["access-key"] == content["access-key"]


# --- relations (server mode) ----------------------------------------------------------


@pytest.mark.parametrize("event", ["relation_joined", "relation_changed"])
def test_relation_gets_bucket_and_credentials(
    ctx: testing.Context, local_minio: Any, minio_admin: Any, event: str
):
    relation = s3.relation_for_provider(bucket="mlpipeline", path="v2/", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state())
    state_in = dataclasses.replace(settled, relations={relation})

    state_out = ctx.run(getattr(ctx.on, event)(relation), state_in)

    assert local_minio.buckets() == {"mlpipeline"}
    data = state_out.get_relation(relation.id).local_app_data
    assert data["bucket"] == "mlpipeline"
    assert data["path"] == "v2/"
    assert data["endpoint"] == SERVICE_URL
    assert data["region"] == "us-east-1"
    assert data["s3-uri-style"] == "path"
    assert "tls-ca-chain" not in data
    assert "access-key" not in data and "secret-key" not in data
    # The v1 format's markers: object-storage-charmlib reads `version`.
    assert data["version"] == "1"
    assert data["lib-version"] == s3.LIB_VERSION
    secret = relation_secret(state_out, relation)
    # The relation's own MinIO user, scoped to the path it asked for: never the root keys.
    user = f"kf-s3-{relation.id}"
    assert secret.latest_content == {"access-key": user, "secret-key": minio_admin.users[user]}
    assert secret.latest_content["secret-key"] not in root_content(state_out).values()
    assert minio_admin.policy_of(user) == minio_users.relation_policy("mlpipeline", "v2/")
    assert secret.remote_grants == {relation.id: {"kfp"}}
    assert state_out.app_status == testing.ActiveStatus("1 bucket request(s) served")


def test_relation_without_bucket_gets_default_bucket(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket=None)
    state_in = make_state(config={"default-bucket": "shared-artifacts"}, relations=(relation,))

    state_out = ctx.run(ctx.on.pebble_ready(container()), state_in)

    assert local_minio.buckets() == {"shared-artifacts"}
    assert state_out.get_relation(relation.id).local_app_data["bucket"] == "shared-artifacts"


def test_existing_bucket_is_kept(ctx: testing.Context, local_minio: Any):
    local_minio.client().create_bucket(Bucket="mlpipeline")
    local_minio.client().put_object(Bucket="mlpipeline", Key="keep.txt", Body=b"data")
    relation = s3.relation_for_provider(bucket="mlpipeline")

    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))

    assert state_out.get_relation(relation.id).local_app_data["bucket"] == "mlpipeline"
    objects = local_minio.client().list_objects_v2(Bucket="mlpipeline")["Contents"]
    assert [o["Key"] for o in objects] == ["keep.txt"]


def test_several_relations_each_get_their_own_secret(ctx: testing.Context, local_minio: Any):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")

    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))

    assert local_minio.buckets() == {"mlpipeline", "mlflow"}
    kfp_secret = relation_secret(state_out, kfp)
    mlflow_secret = relation_secret(state_out, mlflow)
    assert kfp_secret.id != mlflow_secret.id
    assert mlflow_secret.remote_grants == {mlflow.id: {"mlflow"}}


def test_invalid_bucket_request_blocks_and_is_not_answered(ctx: testing.Context, local_minio: Any):
    good = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    template = s3.relation_for_provider(remote_app_name="kfp")
    bad = dataclasses.replace(
        template, remote_app_data={**template.remote_app_data, "bucket": "Bad_Bucket"}
    )

    state_out = ctx.run(ctx.on.relation_changed(bad), make_state(relations=(good, bad)))

    assert state_out.get_relation(bad.id).local_app_data == {}
    assert state_out.get_relation(good.id).local_app_data["bucket"] == "mlflow"
    assert local_minio.buckets() == {"mlflow"}
    assert state_out.app_status == testing.BlockedStatus(
        "invalid bucket name: kfp asked for bucket 'Bad_Bucket'"
    )
    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)


V0_MESSAGE = (
    "s3-credentials: {apps} the s3 v0 interface, which needs keys in clear in the databag; "
    "use an s3 v1 requirer"
)


def test_v0_requirer_blocks_naming_it_and_gets_nothing(ctx: testing.Context, local_minio: Any):
    good = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    # What data_platform_libs' v0 s3 requirer writes: `bucket` alone.
    old = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp", format_version="v0")
    assert dict(old.remote_app_data) == {"bucket": "mlpipeline"}

    state_out = ctx.run(ctx.on.relation_changed(old), make_state(relations=(good, old)))

    assert state_out.get_relation(old.id).local_app_data == {}
    assert not any(s.label == f"s3-credentials-{old.id}" for s in state_out.secrets)
    assert local_minio.buckets() == {"mlflow"}
    assert state_out.get_relation(good.id).local_app_data["bucket"] == "mlflow"
    assert state_out.app_status == testing.BlockedStatus(V0_MESSAGE.format(apps="kfp uses"))
    assert state_out.unit_status == testing.ActiveStatus(SERVICE_URL)


def test_v0_requirers_and_invalid_requests_share_one_blocked_status(
    ctx: testing.Context, local_minio: Any
):
    kfp = s3.relation_for_provider(remote_app_name="kfp", format_version="v0")
    mlflow = s3.relation_for_provider(remote_app_name="mlflow", format_version="v0")
    template = s3.relation_for_provider(remote_app_name="katib")
    bad = dataclasses.replace(
        template, remote_app_data={**template.remote_app_data, "bucket": "Bad_Bucket"}
    )

    state_out = ctx.run(ctx.on.update_status(), make_state(relations=(kfp, mlflow, bad)))

    assert state_out.app_status == testing.BlockedStatus(
        "invalid bucket name: katib asked for bucket 'Bad_Bucket'; "
        + V0_MESSAGE.format(apps="kfp, mlflow use")
    )
    assert local_minio.buckets() == set()
    assert all(r.local_app_data == {} for r in state_out.relations)


def test_v0_requirer_settled_hook_writes_nothing(ctx: testing.Context, local_minio: Any):
    old = s3.relation_for_provider(remote_app_name="kfp", format_version="v0")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(old,)))

    state_out = ctx.run(ctx.on.update_status(), settled)

    assert state_out.relations == settled.relations
    assert secret_writes(state_out) == secret_writes(settled)
    assert isinstance(state_out.app_status, testing.BlockedStatus)


def test_requirer_that_has_said_nothing_is_waited_for(ctx: testing.Context, local_minio: Any):
    silent = testing.Relation("s3-credentials", interface="s3", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state())

    waiting = ctx.run(
        ctx.on.relation_joined(silent), dataclasses.replace(settled, relations={silent})
    )

    assert waiting.get_relation(silent.id).local_app_data == {}
    assert local_minio.buckets() == set()
    assert waiting.app_status == testing.WaitingStatus("waiting for the s3 request of kfp")
    # Its request arrives: it is answered.
    asked = dataclasses.replace(
        waiting.get_relation(silent.id),
        remote_app_data=s3.relation_for_provider(bucket="mlpipeline").remote_app_data,
    )
    answered = ctx.run(
        ctx.on.relation_changed(asked), dataclasses.replace(waiting, relations={asked})
    )
    assert answered.get_relation(silent.id).local_app_data["bucket"] == "mlpipeline"
    assert answered.app_status == testing.ActiveStatus("1 bucket request(s) served")


def test_unreachable_minio_leaves_relation_unanswered(
    ctx: testing.Context, unreachable_minio: str
):
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")

    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))

    assert state_out.get_relation(relation.id).local_app_data == {}
    assert state_out.app_status == testing.WaitingStatus("preparing bucket 'mlpipeline' for kfp")
    assert not any(s.label and s.label.startswith("s3-credentials-") for s in state_out.secrets)


def test_changed_bucket_request_makes_new_bucket(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="first-bucket")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    changed = dataclasses.replace(
        settled.get_relation(relation.id),
        remote_app_data=s3.relation_for_provider(bucket="second-bucket").remote_app_data,
    )

    state_out = ctx.run(
        ctx.on.relation_changed(changed), dataclasses.replace(settled, relations={changed})
    )

    assert local_minio.buckets() == {"first-bucket", "second-bucket"}
    assert state_out.get_relation(relation.id).local_app_data["bucket"] == "second-bucket"
    # Same secret, same content: only the databag changed.
    assert relation_secret(state_out, relation) == relation_secret(settled, relation)


def test_relation_broken_revokes_its_secret(ctx: testing.Context, local_minio: Any):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))
    kfp_secret = relation_secret(settled, kfp)
    mlflow_secret = relation_secret(settled, mlflow)

    state_out = ctx.run(ctx.on.relation_broken(settled.get_relation(kfp.id)), settled)

    ids = {s.id for s in state_out.secrets}
    assert kfp_secret.id not in ids
    assert mlflow_secret.id in ids
    assert state_out.app_status == testing.ActiveStatus("1 bucket request(s) served")


def test_a_leader_scaled_away_keeps_the_relations_secret_and_user(
    charm: Any, local_minio: Any, minio_admin: Any
):
    # On Kubernetes the highest-numbered unit goes; Juju runs relation-broken
    # on it for every relation it was in, and it still holds the lease.
    ctx = testing.Context(charm.MinioCharm, unit_id=1)
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp,)))
    assert f"kf-s3-{kfp.id}" in minio_admin.users
    leaving = dataclasses.replace(settled, planned_units=1)

    state_out = ctx.run(ctx.on.relation_broken(leaving.get_relation(kfp.id)), leaving)

    assert state_out.secrets == leaving.secrets
    assert f"kf-s3-{kfp.id}" in minio_admin.users


def test_relation_broken_removes_its_user_and_policy(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))
    assert set(minio_admin.users) == {f"kf-s3-{kfp.id}", f"kf-s3-{mlflow.id}"}

    ctx.run(ctx.on.relation_broken(settled.get_relation(kfp.id)), settled)

    assert set(minio_admin.users) == {f"kf-s3-{mlflow.id}"}
    assert set(minio_admin.policies) == {f"kf-s3-{mlflow.id}"}


def test_user_of_a_relation_broken_while_minio_was_down_goes_on_a_later_hook(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp,)))
    minio_admin.down = True
    broken = ctx.run(ctx.on.relation_broken(settled.get_relation(kfp.id)), settled)
    assert f"kf-s3-{kfp.id}" in minio_admin.users
    assert isinstance(broken.app_status, testing.WaitingStatus)
    assert "retrying on the next hook" in broken.app_status.message

    minio_admin.down = False
    gone = dataclasses.replace(broken, relations=set())
    out = ctx.run(ctx.on.update_status(), gone)

    assert minio_admin.users == {}
    assert minio_admin.policies == {}
    assert out.app_status == testing.ActiveStatus("0 bucket request(s) served")


def test_user_is_made_before_its_keys_are_published(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    minio_admin.fail_after = 1  # the policy is written, then MinIO goes away

    state_out = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))

    assert state_out.get_relation(relation.id).local_app_data == {}
    assert not any(s.label == f"s3-credentials-{relation.id}" for s in state_out.secrets)
    assert state_out.app_status == testing.WaitingStatus(
        f"MinIO users: cannot reach MinIO to write user kf-s3-{relation.id}: MaxRetryError; "
        "retrying on the next hook"
    )


def test_a_changed_path_rescopes_the_policy_and_keeps_the_key(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    relation = s3.relation_for_provider(bucket="mlpipeline", path="a/", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    user = f"kf-s3-{relation.id}"
    key = minio_admin.users[user]
    changed = dataclasses.replace(
        settled.get_relation(relation.id),
        remote_app_data=s3.relation_for_provider(bucket="mlpipeline", path="b/").remote_app_data,
    )

    state_out = ctx.run(
        ctx.on.relation_changed(changed), dataclasses.replace(settled, relations={changed})
    )

    assert minio_admin.policy_of(user) == minio_users.relation_policy("mlpipeline", "b/")
    assert minio_admin.users[user] == key
    assert state_out.get_relation(relation.id).local_app_data["path"] == "b/"


def test_an_old_relation_holding_the_root_keys_gets_its_own(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    # As answered before scoped users: the relation's secret holds the root keys.
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    root = root_secret()
    old = testing.Secret(
        tracked_content=dict(root.tracked_content),
        owner="app",
        label=f"s3-credentials-{relation.id}",
        remote_grants={relation.id: {"kfp"}},
    )
    answered = dataclasses.replace(
        relation,
        local_app_data={
            "bucket": "mlpipeline",
            "endpoint": SERVICE_URL,
            "region": "us-east-1",
            "s3-uri-style": "path",
            "secret-extra": old.id,
            "version": "1",
            "lib-version": s3.LIB_VERSION,
        },
    )
    workload = container(service_statuses={"minio": ops.pebble.ServiceStatus.ACTIVE})

    state_out = ctx.run(
        ctx.on.upgrade_charm(),
        make_state(relations=(answered,), secrets=(root, old), workload=workload),
    )

    content = relation_secret(state_out, relation).latest_content or {}
    assert content["access-key"] == f"kf-s3-{relation.id}"
    assert content["secret-key"] == minio_admin.users[f"kf-s3-{relation.id}"]
    assert not set(content.values()) & set(root.tracked_content.values())


def test_rotation_stopped_part_way_hands_out_what_rotated(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))
    old_root = root_content(settled)
    minio_admin.fail_after = len(minio_admin.calls) + 1  # one key changes, then MinIO is gone

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("rotate-credentials"), settled)

    assert failure.value.message.startswith("rotated 1 of 2 users' keys, then: cannot reach")
    out = failure.value.state
    # Every relation's secret holds the key MinIO holds for its user, rotated or not.
    for relation in (kfp, mlflow):
        user = f"kf-s3-{relation.id}"
        assert (relation_secret(out, relation).latest_content or {})["secret-key"] == (
            minio_admin.users[user]
        )
    assert root_content(out) == old_root  # root is left for a run that gets through


def test_no_relation_or_log_ever_holds_the_root_keys(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    rotated = ctx.run(ctx.on.action("rotate-credentials"), settled)

    for state in (settled, rotated):
        root = set(root_content(state).values())
        for secret in state.secrets:
            if secret.label in ("root-credentials", "scoped-users"):
                continue
            assert not root & set((secret.latest_content or {}).values()), secret.label
        for rel in state.relations:
            assert not root & set(rel.local_app_data.values())
    logged = " ".join(entry.message for entry in ctx.juju_log)
    assert not any(key in logged for key in minio_admin.users.values())


def test_relation_broken_on_non_leader_changes_nothing(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    follower = dataclasses.replace(settled, leader=False)

    state_out = ctx.run(ctx.on.relation_broken(follower.get_relation(relation.id)), follower)

    assert state_out.secrets == follower.secrets


def test_non_leader_answers_no_relation(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    state_in = make_state(leader=False, secrets=(root_secret(),), relations=(relation,))

    state_out = ctx.run(ctx.on.relation_changed(relation), state_in)

    assert state_out.get_relation(relation.id).local_app_data == {}
    assert local_minio.buckets() == set()


# --- external mode ---------------------------------------------------------------------


def test_external_mode_publishes_the_external_store(ctx: testing.Context, local_minio: Any):
    keys = user_secret("AKIAEXTERNAL", "external-secret-key")
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    config = external_config(keys, **{"external-uri-style": "host", "external-ca-chain": CA_PEM})

    state_out = ctx.run(
        ctx.on.relation_changed(relation),
        make_state(config=config, secrets=(keys,), relations=(relation,)),
    )

    data = state_out.get_relation(relation.id).local_app_data
    assert data["endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert data["region"] == "eu-west-1"
    assert data["s3-uri-style"] == "host"
    assert data["bucket"] == "mlpipeline"
    # Each certificate as PEM text, as s3-integrator 2 writes them and kfp reads them.
    assert json.loads(data["tls-ca-chain"]) == [CA_PEM.strip()]
    assert relation_secret(state_out, relation).latest_content == {
        "access-key": "AKIAEXTERNAL",
        "secret-key": "external-secret-key",
    }
    # No MinIO: no service, no ports, no root credentials, no local bucket.
    assert state_out.get_container("minio").plan.services == {}
    assert not state_out.opened_ports
    assert not any(s.label == "root-credentials" for s in state_out.secrets)
    assert local_minio.buckets() == set()
    assert state_out.unit_status == testing.ActiveStatus(
        "external S3 at https://s3.eu-west-1.amazonaws.com"
    )
    assert state_out.app_status == testing.ActiveStatus("1 bucket request(s) served")


def test_switch_to_external_stops_minio(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    keys = user_secret("AKIAEXTERNAL", "external-secret-key")
    state_in = dataclasses.replace(
        settled, config=external_config(keys), secrets=settled.secrets | {keys}
    )

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    out = state_out.get_container("minio")
    assert out.service_statuses["minio"] == ops.pebble.ServiceStatus.INACTIVE
    service = out.plan.services["minio"]
    assert service.startup == "disabled"
    assert dict(service.environment) == {}
    assert list(keys_dir(state_out).iterdir()) == []
    assert {c.name: c.status for c in out.check_infos} == {
        "minio-alive": ops.pebble.CheckStatus.INACTIVE,
        "minio-ready": ops.pebble.CheckStatus.INACTIVE,
    }
    assert not state_out.opened_ports
    data = state_out.get_relation(relation.id).local_app_data
    assert data["endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert relation_secret(state_out, relation).latest_content == {
        "access-key": "AKIAEXTERNAL",
        "secret-key": "external-secret-key",
    }


def test_switch_back_to_server_restarts_minio_and_makes_buckets(
    ctx: testing.Context, local_minio: Any, minio_admin: Any
):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    keys = user_secret("AKIAEXTERNAL", "external-secret-key")
    server = ctx.run(ctx.on.pebble_ready(container()), make_state(secrets=(keys,)))
    external = ctx.run(
        ctx.on.relation_changed(relation),
        dataclasses.replace(server, config=external_config(keys), relations={relation}),
    )
    assert local_minio.buckets() == set()

    state_out = ctx.run(ctx.on.config_changed(), dataclasses.replace(external, config={}))

    assert local_minio.buckets() == {"mlpipeline"}
    out = state_out.get_container("minio")
    assert out.service_statuses["minio"] == ops.pebble.ServiceStatus.ACTIVE
    assert out.plan.services["minio"].startup == "enabled"
    data = state_out.get_relation(relation.id).local_app_data
    assert data["endpoint"] == SERVICE_URL
    user = f"kf-s3-{relation.id}"
    assert relation_secret(state_out, relation).latest_content == {
        "access-key": user,
        "secret-key": minio_admin.users[user],
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "external-secret-id: cannot read the secret; grant it to this application"),
        (
            {"access-key": "AKIA"},
            "external-secret-id: the secret needs the keys access-key and secret-key",
        ),
    ],
)
def test_external_secret_problems_block(
    ctx: testing.Context, content: dict[str, str] | None, message: str
):
    keys = testing.Secret(tracked_content=content or {"access-key": "a", "secret-key": "b"})
    relation = s3.relation_for_provider(bucket="mlpipeline")
    secrets = (keys,) if content else ()

    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(config=external_config(keys), secrets=secrets, relations=(relation,)),
    )

    assert state_out.unit_status == testing.BlockedStatus(message)
    assert state_out.app_status == testing.BlockedStatus(message)
    assert state_out.get_relation(relation.id).local_app_data == {}


def test_external_mode_pebble_not_ready_still_answers(ctx: testing.Context):
    keys = user_secret()
    relation = s3.relation_for_provider(bucket="mlpipeline")
    state_in = make_state(
        config=external_config(keys),
        secrets=(keys,),
        relations=(relation,),
        workload=container(can_connect=False),
    )

    state_out = ctx.run(ctx.on.relation_changed(relation), state_in)

    assert state_out.get_relation(relation.id).local_app_data["bucket"] == "mlpipeline"


# --- secret rotation -------------------------------------------------------------------


def test_user_root_secret_rotation_reaches_minio_not_relations(
    ctx: testing.Context, local_minio: Any, pebble_writes: list[Any]
):
    keys = user_secret("admin-user", "admin-password-1")
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(
        ctx.on.pebble_ready(container()),
        make_state(config={"root-secret-id": keys.id}, secrets=(keys,), relations=(relation,)),
    )
    new_content = {"access-key": "admin-user", "secret-key": "rotated-password-2"}
    rotated = dataclasses.replace(settled.get_secret(id=keys.id), latest_content=new_content)
    state_in = dataclasses.replace(
        settled, secrets=(settled.secrets - {settled.get_secret(id=keys.id)}) | {rotated}
    )

    state_out = ctx.run(ctx.on.secret_changed(rotated), state_in)

    assert root_content(state_out) == new_content
    assert minio_keys(state_out)["secret-key"] == "rotated-password-2"
    assert ("restart", ("minio",), {}) in pebble_writes
    # The relation holds its own user's keys, which the root change does not touch.
    assert relation_secret(state_out, relation) == relation_secret(settled, relation)


def test_external_secret_rotation_reaches_relations(ctx: testing.Context):
    keys = user_secret("AKIAEXTERNAL", "external-secret-key")
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(
        ctx.on.relation_changed(relation),
        make_state(config=external_config(keys), secrets=(keys,), relations=(relation,)),
    )
    new_content = {"access-key": "AKIAROTATED", "secret-key": "rotated-external-key"}
    rotated = dataclasses.replace(settled.get_secret(id=keys.id), latest_content=new_content)
    state_in = dataclasses.replace(
        settled, secrets=(settled.secrets - {settled.get_secret(id=keys.id)}) | {rotated}
    )

    state_out = ctx.run(ctx.on.secret_changed(rotated), state_in)

    assert relation_secret(state_out, relation).latest_content == new_content


def test_secret_remove_drops_the_old_revision(ctx: testing.Context):
    secret = root_secret()

    ctx.run(ctx.on.secret_remove(secret, revision=7), make_state(secrets=(secret,)))

    assert ctx.removed_secret_revisions == [7]


# --- rotate-credentials ----------------------------------------------------------------


def test_rotate_credentials(
    ctx: testing.Context, local_minio: Any, minio_admin: Any, pebble_writes: list[Any]
):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket="mlflow", remote_app_name="mlflow")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))
    old = root_content(settled)
    old_users = dict(minio_admin.users)
    pebble_writes.clear()

    state_out = ctx.run(ctx.on.action("rotate-credentials"), settled)

    new = root_content(state_out)
    assert new["access-key"] != old["access-key"]
    assert new["secret-key"] != old["secret-key"]
    assert minio_keys(state_out) == new
    # Same plan, new key files: MinIO is restarted to read them.
    assert [name for name, _, _ in pebble_writes] == ["push", "push", "restart"]
    assert state_out.get_container("minio").plan == settled.get_container("minio").plan
    # Each relation's user has a new key, in MinIO and in its secret, and is still its own.
    for relation in (kfp, mlflow):
        user = f"kf-s3-{relation.id}"
        assert minio_admin.users[user] != old_users[user]
        assert relation_secret(state_out, relation).latest_content == {
            "access-key": user,
            "secret-key": minio_admin.users[user],
        }
    # Users rotate first, as the old root, while MinIO runs; then root and the restart.
    assert minio_admin.connected_as[-1] == old["access-key"]
    results = ctx.action_results or {}
    assert results["rotated-root"] == "true"
    assert results["updated-relations"] == (
        f"kfp (s3-credentials:{kfp.id}), mlflow (s3-credentials:{mlflow.id})"
    )
    shown = " ".join(str(v) for v in results.values())
    shown += " ".join(entry.message for entry in ctx.juju_log)
    for value in (*old.values(), *new.values(), *minio_admin.users.values()):
        assert value not in shown


def test_rotate_credentials_without_relations(ctx: testing.Context):
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state())

    ctx.run(ctx.on.action("rotate-credentials"), settled)

    assert (ctx.action_results or {})["updated-relations"] == "none"


def test_rotate_then_reconcile_changes_nothing_more(ctx: testing.Context, local_minio: Any):
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(relation,)))
    rotated = ctx.run(ctx.on.action("rotate-credentials"), settled)

    state_out = ctx.run(ctx.on.update_status(), rotated)

    assert secret_writes(state_out) == secret_writes(rotated)
    assert state_out.get_container("minio").layers == rotated.get_container("minio").layers


def _rotate_failure(ctx: testing.Context, state: testing.State) -> str:
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("rotate-credentials"), state)
    return failure.value.message


def test_rotate_credentials_non_leader_fails(ctx: testing.Context):
    state_in = make_state(leader=False, secrets=(root_secret(),))

    assert _rotate_failure(ctx, state_in) == "run rotate-credentials on the leader unit"


def test_rotate_credentials_external_mode_fails(ctx: testing.Context):
    keys = user_secret()
    state_in = make_state(config=external_config(keys), secrets=(keys,))

    assert "server mode only" in _rotate_failure(ctx, state_in)


def test_rotate_credentials_with_user_root_secret_rotates_users_only(
    ctx: testing.Context, local_minio: Any, minio_admin: Any, pebble_writes: list[Any]
):
    keys = user_secret("admin-user", "admin-password-1")
    relation = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    settled = ctx.run(
        ctx.on.pebble_ready(container()),
        make_state(config={"root-secret-id": keys.id}, secrets=(keys,), relations=(relation,)),
    )
    user = f"kf-s3-{relation.id}"
    old_key = minio_admin.users[user]
    pebble_writes.clear()

    state_out = ctx.run(ctx.on.action("rotate-credentials"), settled)

    assert root_content(state_out) == {
        "access-key": "admin-user",
        "secret-key": "admin-password-1",
    }
    assert pebble_writes == []  # root unchanged: no restart
    assert minio_admin.users[user] != old_key
    assert relation_secret(state_out, relation).latest_content == {
        "access-key": user,
        "secret-key": minio_admin.users[user],
    }
    results = ctx.action_results or {}
    assert results["rotated-root"] == "false (set by root-secret-id)"
    assert results["restarted"] == "false"


def test_rotate_credentials_invalid_config_fails(ctx: testing.Context):
    state_in = make_state(config={"mode": "gateway"}, secrets=(root_secret(),))

    assert _rotate_failure(ctx, state_in).startswith("invalid config: mode:")


def test_rotate_credentials_before_any_credentials_fails(ctx: testing.Context):
    assert "no root credentials yet" in _rotate_failure(ctx, make_state())


def test_rotate_credentials_pebble_not_ready_fails(ctx: testing.Context):
    state_in = make_state(secrets=(root_secret(),), workload=container(can_connect=False))

    assert "not reachable" in _rotate_failure(ctx, state_in)


# --- nothing to change ------------------------------------------------------------------


@pytest.mark.parametrize("leader", [True, False])
def test_noop_reconcile_writes_nothing(
    ctx: testing.Context, local_minio: Any, leader: bool, pebble_writes: list[Any]
):
    kfp = s3.relation_for_provider(bucket="mlpipeline", remote_app_name="kfp")
    mlflow = s3.relation_for_provider(bucket=None, remote_app_name="mlflow")
    settled = ctx.run(ctx.on.pebble_ready(container()), make_state(relations=(kfp, mlflow)))
    settled = dataclasses.replace(settled, leader=leader)
    pebble_writes.clear()

    state_out = ctx.run(ctx.on.update_status(), settled)

    assert secret_writes(state_out) == secret_writes(settled)
    assert state_out.relations == settled.relations
    assert state_out.get_container("minio").layers == settled.get_container("minio").layers
    assert state_out.get_container("minio").plan == settled.get_container("minio").plan
    assert state_out.opened_ports == settled.opened_ports
    assert pebble_writes == []


def test_noop_reconcile_external_mode_writes_nothing(ctx: testing.Context):
    keys = user_secret()
    relation = s3.relation_for_provider(bucket="mlpipeline")
    settled = ctx.run(
        ctx.on.relation_changed(relation),
        make_state(config=external_config(keys), secrets=(keys,), relations=(relation,)),
    )

    state_out = ctx.run(ctx.on.update_status(), settled)

    assert secret_writes(state_out) == secret_writes(settled)
    assert state_out.relations == settled.relations
    assert state_out.get_container("minio").layers == {}
