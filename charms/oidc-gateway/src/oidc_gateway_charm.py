"""The oidc-gateway charm: the mesh's login, oauth2-proxy with Dex or an external OIDC provider."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Literal
from urllib.parse import urlsplit

import ops
from forward_auth_provider import ForwardAuthProvider, InvalidRequestError, requested_apps
from oauth2_proxy import (
    CALLBACK_PATH,
    PORT,
    PROXY_PREFIX,
    OAuth2Proxy,
    Provider,
    ProxySettings,
    generate_cookie_secret,
    is_valid_cookie_secret,
)
from oauth_registration import (
    ClientSecretUnavailableError,
    DexRegistration,
    ProviderDataError,
    RegistrationError,
)

from kubeflow_charms.status import add_leader_unit_status, collected_once
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError, RouteRequirer

logger = logging.getLogger(__name__)

CONTAINER = "oauth2-proxy"
OAUTH = "oauth"
ROUTE = "istio-ingress-route"
FORWARD_AUTH = "forward-auth"
COOKIE_SECRET_LABEL = "cookie-secret"  # noqa: S105 - a label, not a password
COOKIE_SECRET_KEY = "cookie-secret"  # noqa: S105 - a key name
CLIENT_SECRET_KEY = "client-secret"  # noqa: S105 - a key name

# Headers the user-id and groups headers must not replace: those the mesh
# sends with each check (the session cookie or a bearer token, where the
# request was going), and those of a denial that reach the browser (the
# redirect to the identity provider and the CSRF cookie set with it).
RESERVED_HEADERS = frozenset(
    (
        "authorization",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "content-type",
        "location",
        "set-cookie",
        "host",
        "content-length",
    )
)

NO_PROVIDER = (
    "no identity provider: relate oauth (dex) or set issuer-url, client-id and client-secret-id"
)

_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_SCOPE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
# A DNS name of labels of at most 63 characters; a leading dot takes in its subdomains.
_DOMAIN = re.compile(
    r"\.?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
# Printable ASCII without spaces: every UI takes it as it is (a flag, a header value).
_USER_PREFIX = re.compile(r"^[\x21-\x7e]{0,64}$")


def _check_header(option: str, value: str) -> None:
    if not _HEADER.match(value):
        raise ValueError(f"{option}: {value!r} is not a header name (letters, digits, dashes)")
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{option}: {value!r} is a header the gateway needs for itself")


def _check_url(option: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{option}: must be an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{option}: must not hold credentials, a query or a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{option}: has an invalid port") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The charm's config options, validated; errors name the option."""

    userid_header: str = "kubeflow-userid"
    userid_prefix: str = ""
    userid_claim: str = "email"
    groups_header: str = "kubeflow-groups"
    email_domains: str = "*"
    scopes: str = "openid profile email groups"
    issuer_url: str = ""
    client_id: str = ""
    client_secret_id: ops.Secret | None = None
    accept_bearer_tokens: bool = True
    extra_jwt_issuers: str = ""

    def __post_init__(self):
        _check_header("userid-header", self.userid_header)
        if not _USER_PREFIX.match(self.userid_prefix):
            raise ValueError(
                "userid-prefix: must be at most 64 printable ASCII characters without spaces"
            )
        if "*" in self.userid_prefix:
            # Istio reads a leading or trailing `*` in a match value as a
            # wildcard: a prefix ending in one would let every profile's
            # policy match any user id.
            raise ValueError("userid-prefix: must not contain *, which Istio reads as a wildcard")
        if not _CLAIM.match(self.userid_claim):
            raise ValueError(f"userid-claim: {self.userid_claim!r} is not a claim name")
        if self.groups_header:
            _check_header("groups-header", self.groups_header)
            if self.groups_header.lower() == self.userid_header.lower():
                raise ValueError("groups-header: must differ from userid-header")
        if self.domains != ("*",):
            bad = [d for d in self.domains if len(d) > 253 or not _DOMAIN.fullmatch(d)]
            if bad or not self.domains:
                shown = f" ({bad[0][:64]!r} is not a domain)" if bad else ""
                raise ValueError(f"email-domains: must be * or domains separated by commas{shown}")
        if not all(_SCOPE.match(s) for s in self.scope_list):
            raise ValueError("scopes: must be scope names separated by spaces")
        if "openid" not in self.scope_list:
            raise ValueError("scopes: must include openid")
        self._check_external()
        self._check_jwt_issuers()

    def _check_jwt_issuers(self) -> None:
        entries = self.jwt_issuers
        if entries and not self.accept_bearer_tokens:
            raise ValueError("extra-jwt-issuers: set only with accept-bearer-tokens=true")
        for entry in entries:
            issuer, eq, audience = entry.partition("=")
            if not eq or not issuer or not audience:
                raise ValueError(
                    f"extra-jwt-issuers: {entry[:80]!r} is not issuer=audience "
                    "(entries separated by commas)"
                )
            _check_url("extra-jwt-issuers", issuer)
            if len(audience) > 255 or not _PRINTABLE.match(audience):
                raise ValueError(f"extra-jwt-issuers: the audience of {issuer!r} is not text")

    @property
    def jwt_issuers(self) -> tuple[str, ...]:
        """`extra-jwt-issuers` as its entries, without blanks."""
        parts = self.extra_jwt_issuers.replace(",", " ").split()
        return tuple(dict.fromkeys(parts))

    def _check_external(self) -> None:
        given = {
            "issuer-url": bool(self.issuer),
            "client-id": bool(self.client_id.strip()),
            "client-secret-id": self.client_secret_id is not None,
        }
        if any(given.values()) and not all(given.values()):
            missing = next(name for name, present in given.items() if not present)
            raise ValueError(f"{missing}: set issuer-url, client-id and client-secret-id together")
        if self.issuer:
            _check_url("issuer-url", self.issuer)
        if self.client_id and (
            not _PRINTABLE.match(self.client_id.strip())
            or " " in self.client_id.strip()
            or len(self.client_id) > 255
        ):
            raise ValueError("client-id: must be printable text without spaces")

    @property
    def external(self) -> bool:
        """Whether an external OIDC provider is configured."""
        return bool(self.issuer)

    @property
    def issuer(self) -> str:
        """The external provider's issuer URL, as given (its tokens must match it exactly)."""
        return self.issuer_url.strip()

    @property
    def domains(self) -> tuple[str, ...]:
        """The e-mail domains allowed to log in, as given between commas."""
        if not self.email_domains.strip():
            return ()
        return tuple(d.strip() for d in self.email_domains.split(","))

    @property
    def scope_list(self) -> tuple[str, ...]:
        """The scopes asked for at login."""
        return tuple(self.scopes.split())

    @property
    def scope(self) -> str:
        """The scopes as OAuth writes them: separated by single spaces."""
        return " ".join(self.scope_list)


def _read_client_secret(secret: ops.Secret) -> str:
    """The external provider's client secret from the user secret; ValueError names the option."""
    try:
        content = secret.get_content(refresh=True)
    except ops.ModelError:  # not found, or not granted to this application
        raise ValueError(
            "client-secret-id: cannot read the secret; grant it to this application"
        ) from None
    value = content.get(CLIENT_SECRET_KEY, "").strip()
    if not value:
        raise ValueError(f"client-secret-id: the secret needs the key {CLIENT_SECRET_KEY}")
    return value


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What one hook knows, read without writing anything and without the oauth library."""

    config: GatewayConfig | None = None
    blocked: str | None = None
    """What the operator must fix before anything else can happen."""
    source: Literal["dex", "external"] | None = None
    provider_name: str = ""
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    """The external provider's client secret (with Dex it is read through the library)."""
    origin: str | None = None
    """`scheme://host[:port]` of the route's URL: where the login callback is."""
    cookie_secret: str | None = dataclasses.field(default=None, repr=False)
    waiting: tuple[str, ...] = ()


class OidcGatewayCharm(ops.CharmBase):
    """oauth2-proxy as the mesh's external authorization service."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._container = self.unit.get_container(CONTAINER)
        self._proxy = OAuth2Proxy(self._container)
        self._dex = DexRegistration(self, OAUTH)
        # The proxy's own pages (sign-in, the login callback), kept as they are.
        self._route = RouteRequirer(self, ROUTE, prefix=PROXY_PREFIX, port=PORT)
        self._forward_auth = ForwardAuthProvider(self, FORWARD_AUTH)
        self._inputs: _Inputs | None = None
        # Set when this hook found the proxy serving: its status reuses the answer.
        self._found_serving = False
        self._provider_problem: ops.StatusBase | None = None

        on = self.on
        for event in (
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on.update_status,
            on.secret_changed,
            on[CONTAINER].pebble_ready,
            on[OAUTH].relation_created,
            on[OAUTH].relation_changed,
            on[OAUTH].relation_broken,
            on[ROUTE].relation_created,
            on[ROUTE].relation_changed,
            on[ROUTE].relation_broken,
            on[FORWARD_AUTH].relation_created,
            on[FORWARD_AUTH].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.rotate_secrets_action, self._on_rotate_secrets)
        framework.observe(on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(on.collect_app_status, self._on_collect_app_status)

    # --- reconcile ------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.UpdateStatusEvent) and self._serving():
            # No input changes without an event of its own; only a unit that is
            # not serving yet (a non-leader that has not seen the cookie secret:
            # Juju says nothing when a secret is created) needs another look.
            return
        inputs = self._read_inputs()
        self._inputs = inputs
        config = inputs.config
        if config is None:
            return  # invalid config: leave the workload and the relations as they are
        if self.unit.is_leader():
            self._route.publish()
            self._publish_forward_auth(config)
            inputs = self._inputs = self._ensure_cookie_secret(inputs)
        self.unit.set_ports(PORT)
        if inputs.blocked or inputs.origin is None:
            return
        provider = self._provider(config, inputs)
        if provider is None or inputs.cookie_secret is None:
            return
        if not self._container.can_connect():
            return
        self._proxy.configure(
            self._settings(config, inputs.origin, inputs.cookie_secret, provider)
        )

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        # An old revision of the cookie secret that no unit reads any more.
        if self.unit.is_leader():
            event.secret.remove_revision(event.revision)

    def _serving(self) -> bool:
        self._found_serving = self._container.can_connect() and self._proxy.is_running()
        return self._found_serving

    def _read_inputs(self) -> _Inputs:
        """Config, identity provider, route and cookie key as they are now; writes nothing."""
        try:
            config = self.load_config(GatewayConfig)
        except ValueError as e:
            return _Inputs(blocked=f"invalid config: {e}")
        oauth = self._dex.relation
        if oauth is not None and config.external:
            app = oauth.app.name if oauth.app else "oauth"
            return _Inputs(
                config=config,
                blocked=f"two identity providers, {app} (oauth relation) and issuer-url: "
                "remove the relation, or unset issuer-url, client-id and client-secret-id",
            )
        if oauth is None and not config.external:
            return _Inputs(config=config, blocked=NO_PROVIDER)
        if config.external:
            assert config.client_secret_id is not None  # checked by GatewayConfig
            try:
                client_secret = _read_client_secret(config.client_secret_id)
            except ValueError as e:
                return _Inputs(config=config, blocked=str(e))
            source = "external"
            provider_name = urlsplit(config.issuer).hostname or config.issuer
        else:
            assert oauth is not None
            client_secret = None
            source = "dex"
            provider_name = oauth.app.name if oauth.app else "dex"
        origin, problem, waiting = self._route_origin()
        if problem:
            return _Inputs(config=config, blocked=problem)
        waits = [waiting] if waiting else []
        cookie_secret = self._cookie_secret()[1]
        if cookie_secret is None and not self.unit.is_leader():
            waits.append("waiting for the leader to create the cookie secret")
        if oauth is not None:
            waits += self._dex_waits(oauth)
        return _Inputs(
            config=config,
            source=source,
            provider_name=provider_name,
            client_secret=client_secret,
            origin=origin,
            cookie_secret=cookie_secret,
            waiting=tuple(waits),
        )

    def _route_origin(self) -> tuple[str | None, str | None, str | None]:
        """The route URL's origin, or what blocks it, or what it waits for."""
        relation = self._route.relation
        if relation is None:
            return None, f"missing relation: {ROUTE} (the login callback needs a public URL)", None
        app = relation.app.name if relation.app else "the mesh"
        try:
            url = self._route.url
        except InvalidRouteDataError as e:
            return None, f"{ROUTE}: {e}", None
        if not url:
            return None, None, f"waiting for the route's URL from {app}"
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}", None, None

    def _dex_waits(self, relation: ops.Relation) -> list[str]:
        app = relation.app.name if relation.app else "the identity provider"
        if not self._dex.has_client(relation):
            return [f"waiting for {app} to issue the OAuth client"]
        return []

    def _cookie_secret(self) -> tuple[ops.Secret | None, str | None]:
        """The app's cookie-key secret and the key, where they exist and the key is usable."""
        try:
            secret = self.model.get_secret(label=COOKIE_SECRET_LABEL)
            content = secret.get_content(refresh=True)
        except ops.SecretNotFoundError:
            return None, None
        value = content.get(COOKIE_SECRET_KEY, "")
        if not is_valid_cookie_secret(value):
            logger.warning("the %s secret holds no usable key", COOKIE_SECRET_LABEL)
            return secret, None
        return secret, value

    def _ensure_cookie_secret(self, inputs: _Inputs) -> _Inputs:
        """Leader: create the cookie key (or replace an unusable one) in the app's secret."""
        secret, value = self._cookie_secret()
        if value is not None:
            return inputs
        value = generate_cookie_secret()
        if secret is None:
            self.app.add_secret(
                {COOKIE_SECRET_KEY: value},
                label=COOKIE_SECRET_LABEL,
                description="oauth2-proxy session cookie key",
            )
            logger.info("created the session cookie key")
        else:
            secret.set_content({COOKIE_SECRET_KEY: value})
            logger.info("replaced an unusable session cookie key")
        return dataclasses.replace(inputs, cookie_secret=value)

    def _provider(self, config: GatewayConfig, inputs: _Inputs) -> Provider | None:
        """The identity provider and our client at it; with Dex, register first (leader).

        None while Dex has not issued the client; the reason is in the status.
        """
        if inputs.source == "external":
            assert inputs.client_secret is not None
            return Provider(
                id="oidc",
                display_name=inputs.provider_name,
                issuer_url=config.issuer,
                client_id=config.client_id.strip(),
                client_secret=inputs.client_secret,
                scopes=config.scope,
            )
        relation = self._dex.relation
        assert relation is not None and inputs.origin is not None
        if self.unit.is_leader():
            try:
                self._dex.register(relation, inputs.origin + CALLBACK_PATH, config.scope)
            except RegistrationError as e:
                self._provider_problem = ops.BlockedStatus(f"oauth: registration refused: {e}")
                return None
        try:
            return self._dex.issued(relation, config.scope)
        except ProviderDataError as e:
            self._provider_problem = ops.BlockedStatus(f"oauth: {e}")
        except ClientSecretUnavailableError as e:
            self._provider_problem = ops.WaitingStatus(
                f"waiting for access to {e}'s client secret"
            )
        return None

    def _settings(
        self, config: GatewayConfig, origin: str, cookie_secret: str, provider: Provider
    ) -> ProxySettings:
        return ProxySettings(
            provider=provider,
            cookie_secret=cookie_secret,
            redirect_url=origin + CALLBACK_PATH,
            cookie_secure=origin.startswith("https://"),
            email_domains=config.domains,
            userid_header=config.userid_header,
            userid_prefix=config.userid_prefix,
            userid_claim=config.userid_claim,
            groups_header=config.groups_header,
            accept_bearer_tokens=config.accept_bearer_tokens,
            extra_jwt_issuers=config.jwt_issuers,
        )

    def _publish_forward_auth(self, config: GatewayConfig) -> None:
        """Leader: tell each mesh where to send its checks and which headers pass."""
        # The proxy's Service, as Canonical's oauth2-proxy-k8s charm gives it.
        address = f"http://{self.app.name}.{self.model.name}.svc.cluster.local:{PORT}"
        user_header = config.userid_header.lower()
        headers = [user_header]
        if config.groups_header:
            headers.append(config.groups_header.lower())
        for relation in self._forward_auth.relations:
            try:
                self._forward_auth.publish(
                    relation,
                    decisions_address=address,
                    headers=headers,
                    user_header=user_header,
                    user_prefix=config.userid_prefix,
                )
            except InvalidRequestError as e:
                logger.warning(
                    "not publishing on %s relation %d: %s", FORWARD_AUTH, relation.id, e
                )

    # --- actions ----------------------------------------------------------------------------

    def _on_rotate_secrets(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run rotate-secrets on the leader unit")
            return
        inputs = self._read_inputs()
        config = inputs.config
        if config is None or inputs.blocked:
            event.fail(f"nothing to rotate until this is fixed: {inputs.blocked}")
            return
        secret = self._cookie_secret()[0]
        if secret is None or inputs.origin is None or not self._serving():
            event.fail("the proxy is not set up yet, so there is nothing to rotate")
            return
        provider = self._provider(config, inputs)
        if provider is None:
            event.fail("the identity provider has not issued the client yet; try again later")
            return
        cookie_secret = generate_cookie_secret()
        secret.set_content({COOKIE_SECRET_KEY: cookie_secret})
        restarted = self._proxy.configure(
            self._settings(config, inputs.origin, cookie_secret, provider)
        )
        relation = self._dex.relation if inputs.source == "dex" else None
        if relation is not None:
            # Dex answers in its next hook with a new revision of the client
            # secret; this unit's secret-changed then restarts the proxy with it.
            self._dex.request_secret_rotation(relation)
            client = f"requested from {inputs.provider_name}; the proxy restarts when it arrives"
        else:
            client = "the operator's: update the secret named in client-secret-id to rotate it"
        self._inputs = None
        logger.info("rotated the session cookie key")
        event.set_results(
            {
                "cookie-secret": "replaced; every session has ended",
                "client-secret": client,
                "restarted": "true" if restarted else "false",
            }
        )

    # --- status -----------------------------------------------------------------------------

    def _current_inputs(self) -> _Inputs:
        if self._inputs is None:
            self._inputs = self._read_inputs()
        return self._inputs

    def _problems(self) -> list[ops.StatusBase]:
        """What stands between the inputs and a serving proxy, most urgent first."""
        inputs = self._current_inputs()
        if inputs.blocked:
            return [ops.BlockedStatus(inputs.blocked)]
        problems: list[ops.StatusBase] = [
            ops.BlockedStatus(p) for p in self._forward_auth_problems()
        ]
        problems += [ops.WaitingStatus(w) for w in inputs.waiting]
        if self._provider_problem is not None:
            problems.append(self._provider_problem)
        return problems

    def _forward_auth_problems(self) -> list[str]:
        """What a mesh sent on forward-auth that does not parse (nothing is written to it)."""
        problems = []
        for relation in self._forward_auth.relations:
            try:
                requested_apps(relation)
            except InvalidRequestError as e:
                app = relation.app.name if relation.app else "the mesh"
                problems.append(f"{FORWARD_AUTH}: invalid data from {app}: {e}")
        return problems

    @collected_once
    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        problems = self._problems()
        for status in problems:
            event.add_status(status)
        if problems:
            return
        # Pebble reachable and the proxy running, when this hook found it so already.
        serving = self._found_serving
        if not serving and not self._container.can_connect():
            event.add_status(ops.WaitingStatus("waiting for Pebble in the oauth2-proxy container"))
        elif not serving and not self._proxy.is_running():
            event.add_status(ops.MaintenanceStatus("starting oauth2-proxy"))
        elif not self._proxy.is_ready():
            event.add_status(ops.WaitingStatus("oauth2-proxy is not ready yet"))
        event.add_status(ops.ActiveStatus(self._active_message()))

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        add_leader_unit_status(event, self._on_collect_unit_status)
        for status in self._problems():
            event.add_status(status)
        event.add_status(ops.ActiveStatus(self._active_message()))

    def _active_message(self) -> str:
        inputs = self._current_inputs()
        return f"login via {inputs.provider_name} at {inputs.origin}"
