"""The two controllers under Pebble: their Pebble layers and where the certificates go.

Both images are distroless (`gcr.io/distroless/static:nonroot`, user
65532) with `/manager` as entrypoint (kserve/kserve v0.14.1 Dockerfile and
localmodel.Dockerfile). Both run in this charm's pod and so share one
network namespace:

- the local model controller has no flags for its addresses
  (cmd/localmodel/main.go: only `--leader-elect` and zap's): it keeps
  metrics on :8080 and probes on :8081, and starts no webhook server;
- so the KServe controller moves off them with its flags (cmd/manager/
  main.go: `--metrics-addr`, `--health-probe-addr`, `--webhook-port`):
  metrics on 127.0.0.1:8090 (upstream binds 127.0.0.1 too, behind a
  kube-rbac-proxy, which the charm does not run), probes on :8091, the
  webhooks on upstream's 9443, served with `tls.crt`/`tls.key` from
  controller-runtime's default directory.

Both read their namespace from POD_NAMESPACE (pkg/constants/constants.go
KServeNamespace), where they read the ConfigMap `inferenceservice-config`.
The charm starts them on the leader unit only and turns lease election on
in both: upstream passes `--leader-elect` to the KServe controller only
(kubeflow/manifests v1.10.0 kserve_kubeflow.yaml); the local model
controller has the flag but upstream runs it without (off by default). The
serving certificate's serial is in the KServe controller's layer: a new one
restarts it.

In Serverless mode (related to knative-serving) the KServe controller's
layer also carries
- SYSTEM_NAMESPACE, Knative Serving's namespace: the ingress reconciler
  reads Knative's `config-domain` from there (knative.dev/pkg's
  `system.NamespaceEnvKey`), else from `knative-serving`, to add hosts
  for `additionalIngressDomains` (pkg/controller/v1beta1/inferenceservice/
  reconcilers/ingress/ingress_reconciler.go:112-145, 608-625);
- KNATIVE_SERVING_VERSION, ours and read by nobody: the controller adds
  Knative's scheme and watches Knative Services only if their CRD exists
  when it starts (cmd/manager/main.go:165-176), and keeps that discovery
  answer for its life (pkg/utils/utils.go:205-225), so the layer changes, and
  the controller restarts, once Knative Serving says its CRDs are in place,
  when it is upgraded, and when the relation goes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ops

from kubeflow_charms.pebble import service_layer

VERSION = "v0.14.1"
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # noqa: S108 (controller-runtime's default)
CERT_FILE = f"{CERT_DIR}/tls.crt"
KEY_FILE = f"{CERT_DIR}/tls.key"
UID = 65532  # distroless :nonroot
GID = 65532
TLS_SERIAL = "TLS_SERIAL"
KNATIVE_NAMESPACE = "SYSTEM_NAMESPACE"
KNATIVE_VERSION = "KNATIVE_SERVING_VERSION"
WEBHOOK_SERVICE = "kserve-webhook-server-service"
CONFIGMAP = "inferenceservice-config"
# cmd/manager/main.go and cmd/localmodel/main.go LeaderLockName.
CONTROLLER_LEASE = "kserve-controller-manager-leader-lock"
LOCALMODEL_LEASE = "kserve-local-model-manager-leader-lock"


class Ports:
    """Where each controller listens in the pod."""

    WEBHOOK = 9443
    METRICS = 8090  # upstream 127.0.0.1:8080, taken here by the local model controller
    HEALTH = 8091  # upstream :8081, likewise
    LOCALMODEL_METRICS = 8080  # fixed in its binary
    LOCALMODEL_HEALTH = 8081  # fixed in its binary


@dataclasses.dataclass(frozen=True)
class Workload:
    """One controller: its container, service and ready check."""

    container: str
    service: str
    check: str


CONTROLLER = Workload("kserve-controller", "kserve-controller", "controller-ready")
LOCALMODEL = Workload("localmodel-controller", "localmodel-controller", "localmodel-up")
WORKLOADS = (CONTROLLER, LOCALMODEL)


def command(workload: Workload) -> str:
    """Upstream's entrypoint, lease election on; the KServe controller off the shared ports."""
    if workload is CONTROLLER:
        return (
            f"/manager --metrics-addr=127.0.0.1:{Ports.METRICS} "
            f"--health-probe-addr=:{Ports.HEALTH} --webhook-port={Ports.WEBHOOK} --leader-elect"
        )
    return "/manager --leader-elect"


def _check(workload: Workload) -> dict[str, Any]:
    base: dict[str, Any] = {
        "override": "replace",
        "period": "10s",
        "timeout": "3s",
        "threshold": 3,
    }
    if workload is CONTROLLER:
        # /healthz and /readyz both pass once the webhook server serves (cmd/manager/main.go).
        return base | {
            "level": "ready",
            "http": {"url": f"http://localhost:{Ports.HEALTH}/healthz"},
        }
    # The local model controller registers no health checks, but binds its probe port.
    return base | {"level": "alive", "tcp": {"port": Ports.LOCALMODEL_HEALTH}}


def layer(
    workload: Workload,
    *,
    leader: bool,
    namespace: str,
    serial: str,
    knative: tuple[str, str] | None = None,
) -> ops.pebble.LayerDict:
    """A controller's service and check: enabled on the leader only.

    `knative` is Knative Serving's namespace and version, in Serverless mode.
    """
    environment = {"POD_NAMESPACE": namespace}
    if workload is CONTROLLER:
        environment[TLS_SERIAL] = serial  # a new certificate changes the plan: a restart
        if knative is not None:
            environment[KNATIVE_NAMESPACE], environment[KNATIVE_VERSION] = knative
    return service_layer(
        workload.service,
        workload.check,
        command=command(workload),
        runs=leader,
        environment=environment,
        check_spec=_check(workload),
        user=(UID, GID),
    )
