"""tools/aks-up.sh end to end against fake `az`, `juju` and `kubectl`.

The fakes (tests/tools/stubs) come first on PATH. Each records its argv and
keeps what it created in a state file, so a second run sees the first one's
cluster, pools, controller and model. The interpreter the script runs
(`PYTHON`) runs its small JSON/YAML programs for real and fakes only
tools/deploy.py, recording the overlays it was given.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from charm_loader import ROOT

AKS_UP = ROOT / "tools" / "aks-up.sh"
STUBS = Path(__file__).parent / "stubs"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
KUBECONFIG = ".kube/kubeflow-aks.config"

# Calls that create or change something. A second run must make none of them.
CREATING = (
    "az group create",
    "az aks create",
    "az aks nodepool add",
    "az network public-ip create",
    "az role assignment create",
    "az ad sp create-for-rbac",
    "juju add-credential",
    "juju bootstrap",
    "juju enable-ha",
    "juju add-k8s",
    "juju update-k8s",
    "juju update-credential",
    "juju add-model",
    "juju create-storage-pool",
    "python " + str(ROOT / "tools" / "deploy.py"),
)


class Run:
    """One environment for aks-up.sh: fakes on PATH, their calls and state in tmp_path."""

    def __init__(self, tmp_path: Path):
        self.calls_file = tmp_path / "calls"
        self.state_file = tmp_path / "state.json"
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.tmp = tmp_path / "tmp"  # the script's private work directory goes here
        self.tmp.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        # The fakes are Python scripts; the test's interpreter has PyYAML.
        (bin_dir / "python3").symlink_to(sys.executable)
        self.env = {
            "PATH": f"{bin_dir}:{STUBS}:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "CALLS": str(self.calls_file),
            "STUB_STATE": str(self.state_file),
            "STUB_REAL_PYTHON": sys.executable,
            "PYTHONDONTWRITEBYTECODE": "1",  # nothing written next to the stubs
            "PYTHON": str(STUBS / "deploy-python"),
            "PACK": "0",
            "BOOTSTRAP_RETRY_SECONDS": "0",
        }
        self.runs = 0

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """Run the script (with --yes unless args are given); later calls() see this run only."""
        self.calls_file.unlink(missing_ok=True)
        self.runs += 1
        return subprocess.run(
            ["bash", str(AKS_UP), *(args or ("--yes",))],
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        """Every call of the last run, as argv lists."""
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def lines(self) -> list[str]:
        """Every call of the last run, as one line each."""
        return [" ".join(argv) for argv in self.calls()]

    def created(self) -> list[str]:
        """The calls of the last run that create or change something."""
        found = []
        for argv in self.calls():
            line = " ".join(argv)
            if argv[0] == "kubectl" and "apply" in argv:
                found.append("kubectl apply")
            elif line.startswith(CREATING):
                found.append(line)
        return found

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def write_state(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state))


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def option(argv: list[str], name: str) -> str:
    """The value after `name` in argv."""
    return argv[argv.index(name) + 1]


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result


# --- a first run --------------------------------------------------------------------


def test_first_run_creates_everything_in_order(run):
    ok(run())
    assert [c.split(" --")[0] for c in run.created()] == [
        "az group create",
        "az aks create",
        "az aks nodepool add",
        "az aks nodepool add",
        "az aks nodepool add",
        "az aks nodepool add",
        "kubectl apply",
        "az network public-ip create",
        "az role assignment create",
        "az ad sp create-for-rbac",
        "juju add-credential azure",
        "juju bootstrap azure/eastus kubeflow-azure",
        "juju enable-ha",
        "juju add-k8s kubeflow-aks",
        "juju add-model kubeflow kubeflow-aks",
        "juju create-storage-pool",
        "juju create-storage-pool",
        "python " + str(ROOT / "tools" / "deploy.py"),
    ]


def test_system_pool_is_tainted_critical_addons_only(run):
    ok(run())
    (create,) = [argv for argv in run.calls() if argv[1:3] == ["aks", "create"]]
    assert option(create, "--nodepool-name") == "system"
    # The one custom taint AKS allows on a System pool (Azure/AKS#2578:
    # SystemPoolHasRestrictedTaint names CriticalAddonsOnly as the exception).
    assert option(create, "--nodepool-taints") == "CriticalAddonsOnly=true:NoSchedule"


# The pools bundle/overlays/aks.yaml and the notebook spawner's options refer to.
POOLS = {
    #  name       taint                                   min  max
    "platform": (None, "2", "4"),
    "cpu": (None, "1", "10"),
    "gpu": ("sku=gpu:NoSchedule", "0", "4"),
    "arm64": ("kubeflow.org/arch=arm64:NoSchedule", "0", "6"),
}


def test_user_pools_have_their_labels_taints_and_autoscaling(run):
    ok(run())
    adds = {
        option(argv, "--name"): argv
        for argv in run.calls()
        if argv[1:4] == ["aks", "nodepool", "add"]
    }
    assert list(adds) == list(POOLS)
    for name, (taint, low, high) in POOLS.items():
        argv = adds[name]
        assert option(argv, "--mode") == "User"
        assert option(argv, "--labels") == f"kubeflow.org/pool={name}"
        assert ("--node-taints" in argv and option(argv, "--node-taints")) == (taint or False)
        assert "--enable-cluster-autoscaler" in argv
        assert (option(argv, "--min-count"), option(argv, "--max-count")) == (low, high)
        assert option(argv, "--node-count") == low


def test_device_plugin_runs_on_the_gpu_pool_only(run):
    ok(run())
    lines = run.lines()
    apply = next(i for i, line in enumerate(lines) if line.startswith("kubectl"))
    # After the kubeconfig is written, with that kubeconfig (never the user's default).
    assert any(line.startswith("az aks get-credentials") for line in lines[:apply])
    assert all(
        option(argv, "--kubeconfig") == str(run.home / KUBECONFIG)
        for argv in run.calls()
        if argv[0] == "kubectl"
    )
    daemonset = run.state()["kubernetes"]["kube-system/nvidia-device-plugin-daemonset"]
    assert daemonset["kind"] == "DaemonSet"
    pod = daemonset["spec"]["template"]["spec"]
    # AKS labels GPU nodes kubernetes.azure.com/accelerator=nvidia (the Azure
    # autoscaler predicts it too: kubernetes/autoscaler cluster-autoscaler/
    # cloudprovider/azure/azure_template.go, GPULabel).
    assert pod["nodeSelector"] == {"kubernetes.azure.com/accelerator": "nvidia"}
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    # Image, priority class and socket directory: NVIDIA/k8s-device-plugin
    # v0.20.0, deployments/static/nvidia-device-plugin.yml.
    (container,) = pod["containers"]
    assert container["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    assert pod["priorityClassName"] == "system-node-critical"
    assert container["volumeMounts"][0]["mountPath"] == "/var/lib/kubelet/device-plugins"
    assert pod["volumes"][0]["hostPath"]["path"] == "/var/lib/kubelet/device-plugins"


def test_gateway_gets_a_static_ip_dns_name_and_tls(run):
    ok(run())
    (create,) = [argv for argv in run.calls() if argv[1:4] == ["network", "public-ip", "create"]]
    assert option(create, "--resource-group") == "kubeflow"  # outlives the cluster
    assert option(create, "--sku") == "Standard"
    assert option(create, "--allocation-method") == "Static"
    assert option(create, "--dns-name") == "kubeflow-aks"
    (grant,) = run.state()["role_assignments"]
    assert grant["role"] == "Network Contributor"
    assert grant["scope"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/kubeflow"

    (deploy,) = run.state()["deploys"]
    aks_overlay = str(ROOT / "bundle" / "overlays" / "aks.yaml")
    overlays = [deploy["argv"][i + 1] for i, a in enumerate(deploy["argv"]) if a == "--overlay"]
    assert overlays[0] == aks_overlay
    site = yaml.safe_load(deploy["overlays"][overlays[1]])
    istio = site["applications"]["istio"]["options"]
    assert istio["external-hostname"] == "kubeflow-aks.eastus.cloudapp.azure.com"
    annotations = yaml.safe_load(istio["gateway-service-annotations"])
    # Annotation keys: kubernetes-sigs/cloud-provider-azure pkg/consts/consts.go.
    assert annotations["service.beta.kubernetes.io/azure-pip-name"] == "kubeflow-aks-gateway"
    assert annotations["service.beta.kubernetes.io/azure-load-balancer-resource-group"] == (
        "kubeflow"
    )
    assert annotations["service.beta.kubernetes.io/azure-dns-label-name"] == "kubeflow-aks"
    # What the AKS overlay sets for the gateway Service is kept.
    aks = yaml.safe_load(Path(aks_overlay).read_text())["applications"]["istio"]
    base = yaml.safe_load(aks.get("options", {}).get("gateway-service-annotations") or "") or {}
    assert base.items() <= annotations.items()
    # TLS through istio's `certificates` endpoint; self-signed-certificates
    # provides `certificates` (canonical/self-signed-certificates-operator
    # charmcraft.yaml), released on track 1 (its release workflow).
    tls = site["applications"]["self-signed-certificates"]
    assert (tls["charm"], tls["channel"]) == ("self-signed-certificates", "1/stable")
    assert tls.get("constraints") == aks.get("constraints")
    assert site["relations"] == [["istio:certificates", "self-signed-certificates:certificates"]]


def test_external_hostname_and_no_tls(run):
    ok(run(EXTERNAL_HOSTNAME="kubeflow.example.com", TLS="none"))
    (deploy,) = run.state()["deploys"]
    argv = deploy["argv"]
    site_path = [argv[i + 1] for i, a in enumerate(argv) if a == "--overlay"][1]
    site = yaml.safe_load(deploy["overlays"][site_path])
    assert site["applications"]["istio"]["options"]["external-hostname"] == "kubeflow.example.com"
    assert "self-signed-certificates" not in site["applications"]
    assert "relations" not in site


def test_the_egress_addresses_for_port_17070_are_reported(run):
    result = ok(run())
    assert "keep open on the controller's port 17070" in result.stdout
    assert result.stdout.rstrip().splitlines()[-3] == "20.0.0.7"


# --- the controller -------------------------------------------------------------------


def test_the_credential_file_quotes_the_secret(run):
    secret = "a'b#c: -d\"e{f}"
    ok(run("--yes", STUB_SP_PASSWORD=secret))
    (credential,) = run.state()["credentials"].values()
    # Auth type and keys: juju provider/azure/credentials.go
    # (service-principal-secret: application-id, application-password, subscription-id).
    assert credential == {
        "auth-type": "service-principal-secret",
        "application-id": "app-id-1",
        "application-password": secret,
        "subscription-id": SUBSCRIPTION,
    }
    # The credentials file (and the site overlay) were private and are gone.
    assert list(run.tmp.iterdir()) == []


def test_bootstrap_is_retried_while_the_service_principal_propagates(run):
    result = ok(run("--yes", STUB_BOOTSTRAP_FAILURES="2"))
    bootstraps = [line for line in run.lines() if line.startswith("juju bootstrap")]
    assert len(bootstraps) == 3
    assert "may not have propagated yet" in result.stdout


def test_bootstrap_gives_up_after_the_attempts(run):
    result = run("--yes", STUB_BOOTSTRAP_FAILURES="9", BOOTSTRAP_ATTEMPTS="2")
    assert result.returncode == 1
    assert "bootstrap failed 2 times" in result.stderr
    assert [line for line in run.lines() if line.startswith("juju bootstrap")] != []
    assert not any(line.startswith("juju add-model") for line in run.lines())


# --- idempotency and clean-up ------------------------------------------------------------


def test_a_second_run_creates_nothing(run):
    ok(run())
    first = run.state()
    result = ok(run())
    assert run.created() == []
    assert "Not deploying twice" in result.stdout
    assert run.state()["aks"] == first["aks"]


def test_a_failed_cluster_is_not_existing(run):
    run.write_state({"aks": {"kubeflow-aks": {"provisioningState": "Failed", "generation": 1}}})
    result = run()
    assert result.returncode == 1
    assert "Failed state" in result.stderr
    assert "az aks delete --resource-group kubeflow --name kubeflow-aks" in result.stderr
    assert [c for c in run.created() if not c.startswith("az group create")] == []


def test_a_failed_pool_stops_the_run(run):
    ok(run())
    state = run.state()
    state["pools"]["gpu"]["provisioningState"] = "Failed"
    run.write_state(state)
    result = run()
    assert result.returncode == 1
    assert "node pool gpu exists but is in the Failed state" in result.stderr
    assert run.created() == []


def test_a_rebuilt_cluster_updates_the_stale_juju_cloud(run):
    ok(run())
    # The cluster is deleted and made again (same name, new API server).
    state = run.state()
    state["aks"]["kubeflow-aks"]["server"] = "https://kubeflow-aks-2.hcp.eastus.azmk8s.io:443"
    run.write_state(state)
    result = ok(run())
    assert "stale" in result.stdout
    assert run.created() == [
        "juju add-k8s kubeflow-aks --client --cluster-name kubeflow-aks --region azure/eastus"
        " --storage managed-csi",
        "juju update-k8s kubeflow-aks --controller kubeflow-azure",
        "juju update-credential kubeflow-aks kubeflow-aks --controller kubeflow-azure",
    ]
    cloud = run.state()["clouds"]["kubeflow-aks"]
    assert cloud["controller"] == "https://kubeflow-aks-2.hcp.eastus.azmk8s.io:443"


# --- what touches nothing -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_touches_nothing(run, flag):
    result = ok(run(flag))
    assert result.stdout.startswith("Usage: tools/aks-up.sh [--yes]")
    for setting in ("PLATFORM_VM_SIZE", "DNS_LABEL", "TLS", "NVIDIA_DEVICE_PLUGIN_IMAGE"):
        assert setting in result.stdout
    assert run.calls() == []
    assert not run.state_file.exists()
    assert list(run.home.iterdir()) == []


def test_a_bad_setting_touches_nothing(run):
    result = run("--yes", TLS="letsencrypt")
    assert result.returncode == 1
    assert "TLS=letsencrypt" in result.stderr
    assert run.calls() == []


# --- the docs say what the script does -----------------------------------------------------


def test_docs_name_the_script_pools_taints_and_device_plugin():
    script = AKS_UP.read_text()
    docs = (ROOT / "docs" / "aks.md").read_text()
    taints = set(re.findall(r'--(?:node|nodepool)-taints "([^"]+)"', script))
    assert taints == {
        "CriticalAddonsOnly=true:NoSchedule",
        "sku=gpu:NoSchedule",
        "kubeflow.org/arch=arm64:NoSchedule",
    }
    for taint in taints:
        assert taint in docs
    for pool in POOLS:
        assert f"kubeflow.org/pool={pool}" in docs
    image = re.search(r"NVIDIA_DEVICE_PLUGIN_IMAGE:-([^}]+)}", script)
    assert image is not None and image.group(1) in docs
    assert "instance-role" in docs and "juju update-credential" in docs
    assert "az ad app delete" in docs and "juju update-k8s" in docs
