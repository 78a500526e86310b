#!/usr/bin/env python3
"""The minio charm: S3 buckets for the platform, from MinIO or an external store."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import re
from typing import Literal
from urllib.parse import urlsplit

import minio_server
import ops
import profile_manifests
from minio_server import API_PORT, CONSOLE_PORT, BucketError, MinioServer

from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces import s3
from kubeflow_interfaces.kubernetes_manifests import ManifestsRequirer

logger = logging.getLogger(__name__)

CONTAINER = "minio"
RELATION = "s3-credentials"
SECRETS = "secrets"
POD_DEFAULTS = "pod-defaults"
ROOT_SECRET_LABEL = "root-credentials"  # noqa: S105 - a label, not a password
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
    """Why a relation gets no answer: an invalid request, a v0 requirer, or no request yet."""

    kind: Literal["invalid", "v0", "pending"]
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

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._provider = s3.S3Provider(self, RELATION)
        self._container = self.unit.get_container(CONTAINER)
        self._server = MinioServer(self._container)
        self._manifests = {e: ManifestsRequirer(self, e) for e in (SECRETS, POD_DEFAULTS)}
        self._inputs: _Inputs | None = None
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

    # --- reconcile ----------------------------------------------------------

    def _reconcile(self, _: ops.EventBase | None = None) -> None:
        inputs = self._read_inputs()
        if inputs.config is None or inputs.blocked:
            # Bad config or an unreadable secret: leave the workload as it is.
            self._inputs = inputs
            return
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
            self._reconcile_relations(config, inputs.credentials, running=running)
            self._publish_manifests(config, inputs.credentials)

    def _on_relation_broken(self, event: ops.RelationBrokenEvent) -> None:
        if self.unit.is_leader():
            self._provider.revoke(event.relation)
        self._reconcile(event)

    def _on_manifests_broken(self, event: ops.RelationBrokenEvent) -> None:
        if self.unit.is_leader():
            self._manifests[event.relation.name].revoke(event.relation)

    def _publish_manifests(self, config: MinioConfig, credentials: s3.S3Credentials) -> None:
        """Leader: the Secret and the PodDefault for every profile namespace (only changes)."""
        if config.mode == "server":
            endpoint, region = self._service_url, minio_server.REGION
        else:
            endpoint, region = config.endpoint, config.external_region
        wanted = {
            SECRETS: [profile_manifests.credentials_secret(credentials)],
            POD_DEFAULTS: [profile_manifests.pod_default(endpoint, region)],
        }
        for endpoint_name, objects in wanted.items():
            if self._manifests[endpoint_name].publish(objects):
                logger.info("handed the resource dispatcher its %s", endpoint_name)

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

    def _reconcile_relations(
        self, config: MinioConfig, credentials: s3.S3Credentials, *, running: bool
    ) -> None:
        for relation in self._provider.relations:
            wanted, _ = self._answer(relation, config)
            if wanted is None:
                continue
            if config.mode == "server" and not self._is_answered(relation, wanted):
                if not running:
                    continue
                assert wanted.bucket is not None
                try:
                    minio_server.ensure_bucket(credentials, wanted.bucket)
                except BucketError as e:
                    logger.warning("relation %d: %s", relation.id, e)
                    continue
            if self._provider.publish(relation, wanted, credentials):
                logger.info("answered relation %d with bucket %r", relation.id, wanted.bucket)

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
        except s3.InvalidS3DataError:
            asked = relation.data[relation.app].get("bucket", "") if relation.app else ""
            return None, _Unanswered("invalid", f"{app} asked for bucket {asked!r}")
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
                "the root credentials exist in server mode only; in external mode, rotate "
                "the external store's keys and update the secret in external-secret-id"
            )
            return
        if config.root_secret_id is not None:
            event.fail(
                "the root credentials come from the user secret in root-secret-id: "
                "rotate that secret instead (juju update-secret)"
            )
            return
        secret, _ = self._root_secret()
        if secret is None:
            event.fail("there are no root credentials yet; wait for the charm to settle")
            return
        if not self._container.can_connect():
            event.fail("the minio container is not reachable yet; try again later")
            return
        credentials = minio_server.generate_credentials()
        secret.set_content(credentials.dump())
        self._server.configure(credentials)
        self._provider.update_credentials(credentials)
        self._publish_manifests(config, credentials)
        updated = [
            f"{relation.app.name if relation.app else '?'} ({RELATION}:{relation.id})"
            for relation in self._provider.relations
            if "secret-extra" in relation.data[self.app]
        ]
        self._inputs = None
        logger.info("rotated the MinIO root credentials (%d relations updated)", len(updated))
        event.set_results(
            {
                "restarted": "true",
                "updated-relations": ", ".join(updated) if updated else "none",
            }
        )

    # --- status -------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        assert inputs.config is not None
        if inputs.config.mode == "external":
            event.add_status(ops.ActiveStatus(f"external S3 at {inputs.config.endpoint}"))
            return
        if not self._container.can_connect():
            event.add_status(ops.WaitingStatus("waiting for Pebble in the minio container"))
            return
        if inputs.waiting:
            event.add_status(ops.WaitingStatus(inputs.waiting))
            return
        if not self._server.is_running():
            event.add_status(ops.MaintenanceStatus("starting MinIO"))
            return
        event.add_status(ops.ActiveStatus(self._service_url))

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        inputs = self._current_inputs()
        if inputs.blocked:
            event.add_status(ops.BlockedStatus(inputs.blocked))
            return
        config = inputs.config
        assert config is not None
        if config.mode == "server" and self.app.planned_units() > 1:
            event.add_status(
                ops.BlockedStatus("server mode runs one unit: scale the application to 1")
            )
        unanswered: dict[str, list[str]] = {"invalid": [], "v0": [], "pending": []}
        pending: list[str] = []
        for relation in self._provider.relations:
            wanted, why = self._answer(relation, config)
            if why is not None:
                unanswered[why.kind].append(why.text)
            elif wanted is not None and not self._is_answered(relation, wanted):
                app = relation.app.name if relation.app else "?"
                pending.append(f"{wanted.bucket!r} for {app}")
        blocked: list[str] = []
        if unanswered["invalid"]:
            blocked.append(f"invalid bucket name: {'; '.join(unanswered['invalid'])}")
        if unanswered["v0"]:
            apps = ", ".join(unanswered["v0"])
            uses = "uses" if len(unanswered["v0"]) == 1 else "use"
            blocked.append(
                f"{RELATION}: {apps} {uses} the s3 v0 interface, which needs keys in clear "
                "in the databag; use an s3 v1 requirer"
            )
        if blocked:
            event.add_status(ops.BlockedStatus("; ".join(blocked)))
        if pending:
            event.add_status(ops.WaitingStatus(f"preparing bucket {', '.join(pending)}"))
        if unanswered["pending"]:
            apps = ", ".join(unanswered["pending"])
            event.add_status(ops.WaitingStatus(f"waiting for the s3 request of {apps}"))
        served = len(self._provider.relations) - sum(map(len, unanswered.values())) - len(pending)
        event.add_status(ops.ActiveStatus(f"{served} bucket request(s) served"))


if __name__ == "__main__":  # pragma: nocover
    ops.main(MinioCharm)
