"""The `oauth` relation, requirer side: register with Dex, read back what it issued.

The ecosystem's oauth library (charmlibs-interfaces-oauth) speaks the wire
format. It validates every databag with jsonschema, whose import alone
costs a hook about 0.1 s, so the library is imported only by the methods
that write the registration or read the issued client; the cheap question
(has the provider issued a client yet) looks at the databag keys, as the
library's own `is_client_created` does.

The library object is made on first use rather than in the charm's
`__init__`. Its observers only turn relation events into library events,
which a holistic charm does not need, and made mid-hook they never run.

Rotating the client secret
--------------------------
The oauth interface has no request for a new client secret: a requirer can
only write its registration, and writing it again unchanged wakes nobody.
So `rotate-secrets` writes one more key in our databag, `client-secret-
rotation`, with a new random token. The dex charm (ours) answers in its
relation-changed hook: a new client secret as a new revision of the same
Juju secret, and the token written back under the same key. That revision
reaches this side as secret-changed, and the reconcile restarts the proxy
with it. An ecosystem provider that does not know the key ignores it, and
`rotation_pending` stays true, which the status says.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

import ops
from oauth2_proxy import Provider

if TYPE_CHECKING:
    from charmlibs.interfaces.oauth import OAuthRequirer

logger = logging.getLogger(__name__)

# What this side's databag holds once registered (the library's client config).
REGISTRATION_KEYS = frozenset(
    {"redirect_uri", "scope", "grant_types", "audience", "token_endpoint_auth_method"}
)
GRANT_TYPES = ("authorization_code", "refresh_token")
# What the provider's databag holds once it has issued a client.
CLIENT_KEYS = frozenset({"client_id", "client_secret_id"})
# Our extension of the oauth interface (ecosystem charms ignore unknown keys):
# a new value asks the provider for a new client secret; the dex charm writes
# the value back under the same key once the new secret revision is out.
ROTATION_KEY = "client-secret-rotation"


class RegistrationError(Exception):
    """The library refused the registration (e.g. the redirect URI); the message says why."""


class ProviderDataError(Exception):
    """The provider's data cannot be used; the message is for the operator."""


class ClientSecretUnavailableError(Exception):
    """The provider named its client secret, but it cannot be read (yet)."""


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class DexRegistration:
    """The gateway as a client of the identity provider on the `oauth` relation."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "oauth"):
        self._charm = charm
        self._endpoint = endpoint
        self._requirer: OAuthRequirer | None = None

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one."""
        return self._charm.model.get_relation(self._endpoint)

    def _library(self) -> OAuthRequirer:
        if self._requirer is None:
            from charmlibs.interfaces.oauth import OAuthRequirer

            self._requirer = OAuthRequirer(self._charm, relation_name=self._endpoint)
        return self._requirer

    @staticmethod
    def has_client(relation: ops.Relation) -> bool:
        """Whether the provider has published a client id and its secret (no library import)."""
        if relation.app is None:
            return False
        return CLIENT_KEYS <= set(relation.data[relation.app].keys())

    def register(self, relation: ops.Relation, redirect_uri: str, scopes: str) -> bool:
        """Leader: publish the client registration, only when it differs. Returns whether it wrote.

        Raises RegistrationError when the library refuses it.
        """
        from charmlibs.interfaces.oauth import ClientConfig, ClientConfigError

        config = ClientConfig(redirect_uri, scopes, list(GRANT_TYPES))
        wanted = config.to_dict()
        # The library publishes a single redirect URI as a plain string.
        wanted["redirect_uri"] = redirect_uri
        ours = relation.data[self._charm.app]
        published = {key: _decode(ours[key]) for key in REGISTRATION_KEYS if key in ours}
        if published == {key: wanted[key] for key in REGISTRATION_KEYS if key in wanted}:
            return False
        try:
            self._library().update_client_config(config, relation_id=relation.id)
        except ClientConfigError as e:
            raise RegistrationError(str(e)) from None
        logger.info("registered the OAuth client (redirect URI %s)", redirect_uri)
        return True

    def request_secret_rotation(self, relation: ops.Relation) -> str:
        """Leader: ask the provider for a new client secret; returns the request's token."""
        token = secrets.token_hex(8)
        relation.data[self._charm.app][ROTATION_KEY] = token
        return token

    def rotation_pending(self, relation: ops.Relation) -> bool:
        """Whether we asked for a new client secret that the provider has not confirmed."""
        asked = relation.data[self._charm.app].get(ROTATION_KEY)
        done = relation.data[relation.app].get(ROTATION_KEY) if relation.app else None
        return bool(asked) and asked != done

    def issued(self, relation: ops.Relation, scopes: str) -> Provider | None:
        """The provider's issuer, endpoints and our client credentials; None until issued.

        Raises ProviderDataError when the provider's data does not follow the
        interface, ClientSecretUnavailableError when its secret cannot be read.
        """
        if not self.has_client(relation):
            return None
        from charmlibs.interfaces.oauth import DataValidationError

        app = relation.app.name if relation.app else "the provider"
        try:
            info = self._library().get_provider_info(relation_id=relation.id)
        except DataValidationError:
            raise ProviderDataError(
                f"{app} sent oauth data that does not follow the interface"
            ) from None
        except KeyError:
            raise ProviderDataError(f"{app}'s client secret has no `secret` field") from None
        except ops.ModelError:  # not found, or not granted to us yet
            raise ClientSecretUnavailableError(app) from None
        if info is None or not info.client_id or not info.client_secret:
            return None
        return Provider(
            id="dex",
            display_name=app,
            issuer_url=info.issuer_url,
            client_id=info.client_id,
            client_secret=info.client_secret,
            scopes=scopes,
            login_url=info.authorization_endpoint,
            redeem_url=info.token_endpoint,
            profile_url=info.userinfo_endpoint or None,
            jwks_url=info.jwks_endpoint,
            ca_chain=_pem(info.ca_chain),
        )


def _pem(chain: Any) -> str:
    """The provider's CA chain (a list of PEM texts on the wire) as one PEM text."""
    if not chain:
        return ""
    certificates = [chain] if isinstance(chain, str) else [str(c) for c in chain]
    return "".join(c.strip() + "\n" for c in certificates if c.strip())
