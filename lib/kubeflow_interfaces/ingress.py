"""The `ingress` interface, version 2: a per-application route through an ingress.

This is the interface traefik-k8s and istio-ingress-k8s provide, so any
ecosystem charm that asks for ingress can be routed by our gateway, and our
charms can be routed by theirs.

Wire format (every value is JSON text, so a string travels with its quotes):

- requirer application databag: `model`, `name` (JSON strings), `port`
  (JSON number), and optionally `strip-prefix`, `redirect-https` (JSON
  booleans, default false) and `scheme` (`"http"`, the default, `"https"` or
  `"h2c"`). A value equal to its default is left out, as traefik's library
  does.
- requirer unit databag, one per unit: `host` (JSON string) and, when known,
  `ip` (JSON string, an IPv4 or IPv6 address).
- provider application databag: `ingress`, a JSON object `{"url": ...}`
  holding the http(s) URL the application is served at.

Keys this module does not know (such as `is_port_open` or
`healthcheck_params`, which newer requirers may write) are ignored.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import ops
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from kubeflow_interfaces import _databag

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "ingress"

_M = TypeVar("_M", bound="_Wire")


class InvalidIngressDataError(Exception):
    """The other side's databags do not parse; `fields` names what is wrong."""

    def __init__(self, fields: list[str] | tuple[str, ...]):
        self.fields = tuple(fields)
        super().__init__(f"invalid {INTERFACE} relation data ({', '.join(self.fields)})")


@dataclass(frozen=True)
class UnitAddress:
    """Where one requirer unit is reachable."""

    host: str
    ip: str | None = None


@dataclass(frozen=True)
class IngressRequest:
    """What a requirer application asks for, with the units that serve it."""

    model: str
    name: str
    port: int
    strip_prefix: bool
    redirect_https: bool
    scheme: str
    units: tuple[UnitAddress, ...]


# --- wire models --------------------------------------------------------------


class _Wire(BaseModel):
    """A databag: field `a_b` is key `a-b`, each value JSON text."""

    model_config = ConfigDict(
        alias_generator=lambda name: name.replace("_", "-"),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    @classmethod
    def keys(cls) -> set[str]:
        """Every databag key this model owns."""
        return {field.alias or name for name, field in cls.model_fields.items()}

    def encode(self) -> dict[str, str]:
        """The databag: each value JSON-encoded, values equal to their default left out."""
        plain = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return {key: json.dumps(value) for key, value in plain.items()}

    @classmethod
    def decode(cls: type[_M], data: Any, prefix: str = "") -> _M:
        """Parse a databag; the error names every key that is missing or does not parse."""
        values: dict[str, Any] = {}
        bad: set[str] = set()
        for key in cls.keys() & data.keys():
            try:
                values[key] = json.loads(data[key])
            except json.JSONDecodeError:
                bad.add(key)
        parsed: _M | None = None
        try:
            parsed = cls.model_validate(values)
        except ValidationError as e:
            bad.update(str(err["loc"][0]) for err in e.errors() if err["loc"])
        if bad or parsed is None:
            raise InvalidIngressDataError([f"{prefix}{key}" for key in sorted(bad)])
        return parsed


class _RequirerApp(_Wire):
    model: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    # traefik's library refuses 0 and 65535 alike (0 < port < 65535).
    port: StrictInt = Field(gt=0, lt=65535)
    strip_prefix: StrictBool | None = False
    redirect_https: StrictBool | None = False
    scheme: Literal["http", "https", "h2c"] = "http"


class _RequirerUnit(_Wire):
    host: StrictStr = Field(min_length=1)
    ip: StrictStr | None = None

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)  # ValueError when it is not an IPv4/IPv6 address
        return value


class _Url(_Wire):
    url: StrictStr

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        _ = parts.port  # ValueError when the port is not a number in range
        return value


class _ProviderApp(_Wire):
    ingress: _Url | None = None


def _unit_number(unit: ops.Unit) -> int:
    return int(unit.name.rsplit("/", 1)[1])


# --- provider -----------------------------------------------------------------


class IngressV2Provider:
    """Provider side (the gateway): read what each application asks for, publish its URL."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "ingress"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def request(self, relation: ops.Relation) -> IngressRequest | None:
        """The route asked for on `relation`.

        None while the requirer has not written its application data yet, or
        while none of its units has written a host. Units that have not
        written a host yet are left out.

        Raises InvalidIngressDataError, naming the bad keys, when the
        application data or a unit's data does not parse.
        """
        if relation.app is None:
            return None
        app_data = relation.data[relation.app]
        if not {"model", "name", "port"} & app_data.keys():
            return None
        bad: list[str] = []
        app: _RequirerApp | None = None
        try:
            app = _RequirerApp.decode(app_data)
        except InvalidIngressDataError as e:
            bad.extend(e.fields)
        units: list[UnitAddress] = []
        for unit in sorted(relation.units, key=_unit_number):
            unit_data = relation.data[unit]
            if "host" not in unit_data:
                continue
            try:
                parsed = _RequirerUnit.decode(unit_data, prefix=f"{unit.name} ")
            except InvalidIngressDataError as e:
                bad.extend(e.fields)
                continue
            units.append(UnitAddress(host=parsed.host, ip=parsed.ip))
        if bad:
            raise InvalidIngressDataError(bad)
        if app is None or not units:
            return None
        return IngressRequest(
            model=app.model,
            name=app.name,
            port=app.port,
            strip_prefix=bool(app.strip_prefix),
            redirect_https=bool(app.redirect_https),
            scheme=app.scheme,
            units=tuple(units),
        )

    def publish(self, relation: ops.Relation, url: str | None) -> bool:
        """Publish the URL the application is served at (None withdraws it).

        Leader only: returns False elsewhere. Writes only what changed and
        returns whether it wrote. Raises ValueError when `url` is not an
        http(s) URL.
        """
        if not self._charm.unit.is_leader():
            return False
        answer = _ProviderApp(ingress=None if url is None else _Url(url=url))
        return _databag.write(relation.data[self._charm.app], answer.encode(), _ProviderApp.keys())

    @staticmethod
    def default_path(model: str, app: str) -> str:
        """The path an application is served under by default: `/{model}-{app}`."""
        return f"/{model}-{app.replace('/', '-')}"


# --- requirer -----------------------------------------------------------------


class IngressV2Requirer:
    """Requirer side: ask for a route to this application, read its URL back.

    `host` defaults to the unit's pod name in the application's headless
    service (`app-0.app-endpoints.model.svc.cluster.local`), `ip` to the
    unit's address on the relation's binding. Raises ValueError when the
    request does not fit the interface (port out of range, unknown scheme).
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        endpoint: str = "ingress",
        *,
        port: int,
        strip_prefix: bool = False,
        redirect_https: bool = False,
        scheme: str = "http",
        host: str | None = None,
        ip: str | None = None,
    ):
        self._charm = charm
        self._endpoint = endpoint
        self._app = _RequirerApp.model_validate(
            {
                "model": charm.model.name,
                "name": charm.app.name,
                "port": port,
                "strip_prefix": strip_prefix,
                "redirect_https": redirect_https,
                "scheme": scheme,
            }
        )
        unit = charm.unit.name.replace("/", "-")
        self._host = (
            host or f"{unit}.{charm.app.name}-endpoints.{charm.model.name}.svc.cluster.local"
        )
        self._ip = ip
        # Check what was given now, not at the first publish.
        _RequirerUnit.model_validate({"host": self._host, "ip": ip})

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def _unit_data(self, relation: ops.Relation) -> dict[str, str]:
        ip = self._ip
        if ip is None:
            try:
                binding = self._charm.model.get_binding(relation)
                address = binding.network.bind_address if binding is not None else None
            except ops.ModelError:
                address = None
            ip = str(address) if address is not None else None
        return _RequirerUnit.model_validate({"host": self._host, "ip": ip}).encode()

    def publish_request(self) -> bool:
        """Write the request: application data by the leader, unit data by every unit.

        Writes only what changed; returns whether it wrote.
        """
        changed = False
        for relation in self.relations:
            if self._charm.unit.is_leader():
                changed |= _databag.write(
                    relation.data[self._charm.app], self._app.encode(), _RequirerApp.keys()
                )
            changed |= _databag.write(
                relation.data[self._charm.unit], self._unit_data(relation), _RequirerUnit.keys()
            )
        return changed

    @property
    def url(self) -> str | None:
        """The URL the application is served at, once the provider published one.

        None too when the provider's data does not parse.
        """
        relations = self.relations
        if not relations or relations[0].app is None:
            return None
        data = relations[0].data[relations[0].app]
        try:
            answer = _ProviderApp.decode(data)
        except InvalidIngressDataError:
            return None
        return answer.ingress.url if answer.ingress is not None else None


# --- helpers for charm tests --------------------------------------------------


def relation_for_provider(
    endpoint: str = "ingress",
    *,
    model: str = "kubeflow",
    name: str = "app",
    port: int = 8080,
    strip_prefix: bool | None = None,
    redirect_https: bool | None = None,
    scheme: str | None = None,
    units: tuple[tuple[str, str | None], ...] = (
        ("app-0.app-endpoints.kubeflow.svc.cluster.local", "10.1.0.5"),
    ),
    remote_app_name: str = "app",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the provider sees it: an application asking for a route.

    `strip_prefix`, `redirect_https` and `scheme` left None are not written
    (the requirer keeps the default); `units` are (host, ip) pairs, unit 0 first.
    """
    from ops import testing

    app: dict[str, Any] = {"model": model, "name": name, "port": port}
    for key, value in (
        ("strip_prefix", strip_prefix),
        ("redirect_https", redirect_https),
        ("scheme", scheme),
    ):
        if value is not None:
            app[key] = value
    units_data = {
        number: _RequirerUnit.model_validate({"host": host, "ip": ip}).encode()
        for number, (host, ip) in enumerate(units)
    }
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=_RequirerApp.model_validate(app).encode(),
        remote_units_data=units_data,
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = "ingress",
    *,
    url: str | None = "http://10.0.0.1/kubeflow-app",
    remote_app_name: str = "istio",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as a requirer sees it, once the provider served the route (None: not yet)."""
    from ops import testing

    answer = _ProviderApp(ingress=None if url is None else _Url(url=url))
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=answer.encode(),
        **kwargs,
    )
