#!/usr/bin/env bash
# Stand up the platform on Azure, end to end (docs/aks.md explains each step):
#
#   1. a resource group and an AKS cluster: an untainted system pool for the
#      charms, and autoscaling user pools for user workloads (CPU, GPU
#      NC-series tainted sku=gpu:NoSchedule from zero nodes, ARM64 Dpsv5);
#   2. a Juju 3.6 controller on Azure VMs outside the cluster, made HA;
#   3. the AKS cluster added to that controller as a Kubernetes cloud, a
#      model on it, and storage pools for the AKS CSI storage classes;
#   4. the bundle with bundle/overlays/aks.yaml, through tools/deploy.py.
#
# Every step checks what already exists, so the script can be run again
# after a failure. Settings are environment variables (defaults below), e.g.
#
#   LOCATION=westeurope GPU_MAX=2 tools/aks-up.sh [--yes]
#
# It lists what it will create and asks before creating anything Azure
# bills; --yes skips the question. Without --yes and a terminal to ask on, it
# stops before doing anything. --help prints the usage and does nothing else.
#
# Needs: az (logged in: az login), juju 3.6, python3 with PyYAML, and, unless
# PACK=0, charmcraft (see tools/pack.py). Not run in CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- settings ---------------------------------------------------------------
AZURE_SUBSCRIPTION_ID=${AZURE_SUBSCRIPTION_ID:-}     # empty: az's current subscription
LOCATION=${LOCATION:-eastus}
RESOURCE_GROUP=${RESOURCE_GROUP:-kubeflow}
CLUSTER=${CLUSTER:-kubeflow-aks}
K8S_VERSION=${K8S_VERSION:-}                         # empty: AKS's default version
AKS_TIER=${AKS_TIER:-standard}                       # free, standard or premium

SYSTEM_VM_SIZE=${SYSTEM_VM_SIZE:-Standard_D8s_v5}
SYSTEM_NODES=${SYSTEM_NODES:-3}
CPU_VM_SIZE=${CPU_VM_SIZE:-Standard_D8s_v5}
CPU_MIN=${CPU_MIN:-1}
CPU_MAX=${CPU_MAX:-10}
GPU_VM_SIZE=${GPU_VM_SIZE:-Standard_NC4as_T4_v3}
GPU_MIN=${GPU_MIN:-0}
GPU_MAX=${GPU_MAX:-4}
ARM64_VM_SIZE=${ARM64_VM_SIZE:-Standard_D4ps_v5}
ARM64_MIN=${ARM64_MIN:-0}
ARM64_MAX=${ARM64_MAX:-6}
POOL_LABEL=${POOL_LABEL:-workload-pool}              # node label key naming each user pool

JUJU_CONTROLLER=${JUJU_CONTROLLER:-kubeflow-azure}
JUJU_CREDENTIAL=${JUJU_CREDENTIAL:-kubeflow-azure}
JUJU_SP_NAME=${JUJU_SP_NAME:-juju-${JUJU_CONTROLLER}}
JUJU_SP_ROLE=${JUJU_SP_ROLE:-Owner}
CONTROLLER_CONSTRAINTS=${CONTROLLER_CONSTRAINTS:-cores=2 mem=8G root-disk=64G allocate-public-ip=true}
CONTROLLER_UNITS=${CONTROLLER_UNITS:-3}
K8S_CLOUD=${K8S_CLOUD:-${CLUSTER}}
MODEL=${MODEL:-kubeflow}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-${HOME}/.kube/${CLUSTER}.config}

PYTHON=${PYTHON:-python3}
PACK=${PACK:-1}                                      # 0: deploy what is already in build/
DESTRUCTIVE_MODE=${DESTRUCTIVE_MODE:-0}              # 1: pack on this Ubuntu 24.04 host
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-3600}

ASSUME_YES=0                                         # 1 with --yes: do not ask

# --- helpers ----------------------------------------------------------------
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: tools/aks-up.sh [--yes]

Create an AKS cluster (a system pool and autoscaling CPU, GPU and ARM64 user
pools), a highly available Juju controller on Azure VMs, a model on the
cluster, and deploy the bundle with bundle/overlays/aks.yaml (docs/aks.md).
Every step checks what already exists, so it can be run again after a failure.

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
  SYSTEM_VM_SIZE, SYSTEM_NODES           [${SYSTEM_VM_SIZE}, ${SYSTEM_NODES}]
  CPU_VM_SIZE, CPU_MIN, CPU_MAX          [${CPU_VM_SIZE}, ${CPU_MIN}, ${CPU_MAX}]
  GPU_VM_SIZE, GPU_MIN, GPU_MAX          [${GPU_VM_SIZE}, ${GPU_MIN}, ${GPU_MAX}]
  ARM64_VM_SIZE, ARM64_MIN, ARM64_MAX    [${ARM64_VM_SIZE}, ${ARM64_MIN}, ${ARM64_MAX}]
  POOL_LABEL              [${POOL_LABEL}]
  JUJU_CONTROLLER         [${JUJU_CONTROLLER}]
  JUJU_CREDENTIAL         [${JUJU_CREDENTIAL}]
  JUJU_SP_NAME, JUJU_SP_ROLE             [${JUJU_SP_NAME}, ${JUJU_SP_ROLE}]
  CONTROLLER_CONSTRAINTS  [${CONTROLLER_CONSTRAINTS}]
  CONTROLLER_UNITS        [${CONTROLLER_UNITS}]
  K8S_CLOUD               [${K8S_CLOUD}]
  MODEL                   [${MODEL}]
  KUBECONFIG_FILE         [${KUBECONFIG_FILE}]
  PYTHON                  [${PYTHON}]
  PACK                    [${PACK}]  0: deploy the charms already in build/
  DESTRUCTIVE_MODE        [${DESTRUCTIVE_MODE}]  1: pack on this Ubuntu 24.04 host
  DEPLOY_TIMEOUT          [${DEPLOY_TIMEOUT}]  seconds to wait for active

Needs: az (logged in: az login), juju 3.6, python3 with PyYAML, and, unless
PACK=0, charmcraft (see tools/pack.py).
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
    system pool    ${SYSTEM_NODES} x ${SYSTEM_VM_SIZE}
    cpu pool       ${CPU_VM_SIZE}, ${CPU_MIN} to ${CPU_MAX} nodes
    gpu pool       ${GPU_VM_SIZE}, ${GPU_MIN} to ${GPU_MAX} nodes
    arm64 pool     ${ARM64_VM_SIZE}, ${ARM64_MIN} to ${ARM64_MAX} nodes
  service principal ${JUJU_SP_NAME} (${JUJU_SP_ROLE} on the subscription)
  Juju controller  ${JUJU_CONTROLLER}: ${CONTROLLER_UNITS} VMs (${CONTROLLER_CONSTRAINTS})
  Juju model       ${MODEL} on the cluster, and the bundle with the AKS overlay
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

require() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

check_tools() {
  step "Checking tools"
  require az "See https://learn.microsoft.com/cli/azure/install-azure-cli"
  require juju "Install it with: sudo snap install juju --channel 3.6/stable"
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

# --- 1. AKS -----------------------------------------------------------------
create_cluster() {
  step "Resource group ${RESOURCE_GROUP} in ${LOCATION}"
  az group create --name "${RESOURCE_GROUP}" --location "${LOCATION}" --output none

  step "AKS cluster ${CLUSTER} (system pool: ${SYSTEM_NODES} x ${SYSTEM_VM_SIZE})"
  if az aks show --resource-group "${RESOURCE_GROUP}" --name "${CLUSTER}" --output none 2>/dev/null; then
    echo "exists"
  else
    local version_args=()
    if [[ -n ${K8S_VERSION} ]]; then
      version_args=(--kubernetes-version "${K8S_VERSION}")
    fi
    # The first pool is the System pool. It gets no taint: Juju cannot give
    # the charms' pods tolerations, it places them with node affinity only.
    az aks create \
      --resource-group "${RESOURCE_GROUP}" \
      --name "${CLUSTER}" \
      --location "${LOCATION}" \
      --tier "${AKS_TIER}" \
      --nodepool-name system \
      --node-count "${SYSTEM_NODES}" \
      --node-vm-size "${SYSTEM_VM_SIZE}" \
      --os-sku Ubuntu \
      --network-plugin azure \
      --network-plugin-mode overlay \
      --enable-managed-identity \
      --generate-ssh-keys \
      ${version_args[@]+"${version_args[@]}"} \
      --output none
  fi
}

# add_user_pool NAME VM_SIZE MIN MAX [extra az aks nodepool add options...]
add_user_pool() {
  local name=$1 size=$2 min=$3 max=$4
  shift 4
  step "User pool ${name}: ${size}, autoscaling ${min}..${max}"
  if az aks nodepool show --resource-group "${RESOURCE_GROUP}" --cluster-name "${CLUSTER}" \
    --name "${name}" --output none 2>/dev/null; then
    echo "exists"
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

create_user_pools() {
  add_user_pool cpu "${CPU_VM_SIZE}" "${CPU_MIN}" "${CPU_MAX}"
  # AKS labels GPU nodes kubernetes.azure.com/accelerator=nvidia and installs
  # the NVIDIA driver; the taint keeps everything without a toleration off.
  add_user_pool gpu "${GPU_VM_SIZE}" "${GPU_MIN}" "${GPU_MAX}" \
    --node-taints "sku=gpu:NoSchedule"
  # Ampere Altra nodes: kubernetes.io/arch=arm64 is set by Kubernetes.
  add_user_pool arm64 "${ARM64_VM_SIZE}" "${ARM64_MIN}" "${ARM64_MAX}"
}

# --- 2. Juju controller on Azure VMs ------------------------------------------
add_azure_credential() {
  step "Juju credential ${JUJU_CREDENTIAL} for the azure cloud"
  # azure is one of Juju's built-in public clouds: no add-cloud, only fresh region data.
  juju update-public-clouds --client
  if juju show-credential azure "${JUJU_CREDENTIAL}" --client >/dev/null 2>&1; then
    echo "exists"
    return
  fi
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
  credentials=$(mktemp) # mode 0600
  # shellcheck disable=SC2064  # expand now: the path is local to this function
  trap "rm -f '${credentials}'" EXIT
  cat >"${credentials}" <<EOF
credentials:
  azure:
    ${JUJU_CREDENTIAL}:
      auth-type: service-principal-secret
      application-id: ${app_id}
      application-password: ${app_secret}
      subscription-id: ${AZURE_SUBSCRIPTION_ID}
EOF
  juju add-credential azure --client -f "${credentials}"
  rm -f "${credentials}"
}

bootstrap_controller() {
  step "Juju controller ${JUJU_CONTROLLER} in azure/${LOCATION}"
  if juju show-controller "${JUJU_CONTROLLER}" >/dev/null 2>&1; then
    echo "exists"
  else
    # --constraints applies to every controller machine, those enable-ha adds too.
    juju bootstrap "azure/${LOCATION}" "${JUJU_CONTROLLER}" \
      --credential "${JUJU_CREDENTIAL}" \
      --bootstrap-base ubuntu@24.04 \
      --constraints "${CONTROLLER_CONSTRAINTS}"
  fi
  step "Controller HA: ${CONTROLLER_UNITS} machines"
  juju enable-ha --controller "${JUJU_CONTROLLER}" -n "${CONTROLLER_UNITS}"
}

# --- 3. The cluster as a Juju cloud, a model, storage pools ------------------------
add_k8s_cloud() {
  step "AKS as Juju cloud ${K8S_CLOUD} on ${JUJU_CONTROLLER}"
  mkdir -p "$(dirname "${KUBECONFIG_FILE}")"
  az aks get-credentials \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${CLUSTER}" \
    --file "${KUBECONFIG_FILE}" \
    --overwrite-existing
  chmod 600 "${KUBECONFIG_FILE}"
  if juju show-cloud "${K8S_CLOUD}" --controller "${JUJU_CONTROLLER}" >/dev/null 2>&1; then
    echo "exists"
    return
  fi
  KUBECONFIG="${KUBECONFIG_FILE}" juju add-k8s "${K8S_CLOUD}" \
    --controller "${JUJU_CONTROLLER}" \
    --cluster-name "${CLUSTER}" \
    --region "azure/${LOCATION}" \
    --storage managed-csi
}

has_storage_pool() {
  juju storage-pools --model "${JUJU_CONTROLLER}:${MODEL}" --format json \
    | "${PYTHON}" -c 'import json, sys; sys.exit(sys.argv[1] not in (json.load(sys.stdin) or {}))' "$1"
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

# --- 4. The bundle ---------------------------------------------------------------
deploy_bundle() {
  step "Bundle with the AKS overlay"
  local args=(
    --model "${JUJU_CONTROLLER}:${MODEL}"
    --overlay "${ROOT}/bundle/overlays/aks.yaml"
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

main() {
  parse_args "$@"
  check_can_confirm
  check_tools
  confirm
  create_cluster
  create_user_pools
  add_azure_credential
  bootstrap_controller
  add_k8s_cloud
  add_model
  deploy_bundle
  step "Done: juju status -m ${JUJU_CONTROLLER}:${MODEL}"
}

main "$@"
