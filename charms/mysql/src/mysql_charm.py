"""The mysql charm: one MySQL 8.4 server, a database per related app, backups to S3."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import secrets
import string
from typing import Any

import ops
from executor import PebbleExecutor, WorkloadError
from mysql_server import (
    ADMIN_USER,
    CLIENT_OPTIONS_FILE,
    CONFIG_FILE,
    DATA_DIR,
    INIT_FILE,
    MAX_BUFFER_POOL_SIZE,
    MIN_BUFFER_POOL_SIZE,
    PORT,
    SERVICE,
    MySQLServer,
    ServerConfig,
    initialise_argv,
    initialise_sql,
    is_valid_database_name,
    pebble_layer,
    relation_user,
    render_config,
)

from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import plan_has, service_running
from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces import s3
from kubeflow_interfaces.mysql_client import InvalidRequestError, MySQLProvider

logger = logging.getLogger(__name__)

CONTAINER = "mysql"
STORAGE = "database"
PEERS = "mysql-peers"
# Peer app data: the unit whose data directory holds the databases; and the
# ids of the `database` relations as of the last look at the relation users
# (every `relation-<id>` account on the server has its id in that list).
DATA_UNIT_KEY = "data-unit"
USERS_CHECKED_KEY = "relation-users-checked"
# And a digest of the requirers' databags as of the last time the relation
# users' grants were brought to what the relations ask for.
GRANTS_CHECKED_KEY = "relation-grants-checked"
CREDENTIALS_LABEL = "admin-credentials"
# The key that signs backups: an app secret of its own, made by the leader with
# the first backup, so set-password and the relation code never touch it.
BACKUP_KEY_LABEL = "backup-key"
BACKUP_KEY_FIELD = "backup-key"
BACKUP_BUCKET = "mysql-backups"
# A user secret holding backup keys of earlier deployments, one per field
# (say `backup-key`, as the old deployment's own secret shows it): a restore
# verifies backups signed with them too.
TRUSTED_KEYS_OPTION = "trusted-backup-keys"
PASSWORD_KEYS = {"root": "root-password", ADMIN_USER: "admin-password"}
READY_CHECK = "mysqld-ready"
# At most 20 digits: the largest size mysqld takes, 2^64-1, has 20.
_SIZE = re.compile(r"\s*([0-9]{1,20})\s*([KMG]?)i?B?\s*", re.IGNORECASE)
_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 32) -> str:
    """A random password of letters and digits (nothing that needs quoting)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def parse_size(value: str) -> int:
    """`256M`, `2G`, `1048576` to bytes; ValueError when it is none of those."""
    match = _SIZE.fullmatch(value)
    if not match:
        shown = value if len(value) <= 32 else value[:32] + "..."
        raise ValueError(f"{shown!r} is not a size like 512M or 2G")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


def requests_digest(databags: dict[int, dict[str, str]]) -> str:
    """A digest of the requirers' app databags, by relation id (see `GRANTS_CHECKED_KEY`)."""
    seen = {str(relation_id): bag for relation_id, bag in databags.items()}
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class MySQLConfig:
    """The charm's config options, validated."""

    buffer_pool_size: str = "256M"
    max_connections: int = 151

    def __post_init__(self):
        try:
            size = parse_size(self.buffer_pool_size)
        except ValueError as e:
            raise ValueError(f"buffer-pool-size: {e}") from None
        if size < MIN_BUFFER_POOL_SIZE:
            raise ValueError("buffer-pool-size: must be at least 5M")
        if size > MAX_BUFFER_POOL_SIZE:
            raise ValueError(
                f"buffer-pool-size: {self.buffer_pool_size!r} is more than mysqld takes "
                f"({MAX_BUFFER_POOL_SIZE} bytes, 2^64-1); give bytes or K, M, G, e.g. 2G"
            )
        if not 10 <= self.max_connections <= 100_000:
            raise ValueError("max-connections: must be between 10 and 100000")

    def server_config(self) -> ServerConfig:
        """What mysqld is configured with."""
        return ServerConfig(
            buffer_pool_size=parse_size(self.buffer_pool_size),
            max_connections=self.max_connections,
        )


class ActionFailedError(Exception):
    """An action cannot go on; the message is for the operator."""


class MySQLCharm(ops.CharmBase):
    """Runs mysqld under Pebble and serves the `database` relation."""

    # Whether the last full reconcile left this unit active. Every input but mysqld
    # itself comes with an event of its own (config, relation, secret and storage
    # events, leadership, pebble-ready, checks), so an update-status on a settled unit
    # looks only at whether mysqld runs and is ready.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._container = self.unit.get_container(CONTAINER)
        self._database = MySQLProvider(self, "database")
        self._s3 = s3.S3Requirer(self, "s3-parameters", bucket=BACKUP_BUCKET)
        self._problems: list[ops.StatusBase] | None = None
        # Set when this hook's reconcile found mysqld configured, running and
        # ready, and changed nothing: the status reuses that answer rather
        # than asking Pebble again.
        self._ready = False

        on = self.on
        for event in (
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.start,
            on.update_status,
            on[CONTAINER].pebble_ready,
            on[CONTAINER].pebble_check_failed,
            on[CONTAINER].pebble_check_recovered,
            on[STORAGE].storage_attached,
            on.secret_changed,
            on["database"].relation_changed,
            on["database"].relation_broken,
            on[PEERS].relation_created,
            on[PEERS].relation_changed,
            on[PEERS].relation_departed,
            on["s3-parameters"].relation_created,
            on["s3-parameters"].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)
        framework.observe(on.create_backup_action, self._on_create_backup)
        framework.observe(on.list_backups_action, self._on_list_backups)
        framework.observe(on.restore_action, self._on_restore)
        framework.observe(on.get_password_action, self._on_get_password)
        framework.observe(on.set_password_action, self._on_set_password)
        framework.observe(on.secret_remove, self._on_secret_remove)

    # --- reconcile -------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring mysqld, its users and the relations to what the inputs say."""
        if own_departure(self, event):
            # This unit is being scaled away; the relations stay for the units
            # that remain, leader or not: it revokes nothing, drops no user.
            logger.info("this unit is leaving: it leaves the relations to the units that stay")
            return
        if self._nothing_drifted(event):
            return
        self._reconciled = True
        if (
            isinstance(event, ops.RelationBrokenEvent)
            and event.relation.name == "database"
            and self.unit.is_leader()
        ):
            # The credentials secrets go now, whatever state mysqld is in; the
            # user goes with the next look at the relation users (below).
            self._database.revoke(event.relation)
        config = self._load_config()
        if config is None or not self._container.can_connect():
            return
        if not self.unit.is_leader():
            self._reconcile_follower(config)
            return
        credentials = self._ensure_credentials()
        if not self.model.storages[STORAGE]:
            return
        data_unit = self._claim_data_unit()
        if data_unit != self.unit.name:
            # The databases live on another unit (or nowhere yet): starting
            # mysqld here would serve an empty server. Collect-status says why.
            self._keep_stopped()
            return
        self.unit.set_ports(PORT)
        self._s3.publish_request()
        server = self._server(credentials)
        try:
            settled = self._configure(config, credentials, server)
        except WorkloadError as e:
            logger.error("configuring mysqld failed: %s", e)
            return
        if not self._mysqld_ready(running=settled):
            logger.info("mysqld is not ready yet; relations will be served later")
            return
        self._ready = settled
        relation_event = isinstance(event, ops.RelationEvent)
        try:
            self._check_relation_users(server, relation_event=relation_event)
            if self._needs_database_work(event):
                self._serve_databases(server)
            self._check_relation_grants(server, relation_event=relation_event)
        except WorkloadError as e:
            # Say mysqld is still starting: relations not answered yet are
            # retried on the next event (update-status at the latest).
            logger.warning("serving the database relations failed: %s", e)

    def _nothing_drifted(self, event: ops.EventBase) -> bool:
        """Whether this is an update-status on a settled unit whose mysqld runs and is ready."""
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            running = service_running(self._container, SERVICE)
            self._still_settled = bool(running) and self._mysqld_ready(running=True)
        return self._still_settled

    def _reconcile_follower(self, config: MySQLConfig) -> None:
        """A unit that does not lead runs mysqld only if the data lives on it.

        It keeps serving the relations it answered while it led (their
        endpoints name it); new relations wait until it leads again.
        """
        if self._data_unit() != self.unit.name or not self.model.storages[STORAGE]:
            self._keep_stopped()
            return
        try:
            credentials = self.model.get_secret(label=CREDENTIALS_LABEL).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return
        try:
            self._configure(config, credentials, self._server(credentials))
        except WorkloadError as e:
            logger.error("configuring mysqld failed: %s", e)

    # --- which unit holds the data

    def _peers(self) -> ops.Relation | None:
        return self.model.get_relation(PEERS)

    def _data_unit(self) -> str | None:
        """The unit whose data directory holds the databases, as the leader recorded it."""
        peers = self._peers()
        if peers is None:
            return None
        return peers.data[self.app].get(DATA_UNIT_KEY) or None

    def _has_data(self) -> bool:
        return self._container.exists(f"{DATA_DIR}/mysql")

    def _claim_data_unit(self) -> str | None:
        """On the leader: which unit holds the data, recording this one when none is yet.

        The first leader with storage records itself before it initialises
        its data directory; a leader from before the record existed records
        itself if its data directory is there. Without the peer relation
        (only early in a unit's life) nothing can be recorded: a leader that
        has data serves it, one that has none waits.
        """
        recorded = self._data_unit()
        if recorded is not None:
            return recorded
        peers = self._peers()
        if peers is None:
            return self.unit.name if self._has_data() else None
        peers.data[self.app][DATA_UNIT_KEY] = self.unit.name
        logger.info("the data directory of %s holds the databases", self.unit.name)
        return self.unit.name

    def _data_unit_present(self, name: str) -> bool:
        if name == self.unit.name:
            return True
        peers = self._peers()
        return peers is not None and any(u.name == name for u in peers.units)

    def _load_config(self) -> MySQLConfig | None:
        try:
            return self.load_config(MySQLConfig)
        except ValueError:
            return None

    def _config_error(self) -> str | None:
        try:
            self.load_config(MySQLConfig)
        except ValueError as e:
            return str(e).splitlines()[0]
        return None

    def _keep_stopped(self) -> None:
        """A second unit must not start a second server on its own data."""
        services = self._container.get_services(SERVICE)
        if services and services[SERVICE].is_running():
            self._container.stop(SERVICE)

    def _ensure_credentials(self) -> dict[str, str]:
        """The app secret with root's and the admin user's passwords (made by the leader)."""
        try:
            return self.model.get_secret(label=CREDENTIALS_LABEL).get_content(refresh=True)
        except ops.SecretNotFoundError:
            content = {key: generate_password() for key in PASSWORD_KEYS.values()}
            self.app.add_secret(
                content, label=CREDENTIALS_LABEL, description="MySQL root and admin passwords"
            )
            return content

    def _server(self, credentials: dict[str, str]) -> MySQLServer:
        return MySQLServer(
            PebbleExecutor(self._container),
            user=ADMIN_USER,
            password=credentials[PASSWORD_KEYS[ADMIN_USER]],
        )

    def _configure(
        self, config: MySQLConfig, credentials: dict[str, str], server: MySQLServer
    ) -> bool:
        """Write config files, initialise once, start or restart mysqld: only what changed.

        Whether mysqld was running as wanted already (nothing changed).
        """
        changed = self._push_if_changed(CONFIG_FILE, render_config(config.server_config()), 0o644)
        self._push_if_changed(CLIENT_OPTIONS_FILE, server.client_options(), 0o600)
        if not self._container.exists(f"{DATA_DIR}/mysql"):
            self._initialise(credentials)
            changed = True
        layer = pebble_layer()
        if not plan_has(self._container.get_plan(), layer):
            self._container.add_layer(SERVICE, layer, combine=True)
            changed = True
        service = self._container.get_services(SERVICE).get(SERVICE)
        if service is None or not service.is_running():
            self._container.replan()
            return False
        if changed:
            self._container.restart(SERVICE)
            return False
        return True

    def _mysqld_ready(self, *, running: bool = False) -> bool:
        """Mysqld runs and its Pebble ready check passes.

        `running`: the caller has just seen the service running. Known once
        this hook's reconcile found mysqld ready and changed nothing.
        """
        if self._ready:
            return True
        if not running:
            services = self._container.get_services(SERVICE)
            if not services or not services[SERVICE].is_running():
                return False
        check = self._container.get_checks(READY_CHECK).get(READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP

    def _push_if_changed(self, path: str, content: str, permissions: int) -> bool:
        try:
            current = self._container.pull(path).read()
        except ops.pebble.PathError:
            current = None
        if current == content:
            return False
        self._container.push(path, content, make_dirs=True, permissions=permissions)
        return True

    def _initialise(self, credentials: dict[str, str]) -> None:
        """First start: make the data directory and set the passwords from the secret."""
        logger.info("initialising an empty data directory")
        sql = initialise_sql(
            credentials[PASSWORD_KEYS["root"]], credentials[PASSWORD_KEYS[ADMIN_USER]]
        )
        # mysqld drops to the `mysql` user before it reads the init file and
        # writes the data directory.
        self._container.make_dir(DATA_DIR, make_parents=True, user="mysql", group="mysql")
        self._container.push(
            INIT_FILE, sql, make_dirs=True, permissions=0o600, user="mysql", group="mysql"
        )
        executor = PebbleExecutor(self._container)
        try:
            executor.run(initialise_argv(), timeout=300)
        finally:
            executor.remove(INIT_FILE)

    def _needs_database_work(self, event: ops.EventBase) -> bool:
        """Whether the database relations may need anything.

        Their inputs change only with relation, leadership and upgrade events,
        or when mysqld comes up; on update-status only relations with a
        database we have not answered yet (say mysqld was still starting)
        need another look.
        """
        if not isinstance(event, ops.UpdateStatusEvent):
            return True
        return any(not self._database.answers_all(r) for r in self._database.relations)

    def _serve_databases(self, server: MySQLServer) -> None:
        """Answer every request not answered yet: one user and one password per relation.

        A relation asking for a further database gets it granted to the user
        it already has, with the password it already has (read back from
        the secret it was given): no answer it holds goes stale.
        """
        version = None
        for relation in self._database.relations:
            try:
                requests = self._database.requests(relation)
            except InvalidRequestError:
                continue  # reported by collect-status
            valid = [r for r in requests if is_valid_database_name(r.database)]
            answered = self._database.answered_databases(relation)
            todo = [r for r in valid if r.database not in answered]
            if not todo:
                continue
            username = relation_user(relation.id)
            published = self._database.published_credentials(relation)
            if published is not None and published[0] == username:
                password = published[1]
            else:
                if published is not None or answered:
                    logger.warning(
                        "relation %d: earlier password unreadable, new one", relation.id
                    )
                password = generate_password()
            if version is None:
                version = server.version()
            for request in todo:
                server.ensure_database(request.database)
                server.ensure_user(username, password, request.database)
                self._database.publish(
                    request,
                    username=username,
                    password=password,
                    endpoints=[self._endpoint()],
                    version=version,
                )
                logger.info("database %s served to %s", request.database, request.app_name)

    def _users_checked(self) -> set[int] | None:
        """The relation ids recorded at the last look at the relation users, if readable."""
        peers = self._peers()
        raw = peers.data[self.app].get(USERS_CHECKED_KEY) if peers is not None else None
        if raw is None:
            return None
        try:
            ids = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            return None
        return set(ids)

    def _check_relation_users(self, server: MySQLServer, *, relation_event: bool) -> None:
        """Drop the users of relations that are gone, when one may be gone.

        Peer app data records the relation ids as of the last look; every
        relation user on the server belongs to one of them. Only when one of
        those relations is gone (its relation-broken hook may have come while
        mysqld was down) does the server get asked, one query, and the stale
        users dropped; their databases stay. A new relation only adds its id.
        So a settled hook asks the server nothing and writes nothing. With
        no record yet (or no peer relation) the server is asked; without the
        peer relation, only on relation events.
        """
        live = {r.id for r in self._database.relations}
        checked = self._users_checked()
        peers = self._peers()
        if checked is not None and checked <= live:
            if checked != live:
                self._record_users_checked(live)
            return
        if peers is None and not relation_event:
            return
        dropped, failed = server.drop_stale_relation_users(live)
        for user in dropped:
            logger.info("dropped user %s of a removed relation", user)
        if failed:
            # Tried again on the next hook: the record keeps the gone ids.
            logger.warning("could not drop the users of removed relations: %s", ", ".join(failed))
            return
        self._record_users_checked(live)

    def _record_users_checked(self, live: set[int]) -> None:
        peers = self._peers()
        if peers is not None:
            peers.data[self.app][USERS_CHECKED_KEY] = json.dumps(sorted(live))

    def _requests_digest(self) -> str:
        """A digest of every requirer's app databag: it changes when any request changes."""
        return requests_digest(
            {
                r.id: dict(r.data[r.app]) if r.app is not None else {}
                for r in self._database.relations
            }
        )

    def _check_relation_grants(self, server: MySQLServer, *, relation_event: bool) -> None:
        """Revoke the grants on databases a relation no longer asks for; keep the databases.

        A v0 requirer naming another database, or a v1 requirer dropping a
        request, leaves its user a grant on the old database: that grant goes
        (the data stays). Peer app data records a digest of the requirers'
        databags as of the last check, so only a changed request makes the
        charm parse the requests and ask the server (one query); a settled
        hook does neither. A relation whose request is unreadable keeps its
        grants. Without the peer relation, the check runs on relation events.
        """
        peers = self._peers()
        digest = self._requests_digest()
        if peers is not None and peers.data[self.app].get(GRANTS_CHECKED_KEY) == digest:
            return
        if peers is None and not relation_event:
            return
        wanted: dict[int, set[str]] = {}
        for relation in self._database.relations:
            try:
                requests = self._database.requests(relation)
            except InvalidRequestError:
                continue
            wanted[relation.id] = {r.database for r in requests}
        revoked, failed = server.revoke_unasked_databases(wanted)
        for user, database in revoked:
            logger.info(
                "revoked %s's grant on %s, which its relation no longer asks for", user, database
            )
        if failed:
            # Tried again on the next hook: the record keeps the old digest.
            logger.warning(
                "could not revoke grants no longer asked for: %s",
                ", ".join(f"{u} on {d}" for u, d in failed),
            )
            return
        if peers is not None:
            peers.data[self.app][GRANTS_CHECKED_KEY] = digest

    def _endpoint(self) -> str:
        unit = self.unit.name.replace("/", "-")
        return f"{unit}.{self.app.name}-endpoints.{self.model.name}.svc.cluster.local:{PORT}"

    # --- status ------------------------------------------------------------------

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        problems = self._unit_problems()
        for status in problems:
            event.add_status(status)
        if self.unit.is_leader():
            event.add_status(ops.ActiveStatus("primary"))
        else:
            event.add_status(ops.ActiveStatus("primary; new relations wait until this unit leads"))
        # Only a hook that reconciled in full may say the unit is settled; any may say not.
        # A leader keeps what it checked last in the peer relation: settled only with it.
        active = self._reconciled and all(isinstance(s, ops.ActiveStatus) for s in problems)
        active = active and (not self.unit.is_leader() or self._peers() is not None)
        if self._settled.active != active:
            self._settled.active = active

    def _unit_problems(self) -> list[ops.StatusBase]:
        if self._problems is not None:
            return self._problems
        problems: list[ops.StatusBase] = []
        self._problems = problems
        if error := self._config_error():
            problems.append(ops.BlockedStatus(f"invalid config: {error}"))
            return problems
        try:
            self._trusted_backup_keys()
        except ValueError as e:
            problems.append(ops.BlockedStatus(f"invalid config: {e}"))
            return problems
        leader = self.unit.is_leader()
        data_unit = self._data_unit()
        if not leader and data_unit != self.unit.name:
            problems.append(
                ops.BlockedStatus(
                    "replication is not supported yet: this unit keeps mysqld stopped"
                )
            )
            return problems
        if data_unit is not None and data_unit != self.unit.name:
            problems.append(ops.BlockedStatus(self._elsewhere_message(data_unit)))
            return problems
        if not self._ready and not self._container.can_connect():
            problems.append(ops.WaitingStatus("waiting for the mysql container"))
            return problems
        if not self.model.storages[STORAGE]:
            problems.append(ops.WaitingStatus("waiting for the database storage"))
            return problems
        if data_unit is None and self._peers() is None and not self._has_data():
            problems.append(ops.WaitingStatus("waiting for the peer relation"))
            return problems
        if problem := self._mysqld_problem():
            problems.append(problem)
            if isinstance(problem, ops.MaintenanceStatus):
                return problems
        if leader:
            problems.extend(self._relation_problems())
        return problems

    def _mysqld_problem(self) -> ops.StatusBase | None:
        """Mysqld not running (maintenance) or not ready (waiting); None when it serves."""
        if self._ready:
            return None
        services = self._container.get_services(SERVICE)
        if not services or not services[SERVICE].is_running():
            return ops.MaintenanceStatus("starting mysqld")
        if not self._mysqld_ready(running=True):
            return ops.WaitingStatus("mysqld is not ready yet")
        return None

    def _elsewhere_message(self, data_unit: str) -> str:
        """Why a leader that does not hold the data serves nothing."""
        if self._data_unit_present(data_unit):
            return (
                f"data lives on {data_unit}; replication is not supported yet, "
                "so this leader serves no new relation"
            )
        return (
            f"data lived on {data_unit}, which is gone; replication is not supported yet: "
            "deploy a new mysql and restore a backup into it"
        )

    def _relation_problems(self) -> list[ops.StatusBase]:
        problems: list[ops.StatusBase] = []
        for relation in self._database.relations:
            if self._database.answers_all(relation):
                continue
            app = relation.app.name if relation.app else "unknown"
            try:
                requests = self._database.requests(relation)
            except InvalidRequestError:
                problems.append(ops.BlockedStatus(f"unreadable database request from {app}"))
                continue
            bad = sorted(r.database for r in requests if not is_valid_database_name(r.database))
            if bad:
                names = ", ".join(repr(b) for b in bad)
                problems.append(ops.BlockedStatus(f"{app} asked for a refused database: {names}"))
            elif requests:
                problems.append(ops.WaitingStatus(f"creating the database of {app}"))
        try:
            self._s3.check()
        except s3.InvalidS3DataError as e:
            problems.append(ops.BlockedStatus(f"s3-parameters: {e}"))
        return problems

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        if self.app.planned_units() > 1:
            event.add_status(ops.ActiveStatus("one unit serves; replication is not supported yet"))
        else:
            event.add_status(ops.ActiveStatus())

    # --- actions -----------------------------------------------------------------

    def _ready_server(self) -> MySQLServer:
        if not self.unit.is_leader():
            raise ActionFailedError("run this action on the leader unit (the primary)")
        if not self._container.can_connect():
            raise ActionFailedError("the mysql container is not reachable")
        try:
            credentials = self.model.get_secret(label=CREDENTIALS_LABEL).get_content(refresh=True)
        except ops.SecretNotFoundError:
            raise ActionFailedError("mysqld has not been set up yet") from None
        if not self._mysqld_ready():
            raise ActionFailedError("mysqld is not up: check `juju status` and the unit's logs")
        return self._server(credentials)

    def _backup_key(self, *, create: bool) -> bytes | None:
        """The application's backup key from its secret; the leader makes it when `create`."""
        from mysql_backups import generate_key, parse_key

        try:
            content = self.model.get_secret(label=BACKUP_KEY_LABEL).get_content(refresh=True)
        except ops.SecretNotFoundError:
            if not create:
                return None
            if not self.unit.is_leader():
                raise ActionFailedError(
                    "run this action on the leader unit (the primary)"
                ) from None
            content = {BACKUP_KEY_FIELD: generate_key()}
            self.app.add_secret(
                content, label=BACKUP_KEY_LABEL, description="Key that authenticates backups"
            )
            logger.info("made the backup key")
        try:
            return parse_key(content.get(BACKUP_KEY_FIELD, ""))
        except ValueError as e:
            raise ActionFailedError(f"the {BACKUP_KEY_LABEL} secret is unusable: {e}") from None

    def _trusted_backup_keys(self) -> list[bytes]:
        """The keys in the `trusted-backup-keys` secret; ValueError naming the option if unusable.

        Every field of the secret holds one key, as `generate_key` writes it
        (the `backup-key` field of an earlier deployment's own secret). The
        message never carries a key.
        """
        uri = str(self.config.get(TRUSTED_KEYS_OPTION) or "").strip()
        if not uri:
            return []
        where = f"{TRUSTED_KEYS_OPTION}: secret {uri[:64]!r}"
        try:
            content = self.model.get_secret(id=uri).get_content(refresh=True)
        except ops.SecretNotFoundError:
            raise ValueError(
                f"{where} not found, or not granted (juju grant-secret <secret> {self.app.name})"
            ) from None
        except ops.ModelError as e:
            reason = " ".join(str(e).split())[:120]
            raise ValueError(f"{where} is unreadable ({reason})") from None
        if not content:
            raise ValueError(f"{where} holds no key")
        from mysql_backups import parse_key

        keys = []
        for field in sorted(content):
            try:
                keys.append(parse_key(content[field]))
            except ValueError as e:
                raise ValueError(f"{where}, field {field!r}: {e}") from None
        return keys

    def _backups(self, *, create_key: bool = False, trusted: bool = False) -> Any:
        try:
            info = self._s3.connection_info()
        except s3.InvalidS3DataError as e:
            raise ActionFailedError(f"s3-parameters: {e}") from None
        if info is None:
            raise ActionFailedError(
                "no S3 storage: integrate s3-parameters (minio or s3-integrator)"
            )
        from mysql_backups import BackupRepository

        # Downloads for a restore go to the data volume (as the charm container
        # sees it), not to the container's small root filesystem.
        storages = self.model.storages[STORAGE]
        workdir = str(storages[0].location) if storages else None
        return BackupRepository(
            info,
            model=self.model.name,
            app=self.app.name,
            key=self._backup_key(create=create_key),
            trusted_keys=self._trusted_keys_for_action() if trusted else (),
            workdir=workdir,
        )

    def _trusted_keys_for_action(self) -> list[bytes]:
        try:
            return self._trusted_backup_keys()
        except ValueError as e:
            raise ActionFailedError(f"invalid config: {e}") from None

    def _run_action(self, event: ops.ActionEvent, action) -> None:
        """Run an action body; any failure becomes a clear action failure."""
        from mysql_backups import BackupError, UnknownKeyError

        try:
            event.set_results(action())
        except ActionFailedError as e:
            event.fail(str(e))
        except UnknownKeyError as e:
            event.fail(
                f"{e}. If it is the backup-key of the deployment that made it (juju "
                f"show-secret backup-key --reveal, there), put it in a user secret granted "
                f"to {self.app.name} and set {TRUSTED_KEYS_OPTION} to it (see the README)"
            )
        except BackupError as e:
            event.fail(str(e))
        except WorkloadError as e:
            event.fail(f"the workload failed: {e}")
        except Exception as e:  # an action must end with a message, not a traceback
            logger.exception("action %s failed", event.handle.kind)
            event.fail(f"unexpected error: {type(e).__name__}: {e}")

    def _on_create_backup(self, event: ops.ActionEvent) -> None:
        def create():
            server = self._ready_server()
            repo = self._backups(create_key=True)
            event.log("streaming the dump to S3")
            backup = repo.create(server)
            return {"backup-id": backup.id, "size": backup.size}

        self._run_action(event, create)

    def _on_list_backups(self, event: ops.ActionEvent) -> None:
        def list_backups():
            if not self.unit.is_leader():
                raise ActionFailedError("run this action on the leader unit (the primary)")
            repo = self._backups(trusted=True)
            backups = repo.list()
            rows = [f"{'backup-id':<24} {'size':>14}  {'signed':<6}  {'key':<8}  status"]
            rows += [
                f"{b.id:<24} {b.size:>14}  {'yes' if b.signed else 'no':<6}  "
                f"{repo.key_origin(b):<8}  {b.status}"
                for b in backups
            ]
            return {
                "backups": "\n".join(rows),
                "count": len(backups),
                "items": {
                    f"backup-{i}": {**b.to_dict(), "key": repo.key_origin(b)}
                    for i, b in enumerate(backups)
                },
            }

        self._run_action(event, list_backups)

    def _on_restore(self, event: ops.ActionEvent) -> None:
        def restore():
            backup_id = str(event.params.get("backup-id", "")).strip()
            if not backup_id:
                raise ActionFailedError("give backup-id=<id> (see list-backups)")
            server = self._ready_server()
            repo = self._backups(trusted=True)
            event.log(f"verifying backup {backup_id}")
            backup = repo.restore(server, backup_id)
            return {"backup-id": backup.id, "databases": ",".join(backup.databases)}

        self._run_action(event, restore)

    def _on_get_password(self, event: ops.ActionEvent) -> None:
        def get():
            key = self._password_key(event)
            if not self.unit.is_leader():
                raise ActionFailedError("run this action on the leader unit")
            try:
                content = self.model.get_secret(label=CREDENTIALS_LABEL).get_content(refresh=True)
            except ops.SecretNotFoundError:
                raise ActionFailedError("mysqld has not been set up yet") from None
            return {"username": event.params.get("username", "root"), "password": content[key]}

        self._run_action(event, get)

    def _on_set_password(self, event: ops.ActionEvent) -> None:
        def set_password():
            key = self._password_key(event)
            username = event.params.get("username", "root")
            password = event.params.get("password") or generate_password()
            if not 8 <= len(password) <= 64:
                raise ActionFailedError("password must be 8 to 64 characters")
            server = self._ready_server()
            secret = self.model.get_secret(label=CREDENTIALS_LABEL)
            content = dict(secret.get_content(refresh=True))
            server.set_password(username, password)
            content[key] = password
            # The server's own account object rewrites the charm's client option
            # file when the admin password changes, so later commands log in.
            secret.set_content(content)
            return {"username": username}

        self._run_action(event, set_password)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of one of our secrets (the admin credentials after
        # set-password, say) that no unit reads any more: old passwords go.
        if self.unit.is_leader():
            event.remove_revision()

    @staticmethod
    def _password_key(event: ops.ActionEvent) -> str:
        username = event.params.get("username", "root")
        if username not in PASSWORD_KEYS:
            raise ActionFailedError(f"username must be one of {', '.join(PASSWORD_KEYS)}")
        return PASSWORD_KEYS[username]
