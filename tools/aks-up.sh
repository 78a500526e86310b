#!/usr/bin/env bash
# Stand up the platform on Azure, end to end (docs/aks.md explains each step):
#
#   1. a resource group and an AKS cluster with five node pools:
#        system    mode=System, tainted CriticalAddonsOnly=true:NoSchedule
#                  (kube-system add-ons only)
#        platform  untainted, label kubeflow.org/pool=platform: every charm
#                  and the gateway, pinned there by bundle/overlays/aks.yaml
#        cpu       untainted, label kubeflow.org/pool=cpu: CPU user workloads
#        gpu       NVIDIA, taint sku=gpu:NoSchedule, label kubeflow.org/pool=gpu
#        arm64     Ampere, taint kubeflow.org/arch=arm64:NoSchedule,
#                  label kubeflow.org/pool=arm64
#      and the NVIDIA device plugin on the GPU pool;
#   2. a static public IP with a DNS label for the ingress gateway;
#   3. a Juju 3.6 controller on Azure VMs outside the cluster, made HA;
#   4. the AKS cluster added to that controller as a Kubernetes cloud, a
#      model on it, and storage pools for the AKS CSI storage classes;
#   5. the bundle with bundle/overlays/aks.yaml (plus the gateway's address
#      and a TLS certificate charm), through tools/deploy.py.
#
# Every step checks what already exists, so the script can be run again
# after a failure; a second run creates nothing. A cluster or pool that is
# not in the Succeeded state stops the script with what to do about it.
# Settings are environment variables (defaults below), e.g.
#
#   LOCATION=westeurope GPU_MAX=2 tools/aks-up.sh [--yes]
#
# It lists what it will create and asks before creating anything Azure
# bills; --yes skips the question. Without --yes and a terminal to ask on, it
# stops before doing anything. --help prints the usage and does nothing else.
#
# Needs: az (logged in: az login), juju 3.6, kubectl, python3 with PyYAML,
# and, unless PACK=0, charmcraft (see tools/pack.py). Not run in CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- settings ---------------------------------------------------------------
AZURE_SUBSCRIPTION_ID=${AZURE_SUBSCRIPTION_ID:-}     # empty: az's current subscription
LOCATION=${LOCATION:-eastus}
RESOURCE_GROUP=${RESOURCE_GROUP:-kubeflow}
CLUSTER=${CLUSTER:-kubeflow-aks}
K8S_VERSION=${K8S_VERSION:-}                         # empty: AKS's default version
AKS_TIER=${AKS_TIER:-standard}                       # free, standard or premium

SYSTEM_VM_SIZE=${SYSTEM_VM_SIZE:-Standard_D4s_v5}
SYSTEM_NODES=${SYSTEM_NODES:-3}
PLATFORM_VM_SIZE=${PLATFORM_VM_SIZE:-Standard_D8s_v5}
PLATFORM_MIN=${PLATFORM_MIN:-2}
PLATFORM_MAX=${PLATFORM_MAX:-4}
CPU_VM_SIZE=${CPU_VM_SIZE:-Standard_D8s_v5}
CPU_MIN=${CPU_MIN:-1}
CPU_MAX=${CPU_MAX:-10}
GPU_VM_SIZE=${GPU_VM_SIZE:-Standard_NC4as_T4_v3}
GPU_MIN=${GPU_MIN:-0}
GPU_MAX=${GPU_MAX:-4}
ARM64_VM_SIZE=${ARM64_VM_SIZE:-Standard_D4ps_v5}
ARM64_MIN=${ARM64_MIN:-0}
ARM64_MAX=${ARM64_MAX:-6}

# NVIDIA's device plugin, pinned (image from NVIDIA/k8s-device-plugin v0.20.0,
# deployments/static/nvidia-device-plugin.yml).
NVIDIA_DEVICE_PLUGIN_IMAGE=${NVIDIA_DEVICE_PLUGIN_IMAGE:-nvcr.io/nvidia/k8s-device-plugin:v0.20.0}

PUBLIC_IP_NAME=${PUBLIC_IP_NAME:-${CLUSTER}-gateway}
DNS_LABEL=${DNS_LABEL:-${CLUSTER}}                   # <label>.<location>.cloudapp.azure.com
EXTERNAL_HOSTNAME=${EXTERNAL_HOSTNAME:-}             # empty: the DNS label's name
TLS=${TLS:-self-signed}                              # self-signed or none
TLS_CHANNEL=${TLS_CHANNEL:-1/stable}

JUJU_CONTROLLER=${JUJU_CONTROLLER:-kubeflow-azure}
JUJU_CREDENTIAL=${JUJU_CREDENTIAL:-kubeflow-azure}
JUJU_SP_NAME=${JUJU_SP_NAME:-juju-${JUJU_CONTROLLER}}
JUJU_SP_ROLE=${JUJU_SP_ROLE:-Owner}
CONTROLLER_CONSTRAINTS=${CONTROLLER_CONSTRAINTS:-cores=2 mem=8G root-disk=64G allocate-public-ip=true}
CONTROLLER_UNITS=${CONTROLLER_UNITS:-3}
BOOTSTRAP_ATTEMPTS=${BOOTSTRAP_ATTEMPTS:-5}
BOOTSTRAP_RETRY_SECONDS=${BOOTSTRAP_RETRY_SECONDS:-60}
K8S_CLOUD=${K8S_CLOUD:-${CLUSTER}}
MODEL=${MODEL:-kubeflow}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-${HOME}/.kube/${CLUSTER}.config}

PYTHON=${PYTHON:-python3}
PACK=${PACK:-1}                                      # 0: deploy what is already in build/
DESTRUCTIVE_MODE=${DESTRUCTIVE_MODE:-0}              # 1: pack on this Ubuntu 24.04 host
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-3600}

ASSUME_YES=0                                         # 1 with --yes: do not ask
POOL_LABEL=kubeflow.org/pool                         # bundle/overlays/aks.yaml uses these
WORK_DIR=""                                          # private temporary files

# --- helpers ----------------------------------------------------------------
step() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<EOF
Usage: tools/aks-up.sh [--yes]

Create an AKS cluster (a tainted system pool, a platform pool for the charms,
and autoscaling CPU, GPU and ARM64 user pools), the NVIDIA device plugin, a
static public IP with a DNS name for the gateway, a highly available Juju
controller on Azure VMs, a model on the cluster, and deploy the bundle with
bundle/overlays/aks.yaml and TLS (docs/aks.md). Every step checks what
already exists, so it can be run again after a failure.

Options:
  -y, --yes    create the Azure resources without asking first
  -h, --help   print this help and exit; nothing is checked or created

Without --yes it lists what it will create and asks before creating anything
Azure bills; with no terminal to ask on, it stops before doing anything.

Settings are environment variables (current values in brackets):
  AZURE_SUBSCRIPTION_ID   [${AZURE_SUBSCRIPTION_ID:-the current az subscription}]
  LOCATION                [${LOCATION}]
  RESOURCE_GROUP          [${RESOURCE_GROUP}]
  CLUSTER                 [${CLUSTER}]
  K8S_VERSION             [${K8S_VERSION:-the AKS default}]
  AKS_TIER                [${AKS_TIER}]
  SYSTEM_VM_SIZE, SYSTEM_NODES                  [${SYSTEM_VM_SIZE}, ${SYSTEM_NODES}]
  PLATFORM_VM_SIZE, PLATFORM_MIN, PLATFORM_MAX  [${PLATFORM_VM_SIZE}, ${PLATFORM_MIN}, ${PLATFORM_MAX}]
  CPU_VM_SIZE, CPU_MIN, CPU_MAX                 [${CPU_VM_SIZE}, ${CPU_MIN}, ${CPU_MAX}]
  GPU_VM_SIZE, GPU_MIN, GPU_MAX                 [${GPU_VM_SIZE}, ${GPU_MIN}, ${GPU_MAX}]
  ARM64_VM_SIZE, ARM64_MIN, ARM64_MAX           [${ARM64_VM_SIZE}, ${ARM64_MIN}, ${ARM64_MAX}]
  NVIDIA_DEVICE_PLUGIN_IMAGE                    [${NVIDIA_DEVICE_PLUGIN_IMAGE}]
  PUBLIC_IP_NAME          [${PUBLIC_IP_NAME}]
  DNS_LABEL               [${DNS_LABEL}]  public IPs only
  EXTERNAL_HOSTNAME       [${EXTERNAL_HOSTNAME:-<DNS_LABEL>.<LOCATION>.cloudapp.azure.com}]
  TLS, TLS_CHANNEL        [${TLS}, ${TLS_CHANNEL}]  self-signed or none
  JUJU_CONTROLLER         [${JUJU_CONTROLLER}]
  JUJU_CREDENTIAL         [${JUJU_CREDENTIAL}]
  JUJU_SP_NAME, JUJU_SP_ROLE                    [${JUJU_SP_NAME}, ${JUJU_SP_ROLE}]
  CONTROLLER_CONSTRAINTS  [${CONTROLLER_CONSTRAINTS}]
  CONTROLLER_UNITS        [${CONTROLLER_UNITS}]
  BOOTSTRAP_ATTEMPTS, BOOTSTRAP_RETRY_SECONDS   [${BOOTSTRAP_ATTEMPTS}, ${BOOTSTRAP_RETRY_SECONDS}]
  K8S_CLOUD               [${K8S_CLOUD}]
  MODEL                   [${MODEL}]
  KUBECONFIG_FILE         [${KUBECONFIG_FILE}]
  PYTHON                  [${PYTHON}]
  PACK                    [${PACK}]  0: deploy the charms already in build/
  DESTRUCTIVE_MODE        [${DESTRUCTIVE_MODE}]  1: pack on this Ubuntu 24.04 host
  DEPLOY_TIMEOUT          [${DEPLOY_TIMEOUT}]  seconds to wait for active

Needs: az (logged in: az login), juju 3.6, kubectl, python3 with PyYAML,
and, unless PACK=0, charmcraft (see tools/pack.py).
EOF
}

parse_args() {
  while (($#)); do
    case $1 in
      -h | --help)
        usage
        exit 0
        ;;
      -y | --yes) ASSUME_YES=1 ;;
      *)
        printf 'error: unknown argument: %s (see tools/aks-up.sh --help)\n' "$1" >&2
        exit 2
        ;;
    esac
    shift
  done
}

# Before anything runs: nobody to ask and no --yes means stop here.
check_can_confirm() {
  if [[ ${ASSUME_YES} == 1 || -t 0 ]]; then
    return
  fi
  die "this creates Azure resources that are billed, and stdin is not a terminal to ask on.
Run it in a terminal to confirm, or pass --yes to go ahead without asking.
Nothing was checked or created."
}

# List what is about to be created; ask unless --yes was given.
confirm() {
  step "About to create in subscription ${AZURE_SUBSCRIPTION_ID}, region ${LOCATION}"
  cat <<EOF
  resource group   ${RESOURCE_GROUP}
  AKS cluster      ${CLUSTER} (tier ${AKS_TIER})
    system pool    ${SYSTEM_NODES} x ${SYSTEM_VM_SIZE}, tainted CriticalAddonsOnly
    platform pool  ${PLATFORM_VM_SIZE}, ${PLATFORM_MIN} to ${PLATFORM_MAX} nodes (the charms)
    cpu pool       ${CPU_VM_SIZE}, ${CPU_MIN} to ${CPU_MAX} nodes
    gpu pool       ${GPU_VM_SIZE}, ${GPU_MIN} to ${GPU_MAX} nodes, NVIDIA device plugin
    arm64 pool     ${ARM64_VM_SIZE}, ${ARM64_MIN} to ${ARM64_MAX} nodes
  public IP        ${PUBLIC_IP_NAME}, DNS label ${DNS_LABEL}
  service principal ${JUJU_SP_NAME} (${JUJU_SP_ROLE} on the subscription)
  Juju controller  ${JUJU_CONTROLLER}: ${CONTROLLER_UNITS} VMs (${CONTROLLER_CONSTRAINTS})
  Juju model       ${MODEL} on the cluster, and the bundle with the AKS overlay
The vCPU quota of each VM family must cover the pools' maximum sizes (docs/aks.md).
What exists already is kept. Azure bills these resources until they are deleted.
EOF
  if [[ ${ASSUME_YES} == 1 ]]; then
    echo "--yes: going ahead"
    return
  fi
  local answer=""
  read -r -p "Create them? [y/N] " answer || true
  case ${answer} in
    y | Y | yes | Yes | YES) ;;
    *) die "not confirmed; nothing was created" ;;
  esac
}

# Settings that can be wrong are checked before anything is called.
check_settings() {
  case ${TLS} in
    self-signed | none) ;;
    *) die "TLS=${TLS}: expected self-signed or none. Nothing was checked or created." ;;
  esac
}

require() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

check_tools() {
  step "Checking tools"
  require az "See https://learn.microsoft.com/cli/azure/install-azure-cli"
  require juju "Install it with: sudo snap install juju --channel 3.6/stable"
  require kubectl "Install it with: sudo snap install kubectl --classic (or az aks install-cli)"
  require "${PYTHON}" "tools/deploy.py needs Python 3.10 or later"
  "${PYTHON}" -c 'import yaml' 2>/dev/null \
    || die "tools/deploy.py needs PyYAML: ${PYTHON} -m pip install pyyaml (or set PYTHON)"
  local version
  version=$(juju version)
  [[ ${version} == 3.6.* ]] || die "juju ${version} found; this needs the 3.6 client"
  az account show >/dev/null 2>&1 || die "az is not logged in: run az login"
  if [[ -z ${AZURE_SUBSCRIPTION_ID} ]]; then
    AZURE_SUBSCRIPTION_ID=$(az account show --query id --output tsv)
  fi
  az account set --subscription "${AZURE_SUBSCRIPTION_ID}"
  echo "subscription ${AZURE_SUBSCRIPTION_ID}, juju ${version}"
}

make_work_dir() {
  WORK_DIR=$(mktemp -d) # mode 0700: credentials and overlays written here stay private
  trap 'rm -rf "${WORK_DIR}"' EXIT
}

# py PROGRAM [ARGS...]: run a small Python program (JSON and YAML parsing);
# stdin stays free for the data.
py() {
  "${PYTHON}" -c "$@"
}

# shellcheck disable=SC2016  # Python programs: nothing to expand
{
  PY_CONTROLLER_MACHINES='
import json, sys
doc = json.load(sys.stdin) or {}
print(len((doc.get(sys.argv[1]) or {}).get("controller-machines") or {}))'
  PY_KUBECONFIG_SERVER='
import sys, yaml
with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f) or {}
print(((doc.get("clusters") or [{}])[0].get("cluster") or {}).get("server", ""))'
  PY_CLOUD_ENDPOINT='
import json, sys
def find(node):
    if isinstance(node, dict):
        if isinstance(node.get("endpoint"), str):
            return node["endpoint"]
        for value in node.values():
            found = find(value)
            if found:
                return found
    return ""
print(find(json.load(sys.stdin)))'
  PY_CLOUD_CREDENTIALS='
import json, sys
def find(node, cloud):
    if isinstance(node, dict):
        if isinstance(node.get(cloud), dict):
            entry = node[cloud]
            return list(entry.get("cloud-credentials", entry))
        for value in node.values():
            found = find(value, cloud)
            if found:
                return found
    return []
print("\n".join(find(json.load(sys.stdin), sys.argv[1])))'
  PY_HAS_KEY='
import json, sys
sys.exit(sys.argv[1] not in (json.load(sys.stdin) or {}))'
  PY_APPLICATIONS='
import json, sys
print("\n".join(sorted((json.load(sys.stdin) or {}).get("applications") or {})))'
  # The site overlay (write_site_overlay). Annotation keys: cloud-provider-azure
  # pkg/consts/consts.go (commit 7b31c76); istio's option names: charms/istio.
  PY_SITE_OVERLAY='
import sys, yaml
aks, out, group, pip, label, hostname, tls, channel = sys.argv[1:]
with open(aks) as f:
    istio = ((yaml.safe_load(f) or {}).get("applications") or {}).get("istio") or {}
options = istio.get("options") or {}
annotations = dict(yaml.safe_load(options.get("gateway-service-annotations") or "") or {})
annotations.update({
    "service.beta.kubernetes.io/azure-load-balancer-resource-group": group,
    "service.beta.kubernetes.io/azure-pip-name": pip,
    "service.beta.kubernetes.io/azure-dns-label-name": label,
})
overlay = {"applications": {"istio": {"options": {
    "gateway-service-annotations": yaml.safe_dump(annotations, default_flow_style=False),
    "external-hostname": hostname,
}}}}
if tls == "self-signed":
    charm = {"charm": "self-signed-certificates", "channel": channel, "scale": 1}
    if istio.get("constraints"):
        charm["constraints"] = istio["constraints"]
    overlay["applications"]["self-signed-certificates"] = charm
    overlay["relations"] = [["istio:certificates", "self-signed-certificates:certificates"]]
with open(out, "w") as f:
    yaml.safe_dump(overlay, f, default_flow_style=False, sort_keys=True)'
}

# --- 1. AKS -----------------------------------------------------------------
# The provisioning state of an Azure resource (`az ... show` arguments), or
# nothing when it does not exist.
provisioning_state() {
  "$@" --query provisioningState --output tsv 2>/dev/null || true
}

# A resource in any state but Succeeded is not something to build on: say
# what it is and stop. (A cluster whose create failed shows provisioningState
# Failed and still exists; `az aks update` reconciles it, or delete it.)
require_succeeded() {
  local what=$1 state=$2 fix=$3
  case ${state} in
    Succeeded) echo "exists" ;;
    Failed) die "${what} exists but is in the Failed state, so it is not usable.
${fix}
Then run this script again." ;;
    *) die "${what} is ${state}. Wait until it is Succeeded (az aks list -o table), then run this script again." ;;
  esac
}

create_resource_group() {
  step "Resource group ${RESOURCE_GROUP} in ${LOCATION}"
  if [[ $(az group exists --name "${RESOURCE_GROUP}") == true ]]; then
    echo "exists"
    return
  fi
  az group create --name "${RESOURCE_GROUP}" --location "${LOCATION}" --output none
}

create_cluster() {
  step "AKS cluster ${CLUSTER} (system pool: ${SYSTEM_NODES} x ${SYSTEM_VM_SIZE})"
  local state
  state=$(provisioning_state az aks show --resource-group "${RESOURCE_GROUP}" --name "${CLUSTER}")
  if [[ -n ${state} ]]; then
    require_succeeded "AKS cluster ${CLUSTER}" "${state}" \
      "Reconcile it: az aks update --resource-group ${RESOURCE_GROUP} --name ${CLUSTER}
or delete it: az aks delete --resource-group ${RESOURCE_GROUP} --name ${CLUSTER} (its Juju cloud is then stale: this script updates it)."
    return
  fi
  local version_args=()
  if [[ -n ${K8S_VERSION} ]]; then
    version_args=(--kubernetes-version "${K8S_VERSION}")
  fi
  # The first pool is the System pool, tainted CriticalAddonsOnly as AKS's
  # system-pool guide recommends (its own add-ons tolerate it); the
  # charms go to the platform pool instead (Juju cannot give pods tolerations).
  az aks create \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${CLUSTER}" \
    --location "${LOCATION}" \
    --tier "${AKS_TIER}" \
    --nodepool-name system \
    --node-count "${SYSTEM_NODES}" \
    --node-vm-size "${SYSTEM_VM_SIZE}" \
    --nodepool-taints "CriticalAddonsOnly=true:NoSchedule" \
    --os-sku Ubuntu \
    --network-plugin azure \
    --network-plugin-mode overlay \
    --enable-managed-identity \
    --generate-ssh-keys \
    ${version_args[@]+"${version_args[@]}"} \
    --output none
}

# add_pool NAME VM_SIZE MIN MAX [extra az aks nodepool add options...]
# Every pool but system carries the label kubeflow.org/pool=NAME. Labels set
# with --labels are in the pool's spec, which the cluster autoscaler puts in
# the template node it plans with when the pool has no nodes (kubernetes/
# autoscaler cluster-autoscaler/cloudprovider/azure/azure_template.go).
add_pool() {
  local name=$1 size=$2 min=$3 max=$4
  shift 4
  step "Node pool ${name}: ${size}, autoscaling ${min}..${max}"
  local state
  state=$(provisioning_state az aks nodepool show --resource-group "${RESOURCE_GROUP}" \
    --cluster-name "${CLUSTER}" --name "${name}")
  if [[ -n ${state} ]]; then
    require_succeeded "node pool ${name}" "${state}" \
      "Delete it: az aks nodepool delete --resource-group ${RESOURCE_GROUP} --cluster-name ${CLUSTER} --name ${name}"
    return
  fi
  az aks nodepool add \
    --resource-group "${RESOURCE_GROUP}" \
    --cluster-name "${CLUSTER}" \
    --name "${name}" \
    --mode User \
    --node-vm-size "${size}" \
    --node-count "${min}" \
    --enable-cluster-autoscaler \
    --min-count "${min}" \
    --max-count "${max}" \
    --labels "${POOL_LABEL}=${name}" \
    "$@" \
    --output none
}

create_pools() {
  # The charms, the gateway and Juju's model operator: untainted, so pods
  # without tolerations (all of Juju's) can run there.
  add_pool platform "${PLATFORM_VM_SIZE}" "${PLATFORM_MIN}" "${PLATFORM_MAX}"
  # Notebooks and other CPU user workloads.
  add_pool cpu "${CPU_VM_SIZE}" "${CPU_MIN}" "${CPU_MAX}"
  # AKS installs the NVIDIA driver on NC-series nodes and labels them
  # kubernetes.azure.com/accelerator=nvidia; the taint keeps pods that do not
  # ask for a GPU off these nodes.
  add_pool gpu "${GPU_VM_SIZE}" "${GPU_MIN}" "${GPU_MAX}" \
    --node-taints "sku=gpu:NoSchedule"
  # Ampere nodes. The taint keeps amd64-only images (the CUDA ones among
  # them) off; workloads steer here on kubeflow.org/pool=arm64 because the
  # autoscaler's template for an empty pool says kubernetes.io/arch=amd64
  # (kubernetes/autoscaler#9322, Azure/AKS#5079; fixed in cluster-autoscaler
  # 1.36.0), so affinity on kubernetes.io/arch=arm64 never scales it up.
  add_pool arm64 "${ARM64_VM_SIZE}" "${ARM64_MIN}" "${ARM64_MAX}" \
    --node-taints "kubeflow.org/arch=arm64:NoSchedule"
}

fetch_kubeconfig() {
  step "Kubeconfig for ${CLUSTER}: ${KUBECONFIG_FILE}"
  mkdir -p "$(dirname "${KUBECONFIG_FILE}")"
  az aks get-credentials \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${CLUSTER}" \
    --file "${KUBECONFIG_FILE}" \
    --overwrite-existing
  chmod 600 "${KUBECONFIG_FILE}"
}

# The NVIDIA device plugin advertises nvidia.com/gpu on the GPU nodes; without
# it no pod can ask for a GPU. AKS installs the driver and the container
# runtime hook on GPU nodes, so the plugin alone completes the stack (the GPU
# Operator would need the pool made with --gpu-driver none; AKS's managed GPU
# pools are a preview). Our own DaemonSet: NVIDIA's static manifest
# (k8s-device-plugin v0.20.0, deployments/static/nvidia-device-plugin.yml)
# with AKS's taint tolerated and a selector on AKS's accelerator label.
device_plugin_manifest() {
  cat <<EOF
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nvidia-device-plugin-daemonset
  namespace: kube-system
  labels:
    app.kubernetes.io/name: nvidia-device-plugin
    app.kubernetes.io/managed-by: kubeflow-aks-up
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: nvidia-device-plugin
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app.kubernetes.io/name: nvidia-device-plugin
    spec:
      priorityClassName: system-node-critical
      nodeSelector:
        kubernetes.azure.com/accelerator: nvidia
      tolerations:
        - key: sku
          operator: Equal
          value: gpu
          effect: NoSchedule
        - key: nvidia.com/gpu
          operator: Exists
          effect: NoSchedule
      containers:
        - name: nvidia-device-plugin-ctr
          image: ${NVIDIA_DEVICE_PLUGIN_IMAGE}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: kubelet-device-plugins-dir
              mountPath: /var/lib/kubelet/device-plugins
      volumes:
        - name: kubelet-device-plugins-dir
          hostPath:
            path: /var/lib/kubelet/device-plugins
            type: Directory
EOF
}

install_device_plugin() {
  step "NVIDIA device plugin (${NVIDIA_DEVICE_PLUGIN_IMAGE}) for the gpu pool"
  local current
  current=$(kubectl --kubeconfig "${KUBECONFIG_FILE}" --namespace kube-system \
    get daemonset nvidia-device-plugin-daemonset \
    --output 'jsonpath={.spec.template.spec.containers[0].image}' 2>/dev/null || true)
  if [[ ${current} == "${NVIDIA_DEVICE_PLUGIN_IMAGE}" ]]; then
    echo "exists"
    return
  fi
  device_plugin_manifest | kubectl --kubeconfig "${KUBECONFIG_FILE}" apply --filename -
}

# --- 2. The gateway's address -----------------------------------------------
# A static public IP in the cluster's resource group outlives the gateway
# Service and the cluster itself. Its DNS label names it
# <label>.<location>.cloudapp.azure.com. DNS labels exist on public IPs only:
# an internal load balancer has none (cloud-provider-azure applies the label
# annotation only for a public frontend).
create_public_ip() {
  step "Static public IP ${PUBLIC_IP_NAME}, DNS label ${DNS_LABEL}"
  if az network public-ip show --resource-group "${RESOURCE_GROUP}" --name "${PUBLIC_IP_NAME}" \
    --output none 2>/dev/null; then
    echo "exists"
  else
    az network public-ip create \
      --resource-group "${RESOURCE_GROUP}" \
      --name "${PUBLIC_IP_NAME}" \
      --location "${LOCATION}" \
      --sku Standard \
      --allocation-method Static \
      --dns-name "${DNS_LABEL}" \
      --output none
  fi
  # The cluster's identity manages load balancers in its node resource group
  # only; an IP elsewhere needs Network Contributor on that group
  # (https://learn.microsoft.com/azure/aks/static-ip).
  local principal scope assigned
  principal=$(az aks show --resource-group "${RESOURCE_GROUP}" --name "${CLUSTER}" \
    --query identity.principalId --output tsv)
  scope=$(az group show --name "${RESOURCE_GROUP}" --query id --output tsv)
  assigned=$(az role assignment list --assignee "${principal}" --role "Network Contributor" \
    --scope "${scope}" --query 'length(@)' --output tsv)
  if [[ ${assigned} != 0 ]]; then
    echo "the cluster's identity is Network Contributor on ${RESOURCE_GROUP}"
    return
  fi
  az role assignment create --assignee-object-id "${principal}" \
    --assignee-principal-type ServicePrincipal --role "Network Contributor" \
    --scope "${scope}" --output none
}

gateway_hostname() {
  if [[ -n ${EXTERNAL_HOSTNAME} ]]; then
    echo "${EXTERNAL_HOSTNAME}"
  else
    echo "${DNS_LABEL}.${LOCATION}.cloudapp.azure.com"
  fi
}

# --- 3. Juju controller on Azure VMs ------------------------------------------
# A YAML single-quoted scalar: a secret may hold any character YAML treats
# specially (# : ' - ...), so it is always quoted.
yaml_quote() {
  local value=${1//\'/\'\'}
  printf "'%s'" "${value}"
}

add_azure_credential() {
  step "Juju credential ${JUJU_CREDENTIAL} for the azure cloud"
  # azure is one of Juju's built-in public clouds: no add-cloud, only fresh region data.
  juju update-public-clouds --client
  if juju show-credential azure "${JUJU_CREDENTIAL}" --client >/dev/null 2>&1; then
    echo "exists"
    return
  fi
  # The secret is valid for one year (azure-cli role/custom.py:
  # create_service_principal_for_rbac, `years = years or 1`): docs/aks.md
  # says how to renew it with `juju update-credential`. Run again with the
  # same name, this resets the secret of the existing app registration.
  local app_id app_secret credentials
  {
    read -r app_id
    read -r app_secret
  } < <(az ad sp create-for-rbac \
    --name "${JUJU_SP_NAME}" \
    --role "${JUJU_SP_ROLE}" \
    --scopes "/subscriptions/${AZURE_SUBSCRIPTION_ID}" \
    --query '[appId, password]' \
    --output tsv)
  [[ -n ${app_id} && -n ${app_secret} ]] || die "could not create service principal ${JUJU_SP_NAME}"
  credentials=${WORK_DIR}/credentials.yaml
  # Juju's Azure auth types (juju provider/azure/credentials.go):
  # service-principal-secret for a client off Azure; instance-role (with a
  # managed-identity attribute) only where the client runs on an Azure VM.
  cat >"${credentials}" <<EOF
credentials:
  azure:
    ${JUJU_CREDENTIAL}:
      auth-type: service-principal-secret
      application-id: $(yaml_quote "${app_id}")
      application-password: $(yaml_quote "${app_secret}")
      subscription-id: $(yaml_quote "${AZURE_SUBSCRIPTION_ID}")
EOF
  juju add-credential azure --client -f "${credentials}"
  rm -f "${credentials}"
}

bootstrap_controller() {
  step "Juju controller ${JUJU_CONTROLLER} in azure/${LOCATION}"
  if juju show-controller "${JUJU_CONTROLLER}" >/dev/null 2>&1; then
    echo "exists"
  else
    # A new service principal takes a while to reach every Azure AD replica
    # and its role assignment a while longer; until then bootstrap fails to
    # authenticate or is refused. Try again a few times before giving up.
    local attempt=1
    # --constraints applies to every controller machine, those enable-ha adds too.
    until juju bootstrap "azure/${LOCATION}" "${JUJU_CONTROLLER}" \
      --credential "${JUJU_CREDENTIAL}" \
      --bootstrap-base ubuntu@24.04 \
      --constraints "${CONTROLLER_CONSTRAINTS}"; do
      if ((attempt >= BOOTSTRAP_ATTEMPTS)); then
        die "bootstrap failed ${attempt} times; see the errors above"
      fi
      echo "bootstrap failed (attempt ${attempt} of ${BOOTSTRAP_ATTEMPTS}); a new service principal may not have propagated yet: retrying in ${BOOTSTRAP_RETRY_SECONDS}s"
      sleep "${BOOTSTRAP_RETRY_SECONDS}"
      attempt=$((attempt + 1))
    done
  fi
  step "Controller HA: ${CONTROLLER_UNITS} machines"
  local machines
  machines=$(juju show-controller "${JUJU_CONTROLLER}" --format json \
    | py "${PY_CONTROLLER_MACHINES}" "${JUJU_CONTROLLER}")
  if ((machines >= CONTROLLER_UNITS)); then
    echo "${machines} controller machines"
    return
  fi
  juju enable-ha --controller "${JUJU_CONTROLLER}" -n "${CONTROLLER_UNITS}"
}

# --- 4. The cluster as a Juju cloud, a model, storage pools ------------------------
# The API server URL a kubeconfig file points at.
kubeconfig_server() {
  py "${PY_KUBECONFIG_SERVER}" "$1"
}

# The endpoint of a cloud in `juju show-cloud --format json`.
cloud_endpoint() {
  py "${PY_CLOUD_ENDPOINT}"
}

add_k8s_cloud() {
  step "AKS as Juju cloud ${K8S_CLOUD} on ${JUJU_CONTROLLER}"
  local server known
  server=$(kubeconfig_server "${KUBECONFIG_FILE}")
  if known=$(juju show-cloud "${K8S_CLOUD}" --controller "${JUJU_CONTROLLER}" --format json 2>/dev/null); then
    if [[ $(cloud_endpoint <<<"${known}") == "${server}" ]]; then
      echo "exists"
      return
    fi
    # The cluster was rebuilt: the controller's cloud points at the old API
    # server with the old cluster's service-account credential. Refresh this
    # client's copy from the new kubeconfig, then push it to the controller;
    # update-k8s carries the cloud, update-credential the credential
    # (juju cmd/juju/caas/update.go updates a credential only for built-in clouds).
    echo "stale: the controller has $(cloud_endpoint <<<"${known}"), the cluster is ${server}"
    KUBECONFIG="${KUBECONFIG_FILE}" juju add-k8s "${K8S_CLOUD}" --client \
      --cluster-name "${CLUSTER}" --region "azure/${LOCATION}" --storage managed-csi
    juju update-k8s "${K8S_CLOUD}" --controller "${JUJU_CONTROLLER}"
    local credential
    for credential in $(juju credentials "${K8S_CLOUD}" --client --format json \
      | py "${PY_CLOUD_CREDENTIALS}" "${K8S_CLOUD}"); do
      juju update-credential "${K8S_CLOUD}" "${credential}" --controller "${JUJU_CONTROLLER}"
    done
    return
  fi
  # --client as well: the copy on this client is what update-k8s pushes
  # after a rebuild.
  KUBECONFIG="${KUBECONFIG_FILE}" juju add-k8s "${K8S_CLOUD}" \
    --client --controller "${JUJU_CONTROLLER}" \
    --cluster-name "${CLUSTER}" \
    --region "azure/${LOCATION}" \
    --storage managed-csi
}

has_storage_pool() {
  juju storage-pools --model "${JUJU_CONTROLLER}:${MODEL}" --format json \
    | py "${PY_HAS_KEY}" "$1"
}

add_model() {
  step "Model ${MODEL} on ${K8S_CLOUD}"
  if juju show-model "${JUJU_CONTROLLER}:${MODEL}" >/dev/null 2>&1; then
    echo "exists"
  else
    juju add-model "${MODEL}" "${K8S_CLOUD}" --controller "${JUJU_CONTROLLER}"
  fi
  # Named after the AKS storage classes they use; bundle/overlays/aks.yaml refers to them.
  local pool
  for pool in managed-csi managed-csi-premium; do
    if has_storage_pool "${pool}"; then
      echo "storage pool ${pool} exists"
    else
      juju create-storage-pool --model "${JUJU_CONTROLLER}:${MODEL}" \
        "${pool}" kubernetes "storage-class=${pool}"
    fi
  done
}

# --- 5. The bundle ---------------------------------------------------------------
# The applications of the model, one a line.
model_applications() {
  juju status --model "${JUJU_CONTROLLER}:${MODEL}" --format json | py "${PY_APPLICATIONS}"
}

# An overlay of this deployment's own values, on top of bundle/overlays/aks.yaml:
# the gateway Service on the static IP with its DNS label (the AKS overlay's
# annotations kept), istio's external-hostname, and the TLS charm related to
# istio's `certificates` endpoint, placed like istio.
write_site_overlay() {
  py "${PY_SITE_OVERLAY}" "${ROOT}/bundle/overlays/aks.yaml" "$1" "${RESOURCE_GROUP}" \
    "${PUBLIC_IP_NAME}" "${DNS_LABEL}" "$(gateway_hostname)" "${TLS}" "${TLS_CHANNEL}"
}

deploy_bundle() {
  step "Bundle with the AKS overlay"
  local existing
  existing=$(model_applications)
  if [[ -n ${existing} ]]; then
    echo "already deployed in ${JUJU_CONTROLLER}:${MODEL}: $(tr '\n' ' ' <<<"${existing}")"
    echo "Not deploying twice. Change settings with juju config, charms with juju refresh,"
    echo "or start over with juju destroy-model (docs/aks.md)."
    return
  fi
  local site=${WORK_DIR}/site-overlay.yaml
  write_site_overlay "${site}"
  local args=(
    --model "${JUJU_CONTROLLER}:${MODEL}"
    --overlay "${ROOT}/bundle/overlays/aks.yaml"
    --overlay "${site}"
    --platform amd64
    --timeout "${DEPLOY_TIMEOUT}"
  )
  if [[ ${PACK} == 0 ]]; then
    args+=(--no-pack)
  fi
  if [[ ${DESTRUCTIVE_MODE} == 1 ]]; then
    args+=(--destructive-mode)
  fi
  "${PYTHON}" "${ROOT}/tools/deploy.py" "${args[@]}"
}

# Where the operators reach the controller from: the cluster's outbound IPs.
# Restricting port 17070 on the controller must keep these open.
report_egress() {
  step "Addresses to keep open on the controller's port 17070 (the cluster's egress)"
  local ids
  ids=$(az aks show --resource-group "${RESOURCE_GROUP}" --name "${CLUSTER}" \
    --query 'networkProfile.loadBalancerProfile.effectiveOutboundIPs[].id' --output tsv)
  if [[ -z ${ids} ]]; then
    echo "none found (outbound type is not loadBalancer): see docs/aks.md"
    return
  fi
  local id
  for id in ${ids}; do
    az network public-ip show --ids "${id}" --query ipAddress --output tsv
  done
}

main() {
  parse_args "$@"
  check_can_confirm
  check_settings
  check_tools
  confirm
  make_work_dir
  create_resource_group
  create_cluster
  create_pools
  fetch_kubeconfig
  install_device_plugin
  create_public_ip
  add_azure_credential
  bootstrap_controller
  add_k8s_cloud
  add_model
  deploy_bundle
  report_egress
  step "Done: juju status -m ${JUJU_CONTROLLER}:${MODEL}; the login page is https://$(gateway_hostname)/"
}

main "$@"
