"""The minio charm: S3 buckets for the platform, from MinIO or an external store."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import re
from collections.abc import Collection
from typing import Literal
from urllib.parse import urlsplit

import minio_server
import minio_users
import ops
import profile_manifests
from minio_server import API_PORT, CONSOLE_PORT, READY_CHECK, BucketError, MinioServer
from minio_users import AdminError

from kubeflow_charms.lifecycle import own_departure
from kubeflow_charms.pebble import service_running
from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces import s3
from kubeflow_interfaces.kubernetes_manifests import InvalidManifestsError, ManifestsRequirer

logger = logging.getLogger(__name__)

CONTAINER = "minio"
RELATION = "s3-credentials"
SECRETS = "secrets"
POD_DEFAULTS = "pod-defaults"
ROOT_SECRET_LABEL = "root-credentials"  # noqa: S105 - a label, not a password
# The scoped MinIO users the charm made: name -> secret key and policy digest.
USERS_SECRET_LABEL = "scoped-users"  # noqa: S105 - a label, not a password
USERS_KEY = "users"
WAITING_FOR_NAMESPACES = "profile credentials wait for the dispatcher's namespace list"
MODES = ("server", "external")
URI_STYLES = ("path", "host")
_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----(?P<body>[A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----"
)
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_ca_chain(text: str) -> list[str]:
    """Split PEM text into certificates; ValueError when any block is not a certificate."""
    certificates: list[str] = []
    for match in _PEM_CERT.finditer(text):
        body = "".join(match.group("body").split())
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a certificate's base64 body does not decode") from None
        if not body:
            raise ValueError("a certificate block is empty")
        certificates.append(match.group(0).replace("\r\n", "\n"))
    leftover = _PEM_CERT.sub("", text).strip()
    if leftover or (text.strip() and not certificates):
        raise ValueError("must hold only PEM certificates (-----BEGIN CERTIFICATE----- blocks)")
    return certificates


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not hold credentials; use external-secret-id")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinioConfig:
    """The charm's config options, validated; errors name the option."""

    mode: Literal["server", "external"] = "server"
    external_endpoint: str = ""
    external_region: str = "us-east-1"
    external_uri_style: Literal["path", "host"] = "path"
    external_secret_id: ops.Secret | None = None
    external_ca_chain: str = ""
    root_secret_id: ops.Secret | None = None
    default_bucket: str = "kubeflow"
    external_profile_credentials: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode: must be 'server' or 'external', not {self.mode!r}")
        if self.external_endpoint.strip():
            try:
                _check_endpoint(self.external_endpoint.strip())
            except ValueError as e:
                raise ValueError(f"external-endpoint: {e}") from None
        if not _REGION.match(self.external_region):
            raise ValueError("external-region: must be a region name like us-east-1")
        if self.external_uri_style not in URI_STYLES:
            raise ValueError(
                f"external-uri-style: must be 'path' or 'host', not {self.external_uri_style!r}"
            )
        try:
            parse_ca_chain(self.external_ca_chain)
        except ValueError as e:
            raise ValueError(f"external-ca-chain: {e}") from None
        if not s3.is_valid_bucket_name(self.default_bucket):
            raise ValueError(
                f"default-bucket: {self.default_bucket!r} is not a valid S3 bucket name"
            )
        if self.mode == "external":
            if not self.external_endpoint.strip():
                raise ValueError("external-endpoint: required when mode is external")
            if self.external_secret_id is None:
                raise ValueError("external-secret-id: required when mode is external")

    @property
    def endpoint(self) -> str:
        """The external endpoint, without a trailing slash."""
        return self.external_endpoint.strip().rstrip("/")

    @property
    def ca_chain(self) -> list[str]:
        """The external store's CA certificates, one PEM each."""
        return parse_ca_chain(self.external_ca_chain)


def _user_credentials(option: str, secret: ops.Secret) -> s3.S3Credentials:
    """Access and secret key from a user secret named in config; ValueError names the option."""
    try:
        content = secret.get_content(refresh=True)
    except ops.ModelError:  # not found, or not granted to this application
        raise ValueError(
            f"{option}: cannot read the secret; grant it to this application"
        ) from None
    try:
        return s3.S3Credentials.from_content(content)
    except ValueError:
        raise ValueError(
            f"{option}: the secret needs the keys access-key and secret-key"
        ) from None


@dataclasses.dataclass(frozen=True)
class _Unanswered:
    """Why a relation gets no answer: an invalid request, a v0 requirer, or no request yet.

    `invalid` is a bucket name S3 refuses; `malformed`, any other key of the
    request that does not parse (`profiles-read` not "true" or "false").
    """

    kind: Literal["invalid", "malformed", "v0", "pending"]
    text: str


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What one hook knows: the config, the credentials to serve, what is missing."""

    config: MinioConfig | None
    credentials: s3.S3Credentials | None = None
    blocked: str | None = None
    waiting: str | None = None
    # Server mode: the app's root-credentials secret and what it holds.
    root_secret: ops.Secret | None = None
    stored_root: s3.S3Credentials | None = None


class MinioCharm(ops.CharmBase):
    """MinIO (or an external S3 store) for the Kubeflow platform."""

    # Whether the last full reconcile left this unit (and, on the leader, the application)
    # active. Every input but the workload comes with an event of its own (config,
    # relation and secret changes, leadership, pebble-ready), so an update-status on a
    # settled unit looks only at MinIO's service and check, and the number of units.
    _settled = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._settled.set_default(active=False)
        self._still_settled = False  # this update-status found nothing to do
        self._reconciled = False  # this hook reconciled in full
        self._unit_active = self._app_active = True  # what this hook's statuses say
        self._provider = s3.S3Provider(self, RELATION)
        self._container = self.unit.get_container(CONTAINER)
        self._server = MinioServer(self._container)
        self._manifests = {e: ManifestsRequirer(self, e) for e in (SECRETS, POD_DEFAULTS)}
        self._inputs: _Inputs | None = None
        # Set by a reconcile: why users could not be made or removed this hook.
        self._admin_problem: str | None = None
        for event in (
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_changed,
            self.on[CONTAINER].pebble_ready,
            self.on[RELATION].relation_joined,
            self.on[RELATION].relation_changed,
            self.on[SECRETS].relation_created,
            self.on[SECRETS].relation_changed,
            self.on[POD_DEFAULTS].relation_created,
        ):
            framework.observe(event, self._reconcile)
        for endpoint in (SECRETS, POD_DEFAULTS):
            framework.observe(self.on[endpoint].relation_broken, self._on_manifests_broken)
        framework.observe(self.on[RELATION].relation_broken, self._on_relation_broken)
        framework.observe(self.on.secret_remove, self._on_secret_remove)
        framework.observe(self.on.rotate_credentials_action, self._on_rotate_credentials)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.collect_app_status, self._on_collect_app_status)
        framework.observe(self.on.collect_unit_status, self._note_settled)  # after the status

    # --- reconcile ----------------------------------------------------------

    def _reconcile(self, event: ops.EventBase | None = None) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._settled.active:
            self._still_settled = self._nothing_drifted()
            if self._still_settled:
                return
        inputs = self._read_inputs()
        if inputs.config is None or inputs.blocked:
            # Bad config or an unreadable secret: leave the workload as it is.
            self._inputs = inputs
            return
        self._reconciled = True
        config = inputs.config
        if config.mode == "server" and self.unit.is_leader():
            inputs = self._store_root_credentials(inputs)
        self._inputs = inputs
        running = False
        if config.mode == "server":
            self.unit.set_ports(API_PORT, CONSOLE_PORT)
            if inputs.credentials and self._container.can_connect():
                self._server.configure(inputs.credentials)
                running = self._server.is_running()
        else:
            self.unit.set_ports()
            if self._container.can_connect():
                self._server.disable()
        if self.unit.is_leader() and inputs.credentials:
            if config.mode == "server":
                self._reconcile_server(config, inputs.credentials, running=running)
            else:
                self._reconcile_external(config, inputs.credentials)

    def _nothing_drifted(self) -> bool:
        """On a settled unit: whether MinIO runs and is ready, and runs on one unit alone."""
        if self.config.get("mode") != "server":
            return True  # nothing runs here: every input comes with an event
        if not (
            service_running(self._container, minio_server.SERVICE) and self._server.is_ready()
        ):
            return False
        return not (self.unit.is_leader() and self.app.planned_units() > 1)

    def _note_settled(self, _: ops.CollectStatusEvent) -> None:
        # Only a hook that reconciled in full may say the unit is settled; any may say not.
        active = self._reconciled and self._unit_active and self._app_active
        if not self._still_settled and self._settled.active != active:
            self._settled.active = active

    def _on_relation_broken(self, event: ops.RelationBrokenEvent) -> None:
        if own_departure(self, event):
            # This unit is scaled away (a leader keeps its lease meanwhile):
            # the relation stays for the units that remain, with its user.
            return
        # The relation is gone from the model in this hook: the reconcile
        # removes its MinIO user (or retries on a later hook if MinIO is down).
        if self.unit.is_leader():
            self._provider.revoke(event.relation)
        self._reconcile(event)

    def _on_manifests_broken(self, event: ops.RelationBrokenEvent) -> None:
        if own_departure(self, event):
            return  # this unit is scaled away: the relation stays for the others
        if self.unit.is_leader():
            self._manifests[event.relation.name].revoke(event.relation)
        if event.relation.name == SECRETS:
            self._reconcile(event)  # no profile keys are handed out: remove their users

    def _publish_manifests(
        self, endpoint: str, region: str, secrets: list[dict[str, object]]
    ) -> None:
        """Leader: the Secrets and the PodDefault for the profile namespaces (only changes)."""
        wanted = {
            SECRETS: secrets,
            POD_DEFAULTS: [profile_manifests.pod_default(endpoint, region)],
        }
        for endpoint_name, objects in wanted.items():
            if self._manifests[endpoint_name].publish(objects):
                logger.info("handed the resource dispatcher its %s", endpoint_name)

    # --- scoped users -------------------------------------------------------

    def _users(self) -> tuple[ops.Secret | None, dict[str, dict[str, str]]]:
        """The app secret listing the scoped users made, and what it lists."""
        try:
            secret = self.model.get_secret(label=USERS_SECRET_LABEL)
            content = secret.get_content(refresh=True)
        except ops.SecretNotFoundError:
            return None, {}
        try:
            users = json.loads(content.get(USERS_KEY, "{}"))
        except json.JSONDecodeError:
            users = None
        if not isinstance(users, dict) or not all(
            isinstance(v, dict) and v.get("key") and v.get("policy") for v in users.values()
        ):
            logger.warning(
                "the %s secret is malformed; its users are made again", USERS_SECRET_LABEL
            )
            return secret, {}
        return secret, users

    def _save_users(self, secret: ops.Secret | None, users: dict[str, dict[str, str]]) -> None:
        content = {USERS_KEY: json.dumps(users, sort_keys=True)}
        if secret is None:
            self.app.add_secret(
                content, label=USERS_SECRET_LABEL, description="Scoped MinIO users' keys"
            )
        else:
            secret.set_content(content)

    def _sync_users(
        self,
        root: s3.S3Credentials,
        wanted: dict[str, dict[str, object]],
        *,
        running: bool,
        keep: Collection[str] = (),
    ) -> dict[str, str]:
        """Leader, server mode: make MinIO hold exactly the wanted users and policies.

        Returns the secret key of every wanted user that MinIO holds with its
        wanted policy. Talks to MinIO only when something differs; a failure
        leaves the rest for the next hook, and what was done is recorded. A
        user named in `keep` that MinIO holds is left as it is, whatever its
        policy, and its key returned.
        """
        secret, users = self._users()
        digests = {name: minio_users.policy_digest(policy) for name, policy in wanted.items()}
        ready = {
            name: entry["key"]
            for name, entry in users.items()
            if digests.get(name) == entry["policy"] or name in keep
        }
        to_make = sorted(name for name in wanted if name not in ready)
        to_remove = sorted(name for name in users if name not in wanted and name not in keep)
        if not (to_make or to_remove):
            return ready
        if not running:
            self._admin_problem = "waiting for MinIO to run to change its users"
            return ready
        recorded = dict(users)
        try:
            admin = minio_users.connect(root, minio_server.LOCAL_ENDPOINT)
            for name in to_remove:
                minio_users.remove_user(admin, name)
                del recorded[name]
            if any(n.startswith(minio_users.PROFILE_USER_PREFIX) for n in to_make):
                # The bucket the profiles' policies name, before their keys go out.
                minio_server.ensure_bucket(root, minio_users.PROFILE_BUCKET)
            for name in to_make:
                key = users.get(name, {}).get("key") or minio_users.generate_secret_key()
                minio_users.ensure_user(admin, name, key, wanted[name])
                recorded[name] = {"key": key, "policy": digests[name]}
                ready[name] = key
        except (AdminError, BucketError) as e:
            logger.warning("MinIO users: %s", e)
            self._admin_problem = str(e)
        finally:
            if recorded != users:
                self._save_users(secret, recorded)
        return ready

    def _profile_scope(self) -> tuple[frozenset[str] | None, str | None]:
        """The namespaces to hand keys to (None: the dispatcher has not said), and a bad list."""
        if not self.model.relations[SECRETS]:
            return frozenset(), None
        try:
            return self._manifests[SECRETS].profile_namespaces(), None
        except InvalidManifestsError as e:
            return None, str(e)

    def _reconcile_server(
        self, config: MinioConfig, root: s3.S3Credentials, *, running: bool
    ) -> None:
        """Leader, server mode: a user per relation and per profile, then publish their keys."""
        answers: dict[int, tuple[ops.Relation, s3.S3ProviderInfo]] = {}
        wanted: dict[str, dict[str, object]] = {}
        grants: list[minio_users.ReadGrant] = []
        # Users left as they are: those of relations whose request does not parse.
        keep: set[str] = set()
        for relation in self._provider.relations:
            info, why = self._answer(relation, config)
            if why is not None and why.kind in ("invalid", "malformed"):
                keep.add(minio_users.relation_user(relation.id))
            if info is None:
                continue
            assert info.bucket is not None
            answers[relation.id] = (relation, info)
            wanted[minio_users.relation_user(relation.id)] = minio_users.relation_policy(
                info.bucket, info.path
            )
            # Answered, so its request parses: may every profile read this bucket/path?
            if self._provider.request(relation).profiles_read:
                grants.append(minio_users.ReadGrant(info.bucket, info.path or ""))
        namespaces, invalid = self._profile_scope()
        if invalid:
            # A bad namespace list changes nothing: the profiles keep their users and keys.
            namespaces = frozenset(
                name.removeprefix(minio_users.PROFILE_USER_PREFIX)
                for name in self._users()[1]
                if name.startswith(minio_users.PROFILE_USER_PREFIX)
            )
        for namespace in namespaces or ():
            wanted[minio_users.profile_user(namespace)] = minio_users.profile_policy(
                namespace, grants
            )
        if keep:
            # What a request that does not parse opens to the profiles is unknown: their
            # policies stay as they are until it is fixed or removed (new profiles get
            # what the other relations open).
            keep.update(n for n in wanted if n.startswith(minio_users.PROFILE_USER_PREFIX))
        ready = self._sync_users(root, wanted, running=running, keep=keep)
        self._publish_answers(answers, ready, root=root, running=running)
        if invalid:
            return
        profiles = []
        kserve = profile_manifests.kserve_annotations(self._service_url, minio_server.REGION)
        for namespace in sorted(namespaces or ()):
            name = minio_users.profile_user(namespace)
            if name in ready:
                credentials = s3.S3Credentials(access_key=name, secret_key=ready[name])
                profiles.append(
                    profile_manifests.credentials_secret(
                        credentials, namespace, annotations=kserve
                    )
                )
        self._publish_manifests(self._service_url, minio_server.REGION, profiles)

    def _publish_answers(
        self,
        answers: dict[int, tuple[ops.Relation, s3.S3ProviderInfo]],
        ready: dict[str, str],
        *,
        root: s3.S3Credentials,
        running: bool,
    ) -> None:
        """Publish each relation whose user MinIO holds, once its bucket exists."""
        for relation, info in answers.values():
            name = minio_users.relation_user(relation.id)
            if name not in ready:
                continue
            if not self._is_answered(relation, info):
                if not running:
                    continue
                assert info.bucket is not None
                try:
                    minio_server.ensure_bucket(root, info.bucket)
                except BucketError as e:
                    logger.warning("relation %d: %s", relation.id, e)
                    continue
            credentials = s3.S3Credentials(access_key=name, secret_key=ready[name])
            if self._provider.publish(relation, info, credentials):
                logger.info("answered relation %d with bucket %r", relation.id, info.bucket)

    def _reconcile_external(self, config: MinioConfig, credentials: s3.S3Credentials) -> None:
        """Leader, external mode: the operator's keys, as they are, to every relation."""
        for relation in self._provider.relations:
            info, _ = self._answer(relation, config)
            if info is not None and self._provider.publish(relation, info, credentials):
                logger.info("answered relation %d with bucket %r", relation.id, info.bucket)
        secrets: list[dict[str, object]] = []
        if config.external_profile_credentials:
            kserve = profile_manifests.kserve_annotations(
                config.endpoint,
                config.external_region,
                uri_style=config.external_uri_style,
                custom_ca=bool(config.external_ca_chain.strip()),
            )
            secrets = [profile_manifests.credentials_secret(credentials, annotations=kserve)]
        self._publish_manifests(config.endpoint, config.external_region, secrets)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of one of our (app-owned) secrets is tracked by no one.
        if self.unit.is_leader():
            event.secret.remove_revision(event.revision)

    def _read_inputs(self) -> _Inputs:
        """Config and credentials as they are now; reads only, writes nothing."""
        try:
            config = self.load_config(MinioConfig)
        except ValueError as e:
            return _Inputs(config=None, blocked=f"invalid config: {e}")
        if config.mode == "external":
            assert config.external_secret_id is not None  # checked by MinioConfig
            try:
                credentials = _user_credentials("external-secret-id", config.external_secret_id)
            except ValueError as e:
                return _Inputs(config=config, blocked=str(e))
            return _Inputs(config=config, credentials=credentials)
        secret, stored = self._root_secret()
        credentials = stored
        if self.unit.is_leader() and config.root_secret_id is not None:
            try:
                credentials = _user_credentials("root-secret-id", config.root_secret_id)
            except ValueError as e:
                return _Inputs(config=config, blocked=str(e))
            problem = minio_server.root_credentials_problem(credentials)
            if problem:
                return _Inputs(config=config, blocked=f"root-secret-id: {problem}")
        return _Inputs(
            config=config,
            credentials=credentials,
            waiting=None if credentials else "waiting for the root credentials",
            root_secret=secret,
            stored_root=stored,
        )

    def _root_secret(self) -> tuple[ops.Secret | None, s3.S3Credentials | None]:
        """Return the app's root-credentials secret and its content, where they exist."""
        try:
            secret = self.model.get_secret(label=ROOT_SECRET_LABEL)
            content = secret.get_content(refresh=True)
        except ops.SecretNotFoundError:
            return None, None
        try:
            return secret, s3.S3Credentials.from_content(content)
        except ValueError:
            logger.warning("the %s secret is malformed; it will be replaced", ROOT_SECRET_LABEL)
            return secret, None

    def _store_root_credentials(self, inputs: _Inputs) -> _Inputs:
        """Leader: make the root secret hold the user's credentials, or generated ones."""
        wanted = inputs.credentials or minio_server.generate_credentials()
        secret = inputs.root_secret
        if secret is None:
            secret = self.app.add_secret(
                wanted.dump(), label=ROOT_SECRET_LABEL, description="MinIO root credentials"
            )
            logger.info("created the MinIO root credentials secret")
        elif inputs.stored_root != wanted:
            secret.set_content(wanted.dump())
            logger.info("updated the MinIO root credentials secret")
        return dataclasses.replace(
            inputs, credentials=wanted, waiting=None, root_secret=secret, stored_root=wanted
        )

    def _answer(
        self, relation: ops.Relation, config: MinioConfig
    ) -> tuple[s3.S3ProviderInfo | None, _Unanswered | None]:
        """Return what to publish on a relation, or None and why it cannot be answered."""
        app = relation.app.name if relation.app else "?"
        speaks = self._provider.requirer_format(relation)
        if speaks == "none":
            return None, _Unanswered("pending", app)
        if speaks == "v0":
            return None, _Unanswered("v0", app)
        try:
            request = self._provider.request(relation)
        except s3.InvalidS3DataError as e:
            asked = relation.data[relation.app] if relation.app else {}
            if "bucket" in e.keys:
                return None, _Unanswered("invalid", f"{app} asked for bucket {asked['bucket']!r}")
            written = ", ".join(f"{key} {asked.get(key, '')!r}" for key in e.keys)
            if s3.PROFILES_READ_KEY in e.keys:
                written += f' ({s3.PROFILES_READ_KEY} is "true" or "false")'
            return None, _Unanswered("malformed", f"{app} wrote {written}")
        bucket = request.bucket or config.default_bucket
        if config.mode == "server":
            data = s3.S3ProviderInfo(
                bucket=bucket,
                path=request.path or None,
                endpoint=self._service_url,
                region=minio_server.REGION,
                s3_uri_style=minio_server.URI_STYLE,
            )
        else:
            data = s3.S3ProviderInfo(
                bucket=bucket,
                path=request.path or None,
                endpoint=config.endpoint,
                region=config.external_region,
                s3_uri_style=config.external_uri_style,
                tls_ca_chain=tuple(config.ca_chain) or None,
            )
        return data, None

    def _is_answered(self, relation: ops.Relation, wanted: s3.S3ProviderInfo) -> bool:
        """Whether this relation already has this bucket on this endpoint published."""
        ours = relation.data[self.app]
        return (
            "secret-extra" in ours
            and ours.get("bucket") == wanted.bucket
            and ours.get("path") == wanted.path
            and ours.get("endpoint") == wanted.endpoint
        )

    @property
    def _service_url(self) -> str:
        return f"http://{self.app.name}.{self.model.name}.svc.cluster.local:{API_PORT}"

    # --- actions ------------------------------------------------------------

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run rotate-credentials on the leader unit")
            return
        try:
            config = self.load_config(MinioConfig)
        except ValueError as e:
            event.fail(f"invalid config: {e}")
            return
        if config.mode != "server":
            event.fail(
                "the keys exist in server mode only; in external mode, rotate "
                "the external store's keys and update the secret in external-secret-id"
            )
            return
        root_secret, root = self._root_secret()
        if root_secret is None or root is None:
            event.fail("there are no root credentials yet; wait for the charm to settle")
            return
        if not self._container.can_connect():
            event.fail("the minio container is not reachable yet; try again later")
            return
        users_secret, users = self._users()
        if users and not self._server.is_running():
            event.fail("MinIO is not running yet; try again later")
            return
        rotated = dict(users)
        try:
            admin = minio_users.connect(root, minio_server.LOCAL_ENDPOINT) if users else None
            for name in sorted(users):
                assert admin is not None
                key = minio_users.generate_secret_key()
                minio_users.set_key(admin, name, key)
                rotated[name] = {**users[name], "key": key}
        except AdminError as e:
            done = sum(rotated[n]["key"] != users[n]["key"] for n in users)
            if done:
                self._save_users(users_secret, rotated)
                self._inputs = None
                self._reconcile()  # hand out the keys that did change
            event.fail(f"rotated {done} of {len(users)} users' keys, then: {e}; run it again")
            return
        if rotated != users:
            self._save_users(users_secret, rotated)
        rotate_root = config.root_secret_id is None
        if rotate_root:
            root_secret.set_content(minio_server.generate_credentials().dump())
        self._inputs = None
        self._reconcile()  # restarts MinIO on new root keys, hands out the new user keys
        relations = {r.id: r for r in self._provider.relations}
        updated = [
            f"{relation.app.name if relation.app else '?'} ({RELATION}:{relation.id})"
            for rid, relation in sorted(relations.items())
            if minio_users.relation_user(rid) in rotated
        ]
        profiles = sorted(
            name.removeprefix(minio_users.PROFILE_USER_PREFIX)
            for name in rotated
            if name.startswith(minio_users.PROFILE_USER_PREFIX)
        )
        logger.info(
            "rotated %d scoped users' keys%s",
            len(rotated),
            " and the MinIO root credentials" if rotate_root else "",
        )
        event.set_results(
            {
                "rotated-root": "true" if rotate_root else "false (set by root-secret-id)",
                "restarted": "true" if rotate_root else "false",
                "updated-relations": ", ".join(updated) if updated else "none",
                "updated-profiles": ", ".join(profiles) if profiles else "none",
            }
        )

    # --- status -------------------------------------------------------------

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

    def _unit_status(self) -> ops.StatusBase:
        inputs = self._current_inputs()
        if inputs.blocked:
            return ops.BlockedStatus(inputs.blocked)
        assert inputs.config is not None
        if inputs.config.mode == "external":
            return ops.ActiveStatus(f"external S3 at {inputs.config.endpoint}")
        if not self._server.can_connect():
            return ops.WaitingStatus("waiting for Pebble in the minio container")
        if inputs.waiting:
            return ops.WaitingStatus(inputs.waiting)
        if not self._server.is_running():
            return ops.MaintenanceStatus("starting MinIO")
        if not self._server.is_ready():
            return ops.WaitingStatus(f"MinIO is not ready yet (check {READY_CHECK})")
        return ops.ActiveStatus(self._service_url)

    def _tally_relations(self, config: MinioConfig) -> tuple[dict[str, list[str]], list[str]]:
        """The relations not answered, by why, and those still being prepared."""
        unanswered: dict[str, list[str]] = {
            "invalid": [],
            "malformed": [],
            "v0": [],
            "pending": [],
        }
        pending: list[str] = []
        for relation in self._provider.relations:
            wanted, why = self._answer(relation, config)
            if why is not None:
                unanswered[why.kind].append(why.text)
            elif wanted is not None and not self._is_answered(relation, wanted):
                app = relation.app.name if relation.app else "?"
                pending.append(f"{wanted.bucket!r} for {app}")
        return unanswered, pending

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self._still_settled:
            return  # as the unit's: the last full reconcile's status stands
        add_leader_unit_status(event, self._on_collect_unit_status)
        statuses = self._app_statuses()
        self._app_active = all(isinstance(s, ops.ActiveStatus) for s in statuses)
        for status in statuses:
            event.add_status(status)

    def _app_statuses(self) -> list[ops.StatusBase]:
        inputs = self._current_inputs()
        if inputs.blocked:
            return [ops.BlockedStatus(inputs.blocked)]
        out: list[ops.StatusBase] = []
        config = inputs.config
        assert config is not None
        if config.mode == "server" and self.app.planned_units() > 1:
            out.append(ops.BlockedStatus("server mode runs one unit: scale the application to 1"))
        unanswered, pending = self._tally_relations(config)
        blocked: list[str] = []
        if unanswered["invalid"]:
            blocked.append(f"invalid bucket name: {'; '.join(unanswered['invalid'])}")
        if unanswered["malformed"]:
            blocked.append(f"{RELATION}: malformed request: {'; '.join(unanswered['malformed'])}")
        if unanswered["v0"]:
            apps = ", ".join(unanswered["v0"])
            uses = "uses" if len(unanswered["v0"]) == 1 else "use"
            blocked.append(
                f"{RELATION}: {apps} {uses} the s3 v0 interface, which needs keys in clear "
                "in the databag; use an s3 v1 requirer"
            )
        # In server mode each profile gets keys of its own, once the dispatcher lists them.
        server = config.mode == "server"
        namespaces, invalid = self._profile_scope() if server else (frozenset(), None)
        if invalid:
            blocked.append(f"{SECRETS}: {invalid}")
        if blocked:
            out.append(ops.BlockedStatus("; ".join(blocked)))
        if self._admin_problem:
            out.append(
                ops.WaitingStatus(f"MinIO users: {self._admin_problem}; retrying on the next hook")
            )
        if pending:
            out.append(ops.WaitingStatus(f"preparing bucket {', '.join(pending)}"))
        if unanswered["pending"]:
            apps = ", ".join(unanswered["pending"])
            out.append(ops.WaitingStatus(f"waiting for the s3 request of {apps}"))
        served = len(self._provider.relations) - sum(map(len, unanswered.values())) - len(pending)
        message = f"{served} bucket request(s) served"
        if namespaces is None and not invalid:
            message += f"; {WAITING_FOR_NAMESPACES}"
        out.append(ops.ActiveStatus(message))
        return out
