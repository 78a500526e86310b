"""tools/pack.py and tools/deploy.py, in the parts that run without charmcraft or juju.

Where the real tools would be called, a fake executable on a PATH of our own
stands in: it records its argv and answers the way the real one does.
"""

from __future__ import annotations

import copy
import json
import stat
import sys
from pathlib import Path

import pytest
import yaml
from charm_loader import CHARMS, ROOT, charm_names

sys.path.insert(0, str(ROOT / "tools"))
import deploy
import pack

BUNDLE = ROOT / "bundle" / "bundle.yaml"
OVERLAYS = ROOT / "bundle" / "overlays"

# Trimmed from `juju status --format json` (Juju 3.6) on MicroK8s.
STATUS = {
    "model": {"name": "kubeflow", "type": "caas", "controller": "micro", "cloud": "microk8s"},
    "machines": {},
    "applications": {
        "mysql": {
            "charm": "local:mysql-0",
            "scale": 1,
            "provider-id": "5b1f0f6e-0000-4000-8000-000000000001",
            "address": "10.152.183.20",
            "application-status": {"current": "active", "message": "", "since": "now"},
            "units": {
                "mysql/0": {
                    "workload-status": {"current": "active", "message": "", "since": "now"},
                    "juju-status": {"current": "idle", "since": "now", "version": "3.6.4"},
                    "leader": True,
                    "address": "10.1.0.12",
                    "provider-id": "mysql-0",
                }
            },
        },
        "minio": {
            "charm": "local:minio-0",
            "scale": 1,
            "application-status": {
                "current": "active",
                "message": "http://minio.kubeflow.svc.cluster.local:9000",
            },
            "units": {
                "minio/0": {
                    "workload-status": {
                        "current": "active",
                        "message": "http://minio.kubeflow.svc.cluster.local:9000",
                    },
                    "juju-status": {"current": "idle", "version": "3.6.4"},
                    "leader": True,
                }
            },
        },
    },
    "storage": {},
    "controller": {"timestamp": "12:00:00Z"},
}


def _status(**changes) -> dict:
    """STATUS with `mysql.units.mysql/0.workload-status`-style keys replaced."""
    document = copy.deepcopy(STATUS)
    for dotted, value in changes.items():
        *path, last = dotted.split("|")
        node = document
        for key in path:
            node = node[key]
        node[last] = value
    return document


def _fake(bin_dir: Path, name: str, script: str) -> Path:
    """An executable `name` in bin_dir running a POSIX shell script."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that is the whole PATH, so only fakes put in it are found."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


# --- deploy: arguments --------------------------------------------------------


def test_deploy_defaults():
    args = deploy.parse_args([])
    assert args.overlay == [OVERLAYS / "microk8s.yaml"]
    assert not args.no_pack and not args.destructive_mode
    assert args.model is None
    assert args.timeout == 1800 and args.interval == 10


def test_deploy_overlays_replace_the_default():
    args = deploy.parse_args(["--overlay", "a.yaml", "--overlay", "b.yaml", "--no-pack"])
    assert args.overlay == [Path("a.yaml"), Path("b.yaml")]
    assert args.no_pack


def test_deploy_model_and_timeout():
    args = deploy.parse_args(["-m", "aks:kubeflow", "--timeout", "60", "--interval", "2"])
    assert (args.model, args.timeout, args.interval) == ("aks:kubeflow", 60, 2)


@pytest.mark.parametrize("option", ["--timeout", "--interval"])
def test_deploy_rejects_non_positive_durations(option: str):
    with pytest.raises(SystemExit):
        deploy.parse_args([option, "0"])


def test_deploy_command_has_trust_overlays_and_model(tmp_path: Path):
    overlays = [tmp_path / "one.yaml", tmp_path / "two.yaml"]
    argv = deploy.deploy_command("juju", BUNDLE, overlays, "c:m")
    assert argv[:4] == ["juju", "deploy", str(BUNDLE), "--trust"]
    assert argv[4:6] == ["-m", "c:m"]
    assert argv[6:] == ["--overlay", str(overlays[0]), "--overlay", str(overlays[1])]
    assert "-m" not in deploy.deploy_command("juju", BUNDLE, overlays, None)


# --- deploy: juju and the model -----------------------------------------------


def test_deploy_without_juju_says_how_to_get_it(bin_dir: Path, capsys):
    assert deploy.main(["--no-pack"]) == 1
    err = capsys.readouterr().err
    assert "juju is not installed" in err
    assert "snap install juju --channel 3.6/stable" in err


def test_deploy_without_a_model_says_how_to_add_one(bin_dir: Path, capsys):
    _fake(bin_dir, "juju", 'echo "ERROR No selected model." >&2\nexit 1\n')
    assert deploy.main(["--no-pack"]) == 1
    err = capsys.readouterr().err
    assert "there is no Juju model" in err
    assert "juju add-model" in err
    assert "No selected model" in err


def test_deploy_names_the_missing_model(bin_dir: Path, capsys):
    _fake(bin_dir, "juju", 'echo "ERROR model micro:admin/nope not found" >&2\nexit 1\n')
    assert deploy.main(["--no-pack", "-m", "micro:nope"]) == 1
    assert "(micro:nope)" in capsys.readouterr().err


def test_deploy_refuses_a_machine_model(bin_dir: Path, capsys):
    shown = {"default": {"model-type": "iaas", "type": "lxd", "cloud": "localhost"}}
    _fake(bin_dir, "juju", f"echo '{json.dumps(shown)}'\n")
    assert deploy.main(["--no-pack"]) == 1
    assert "not Kubernetes" in capsys.readouterr().err


def test_check_model_returns_the_full_name(bin_dir: Path):
    shown = {
        "kubeflow": {
            "name": "admin/kubeflow",
            "model-type": "caas",
            "type": "kubernetes",
            "controller-name": "micro",
        }
    }
    juju = _fake(bin_dir, "juju", f"echo '{json.dumps(shown)}'\n")
    assert deploy.check_model(str(juju), None) == "micro:kubeflow"


def test_deploy_stops_before_juju_deploy_when_artefacts_are_missing(
    bin_dir: Path, tmp_path: Path, capsys
):
    calls = tmp_path / "calls"
    shown = {"kubeflow": {"model-type": "caas", "type": "kubernetes", "controller-name": "c"}}
    _fake(bin_dir, "juju", f"echo \"$*\" >> {calls}\necho '{json.dumps(shown)}'\n")
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {"bundle": "kubernetes", "applications": {"mysql": {"charm": "./mysql_amd64.charm"}}}
        )
    )
    assert deploy.main(["--no-pack", "--bundle", str(bundle), "--overlay", str(bundle)]) == 1
    assert "charm artefacts missing" in capsys.readouterr().err
    assert "deploy" not in calls.read_text().split()


# --- deploy: status -----------------------------------------------------------


def test_parse_status_all_active():
    states = deploy.parse_status(STATUS, ["minio", "mysql"])
    assert all(state.settled for state in states.values())
    assert deploy.problems(states) == []
    assert deploy.errors(states) == []


def test_parse_status_reports_blocked_with_its_message():
    document = _status(
        **{
            "applications|mysql|application-status": {
                "current": "blocked",
                "message": "buffer-pool-size: must be at least 5M",
            },
            "applications|mysql|units|mysql/0|workload-status": {
                "current": "blocked",
                "message": "buffer-pool-size: must be at least 5M",
            },
        }
    )
    states = deploy.parse_status(document, ["mysql", "minio"])
    assert not states["mysql"].settled and states["minio"].settled
    lines = deploy.problems(states)
    assert lines[0] == "mysql: blocked: buffer-pool-size: must be at least 5M"
    assert lines[1].startswith("  mysql/0: blocked (agent idle)")
    assert "must be at least 5M" in states["mysql"].summary()


def test_parse_status_busy_agent_is_not_settled():
    document = _status(
        **{"applications|minio|units|minio/0|juju-status": {"current": "executing"}}
    )
    states = deploy.parse_status(document, ["minio"])
    assert not states["minio"].settled


def test_parse_status_missing_app_and_missing_units():
    document = _status(**{"applications|mysql|units": {}})
    states = deploy.parse_status(document, ["mysql", "kfp"])
    assert not states["mysql"].settled  # scale 1, no unit yet
    assert states["kfp"].status == "missing"


def test_parse_status_error_is_an_error():
    document = _status(
        **{
            "applications|minio|units|minio/0|workload-status": {
                "current": "error",
                "message": 'hook failed: "install"',
            }
        }
    )
    states = deploy.parse_status(document, ["minio", "mysql"])
    assert deploy.errors(states) == ['minio/0: hook failed: "install"']


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_active_returns_when_settled():
    waiting = _status(
        **{"applications|mysql|application-status": {"current": "waiting", "message": "mysqld"}}
    )
    documents = iter([waiting, waiting, STATUS])
    clock, lines = _Clock(), []
    states = deploy.wait_for_active(
        lambda: next(documents),
        ["mysql", "minio"],
        timeout=60,
        interval=5,
        clock=clock,
        sleep=clock.sleep,
        write=lines.append,
    )
    assert all(state.settled for state in states.values())
    assert clock.now == 10
    assert len(lines) == 2  # printed when the picture changed, not on every poll
    assert "mysql: waiting" in lines[0] and "mysqld" in lines[0]


def test_wait_for_active_times_out_with_the_messages():
    blocked = _status(
        **{
            "applications|minio|application-status": {
                "current": "blocked",
                "message": "external-endpoint is required in external mode",
            }
        }
    )
    clock = _Clock()
    with pytest.raises(deploy.DeployError) as raised:
        deploy.wait_for_active(
            lambda: blocked,
            ["mysql", "minio"],
            timeout=30,
            interval=10,
            clock=clock,
            sleep=clock.sleep,
            write=lambda _: None,
        )
    assert "not all active after 30s" in str(raised.value)
    assert "minio: blocked: external-endpoint is required" in str(raised.value)


def test_wait_for_active_stops_at_an_error():
    failed = _status(
        **{
            "applications|mysql|units|mysql/0|workload-status": {
                "current": "error",
                "message": 'hook failed: "database-relation-changed"',
            }
        }
    )
    clock = _Clock()
    with pytest.raises(deploy.DeployError, match="database-relation-changed"):
        deploy.wait_for_active(
            lambda: failed,
            ["mysql"],
            timeout=600,
            interval=10,
            clock=clock,
            sleep=clock.sleep,
            write=lambda _: None,
        )
    assert clock.now == 0


def test_wait_for_active_retries_a_failed_status():
    answers = iter([deploy.DeployError("juju status failed: connection refused"), STATUS])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock, lines = _Clock(), []
    deploy.wait_for_active(
        read,
        ["mysql"],
        timeout=60,
        interval=5,
        clock=clock,
        sleep=clock.sleep,
        write=lines.append,
    )
    assert "retrying" in lines[0]


# --- the bundle and its overlays ----------------------------------------------


def _charmcraft(name: str) -> dict:
    return yaml.safe_load((CHARMS / name / "charmcraft.yaml").read_text())


TRUSTED = {
    "istio",
    "kubeflow-notebooks",
    "resource-dispatcher",
    "kubeflow-dashboard",
    "kfp",
    "katib",
    "kubeflow-trainer",
    "kserve",
    "knative-serving",
}


def test_bundle_points_at_what_pack_produces():
    bundle = yaml.safe_load(BUNDLE.read_text())
    assert bundle["bundle"] == "kubernetes"
    for name, spec in bundle["applications"].items():
        meta = _charmcraft(name)
        assert meta["base"] == "ubuntu@24.04"
        assert "amd64" in meta["platforms"]
        assert spec["charm"] == f"../build/{name}_amd64.charm"
        assert spec["scale"] == 1
        # Trust exactly where a charm manages cluster objects (istio: CRDs, webhook,
        # gateway, routes). Dex faces users before login and keeps its state in mysql.
        assert spec.get("trust", False) is (name in TRUSTED), name
        upstream = {k: v["upstream-source"] for k, v in meta["resources"].items()}
        assert spec["resources"] == upstream
        assert set(spec.get("storage", {})) <= set(meta.get("storage", {}))


def test_bundle_relations_name_real_endpoints():
    bundle = yaml.safe_load(BUNDLE.read_text())
    for pair in bundle["relations"]:
        interfaces = set()
        for endpoint in pair:
            app, name = endpoint.split(":")
            meta = _charmcraft(app)
            endpoints = {**meta.get("provides", {}), **meta.get("requires", {})}
            assert name in endpoints, endpoint
            interfaces.add(endpoints[name]["interface"])
        assert len(interfaces) == 1, pair


@pytest.mark.parametrize("overlay", ["microk8s.yaml", "aks.yaml"])
def test_overlays_only_touch_bundle_applications(overlay: str):
    apps = yaml.safe_load(BUNDLE.read_text())["applications"]
    data = yaml.safe_load((OVERLAYS / overlay).read_text())
    assert set(data) == {"applications"}
    for name, spec in data["applications"].items():
        assert name in apps
        meta = _charmcraft(name)
        assert set(spec.get("storage", {})) <= set(meta.get("storage", {}))
        assert set(spec.get("options", {})) <= set(meta.get("config", {}).get("options", {}))


def test_aks_pins_every_application_to_the_platform_pool():
    apps = yaml.safe_load(BUNDLE.read_text())["applications"]
    aks = yaml.safe_load((OVERLAYS / "aks.yaml").read_text())["applications"]
    assert set(aks) == set(apps)
    for spec in aks.values():
        words = spec["constraints"].split()
        assert "arch=amd64" in words
        assert "tags=node.kubeflow.org/pool=platform" in words


def test_application_names_follow_overlays(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"applications": {"minio": None, "extra": {"charm": "x"}}}))
    apps = sorted(yaml.safe_load(BUNDLE.read_text())["applications"])
    assert deploy.application_names(BUNDLE, [OVERLAYS / "microk8s.yaml"]) == apps
    assert deploy.application_names(BUNDLE, [overlay]) == sorted(
        [a for a in apps if a != "minio"] + ["extra"]
    )


def test_missing_artefacts_resolve_relative_to_the_bundle(tmp_path: Path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "a_amd64.charm").write_bytes(b"zip")
    bundle = tmp_path / "bundle" / "bundle.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {
                "applications": {
                    "a": {"charm": "../build/a_amd64.charm"},
                    "b": {"charm": "../build/b_amd64.charm"},
                    "c": {"charm": "data-integrator"},
                }
            }
        )
    )
    assert deploy.missing_artefacts(bundle) == [(tmp_path / "build" / "b_amd64.charm")]


# --- pack -----------------------------------------------------------------------


def test_pack_defaults():
    args = pack.parse_args([])
    assert args.charms == [] and args.out == ROOT / "build"
    assert not args.destructive_mode and args.platform is None


def test_pack_without_charmcraft_says_how_to_get_it(bin_dir: Path, capsys):
    assert pack.main(["--out", str(bin_dir.parent / "out")]) == 1
    err = capsys.readouterr().err
    assert "charmcraft is not installed" in err
    assert "snap install charmcraft --classic" in err
    assert "--destructive-mode" in err


def test_pack_command():
    argv = pack.pack_command("charmcraft", Path("/b/mysql"), destructive=True, platform="amd64")
    assert argv[:2] == ["charmcraft", "pack"]
    assert "--project-dir=/b/mysql" in argv
    assert "--destructive-mode" in argv and "--platform=amd64" in argv
    assert "--destructive-mode" not in pack.pack_command("charmcraft", Path("/b/mysql"))


FAKE_CHARMCRAFT = """\
echo "$PWD $*" >> {calls}
for arg in "$@"; do
  case "$arg" in --project-dir=*) dir="${{arg#--project-dir=}}" ;; esac
done
test -f "$dir/charmcraft.yaml" && test -f "$dir/src/charm.py" || exit 3
name="${{dir##*/}}"
printf 'zip' > "${{name}}_amd64.charm"
"""


@pytest.mark.parametrize("charm", charm_names())
def test_pack_stages_packs_and_collects(charm: str, bin_dir: Path, tmp_path: Path):
    calls = tmp_path / "calls"
    _fake(bin_dir, "charmcraft", FAKE_CHARMCRAFT.format(calls=calls))
    out = tmp_path / "build"
    assert pack.main(["--out", str(out), "--destructive-mode", charm]) == 0

    staged = out / charm
    cwd, *argv = calls.read_text().split()
    assert cwd == str(staged)
    assert argv[0] == "pack"
    assert f"--project-dir={staged}" in argv and "--destructive-mode" in argv
    # The staged tree is the charm plus the lib/ modules it imports.
    original = (CHARMS / charm / "charmcraft.yaml").read_text()
    assert (staged / "charmcraft.yaml").read_text() == original
    assert (staged / "lib" / "kubeflow_interfaces" / "__init__.py").is_file()
    # The artefact moved up to where the bundle looks for it.
    assert (out / f"{charm}_amd64.charm").read_bytes() == b"zip"
    assert not list(staged.glob("*.charm"))


def test_pack_fails_when_charmcraft_fails(bin_dir: Path, tmp_path: Path, capsys):
    _fake(bin_dir, "charmcraft", "exit 2\n")
    assert pack.main(["--out", str(tmp_path / "build"), "mysql"]) == 1
    assert "charmcraft pack failed for mysql (exit code 2)" in capsys.readouterr().err


def test_pack_fails_when_nothing_is_written(bin_dir: Path, tmp_path: Path, capsys):
    _fake(bin_dir, "charmcraft", "exit 0\n")
    assert pack.main(["--out", str(tmp_path / "build"), "minio"]) == 1
    assert "wrote no .charm file for minio" in capsys.readouterr().err


def test_pack_unknown_charm(bin_dir: Path, tmp_path: Path, capsys):
    _fake(bin_dir, "charmcraft", "exit 0\n")
    assert pack.main(["--out", str(tmp_path / "build"), "nope"]) == 1
    assert "no charm named 'nope'" in capsys.readouterr().err
