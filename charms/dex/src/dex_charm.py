"""The dex charm: Dex as the platform's OIDC provider, its clients from the oauth relation."""

from __future__ import annotations

import dataclasses
import json
import logging
from urllib.parse import urlsplit

import ops
from database import DatabaseAnswerError, read_connection, request_written
from dex_server import (
    HTTP_PORT,
    ISSUER_PATH,
    LOG_LEVELS,
    SERVICE,
    DexDatabase,
    DexServer,
    DexSettings,
    render_config,
    service_url,
)
from identities import (
    AdminLogin,
    Connector,
    StaticUser,
    admin_login,
    generate_password,
    hash_password,
    is_bcrypt_hash,
    parse_connectors,
    parse_static_users,
    resolve_connectors,
)
from oauth_clients import (
    ROTATION_KEY,
    InvalidRegistrationError,
    OAuthClients,
    Registration,
    load_registrations_record,
    registrations_record,
)

from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import service_running
from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError, RouteRequirer
from kubeflow_interfaces.mysql_client import MySQLRequirer

logger = logging.getLogger(__name__)

CONTAINER = "dex"
OAUTH = "oauth"
ROUTE = "istio-ingress-route"
PEERS = "dex-peers"
DATABASE = "relational-db"
ADMIN_SECRET_LABEL = "admin-credentials"  # noqa: S105 - a label, not a password
# Peer app databag: the oauth clients the leader has issued credentials for,
# so the other units render the same static clients (and hear when to).
ISSUED_CLIENTS_KEY = "oauth-clients"
# Peer app databag: the admin user's secret, once the leader has made it.
ADMIN_SECRET_KEY = "admin-secret-id"  # noqa: S105 - a key name, not a secret
# Peer app databag: the registrations as the leader last read them, with the
# digest of the requirer data they were read from (see _registrations).
REGISTRATIONS_KEY = "oauth-registrations"
NO_LOGIN = "no way to log in: set connectors, static-users-secret-id or admin-username"


def issuer_from_url(url: str) -> str | None:
    """The issuer under a URL's scheme and host: <scheme>://<host>/dex."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}{ISSUER_PATH}"


def _check_issuer_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not hold credentials, a query or a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.path.rstrip("/") != ISSUER_PATH:
        raise ValueError(f"its path must be {ISSUER_PATH}, where the mesh routes Dex")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DexConfig:
    """The charm's config options, validated; errors name the option."""

    issuer_url: str = ""
    connectors: str = ""
    connectors_secret_id: ops.Secret | None = None
    static_users_secret_id: ops.Secret | None = None
    admin_username: str = "admin"
    log_level: str = "info"

    def __post_init__(self):
        if self.issuer_url.strip():
            try:
                _check_issuer_url(self.issuer_url.strip())
            except ValueError as e:
                raise ValueError(f"issuer-url: {e}") from None
        try:
            parse_connectors(self.connectors)
        except ValueError as e:
            raise ValueError(f"connectors: {e}") from None
        try:
            admin_login(self.admin_username)
        except ValueError as e:
            raise ValueError(f"admin-username: {e}") from None
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log-level: must be one of {', '.join(LOG_LEVELS)}")

    @property
    def issuer(self) -> str | None:
        """The issuer issuer-url sets, if it does."""
        url = self.issuer_url.strip()
        return issuer_from_url(url) if url else None

    @property
    def admin(self) -> AdminLogin | None:
        """The admin user's login, None when admin-username is empty."""
        return admin_login(self.admin_username)

    def parsed_connectors(self) -> tuple[Connector, ...]:
        """The connectors, placeholders not yet filled."""
        return parse_connectors(self.connectors)


def _hook_name() -> str:
    """The hook this process runs for, as Juju names it."""
    return ops.JujuContext.from_environ().hook_name


def _user_secret(option: str, secret: ops.Secret | None) -> dict[str, str] | None:
    """The content of a user secret named in config; ValueError names the option."""
    if secret is None:
        return None
    try:
        return secret.get_content(refresh=True)
    except ops.ModelError:  # not found, or not granted to this application
        raise ValueError(
            f"{option}: cannot read the secret; grant it to this application"
        ) from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Inputs:
    """What one hook knows from config, user secrets and the route."""

    config: DexConfig | None = None
    blocked: str | None = None
    connectors: tuple[Connector, ...] = ()
    static_users: tuple[StaticUser, ...] = ()
    admin: AdminLogin | None = None
    issuer: str | None = None
    database: DexDatabase | None = None
    # Why there is no database yet: Blocked (no relation, a bad answer) or Waiting.
    database_status: ops.StatusBase | None = None


class DexCharm(ops.CharmBase):
    """Dex under Pebble; oauth clients, connectors and users from relations and config."""

    # Whether the last full reconcile left this unit active. Every input but Dex itself
    # comes with an event of its own (config, relation and secret changes, leadership,
    # pebble-ready, checks), so an update-status on a settled leader looks only at
    # whether Dex runs and is ready.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._unit_active = False  # what this hook's unit status says
        self._container = self.unit.get_container(CONTAINER)
        self._server = DexServer(self._container)
        self._oauth = OAuthClients(self, OAUTH)
        # Dex serves under its issuer's path: the route keeps the path as it is.
        self._route = RouteRequirer(self, ROUTE, prefix=ISSUER_PATH, port=HTTP_PORT)
        # The library writes our request for a database (named after the
        # application) when the relation is created. It loads pydantic, so it
        # is built only while the request is not yet written; the answer is
        # read without it (database.py).
        # A settled unit's update-status has asked already (it was active).
        self._database_requirer: MySQLRequirer | None = None
        settled_update = self._settled.active and _hook_name() == "update-status"
        if not settled_update and self._database_request_pending():
            self._database_requirer = MySQLRequirer(self, DATABASE, self.app.name)
        self._inputs: _Inputs | None = None
        self._refused: list[str] | None = None
        self._dropped: list[str] = []
        # The admin secret and its content as this hook last read or wrote them.
        self._admin: tuple[ops.Secret | None, dict[str, str] | None] | None = None
        self._reread = False  # read the registrations again, not from the peer record

        on = self.on
        for event in (
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.update_status,
            on.secret_changed,
            on[CONTAINER].pebble_ready,
            on[CONTAINER].pebble_check_failed,
            on[CONTAINER].pebble_check_recovered,
            on[ROUTE].relation_created,
            on[ROUTE].relation_changed,
            on[ROUTE].relation_broken,
            on[OAUTH].relation_changed,
            on[PEERS].relation_changed,
            on[DATABASE].relation_changed,
            on[DATABASE].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on[OAUTH].relation_broken, self._on_oauth_relation_broken)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.get_admin_password_action, self._on_get_admin_password)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)
        framework.observe(on.collect_unit_status, self._note_settled)  # after the status

    # --- reconcile --------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase | None = None) -> None:
        """Bring Dex, its clients and the relations to what the inputs say."""
        if own_departure(self, event):
            # This unit is scaled away (a leader keeps its lease meanwhile):
            # its relations stay, with their clients, for the units that remain.
            logger.info("this unit is leaving: it leaves the clients to the units that stay")
            return
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        self._reconciled = True
        # New charm code may read the same registrations differently.
        self._reread = isinstance(event, ops.UpgradeCharmEvent)
        self._route.publish()
        if self._database_requirer is not None:
            # A leader elected after the relation was made has not asked yet.
            self._database_requirer.ensure_requested()
        inputs = self._read_inputs()
        self._inputs = inputs
        if inputs.config is None or inputs.blocked:
            # Bad config or an unreadable secret: leave everything as it is.
            return
        self.unit.set_ports(HTTP_PORT)
        admin_hash = self._admin_hash(inputs.admin)
        if inputs.issuer is None:
            return
        static_clients = self._reconcile_clients(inputs.issuer)
        if not self._container.can_connect():
            return
        if inputs.admin is not None and admin_hash is None:
            return  # the leader has not made the admin user yet
        if inputs.database is None:
            return  # no database to keep Dex's state in: Dex is left as it is
        static_users = list(inputs.static_users)
        if inputs.admin is not None and admin_hash is not None:
            static_users.insert(0, inputs.admin.static_user(admin_hash))
        settings = DexSettings(
            issuer=inputs.issuer,
            database=inputs.database,
            log_level=inputs.config.log_level,
            connectors=tuple(c.to_dex(inputs.issuer) for c in inputs.connectors),
            static_passwords=tuple(u.to_dex() for u in static_users),
            static_clients=tuple(static_clients),
        )
        self._server.configure(render_config(settings))

    def _nothing_drifted(self) -> bool:
        """On a settled leader: whether Dex still runs and is ready.

        Another unit reconciles in full: it runs Dex with the admin and client
        secrets the leader keeps, which may have changed.
        """
        if not self.unit.is_leader() or self.model.get_relation(DATABASE) is None:
            return False  # (a database relation gone blocks: its broken hook says so too)
        return bool(service_running(self._container, SERVICE)) and self._server.is_ready() is True

    def _on_oauth_relation_broken(self, event: ops.RelationBrokenEvent) -> None:
        if own_departure(self, event):
            return  # this unit is scaled away: the client stays for the units that remain
        if self.unit.is_leader():
            self._oauth.forget(event.relation)
            logger.info("removed the client secret of oauth relation %d", event.relation.id)
        self._reconcile(event)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of one of our secrets that no one tracks any more.
        if self.unit.is_leader():
            event.secret.remove_revision(event.revision)

    def _read_inputs(self) -> _Inputs:
        """Config, user secrets and the issuer as they are now; reads only."""
        try:
            config = self.load_config(DexConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {e}")
        try:
            values = _user_secret("connectors-secret-id", config.connectors_secret_id)
            try:
                connectors = resolve_connectors(config.parsed_connectors(), values)
            except ValueError as e:
                raise ValueError(f"connectors: {e}") from None
            static_users = self._static_users(config)
        except ValueError as e:
            return _Inputs(config=config, blocked=str(e))
        if not connectors and not static_users and config.admin is None:
            return _Inputs(config=config, blocked=NO_LOGIN)
        try:
            issuer = config.issuer or self._route_issuer()
        except InvalidRouteDataError as e:
            return _Inputs(config=config, blocked=f"{ROUTE}: {e}")
        database, database_status = self._read_database()
        return _Inputs(
            config=config,
            connectors=connectors,
            static_users=static_users,
            admin=config.admin,
            issuer=issuer,
            database=database,
            database_status=database_status,
        )

    def _database_request_pending(self) -> bool:
        """Whether the leader has yet to ask the related MySQL charm for a database."""
        relation = self.model.get_relation(DATABASE)
        return (
            relation is not None
            and self.unit.is_leader()
            and not request_written(relation, self.app)
        )

    def _read_database(self) -> tuple[DexDatabase | None, ops.StatusBase | None]:
        """Dex's database as the provider answered; else why there is none."""
        relation = self.model.get_relation(DATABASE)
        if relation is None:
            return None, ops.BlockedStatus(f"missing relation {DATABASE}")
        app = relation.app.name if relation.app else "the database"
        try:
            connection = read_connection(self.model, relation, self.app.name)
        except DatabaseAnswerError as e:
            return None, ops.BlockedStatus(f"{DATABASE}: {app}: {e}")
        if connection is None:
            return None, ops.WaitingStatus(f"waiting for {app} to create the database")
        return DexDatabase(
            host=connection.host,
            port=connection.port,
            name=connection.database,
            user=connection.username,
            password=connection.password,
        ), None

    @staticmethod
    def _static_users(config: DexConfig) -> tuple[StaticUser, ...]:
        option = "static-users-secret-id"
        content = _user_secret(option, config.static_users_secret_id)
        if content is None:
            return ()
        try:
            users = parse_static_users(content)
        except ValueError as e:
            raise ValueError(f"{option}: {e}") from None
        admin = config.admin
        if admin is not None:
            for user in users:
                if user.email.lower() == admin.email.lower():
                    raise ValueError(
                        f"{option}: user {user.email} is the admin user (see admin-username)"
                    )
        return users

    def _route_issuer(self) -> str | None:
        """The issuer under the route's URL; raises InvalidRouteDataError."""
        url = self._route.url
        return issuer_from_url(url) if url else None

    def _admin_secret(self) -> tuple[ops.Secret | None, dict[str, str] | None]:
        """Return the admin's secret and its content, where it exists and is whole.

        Read once a hook: the status check after the reconcile asks again.
        """
        if self._admin is None:
            self._admin = self._read_admin_secret()
        return self._admin

    def _read_admin_secret(self) -> tuple[ops.Secret | None, dict[str, str] | None]:
        try:
            secret = self.model.get_secret(label=ADMIN_SECRET_LABEL)
            content = secret.get_content(refresh=True)
        except ops.SecretNotFoundError:
            return None, None
        if "password" not in content or not is_bcrypt_hash(content.get("hash", "")):
            return secret, None
        return secret, content

    def _admin_hash(self, admin: AdminLogin | None) -> str | None:
        """The admin password's hash; the leader generates the password the first time."""
        if admin is None:
            return None
        secret, content = self._admin_secret()
        if content is not None:
            return content["hash"]
        if not self.unit.is_leader():
            return None
        password = generate_password()
        content = {"password": password, "hash": hash_password(password)}
        if secret is None:
            secret = self.app.add_secret(
                content,
                label=ADMIN_SECRET_LABEL,
                description="Dex admin user's password and its bcrypt hash",
            )
            # The other units wait for this secret: a peer databag change wakes them.
            peers = self.model.get_relation(PEERS)
            if peers is not None and secret.id:
                peers.data[self.app][ADMIN_SECRET_KEY] = secret.id
        else:
            secret.set_content(content)
        self._admin = None  # read it again, as Juju has it now
        logger.info("generated the password of the Dex admin user")
        return content["hash"]

    # --- oauth clients ----------------------------------------------------------------

    def _registrations(self) -> list[tuple[ops.Relation, Registration]]:
        """Every registered client Dex can serve; the refused ones are kept for status.

        Reading a registration needs the oauth library, whose import costs about
        as much as a settled hook: while the requirers' data is what the leader
        last read (the same digest), every unit takes the registrations from the
        leader's record in the peer databag instead.
        """
        relations = {relation.id: relation for relation in self._oauth.relations}
        digest = self._oauth.digest()
        record = None if self._reread else self._read_registrations(digest)
        if record is None:
            record = self._parse_registrations()
            if self.unit.is_leader():
                self._write_registrations(digest, *record)
        parsed, refused = record
        self._refused = refused
        self._dropped = [f"{r.app}: {r.dropped}" for r in parsed if r.dropped]
        return [(relations[r.relation_id], r) for r in parsed if r.relation_id in relations]

    def _parse_registrations(self) -> tuple[list[Registration], list[str]]:
        """Read every relation's registration with the library; the refused ones, why."""
        registrations: list[Registration] = []
        refused: list[str] = []
        for relation in self._oauth.relations:
            app = relation.app.name if relation.app else "?"
            try:
                registration = self._oauth.registration(relation)
            except InvalidRegistrationError as e:
                refused.append(f"{app}: {e}")
                continue
            if registration is not None:
                registrations.append(registration)
        return registrations, refused

    def _read_registrations(self, digest: str) -> tuple[list[Registration], list[str]] | None:
        """The leader's record of the registrations, if it was read from this very data."""
        relation = self.model.get_relation(PEERS)
        text = relation.data[self.app].get(REGISTRATIONS_KEY) if relation else None
        if not text:
            return None
        try:
            return load_registrations_record(text, digest)
        except ValueError:
            logger.warning("the peer record of oauth registrations does not parse")
            return None

    def _write_registrations(
        self, digest: str | None, parsed: list[Registration], refused: list[str]
    ) -> None:
        """Leader: record the registrations as read, for the next hooks; None removes it."""
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return
        databag = relation.data[self.app]
        if digest is None:
            if REGISTRATIONS_KEY in databag:
                del databag[REGISTRATIONS_KEY]
            return
        wanted = registrations_record(digest, parsed, refused)
        if databag.get(REGISTRATIONS_KEY) != wanted:
            databag[REGISTRATIONS_KEY] = wanted

    def _reconcile_clients(self, issuer: str) -> list[dict[str, object]]:
        """Dex's static clients; the leader issues credentials to new ones first."""
        relations = self._oauth.relations
        registrations = self._registrations() if relations else []
        secrets: dict[int, str] = {}
        if self.unit.is_leader():
            if relations:
                internal = service_url(self.app.name, self.model.name)
                self._oauth.publish_provider_info(issuer, internal)
            issued: list[dict[str, object]] = []
            for relation, registration in registrations:
                secrets[relation.id] = self._oauth.issue(relation, registration)
                entry: dict[str, object] = {
                    "relation-id": relation.id,
                    "client-id": registration.client_id,
                    "secret-id": relation.data[self.app].get("client_secret_id"),
                }
                if rotation := relation.data[self.app].get(ROTATION_KEY):
                    entry["rotation"] = rotation  # a rotated secret keeps its id: wake the others
                issued.append(entry)
            self._write_issued_clients(issued)
            if not relations:
                self._write_registrations(None, [], [])
        else:
            listed = self._read_issued_clients()
            for relation, registration in registrations:
                if listed.get(relation.id) != registration.client_id:
                    continue
                client_secret = self._oauth.client_secret(relation)
                if client_secret is not None:
                    secrets[relation.id] = client_secret
        return [
            registration.static_client(secrets[relation.id])
            for relation, registration in registrations
            if relation.id in secrets
        ]

    def _read_issued_clients(self) -> dict[int, str]:
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return {}
        try:
            entries = json.loads(relation.data[self.app].get(ISSUED_CLIENTS_KEY, "[]"))
            return {int(e["relation-id"]): str(e["client-id"]) for e in entries}
        except (ValueError, TypeError, KeyError):
            logger.warning("the peer list of issued oauth clients does not parse")
            return {}

    def _write_issued_clients(self, issued: list[dict[str, object]]) -> None:
        """Leader: list the clients issued, with their secrets' ids.

        A new secret (a new leader reissuing one) changes the list, so the
        other units hear of it.
        """
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return
        wanted = json.dumps(issued)
        databag = relation.data[self.app]
        if not issued:
            if ISSUED_CLIENTS_KEY in databag:
                del databag[ISSUED_CLIENTS_KEY]
        elif databag.get(ISSUED_CLIENTS_KEY) != wanted:
            databag[ISSUED_CLIENTS_KEY] = wanted

    # --- actions ----------------------------------------------------------------------

    def _on_get_admin_password(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run get-admin-password on the leader unit")
            return
        try:
            config = self.load_config(DexConfig)
        except ValueError as e:
            event.fail(f"invalid config: {e}")
            return
        admin = config.admin
        if admin is None:
            event.fail("there is no admin user: admin-username is empty")
            return
        _, content = self._admin_secret()
        if content is None:
            event.fail("the admin password is not generated yet; wait for the charm to settle")
            return
        event.set_results(
            {"username": admin.username, "email": admin.email, "password": content["password"]}
        )

    # --- status -----------------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # the active status the last full reconcile set stands
        status = self._unit_status()
        self._unit_active = isinstance(status, ops.ActiveStatus)
        event.add_status(status)

    def _note_settled(self, _: ops.CollectStatusEvent) -> None:
        # Only a hook that reconciled in full may say the unit is settled; any may say not.
        active = self._reconciled and self._unit_active and not self._refused
        if not self._still_settled and self._settled.active != active:
            self._settled.active = active

    def _unit_status(self) -> ops.StatusBase:
        inputs = self._current_inputs()
        if inputs.blocked:
            return ops.BlockedStatus(inputs.blocked)
        if inputs.database_status is not None:
            return inputs.database_status
        if inputs.issuer is None:
            return ops.WaitingStatus("waiting for the route's URL (or set issuer-url)")
        if not self._server.can_connect():
            return ops.WaitingStatus("waiting for Pebble in the dex container")
        if inputs.admin is not None and self._admin_secret()[1] is None:
            return ops.WaitingStatus("waiting for the leader to create the admin user")
        if not self._server.is_running():
            return ops.MaintenanceStatus("starting Dex")
        if self._server.is_ready() is False:
            return ops.WaitingStatus("waiting for Dex to be ready")
        return ops.ActiveStatus(inputs.issuer)

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        if self._refused is None and self._oauth.relations:
            self._registrations()
        if self._refused:
            event.add_status(
                ops.BlockedStatus(f"oauth client refused: {'; '.join(self._refused)}")
            )
        issued = sum(1 for r in self._oauth.relations if r.data[self.app].get("client_id"))
        message = f"{issued} oauth client(s)"
        if self._dropped:
            # Served without them: Dex refuses these scopes and grant types in requests.
            message += f"; not served by Dex, dropped: {'; '.join(self._dropped)}"
        event.add_status(ops.ActiveStatus(message))
