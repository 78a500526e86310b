"""The minio charm's Pebble layer and credentials against MinIO RELEASE.2025-09-07T16-13-09Z.

Each test renders what the charm really runs (its workload module, or the
charm itself under ops.testing) and checks it against facts/minio.yaml,
naming the fact and where it was read.
"""

from __future__ import annotations

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
META = yaml.safe_load((charm_dir("minio") / "charmcraft.yaml").read_text())
# The charm's workload module, as the charm imports it (its src/ is on the path now).
import minio_server  # noqa: E402


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
