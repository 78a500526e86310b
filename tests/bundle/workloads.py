"""What each charm's workload does in the simulated model, in place of the real one.

- Every container can connect; storage mounts and the folders a workload
  keeps between restarts (config, sockets) are real folders, so what a charm
  wrote is there on its next hook, as in a pod.
- Commands answer as the workload would (`mysql` prints a version, `mysqld
  --initialize` succeeds).
- A Pebble check reports up once its service runs, as Pebble does.
- MinIO's S3 API is a real S3 server on 127.0.0.1, so the minio charm makes
  its buckets for real; MinIO's admin API (users and policies) is a fake
  that keeps them in memory.
- Kubernetes is `FakeKubernetes`: every lightkube client a charm makes talks
  to it, and it refuses objects the real schemas refuse. The cluster CA a
  pod's token volume holds is a made-up PEM in a file.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from pathlib import Path
from typing import Any

import ops
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
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
}


class Workloads:
    """The fakes of every charm's workload, for one simulated model."""

    def __init__(self, s3_endpoint: str | None = None):
        self.s3_endpoint = s3_endpoint
        self.minio_admin: Any = None
        self.kubernetes = FakeKubernetes()
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

    def after_hook(self, charm: str, state: testing.State) -> testing.State:
        """Bring the workload forward: checks of running services report up."""
        containers = set()
        for container in state.containers:
            plan = container.plan
            running = {
                name
                for name, status in container.service_statuses.items()
                if status == ops.pebble.ServiceStatus.ACTIVE
            }
            infos = set()
            for name, check in plan.checks.items():
                if check.startup == "disabled" or not running:
                    continue
                level = ops.pebble.CheckLevel(check.level) if check.level else None
                infos.add(
                    testing.CheckInfo(
                        name,
                        level=level,
                        status=ops.pebble.CheckStatus.UP,
                    )
                )
            containers.add(dataclasses.replace(container, check_infos=frozenset(infos)))
        return dataclasses.replace(state, containers=frozenset(containers))
