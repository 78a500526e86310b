"""What each charm's workload does in the simulated model, in place of the real one.

- Every container can connect; storage mounts and the folders a workload
  keeps between restarts (config, sockets) are real folders, so what a charm
  wrote is there on its next hook, as in a pod.
- Commands answer as the workload would (`mysql` prints a version, `mysqld
  --initialize` succeeds).
- A service that runs listens where its command line or config file says
  (upstream's default otherwise) and answers the health paths upstream
  serves there (facts in tests/conformance); a Pebble check is up only when
  a running service of its container answers its port (and path), down
  otherwise. A test can break a workload (it exits, answers 500, or stops
  listening) and mend it.
- MinIO's S3 API is a real S3 server on 127.0.0.1, so the minio charm makes
  its buckets for real; MinIO's admin API (users and policies) is a fake
  that keeps them in memory.
- Kubernetes is `FakeKubernetes`: every lightkube client a charm makes talks
  to it, and it refuses objects the real schemas refuse. The cluster CA a
  pod's token volume holds is a made-up PEM in a file.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import shlex
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ops
import tomllib
import yaml
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from conformance import facts
from ops import testing

# Folders a workload keeps for its whole life, by charm and container.
PERSISTENT = {
    "mysql": {"mysql": ["/etc/mysql", "/var/run/mysqld"]},
    "minio": {"minio": []},
    "istio": {
        "istiod": ["/etc/istio", "/etc/cacerts", "/var/lib/istio", "/var/run/secrets/istiod"]
    },
    "dex": {"dex": ["/etc/dex"]},
    "oidc-gateway": {"oauth2-proxy": ["/etc/oauth2-proxy"]},
    "kubeflow-notebooks": {"jupyter-web-app": ["/etc/config"]},
    "kubeflow-dashboard": {"profile-controller": ["/etc/profile-controller"]},
    "resource-dispatcher": {"poddefaults-webhook": ["/etc/webhook"]},
    "kfp": {
        "api-server": ["/etc/kfp/api-server"],
        "metadata-grpc": ["/etc/kfp/metadata-grpc"],
        "metadata-envoy": ["/etc/kfp/metadata-envoy"],
        "ui": ["/etc/kfp/ui"],
        "persistence-agent": ["/var/run/secrets/kubeflow/tokens"],
    },
    "katib": {"katib-controller": ["/etc/katib"], "katib-db-manager": ["/etc/katib"]},
    "kubeflow-trainer": {
        "trainer-controller": ["/etc/trainer"],
        "jobset-controller": ["/etc/jobset"],
    },
    "mlflow": {"mlflow-server": ["/etc/mlflow"]},
    "kserve": {"kserve-controller": ["/tmp/k8s-webhook-server/serving-certs"]},
}

# The cluster CA Kubernetes puts beside each pod's token (a made-up PEM).
CLUSTER_CA = "-----BEGIN CERTIFICATE-----\nc2ltdWxhdGVkIGNsdXN0ZXI=\n-----END CERTIFICATE-----\n"

# Commands and what they print, by charm and container.
COMMANDS: dict[str, dict[str, dict[str, bytes]]] = {
    "mysql": {
        "mysql": {
            "mysql": b"8.4.3\n",  # the server's version, for the relation data
            "mysqld": b"",  # --initialize
            "mysqldump": b"-- Dump completed\n",
        }
    },
    "mlflow": {
        "mlflow-server": {
            "mlflow": b"mlflow, version 2.22.0\n",  # --version (click's format)
            "/bin/sh": b"",  # the migration script
        }
    },
}


# --- where each workload listens and what it answers ------------------------------


@dataclasses.dataclass(frozen=True)
class Listener:
    """Where a running service answers: a port, and the HTTP paths it answers there."""

    port: int
    paths: frozenset[str] = frozenset()


def _flag(command: str, name: str) -> str | None:
    """A flag's value in a command line: `--name=v`, `-name=v`, `--name v` or `-name v`."""
    words = shlex.split(command)
    for position, word in enumerate(words):
        flag, equals, value = word.partition("=")
        if flag.lstrip("-") != name or not flag.startswith("-"):
            continue
        if equals:
            return value
        return words[position + 1] if position + 1 < len(words) else None
    return None


def _port(address: str | None) -> int | None:
    """The port of `host:port` or `:port`."""
    if not address:
        return None
    tail = address.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def _read(container: testing.Container, path: str) -> str | None:
    """A file the charm wrote into one of the container's persistent folders."""
    for location, mount in container.mounts.items():
        prefix = location.rstrip("/") + "/"
        if path.startswith(prefix):
            source = Path(mount.source) / path[len(prefix) :]
            return source.read_text() if source.is_file() else None
    return None


@functools.cache
def _facts(charm: str) -> dict[str, dict[str, facts.Fact]]:
    return facts.load(charm)


def _fact(charm: str, workload: str, name: str) -> Any:
    return _facts(charm)[workload][name].value


def _mysqld(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # `port` in the [mysqld] group of the defaults file the command names; 3306 otherwise.
    text = _read(container, _flag(service.command, "defaults-file") or "") or ""
    found = re.search(r"^\s*port\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    default = _fact("mysql", "mysql", "ports")["classic"]
    return Listener(int(found.group(1)) if found else default)


def _minio(container: testing.Container, service: ops.pebble.Service) -> Listener:
    port = _port(_flag(service.command, "address")) or _fact("minio", "minio", "api-port")
    paths = {_fact("minio", "minio", "liveness-path"), _fact("minio", "minio", "readiness-path")}
    return Listener(port, frozenset(paths))


def _istiod(container: testing.Container, service: ops.pebble.Service) -> Listener:
    ready = _fact("istio", "istiod", "ready-endpoint")
    default = _fact("istio", "istiod", "ports")["httpAddr"]
    return Listener(
        _port(_flag(service.command, "httpAddr")) or default, frozenset([ready["path"]])
    )


def _dex(container: testing.Container, service: ops.pebble.Service) -> Listener | None:
    # `dex serve CONFIG`: the telemetry listener of the config file (Dex has no default).
    config_file = shlex.split(service.command)[-1]
    try:
        config = yaml.safe_load(_read(container, config_file) or "{}") or {}
    except yaml.YAMLError:
        return None  # Dex exits on a config it cannot read
    port = _port((config.get("telemetry") or {}).get("http"))
    paths = frozenset(_fact("dex", "dex", "health").values())
    return Listener(port, paths) if port else None


def _oauth2_proxy(container: testing.Container, service: ops.pebble.Service) -> Listener | None:
    try:
        config = tomllib.loads(_read(container, _flag(service.command, "config") or "") or "")
    except tomllib.TOMLDecodeError:
        return None  # oauth2-proxy exits on a config file it cannot read
    health = _fact("oidc-gateway", "oauth2-proxy", "health")
    port = _port(config.get("http_address")) or _fact(
        "oidc-gateway", "oauth2-proxy", "default-port"
    )
    paths = {config.get("ping_path", health["ping"]), config.get("ready_path", health["ready"])}
    return Listener(port, frozenset(paths))


def _dashboard(container: testing.Container, service: ops.pebble.Service) -> Listener:
    port = service.environment.get("PORT_1") or _fact("kubeflow-dashboard", "dashboard", "port")
    path = _fact("kubeflow-dashboard", "dashboard", "health")["path"]
    return Listener(int(port), frozenset([path]))


def _kfam(container: testing.Container, service: ops.pebble.Service) -> Listener:
    health = _fact("kubeflow-dashboard", "kfam", "health")
    return Listener(health["port"], frozenset([health["path"]]))


def _profile_controller(container: testing.Container, service: ops.pebble.Service) -> Listener:
    health = _fact("kubeflow-dashboard", "profile-controller", "health")
    port = _port(_flag(service.command, "health-probe-bind-address")) or health["port"]
    return Listener(port, frozenset([health["path"]]))


def _jupyter_web_app(container: testing.Container, service: ops.pebble.Service) -> Listener:
    ready = _fact("kubeflow-notebooks", "jupyter-web-app", "ready-endpoint")
    port = _port(_flag(service.command, "bind")) or ready["port"]
    return Listener(port, frozenset([ready["path"]]))


def _notebook_controller(container: testing.Container, service: ops.pebble.Service) -> Listener:
    ready = _fact("kubeflow-notebooks", "notebook-controller", "ready-endpoint")
    health = _fact("kubeflow-notebooks", "notebook-controller", "health-endpoint")
    port = _port(_flag(service.command, "probe-addr")) or ready["port"]
    return Listener(port, frozenset([ready["path"], health["path"]]))


def _poddefaults_webhook(container: testing.Container, service: ops.pebble.Service) -> Listener:
    default = _fact("resource-dispatcher", "poddefaults-webhook", "port")
    return Listener(int(_flag(service.command, "webhookPort") or default))


def _kfp_api_server(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # Its HTTP port (`--httpPortFlag`, `:8888` by default); gRPC has no check to answer.
    default = _fact("kfp", "api-server", "flags")["httpPortFlag"]
    port = _port(_flag(service.command, "httpPortFlag") or default)
    path = _fact("kfp", "api-server", "health-endpoint")["path"]
    return Listener(port or 0, frozenset([path]))


def _kfp_ui(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # `node dist/server.js STATIC_DIR PORT`; every route is also served under /pipeline.
    words = shlex.split(service.command)
    port = int(words[3]) if len(words) > 3 and words[3].isdigit() else _fact("kfp", "ui", "port")
    path = _fact("kfp", "ui", "health-endpoint")["path"]
    base = _fact("kfp", "ui", "base-path")
    return Listener(port, frozenset([path, base + path]))


def _kfp_metadata_grpc(container: testing.Container, service: ops.pebble.Service) -> Listener:
    default = _fact("kfp", "metadata-grpc", "flags")["grpc_port"]
    return Listener(int(_flag(service.command, "grpc_port") or default))


def _kfp_metadata_envoy(
    container: testing.Container, service: ops.pebble.Service
) -> Listener | None:
    # `envoy -c FILE`: the first listener of the config file (JSON is YAML).
    try:
        config = yaml.safe_load(_read(container, _flag(service.command, "c") or "") or "{}")
    except yaml.YAMLError:
        return None  # envoy exits on a config it cannot read
    listeners = ((config or {}).get("static_resources") or {}).get("listeners") or []
    if not listeners:
        return None
    address = (listeners[0].get("address") or {}).get("socket_address") or {}
    port = address.get("port_value")
    return Listener(int(port)) if port else None


def _argo_workflow_controller(
    container: testing.Container, service: ops.pebble.Service
) -> Listener:
    # Its health server's address is fixed in its code.
    health = _fact("kfp", "workflow-controller", "health-endpoint")
    return Listener(health["port"], frozenset([health["path"]]))


def _kfp_visualization_server(
    container: testing.Container, service: ops.pebble.Service
) -> Listener:
    # Its port is fixed in its code; it answers its one route, /.
    health = _fact("kfp", "visualization-server", "health-endpoint")
    return Listener(_fact("kfp", "visualization-server", "port"), frozenset([health["path"]]))


def _katib_controller(
    container: testing.Container, service: ops.pebble.Service
) -> Listener | None:
    # `--katib-config FILE`: its health server at the init section's healthzAddr.
    try:
        config = yaml.safe_load(
            _read(container, _flag(service.command, "katib-config") or "") or ""
        )
    except yaml.YAMLError:
        return None  # the controller exits on a config it cannot read
    if not isinstance(config, dict):
        return None
    ready = _fact("katib", "katib-controller", "ready-endpoint")
    init = ((config.get("init") or {}).get("controller")) or {}
    port = _port(init.get("healthzAddr")) or ready["port"]
    return Listener(port, frozenset([ready["path"], "/healthz"]))


def _katib_ui(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # `./katib-ui --port=N`: the UI under its base path.
    port = int(_flag(service.command, "port") or _fact("katib", "katib-ui", "port"))
    return Listener(port, frozenset([_fact("katib", "katib-ui", "path")]))


def _katib_db_manager(
    container: testing.Container, service: ops.pebble.Service
) -> Listener | None:
    # Started through a shell that reads its database settings from a file: it
    # exits at once when the file is not there.
    words = shlex.split(service.command)
    sourced = re.search(r"\. (\S+)", words[-1]) if words else None
    if sourced is None or _read(container, sourced.group(1)) is None:
        return None
    address = _fact("katib", "katib-db-manager", "flags")["listen-address"]
    return Listener(_port(address) or 0)


def _controller_runtime_manager(charm: str, workload: str):
    # `/manager --config FILE` (Trainer, JobSet): the health server at the config
    # file's health.healthProbeBindAddress, upstream's port otherwise.
    def listener(container: testing.Container, service: ops.pebble.Service) -> Listener | None:
        try:
            config = yaml.safe_load(_read(container, _flag(service.command, "config") or "") or "")
        except yaml.YAMLError:
            return None  # the manager exits on a config it cannot read
        if not isinstance(config, dict):
            return None
        health = config.get("health") or {}
        default = _fact(charm, workload, "ports")["health"]
        port = _port(health.get("healthProbeBindAddress")) or _port(default)
        return Listener(port or 0, frozenset(["/readyz", "/healthz"]))

    return listener


def _mlflow_server(container: testing.Container, service: ops.pebble.Service) -> Listener | None:
    # `/bin/sh -c '<export the secrets file> && exec mlflow server --port N ...'`: the
    # shell exits when the file is not there; the server answers /health.
    words = shlex.split(service.command)
    script = words[-1] if words else ""
    sourced = re.search(r"\. (\S+)", script)
    if sourced is None or _read(container, sourced.group(1)) is None:
        return None
    server = script.partition("exec ")[2]
    port = int(_flag(server, "port") or _fact("mlflow", "mlflow-server", "port"))
    return Listener(port, frozenset([_fact("mlflow", "mlflow-server", "health-path")]))


def _kserve_controller(
    container: testing.Container, service: ops.pebble.Service
) -> Listener | None:
    # `/manager --health-probe-addr=:N ...`: the probes once the webhook server has
    # its certificate (the manager exits without one).
    cert_dir = _fact("kserve", "kserve-controller", "cert-dir")
    if _read(container, f"{cert_dir}/tls.crt") is None:
        return None
    health = _fact("kserve", "kserve-controller", "health-paths")
    port = _port(_flag(service.command, "health-probe-addr")) or health["port"]
    return Listener(port, frozenset([health["liveness"], health["readiness"]]))


def _kserve_localmodel(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # No address flags: probes on its fixed port.
    return Listener(_port(_fact("kserve", "localmodel-controller", "ports")["health"]) or 0)


def _knative_controller(container: testing.Container, service: ops.pebble.Service) -> Listener:
    # Knative's shared main serves its probes on a fixed port.
    ports = _fact("knative-serving", "controller", "ports")
    readiness = _fact("knative-serving", "controller", "readinessProbe")["httpGet"]["path"]
    liveness = _fact("knative-serving", "controller", "livenessProbe")["httpGet"]["path"]
    return Listener(ports["probes"], frozenset([readiness, liveness]))


def _knative_webhook(workload: str):
    # The admission server on WEBHOOK_PORT (TLS; no HTTP path the simulator answers).
    def listener(container: testing.Container, service: ops.pebble.Service) -> Listener:
        default = _fact("knative-serving", workload, "ports")["https-webhook"]
        return Listener(int(service.environment.get("WEBHOOK_PORT") or default))

    return listener


# Where each charm's services listen once running, by charm and service; a
# service not named here listens nowhere, so no check of it passes.
LISTENERS: dict[
    str, dict[str, Callable[[testing.Container, ops.pebble.Service], Listener | None]]
] = {
    "mysql": {"mysqld": _mysqld},
    "minio": {"minio": _minio},
    "istio": {"istiod": _istiod},
    "dex": {"dex": _dex},
    "oidc-gateway": {"oauth2-proxy": _oauth2_proxy},
    "kubeflow-dashboard": {
        "dashboard": _dashboard,
        "kfam": _kfam,
        "profile-controller": _profile_controller,
    },
    "kubeflow-notebooks": {
        "jupyter-web-app": _jupyter_web_app,
        "notebook-controller": _notebook_controller,
    },
    "resource-dispatcher": {"poddefaults-webhook": _poddefaults_webhook},
    # The persistence agent, the scheduled-workflow and viewer controllers have no check.
    "kfp": {
        "api-server": _kfp_api_server,
        "ui": _kfp_ui,
        "metadata-grpc": _kfp_metadata_grpc,
        "metadata-envoy": _kfp_metadata_envoy,
        "workflow-controller": _argo_workflow_controller,
        "visualization-server": _kfp_visualization_server,
    },
    "katib": {
        "katib-controller": _katib_controller,
        "katib-ui": _katib_ui,
        "katib-db-manager": _katib_db_manager,
    },
    "kubeflow-trainer": {
        "trainer-controller": _controller_runtime_manager(
            "kubeflow-trainer", "trainer-controller"
        ),
        "jobset-controller": _controller_runtime_manager("kubeflow-trainer", "jobset-controller"),
    },
    "mlflow": {"mlflow-server": _mlflow_server},
    "knative-serving": {
        "controller": _knative_controller,
        "webhook": _knative_webhook("webhook"),
        "net-istio-webhook": _knative_webhook("net-istio-webhook"),
    },
    "kserve": {
        "kserve-controller": _kserve_controller,
        "localmodel-controller": _kserve_localmodel,
    },
}


class Workloads:
    """The fakes of every charm's workload, for one simulated model."""

    # How a test can break a service: it exits as soon as Pebble starts it, it
    # runs and answers every HTTP request with 500, or it runs and listens nowhere.
    FAULTS = ("exits", "answers 500", "does not listen")

    def __init__(self, s3_endpoint: str | None = None):
        self.s3_endpoint = s3_endpoint
        self.minio_admin: Any = None
        self.kubernetes = FakeKubernetes()
        # Broken services, by unit and service name: how each is broken.
        self.faults: dict[tuple[str, str], str] = {}
        self._route_lightkube()

    def _route_lightkube(self) -> None:
        """Make every lightkube Client built from now on talk to `self.kubernetes`."""
        import lightkube  # only what a charm would import anyway

        fake = self.kubernetes
        original = getattr(
            lightkube.Client, "_simulation_original_init", lightkube.Client.__init__
        )

        def routed_init(client, *args, **kwargs):
            if kwargs.get("transport") is None:  # what a charm builds: route it here
                namespace = kwargs.get("namespace") or "kubeflow"
                kwargs.update(config=fake.kubeconfig(namespace), transport=fake.transport())
            original(client, *args, **kwargs)

        lightkube.Client._simulation_original_init = original  # type: ignore[attr-defined]
        lightkube.Client.__init__ = routed_init  # type: ignore[method-assign]

    def pod_token_ca(self) -> Path:
        """The cluster CA in a charm container's own token volume (any PEM will do)."""
        path = Path(tempfile.gettempdir()) / "simulated-pod-token" / "ca.crt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(CLUSTER_CA)
        return path

    def charm_class(self, charm: str) -> str:
        """The CharmBase subclass that `src/charm.py` runs."""
        module = load_charm(charm)
        if charm == "minio" and self.s3_endpoint:
            import minio_server  # the charm's own modules, loaded with it
            import minio_users

            minio_server.LOCAL_ENDPOINT = self.s3_endpoint
            minio_users.connect = self._minio_admin  # type: ignore[assignment]
        if charm == "resource-dispatcher":
            import watch_token  # the charm's own module, loaded with it

            watch_token.CHARM_CA = self.pod_token_ca()
        classes = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, ops.CharmBase) and obj.__module__ == module.__name__
        ]
        assert len(classes) == 1, f"{charm}: expected one charm class, found {classes}"
        return classes[0].__name__

    def _minio_admin(self, root: Any, endpoint: str) -> Any:
        """MinIO's admin API for this model: users and policies kept in memory."""
        from unit.minio.helpers import FakeMinioAdmin

        if self.minio_admin is None:
            self.minio_admin = FakeMinioAdmin()
        return self.minio_admin

    def containers(
        self, charm: str, meta: dict[str, Any], unit_dir: Path
    ) -> set[testing.Container]:
        """The unit's containers, with their mounts and commands."""
        containers = set()
        for name, spec in (meta.get("containers") or {}).items():
            mounts = {}
            locations = [m["location"] for m in spec.get("mounts", [])]
            locations += PERSISTENT.get(charm, {}).get(name, [])
            for location in locations:
                source = unit_dir / name / location.strip("/").replace("/", "_")
                source.mkdir(parents=True, exist_ok=True)
                mounts[location] = testing.Mount(location=location, source=source)
            execs = {
                testing.Exec([command], stdout=out, stderr=b"")  # type: ignore[arg-type]
                for command, out in COMMANDS.get(charm, {}).get(name, {}).items()
            }
            containers.add(testing.Container(name, can_connect=True, mounts=mounts, execs=execs))
        return containers

    def after_hook(
        self, charm: str, state: testing.State, unit: str | None = None
    ) -> testing.State:
        """Bring the workload forward: services as Pebble runs them, checks as they answer.

        A service broken to exit is in error; a check the charm stopped stays
        inactive, one whose startup is disabled and never started is not
        there; every other check is up when a running service of its
        container answers it (its port, and its path for HTTP), down
        otherwise, as Pebble's checks run whether or not their service does.
        """
        containers = set()
        for container in state.containers:
            statuses = dict(container.service_statuses)
            for name in statuses:
                if self.faults.get((unit or "", name)) == "exits":
                    statuses[name] = ops.pebble.ServiceStatus.ERROR
            container = dataclasses.replace(container, service_statuses=statuses)
            answering = self._answering(charm, unit or "", container)
            previous = {info.name: info for info in container.check_infos}
            infos = set()
            for name, check in container.plan.checks.items():
                prior = previous.get(name)
                if prior is not None and prior.status == ops.pebble.CheckStatus.INACTIVE:
                    infos.add(prior)
                    continue
                if prior is None and check.startup == ops.pebble.CheckStartup.DISABLED:
                    continue
                up = self._passes(charm, container, check, answering)
                threshold = check.threshold or 3
                level = ops.pebble.CheckLevel(check.level) if check.level else None
                infos.add(
                    testing.CheckInfo(
                        name,
                        level=level,
                        startup=check.startup,
                        status=ops.pebble.CheckStatus.UP if up else ops.pebble.CheckStatus.DOWN,
                        failures=0 if up else threshold,
                        threshold=threshold,
                        change_id=prior.change_id if prior is not None else None,
                    )
                )
            containers.add(dataclasses.replace(container, check_infos=frozenset(infos)))
        return dataclasses.replace(state, containers=frozenset(containers))

    def _answering(
        self, charm: str, unit: str, container: testing.Container
    ) -> list[tuple[Listener, str]]:
        """Where the container's running services listen, each with how it is broken ("")."""
        found = []
        for name, service in container.plan.services.items():
            if container.service_statuses.get(name) != ops.pebble.ServiceStatus.ACTIVE:
                continue
            fault = self.faults.get((unit, name), "")
            where = LISTENERS.get(charm, {}).get(name)
            listener = where(container, service) if where is not None else None
            if listener is not None and fault != "does not listen":
                found.append((listener, fault))
        return found

    def _passes(
        self,
        charm: str,
        container: testing.Container,
        check: ops.pebble.Check,
        answering: list[tuple[Listener, str]],
    ) -> bool:
        """Whether a check passes against the services that answer in its container."""
        if check.http is not None:
            url = urllib.parse.urlsplit(check.http.get("url", ""))
            port = url.port or (443 if url.scheme == "https" else 80)
            return any(
                listener.port == port and (url.path or "/") in listener.paths and not fault
                for listener, fault in answering
            )
        if check.tcp is not None:
            return any(listener.port == check.tcp.get("port") for listener, _ in answering)
        if check.exec is not None:
            command = shlex.split(check.exec.get("command", ""))
            return bool(command) and command[0] in COMMANDS.get(charm, {}).get(container.name, {})
        return False
