"""The minio charm's Pebble layer and credentials against MinIO RELEASE.2025-09-07T16-13-09Z.

Each test renders what the charm really runs (its workload module, or the
charm itself under ops.testing) and checks it against facts/minio.yaml,
naming the fact and where it was read.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import shlex
from urllib.parse import urlsplit

import pytest
import yaml
from charm_loader import charm_dir, load_charm
from conformance import facts
from ops import testing

from kubeflow_interfaces import s3

CHARM = load_charm("minio")
FACTS = facts.load("minio")["minio"]
KFP = facts.load("minio")["kubeflow-pipelines"]
META = yaml.safe_load((charm_dir("minio") / "charmcraft.yaml").read_text())
# The charm's workload modules, as the charm imports them (its src/ is on the path now).
import minio_server  # noqa: E402
import minio_users  # noqa: E402


def fact(name: str):
    return FACTS[name].value


def why(name: str) -> str:
    return f"fact {name!r} ({FACTS[name].source})"


def _service() -> dict:
    return minio_server.pebble_layer().to_dict()["services"][minio_server.SERVICE]


def _flag(argv: list[str], name: str) -> str:
    """The value after a `--flag value` pair."""
    return argv[argv.index(name) + 1]


# --- image ---------------------------------------------------------------------------


def test_resource_is_the_published_image():
    resource = META["resources"]["minio-image"]["upstream-source"]
    assert resource == fact("image"), why("image")


def test_charm_platforms_are_built_for_by_the_release():
    assert {f"linux/{p}" for p in META["platforms"]} <= set(fact("platforms")), why("platforms")


# --- the Pebble service ----------------------------------------------------------------


@pytest.mark.parametrize("layer", ["server", "disabled"])
def test_command_is_minio_server_on_the_data_dir(layer):
    rendered = minio_server.pebble_layer() if layer == "server" else minio_server.disabled_layer()
    argv = shlex.split(rendered.to_dict()["services"][minio_server.SERVICE]["command"])
    assert argv[:2] == fact("command"), why("command")
    # The directory first, then the flags, as the release's chart runs it.
    form = fact("command-form").split()
    assert argv[2] == fact("data-dir") and form[2] == "DIR", why("command-form")
    assert [a for a in argv if a.startswith("--")] == [a for a in form if a.startswith("--")], why(
        "command-form"
    )


def test_listens_on_the_releases_ports():
    argv = shlex.split(_service()["command"])
    assert _flag(argv, fact("address-flag")) == f":{fact('api-port')}", why("api-port")
    assert _flag(argv, fact("console-address-flag")) == f":{fact('console-port')}", why(
        "console-port"
    )
    assert (minio_server.API_PORT, minio_server.CONSOLE_PORT) == (
        fact("api-port"),
        fact("console-port"),
    ), why("api-port")


def test_storage_is_mounted_on_the_data_dir():
    (mount,) = META["containers"]["minio"]["mounts"]
    assert mount["location"] == fact("data-dir"), why("data-dir")
    assert META["storage"]["data"]["location"] == fact("data-dir"), why("data-dir")
    assert minio_server.DATA_DIR == fact("data-dir"), why("data-dir")


@pytest.mark.parametrize(
    ("name", "check", "level"),
    [
        ("liveness-path", minio_server.ALIVE_CHECK, "alive"),
        ("readiness-path", minio_server.READY_CHECK, "ready"),
    ],
)
def test_checks_probe_the_health_endpoints(name, check, level):
    checks = minio_server.pebble_layer().to_dict()["checks"]
    url = urlsplit(checks[check]["http"]["url"])
    assert url.path == fact(name), why(name)
    assert url.port == fact("api-port"), why("api-port")
    assert checks[check]["level"] == level


# --- root credentials ------------------------------------------------------------------------


def test_root_credentials_are_named_by_the_file_variables_minio_reads():
    env = _service()["environment"]
    names = fact("root-credentials-file-env")
    assert env == {
        names["user"]: minio_server.ROOT_USER_FILE,
        names["password"]: minio_server.ROOT_PASSWORD_FILE,
    }, why("root-credentials-file-env")
    # Absolute, so read as given (not from the working directory), and not
    # where Kubernetes mounts its own secrets under /run/secrets.
    for path in env.values():
        assert posixpath.isabs(path), why("root-credentials-file-read")
        assert not path.startswith("/kubernetes.io/"), why("root-credentials-file-read")


def test_plan_holds_no_root_key_variable():
    names = set(fact("root-credentials-env").values())
    assert not names & set(_service()["environment"]), why("root-credentials-env")


def test_disabled_layer_carries_no_credentials():
    service = minio_server.disabled_layer().to_dict()["services"][minio_server.SERVICE]
    names = set(fact("root-credentials-env").values())
    names |= set(fact("root-credentials-file-env").values())
    assert not names & set(service.get("environment", {})), why("root-credentials-env")


def test_the_images_credential_files_cannot_shadow_ours():
    # The image names files (relative to the working directory) that would
    # override the credentials. In the data directory a client could make one:
    # a bucket named config.env is a directory there. MinIO must not run from
    # it; the variables the layer does set name absolute paths outside it.
    service = _service()
    working_dir = service.get("working-dir")
    if working_dir is not None:
        relative = posixpath.relpath(working_dir, fact("data-dir"))
        assert relative.startswith(".."), why("image-file-env")
    ours = set(fact("root-credentials-file-env").values())
    set_here = set(fact("image-file-env")) & set(service["environment"])
    assert set_here == ours, why("image-file-env")
    for name in set_here:
        path = service["environment"][name]
        assert posixpath.isabs(path), why("root-credentials-file-read")
        assert posixpath.relpath(path, fact("data-dir")).startswith(".."), why("image-file-env")


def test_root_keys_are_refused_when_minio_would_trim_them():
    # MinIO trims whitespace around the keys it reads from files: such a key
    # would not be the one handed to clients.
    for access_key, secret_key in (
        ("rootaccess ", "rootsecret-123"),
        ("rootaccess", "\trootsecret"),
    ):
        credentials = s3.S3Credentials(access_key=access_key, secret_key=secret_key)
        assert minio_server.root_credentials_problem(credentials), why(
            "root-credentials-file-read"
        )


def _credential_cases() -> list[tuple[str, str, bool]]:
    """Root credentials just inside and just outside the release's limits."""
    limits = fact("root-credentials-limits")
    access, secret = "k" * limits["access-key-min"], "s" * limits["secret-key-min"]
    cases = [(access, secret, False), (access[1:], secret, True), (access, secret[1:], True)]
    cases += [(access + c, secret, True) for c in limits["access-key-reserved"]]
    return cases


@pytest.mark.parametrize(("access_key", "secret_key", "refused"), _credential_cases())
def test_refuses_the_root_credentials_minio_refuses(access_key, secret_key, refused):
    credentials = s3.S3Credentials(access_key=access_key, secret_key=secret_key)
    problem = minio_server.root_credentials_problem(credentials)
    assert (problem is not None) == refused, why("root-credentials-limits")


def test_generated_credentials_are_accepted():
    limits = fact("root-credentials-limits")
    credentials = minio_server.generate_credentials()
    assert len(credentials.access_key) >= limits["access-key-min"], why("root-credentials-limits")
    assert len(credentials.secret_key) >= limits["secret-key-min"], why("root-credentials-limits")
    assert not set(limits["access-key-reserved"]) & set(credentials.access_key), why(
        "root-credentials-limits"
    )


# --- the charm ------------------------------------------------------------------------------


def test_server_mode_opens_the_api_and_console_ports():
    ctx = testing.Context(CHARM.MinioCharm)
    state = testing.State(
        leader=True,
        containers={testing.Container("minio", can_connect=True)},
        storages={testing.Storage("data")},
        model=testing.Model(name="kubeflow"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.opened_ports == {
        testing.TCPPort(fact("api-port")),
        testing.TCPPort(fact("console-port")),
    }, why("api-port")
    plan = out.get_container("minio").plan
    argv = shlex.split(plan.services[minio_server.SERVICE].command)
    assert argv[:2] == fact("command"), why("command")
    env = plan.services[minio_server.SERVICE].environment
    assert set(fact("root-credentials-file-env").values()) <= set(env), why(
        "root-credentials-file-env"
    )


# --- scoped users' policies ------------------------------------------------------------------


def kfp(name: str):
    return KFP[name].value


def kfp_why(name: str) -> str:
    return f"fact {name!r} ({KFP[name].source})"


def _policies() -> list[dict]:
    opened = [minio_users.ReadGrant("mlflow", "artifacts"), minio_users.ReadGrant("models")]
    return [
        minio_users.profile_policy("alice"),
        minio_users.profile_policy("alice", opened),
        minio_users.relation_policy("mysql-backups", None),
        minio_users.relation_policy("mlflow", "runs/"),
    ]


def _statements(policy: dict) -> list[dict]:
    return policy["Statement"]


def _grants(policy: dict, action: str) -> set[str]:
    """The resources a policy allows `action` on."""
    return {
        resource
        for statement in _statements(policy)
        if statement["Effect"] == "Allow" and action in statement["Action"]
        for resource in statement["Resource"]
    }


def _listable_prefixes(policy: dict) -> list[str]:
    (statement,) = [s for s in _statements(policy) if "s3:ListBucket" in s["Action"]]
    return statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", ["*"])


@pytest.mark.parametrize("policy", _policies())
def test_policies_use_only_actions_minio_knows(policy):
    used = {a for statement in _statements(policy) for a in statement["Action"]}
    assert used <= set(fact("policy-actions")), why("policy-actions")
    assert policy["Version"] == "2012-10-17"


@pytest.mark.parametrize("policy", _policies())
def test_prefix_scoped_listing_uses_minios_condition_key(policy):
    condition = fact("policy-prefix-condition")
    for statement in _statements(policy):
        for operator, keys in statement.get("Condition", {}).items():
            assert operator == condition["operator"], why("policy-prefix-condition")
            assert set(keys) == {condition["key"]}, why("policy-prefix-condition")
    # One listing statement per bucket: under IAM a key's values are ORed, statements
    # are too, and a single statement reads the same on every evaluator.
    listed = [
        resource
        for s in _statements(policy)
        if "s3:ListBucket" in s["Action"]
        for resource in s["Resource"]
    ]
    assert len(listed) == len(set(listed))


def test_profile_policy_is_in_the_pipelines_bucket():
    assert minio_users.PROFILE_BUCKET == kfp("bucket"), kfp_why("bucket")
    for statement in _statements(minio_users.profile_policy("alice")):
        for resource in statement["Resource"]:
            assert resource.startswith(f"arn:aws:s3:::{kfp('bucket')}"), kfp_why("bucket")


def test_profile_writes_where_kfp_puts_its_pipeline_root_and_logs():
    policy = minio_users.profile_policy("alice")
    writable = _grants(policy, "s3:PutObject")
    root = kfp("pipeline-root").format(namespace="alice")
    root_key = root.removeprefix(f"minio://{kfp('bucket')}/") + "/run/step/output"
    logs_key = kfp("argo-key-format-prefix").format(namespace="alice") + "wf/2026/01/01/pod"
    for key in (root_key, logs_key):
        arn = f"arn:aws:s3:::{kfp('bucket')}/{key}"
        assert any(fnmatch.fnmatchcase(arn, r) for r in writable), kfp_why("pipeline-root")
        prefixes = _listable_prefixes(policy)
        assert any(fnmatch.fnmatchcase(key, p) for p in prefixes), kfp_why("pipeline-root")


def test_profile_prefixes_are_upstreams_namespaced_ones_and_shared_is_read_only():
    upstream = [p.format(namespace="alice") for p in kfp("namespace-policy-prefixes")]
    policy = minio_users.profile_policy("alice")
    bucket = kfp("bucket")
    writable = {r.removeprefix(f"arn:aws:s3:::{bucket}/") for r in _grants(policy, "s3:PutObject")}
    readable = {r.removeprefix(f"arn:aws:s3:::{bucket}/") for r in _grants(policy, "s3:GetObject")}
    assert writable == {"private-artifacts/alice/*", "private/alice/*"}
    assert {p.rstrip("*") for p in readable} <= set(upstream), kfp_why("namespace-policy-prefixes")
    assert readable - writable == {"shared/*"}, kfp_why("namespace-policy-prefixes")
    # artifacts/ is common to every namespace: left out on purpose (see the fact's note).
    assert not any(p.startswith("artifacts/") for p in readable | set(_listable_prefixes(policy)))


def test_profile_reaches_nothing_of_another_profile():
    alice = minio_users.profile_policy("alice")
    text = json.dumps(alice)
    assert "bob" not in text
    # A namespace that starts like alice's is another one: every prefix ends in a slash.
    for pattern in _listable_prefixes(alice):
        assert not fnmatch.fnmatchcase("private-artifacts/alice-team/x", pattern)


def test_the_sdk_talks_minios_admin_endpoints():
    # The minio SDK's MinioAdmin (imported only here and by the charm when it changes users).
    from minio.minioadmin import _COMMAND

    used = {
        _COMMAND.ADD_USER.value,
        _COMMAND.REMOVE_USER.value,
        _COMMAND.ADD_CANNED_POLICY.value,
        _COMMAND.REMOVE_CANNED_POLICY.value,
        _COMMAND.SET_USER_OR_GROUP_POLICY.value,
    }
    assert used == set(fact("admin-endpoints")), why("admin-endpoints")


class _Recorder:
    def __init__(self, refuse: dict[str, tuple[str, str]] | None = None):
        self.calls: list[str] = []
        self.refuse = refuse or {}

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            from minio.error import MinioAdminException

            self.calls.append(name)
            if name in self.refuse:
                raise MinioAdminException(*self.refuse[name])
            return ""

        return call


def test_a_user_goes_before_its_policy():
    admin = _Recorder()
    minio_users.remove_user(admin, "kf-profile-alice")  # type: ignore[arg-type]
    # MinIO refuses to remove a policy still attached to a user.
    assert admin.calls == ["user_remove", "policy_remove"], why("admin-remove-policy-in-use")


def test_a_user_already_gone_is_removed():
    gone = fact("admin-no-such-user")
    body = json.dumps({"Code": gone["code"]})
    admin = _Recorder(refuse={"user_remove": (str(gone["status"]), body)})
    minio_users.remove_user(admin, "kf-s3-3")  # type: ignore[arg-type]
    assert admin.calls == ["user_remove", "policy_remove"], why("admin-no-such-user")


def test_a_policy_in_use_is_an_error_not_a_success():
    in_use = fact("admin-remove-policy-in-use")
    body = json.dumps({"Code": in_use["code"]})
    admin = _Recorder(refuse={"policy_remove": (str(in_use["status"]), body)})
    with pytest.raises(minio_users.AdminError, match=in_use["code"]):
        minio_users.remove_user(admin, "kf-s3-3")  # type: ignore[arg-type]


# --- KServe reading a profile's Secret -------------------------------------------------------

KSERVE = facts.load("minio")["kserve"]


def kserve(name: str):
    return KSERVE[name].value


def kserve_why(name: str) -> str:
    return f"fact {name!r} ({KSERVE[name].source})"


@pytest.fixture
def minio_admin(monkeypatch: pytest.MonkeyPatch):
    """MinIO's admin API and bucket making, faked: the profiles' users are made."""
    from unit.minio.helpers import fake_minio_admin

    monkeypatch.setattr(minio_server, "ensure_bucket", lambda root, bucket: None)
    return fake_minio_admin(monkeypatch)


def _profile_secret(config: dict, secrets: frozenset = frozenset()) -> dict:
    """The Secret the charm hands the dispatcher for a profile, rendered by the charm."""
    from kubeflow_interfaces import kubernetes_manifests

    dispatcher = kubernetes_manifests.relation_for_requirer(
        "secrets", remote_app_name="dispatcher", namespaces=["alice"]
    )
    ctx = testing.Context(CHARM.MinioCharm)
    state = testing.State(
        leader=True,
        config=config,
        secrets=set(secrets),
        relations={dispatcher},
        containers={testing.Container("minio", can_connect=True)},
        storages={testing.Storage("data")},
        model=testing.Model(name="kubeflow"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    data = out.get_relation(dispatcher.id).local_app_data
    content = out.get_secret(id=data[kubernetes_manifests.MANIFESTS_FIELD]).latest_content
    assert content is not None
    (secret,) = json.loads(content[kubernetes_manifests.CONTENT_KEY])
    return secret


def _kserve_env(annotations: dict[str, str]) -> dict[str, str]:
    """What KServe's controller makes of the annotations, following the facts."""
    names = kserve("s3-secret-annotations")
    url = kserve("s3-endpoint-url")
    env = {}
    if names["endpoint"] in annotations:
        endpoint = annotations[names["endpoint"]]
        plain = annotations.get(names["use-https"]) == url["unless-use-https"]
        env["AWS_ENDPOINT_URL"] = (url["then"] if plain else url["scheme-prefixed"]) + endpoint
    for annotation, variable in kserve("s3-env-from-annotations").items():
        if annotation in annotations:
            env[variable] = annotations[annotation]
    return env


def _annotations(secret: dict) -> dict[str, str]:
    return secret["metadata"].get("annotations", {})


def test_the_profile_secret_uses_only_kserves_annotation_names(minio_admin):
    secret = _profile_secret({})
    assert set(_annotations(secret)) <= set(kserve("s3-secret-annotations").values()), kserve_why(
        "s3-secret-annotations"
    )
    # KServe takes the Secret for S3 credentials by this key.
    assert kserve("s3-secret-detection-key") in secret["stringData"], kserve_why(
        "s3-secret-detection-key"
    )


def test_kserve_reaches_the_charms_minio_from_the_profile_secret(minio_admin):
    env = _kserve_env(_annotations(_profile_secret({})))
    url = "http://minio.kubeflow.svc.cluster.local:9000"
    assert env["AWS_ENDPOINT_URL"] == url, kserve_why("s3-endpoint-url")
    assert env["S3_USE_HTTPS"] == "0", kserve_why("s3-env-from-annotations")
    assert env["AWS_DEFAULT_REGION"] == minio_server.REGION, kserve_why("s3-env-from-annotations")
    assert "S3_VERIFY_SSL" not in env  # nothing to verify over http


@pytest.mark.parametrize(
    ("extra", "endpoint_url", "verify"),
    [
        ({}, "https://s3.eu-west-1.amazonaws.com", True),
        # The operator's CA cannot reach the storage initializer: it would refuse the store.
        ({"external-ca-chain": "CA"}, "https://s3.eu-west-1.amazonaws.com", False),
        ({"external-endpoint": "http://gw.lab:9000"}, "http://gw.lab:9000", None),
        ({"external-endpoint": "https://rgw.lab:8443"}, "https://rgw.lab:8443", True),
    ],
)
def test_kserve_reaches_the_external_store_from_the_profile_secret(extra, endpoint_url, verify):
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = {
        "mode": "external",
        "external-endpoint": "https://s3.eu-west-1.amazonaws.com",
        "external-region": "eu-west-1",
        "external-secret-id": keys.id,
        "external-profile-credentials": True,
        **extra,
    }
    if config.get("external-ca-chain") == "CA":
        config["external-ca-chain"] = (
            "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
        )
    env = _kserve_env(_annotations(_profile_secret(config, frozenset({keys}))))
    assert env["AWS_ENDPOINT_URL"] == endpoint_url, kserve_why("s3-endpoint-url")
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1", kserve_why("s3-env-from-annotations")
    off = kserve("storage-initializer-verify-ssl")["disabled-by"]
    if verify is None:
        assert "S3_VERIFY_SSL" not in env
    else:
        assert (env["S3_VERIFY_SSL"] not in off) == verify, kserve_why(
            "storage-initializer-verify-ssl"
        )


def test_host_style_addressing_reaches_kserve():
    keys = testing.Secret(tracked_content={"access-key": "AKIAEXT", "secret-key": "ext-secret"})
    config = {
        "mode": "external",
        "external-endpoint": "https://s3.eu-west-1.amazonaws.com",
        "external-uri-style": "host",
        "external-secret-id": keys.id,
        "external-profile-credentials": True,
    }
    env = _kserve_env(_annotations(_profile_secret(config, frozenset({keys}))))
    virtual = kserve("storage-initializer-virtual-bucket")
    assert env[virtual["env"]] == virtual["enabled-by"], kserve_why(
        "storage-initializer-virtual-bucket"
    )
