"""The mlflow charm: MLflow's tracking server and model registry under Pebble.

Each hook reconciles everything from `_reconcile`: the leader asks for the
database and the bucket and publishes the route, the links and the profile
objects (`mlflow_data`, `mlflow_route`, `mlflow_profiles`); before a server
of a new MLflow version starts, the leader migrates the database schema and
records the version in the peer relation, and the other units wait for that
record; then every unit runs the server (`mlflow_workload`). A settled
unit's update-status looks only at what can drift: the server and its check.
"""

from __future__ import annotations

import hashlib
import json
import logging
from urllib.parse import quote

import mlflow_data
import mlflow_profiles
import mlflow_route
import mlflow_workload as wl
import ops
from mlflow_config import MlflowConfig

from kubeflow_charms.pebble import plan_has, service_running
from kubeflow_charms.status import add_and_note_settled, add_leader_unit_status, collected_once
from kubeflow_interfaces.kubernetes_manifests import ManifestsRequirer
from kubeflow_interfaces.s3 import S3ConnectionFields

logger = logging.getLogger(__name__)

DATABASE = mlflow_data.DATABASE
STORAGE = mlflow_data.STORAGE
ROUTE = mlflow_route.ROUTE
LINKS = mlflow_route.DASHBOARD_LINKS
SECRETS = "secrets"
POD_DEFAULTS = "pod-defaults"
PEERS = "mlflow-peers"
# Peer app databag: the MLflow version the database schema was last migrated to (by the
# leader), and the digest of the requests, route and links published last.
MIGRATED_KEY = "migrated-version"
PUBLISHED_KEY = "published"
# How much of a failed migration's output a status and the log show.
_OUTPUT_TAIL = 200


class MlflowCharm(ops.CharmBase):
    """MLflow: the tracking server and model registry, on every unit."""

    # The checks Pebble said fail (check name), until it says they recovered.
    _checks = ops.StoredState()
    # The digest of the layer and files the container was last given; the workload's
    # version (`mlflow --version`) as read since the container last started; whether
    # an upgrade-charm's migration is still to be done (leader).
    _workload = ops.StoredState()
    # Whether the last full reconcile left this unit active.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._checks.set_default(failing=[])
        self._workload.set_default(digest="", version="", migrate_due=False)
        self._settled.set_default(active=False)
        self._still_settled = False
        self._reconciled = False
        self._config_error: str | None = None
        self._data: mlflow_data.DataInputs | None = None
        self._problem: ops.StatusBase | None = None
        self._manifests = {e: ManifestsRequirer(self, e) for e in (SECRETS, POD_DEFAULTS)}
        on = self.on
        relations = (DATABASE, STORAGE, ROUTE, LINKS, SECRETS, POD_DEFAULTS)
        for event in (
            on.install,
            on.config_changed,
            on.leader_elected,
            on.update_status,
            on.secret_changed,
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
            *(on[r].relation_created for r in relations),
            *(on[r].relation_changed for r in relations),
        ):
            framework.observe(event, self._reconcile)
        for relation in (DATABASE, STORAGE, ROUTE, LINKS):
            framework.observe(on[relation].relation_broken, self._reconcile)
        for relation in (SECRETS, POD_DEFAULTS):
            framework.observe(on[relation].relation_broken, self._on_manifests_broken)
        framework.observe(on.upgrade_charm, self._on_upgrade_charm)
        container = on[wl.CONTAINER]
        framework.observe(container.pebble_ready, self._on_pebble_ready)
        framework.observe(container.pebble_check_failed, self._on_check_failed)
        framework.observe(container.pebble_check_recovered, self._on_check_recovered)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- events -----------------------------------------------------------------------

    def _on_upgrade_charm(self, event: ops.UpgradeCharmEvent) -> None:
        # A refresh may bring a new image: read the version again, and migrate anyway.
        self._workload.version = ""
        if self.unit.is_leader():
            self._workload.migrate_due = True
        self._reconcile(event)

    def _on_pebble_ready(self, event: ops.PebbleReadyEvent) -> None:
        # A (re)started container: maybe a new image, no plan, no failing checks.
        self._workload.version = ""
        self._workload.digest = ""
        if self._checks.failing:
            self._checks.failing = []
        self._reconcile(event)

    def _on_check_failed(self, event: ops.PebbleCheckFailedEvent) -> None:
        logger.warning("check %s of %s fails", event.info.name, event.workload.name)
        if event.info.name not in self._checks.failing:
            self._checks.failing = [*self._checks.failing, event.info.name]

    def _on_check_recovered(self, event: ops.PebbleCheckRecoveredEvent) -> None:
        if event.info.name in self._checks.failing:
            logger.info("check %s of %s passes again", event.info.name, event.workload.name)
            self._checks.failing = [c for c in self._checks.failing if c != event.info.name]

    def _on_manifests_broken(self, event: ops.RelationBrokenEvent) -> None:
        if self.unit.is_leader():
            self._manifests[event.relation.name].revoke(event.relation, self._record())
        self._reconcile(event)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of one of our (app-owned) secrets is tracked by no one.
        if self.unit.is_leader():
            event.secret.remove_revision(event.revision)

    # --- reconcile ------------------------------------------------------------------

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether the server runs and its check passes."""
        if self._checks.failing:
            return False
        container = self.unit.get_container(wl.CONTAINER)
        return service_running(container, wl.SERVICE) is True

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        config = self._load()
        if config is None:
            return  # bad input changes nothing
        self._publish(config)
        self._reconciled = True
        self._data = data = mlflow_data.read(self, config)
        if self.unit.is_leader() and data.storage is not None:
            self._publish_profiles(config, data.storage)
        container = self.unit.get_container(wl.CONTAINER)
        if data.missing:
            self._stop(container)
            return
        if data.database is None or data.storage is None:
            return  # waiting for an answer: a running server keeps its settings
        settings = mlflow_data.settings(config, data.database, data.storage)
        if service_running(container, wl.SERVICE) is None:
            return  # Pebble not up yet: its pebble-ready comes
        self.unit.set_ports(wl.PORT)
        files = self._files(settings, data.storage.tls_ca_chain)
        layer = wl.server_layer(settings)
        digest = _digest(layer, files)
        if self._as_left(container, layer, digest):
            return
        self._push(container, files)
        version = self._version(container)
        if version is None or not self._schema_ready(container, version, settings):
            return  # the plan and the running server stay as they were
        self._apply(container, layer, digest)

    def _as_left(self, container: ops.Container, layer: dict, digest: str) -> bool:
        """Whether the server runs as the last hook left it, with its schema migrated."""
        if self._workload.digest != digest or self._workload.migrate_due:
            return False
        peer = self.model.get_relation(PEERS)
        version = self._workload.version
        if peer is None or not version or peer.data[self.app].get(MIGRATED_KEY) != version:
            return False
        return self._in_plan(container, layer)

    def _publish(self, config: MlflowConfig) -> None:
        """Leader: the requests, the route and the links, when they changed."""
        if not self.unit.is_leader():
            return
        peer = self.model.get_relation(PEERS)
        relations = {
            name: relation.id
            for name in (DATABASE, STORAGE, ROUTE, LINKS)
            if (relation := self.model.get_relation(name)) is not None
        }
        route = self.model.get_relation(ROUTE)
        wanted = json.dumps(
            {
                "relations": relations,
                "bucket": [config.artifact_bucket, config.path],
                "route": mlflow_route.requirer(self).config() if route else None,
            },
            sort_keys=True,
        )
        stamp = hashlib.sha256(wanted.encode()).hexdigest()
        if peer is not None and peer.data[self.app].get(PUBLISHED_KEY) == stamp:
            return
        mlflow_data.request(self, config)
        mlflow_route.publish(self)
        if peer is not None:
            peer.data[self.app][PUBLISHED_KEY] = stamp

    def _record(self) -> ops.RelationDataContent | None:
        peer = self.model.get_relation(PEERS)
        return None if peer is None else peer.data[self.app]

    def _publish_profiles(self, config: MlflowConfig, storage: S3ConnectionFields) -> None:
        """Leader: the Secret and the PodDefault every profile gets (only what changed)."""
        path = storage.path.strip("/")
        root = f"s3://{storage.bucket}/{path}" if path else f"s3://{storage.bucket}"
        uri = wl.tracking_uri(self.app.name, self.model.name)
        wanted = {
            SECRETS: [mlflow_profiles.tracking_secret(uri)],
            POD_DEFAULTS: [
                mlflow_profiles.pod_default(
                    s3_endpoint=storage.endpoint,
                    artifacts_root=root,
                    default_experiment=config.default_experiment,
                )
            ],
        }
        record = self._record()
        for endpoint, objects in wanted.items():
            if self._manifests[endpoint].publish(objects, record):
                logger.info("handed the resource dispatcher its %s", endpoint)

    def _files(self, settings: wl.ServerSettings, ca_chain: tuple[str, ...]) -> list[_File]:
        files = [_File(wl.SECRETS_FILE, wl.secrets_env(settings))]
        if ca_chain:
            files.append(_File(wl.CA_FILE, "\n".join(ca_chain) + "\n"))
        return files

    def _in_plan(self, container: ops.Container, layer: dict) -> bool:
        running = service_running(container, wl.SERVICE)
        return bool(running) and plan_has(container.get_plan(), layer)  # type: ignore[arg-type]

    def _push(self, container: ops.Container, files: list[_File]) -> None:
        for f in files:
            container.push(
                f.path,
                f.content,
                make_dirs=True,
                permissions=0o600,
                user_id=wl.USER_ID,
                group_id=wl.GROUP_ID,
            )

    def _apply(self, container: ops.Container, layer: dict, digest: str) -> None:
        running = service_running(container, wl.SERVICE)
        container.add_layer(wl.SERVICE, layer, combine=True)  # type: ignore[arg-type]
        if running:
            container.restart(wl.SERVICE)
        else:
            container.replan()
        self._workload.digest = digest
        logger.info("started the MLflow server (%s)", self._workload.version)

    def _stop(self, container: ops.Container) -> None:
        if service_running(container, wl.SERVICE):
            container.stop(wl.SERVICE)
            container.stop_checks(wl.CHECK)
            self._workload.digest = ""

    # --- version and migration ---------------------------------------------------------

    def _version(self, container: ops.Container) -> str | None:
        """The workload's MLflow version, read once per container start."""
        if self._workload.version:
            return self._workload.version
        try:
            out, _ = container.exec(wl.version_command(), timeout=120).wait_output()
            version = wl.parse_version(out)
        except (ops.pebble.Error, ValueError) as e:
            self._problem = ops.WaitingStatus(f"cannot read MLflow's version: {_short(e)}")
            logger.warning("cannot read MLflow's version: %s", e)
            return None
        self._workload.version = version
        self.unit.set_workload_version(version)
        return version

    def _schema_ready(
        self, container: ops.Container, version: str, settings: wl.ServerSettings
    ) -> bool:
        """Whether the schema is migrated for `version`: the leader migrates, others wait."""
        peer = self.model.get_relation(PEERS)
        if peer is None:
            self._problem = ops.WaitingStatus("waiting for the peer relation")
            return False
        migrated = peer.data[self.app].get(MIGRATED_KEY)
        if not self.unit.is_leader():
            if migrated != version:
                self._problem = ops.WaitingStatus(
                    f"waiting for the leader to migrate the database to MLflow {version}"
                )
                return False
            return True
        if migrated == version and not self._workload.migrate_due:
            return True
        error = self._migrate(container, hide=(settings.db_password, settings.s3_secret_key))
        if error is not None:
            self._problem = ops.BlockedStatus(
                f"database migration to MLflow {version} failed ({error}); the server was "
                "left as it was; retried on the next hook"
            )
            return False
        peer.data[self.app][MIGRATED_KEY] = version
        self._workload.migrate_due = False
        logger.info("migrated the database schema for MLflow %s", version)
        return True

    def _migrate(self, container: ops.Container, hide: tuple[str, ...]) -> str | None:
        """Run the migration in the container; None on success, else what went wrong."""
        logger.info("migrating the database schema (mlflow db upgrade)")
        try:
            process = container.exec(
                wl.migrate_command(),
                timeout=wl.MIGRATION_TIMEOUT,
                user_id=wl.USER_ID,
                group_id=wl.GROUP_ID,
                working_dir=wl.MIGRATION_WORKING_DIR,
            )
            process.wait_output()
        except ops.pebble.ExecError as e:
            tail = _tail(str(e.stderr or e.stdout or ""), hide)
            logger.error("the migration exited with %s: %s", e.exit_code, tail)
            return f"exit code {e.exit_code}: {tail}" if tail else f"exit code {e.exit_code}"
        except ops.pebble.ChangeError as e:
            logger.error("the migration did not finish: %s", e.err)
            return f"did not finish in {wl.MIGRATION_TIMEOUT:.0f}s or could not start"
        except (ops.pebble.APIError, ops.pebble.ConnectionError) as e:
            logger.error("the migration could not run: %s", e)
            return "Pebble could not run it"
        return None

    # --- status -----------------------------------------------------------------------

    def _load(self) -> MlflowConfig | None:
        try:
            return self.load_config(MlflowConfig)
        except ValueError as e:
            self._config_error = str(e)
            return None

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            event.add_status(ops.ActiveStatus())
            return
        statuses = self._unit_statuses()
        add_and_note_settled(event, statuses, self._settled, reconciled=self._reconciled)

    def _unit_statuses(self) -> list[ops.StatusBase]:
        if self._config_error is not None or self._load() is None:
            return [ops.BlockedStatus(self._config_error or "invalid config")]
        config = self._load()
        assert config is not None
        data = self._data or mlflow_data.read(self, config)
        out: list[ops.StatusBase] = list(data.statuses)
        if self._problem is not None:
            out.append(self._problem)
        if self.model.get_relation(PEERS) is None:
            out.append(ops.WaitingStatus("waiting for the peer relation"))
        container = self.unit.get_container(wl.CONTAINER)
        running = service_running(container, wl.SERVICE)
        if running is None:
            out.append(ops.WaitingStatus(f"waiting for the {wl.CONTAINER} container"))
        elif not running and data.complete and self._problem is None:
            out.append(ops.WaitingStatus("waiting for the MLflow server to start"))
        for check in sorted(self._checks.failing):
            out.append(ops.WaitingStatus(f"{wl.CONTAINER} is not ready (check {check} fails)"))
        out.append(ops.ActiveStatus())
        return out

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        event.add_status(ops.ActiveStatus())


class _File:
    """A file the server reads at start (0600, owned by the workload's user)."""

    def __init__(self, path: str, content: str):
        self.path = path
        self.content = content


def _digest(layer: dict, files: list[_File]) -> str:
    """A digest of the layer and the files pushed with it."""
    parts = [layer, [[f.path, f.content] for f in files]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _tail(text: str, hide: tuple[str, ...]) -> str:
    """The last telling line of a process's output, shortened, for a status and the log.

    The database URI is read by the shell from the secrets file and a
    driver's error names the host and the user at most; any secret in `hide`
    (plain or URL-quoted) is blanked all the same.
    """
    for secret in hide:
        for form in {secret, quote(secret, safe="")}:
            if form:
                text = text.replace(form, "***")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("(Background on this error")] or lines
    return lines[-1][-_OUTPUT_TAIL:] if lines else ""


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:_OUTPUT_TAIL] if str(error) else type(error).__name__
