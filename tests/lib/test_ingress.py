"""`ingress` (v2): both sides agree on the wire; bad data is refused.

The `ingress` v2 wire format is the ecosystem's, read from:

- the spec, canonical/charm-relation-interfaces @ 4cf84d192962b8a31958fdc2ceffd05e2142cf0f,
  interfaces/ingress/v2/README.md (examples: requirer app data
  `name: '"app_name"', model: '"model_name"', port: '4242'`, unit data
  `host: '"hostname"'`; provider app data
  `ingress: '{"url": "http://foo.bar:80/model_name-app_name/0"}'`; "All fields are
  json-serialized"), schema.py (`Json[str]` model/name/host, `Json[int]` port,
  provider `ingress: Json[Url]` with an `AnyHttpUrl` `url`) and
  interface_tests/test_provider.py (valid: app `{'model': '"bar"', 'port': '42',
  'name': '"remote"'}`, unit `{'host': '"0.0.0.42"'}`; not JSON: app
  `{'model': 'bar', 'port': '42', 'name': 'true'}`; a unit without `host`: the
  provider publishes nothing in either case). The same files live in
  canonical/charmlibs @ caaf7415b6e37e09c76513d98a02cdd6494556ef under
  interfaces/ingress/interface/v2/.
- traefik's library, canonical/traefik-k8s-operator @
  8ab4a7e6c1dcc1b62460fcddb72074c329da8721, lib/charms/traefik_k8s/v2/ingress.py
  (LIBPATCH 21): every value is `json.dumps` of the field, and fields equal to
  their default are left out (`exclude_defaults`); extra requirer app keys
  `strip-prefix`, `redirect-https` (bool, default false) and `scheme` (one of
  http, https, h2c; default http); `0 < port < 65535`; unit key `ip`, an IPv4 or
  IPv6 address taken from the relation's binding, left out when unknown;
  provider key `ingress` holds `{"url": ...}`; unknown keys are ignored. Newer
  patches also write `is_port_open` and `healthcheck_params`.
- istio-ingress-k8s, canonical/istio-ingress-k8s-operator @
  a9ef9646aea149a00a6a7620acaf483249714d04, src/charm.py: `_generate_default_path`
  serves an application at `/{model}-{app}` (a `/` in the app name becomes `-`)
  and publishes the gateway URL followed by that path.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import ops
import pytest
from charm_loader import run_fresh
from ops import testing

from kubeflow_interfaces import ingress
from kubeflow_interfaces.ingress import (
    IngressRequest,
    IngressV2Provider,
    IngressV2Requirer,
    InvalidIngressDataError,
    UnitAddress,
)

# The spec's examples, exactly as interfaces/ingress/v2/README.md writes them.
SPEC_REQUIRER_APP = {"name": '"app_name"', "model": '"model_name"', "port": "4242"}
SPEC_REQUIRER_UNIT = {"host": '"hostname"'}
SPEC_PROVIDER_APP = {"ingress": '{"url": "http://foo.bar:80/model_name-app_name/0"}'}
# The juju keys ops.testing puts in every local unit databag.
JUJU_KEYS = {"egress-subnets", "ingress-address", "private-address"}


class Gateway(ops.CharmBase):
    """A provider that serves every application at the default path under one host."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.ingress = IngressV2Provider(self)
        self.request: IngressRequest | None = None
        framework.observe(self.on["ingress"].relation_changed, self._changed)

    def _changed(self, event: ops.RelationChangedEvent):
        try:
            self.request = self.ingress.request(event.relation)
        except InvalidIngressDataError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        if self.request is None:
            wrote = self.ingress.publish(event.relation, None)
            self.unit.status = ops.WaitingStatus(f"no request, wrote={wrote}")
            return
        path = IngressV2Provider.default_path(self.request.model, self.request.name)
        wrote = self.ingress.publish(event.relation, f"http://foo.bar:80{path}")
        self.unit.status = ops.ActiveStatus(f"wrote={wrote}")


class Routed(ops.CharmBase):
    """A requirer; its arguments come from the class attribute, set per test."""

    kwargs: ClassVar[dict[str, Any]] = {"port": 4242}

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.ingress = IngressV2Requirer(self, **self.kwargs)
        framework.observe(self.on["ingress"].relation_changed, self._changed)

    def _changed(self, _):
        wrote = self.ingress.publish_request()
        self.unit.status = ops.ActiveStatus(f"wrote={wrote} url={self.ingress.url}")


def routed(**kwargs: Any) -> type[Routed]:
    return type("RoutedWith", (Routed,), {"kwargs": kwargs})


GATEWAY_META = {"name": "gateway", "provides": {"ingress": {"interface": "ingress"}}}


def routed_meta(name: str = "app_name") -> dict[str, Any]:
    return {"name": name, "requires": {"ingress": {"interface": "ingress", "limit": 1}}}


def run_gateway(rel: testing.Relation, leader: bool = True) -> tuple[testing.State, Gateway]:
    ctx = testing.Context(Gateway, meta=GATEWAY_META)
    with ctx(
        ctx.on.relation_changed(rel, remote_unit=0), testing.State(leader=leader, relations=[rel])
    ) as mgr:
        out = mgr.run()
        return out, mgr.charm


def run_routed(
    rel: testing.Relation, charm: type[Routed] = Routed, *, leader: bool = True, **meta: Any
) -> testing.State:
    ctx = testing.Context(charm, meta=routed_meta(**meta))
    state = testing.State(leader=leader, relations=[rel], model=testing.Model(name="model_name"))
    return ctx.run(ctx.on.relation_changed(rel, remote_unit=0), state)


def unit_data(out: testing.State, rel: testing.Relation) -> dict[str, str]:
    data = out.get_relation(rel.id).local_unit_data
    return {k: v for k, v in data.items() if k not in JUJU_KEYS}


# --- what the spec and traefik's library write parses --------------------------


def test_the_spec_requirer_example_parses():
    rel = testing.Relation(
        "ingress",
        remote_app_name="app_name",
        remote_app_data=SPEC_REQUIRER_APP,
        remote_units_data={0: SPEC_REQUIRER_UNIT},
    )
    out, charm = run_gateway(rel)
    assert charm.request == IngressRequest(
        model="model_name",
        name="app_name",
        port=4242,
        strip_prefix=False,
        redirect_https=False,
        scheme="http",
        units=(UnitAddress("hostname", None),),
    )
    # Served where istio-ingress-k8s serves it: /{model}-{app}.
    assert out.get_relation(rel.id).local_app_data == {
        "ingress": '{"url": "http://foo.bar:80/model_name-app_name"}'
    }


def test_the_spec_interface_test_valid_data_parses():
    rel = testing.Relation(
        "ingress",
        remote_app_name="remote",
        remote_app_data={"model": '"bar"', "port": "42", "name": '"remote"'},
        remote_units_data={0: {"host": '"0.0.0.42"'}},
    )
    out, charm = run_gateway(rel)
    assert charm.request is not None
    assert (charm.request.model, charm.request.name, charm.request.port) == ("bar", "remote", 42)
    assert charm.request.units == (UnitAddress("0.0.0.42"),)
    assert out.unit_status == testing.ActiveStatus("wrote=True")


def test_traefik_extra_keys_and_ip_parse_and_unknown_keys_are_ignored():
    rel = testing.Relation(
        "ingress",
        remote_app_name="web",
        remote_app_data={
            "model": '"m"',
            "name": '"web"',
            "port": "8080",
            "strip-prefix": "true",
            "redirect-https": "true",
            "scheme": '"h2c"',
            "is_port_open": "true",
            "healthcheck_params": '{"path": "/health"}',
            "something-else": "not json",
        },
        remote_units_data={
            0: {"host": '"web-0.web-endpoints.m.svc.cluster.local"', "ip": '"10.1.0.5"'},
            1: {"host": '"web-1.web-endpoints.m.svc.cluster.local"', "ip": '"fd00::1"'},
            # A unit that has not written yet is left out.
            2: {},
        },
    )
    _, charm = run_gateway(rel)
    assert charm.request == IngressRequest(
        model="m",
        name="web",
        port=8080,
        strip_prefix=True,
        redirect_https=True,
        scheme="h2c",
        units=(
            UnitAddress("web-0.web-endpoints.m.svc.cluster.local", "10.1.0.5"),
            UnitAddress("web-1.web-endpoints.m.svc.cluster.local", "fd00::1"),
        ),
    )


def test_null_booleans_mean_false():
    # traefik's model types strip-prefix and redirect-https Optional[bool].
    data = {**SPEC_REQUIRER_APP, "strip-prefix": "null", "redirect-https": "null"}
    rel = testing.Relation(
        "ingress", remote_app_data=data, remote_units_data={0: SPEC_REQUIRER_UNIT}
    )
    _, charm = run_gateway(rel)
    assert charm.request is not None
    assert (charm.request.strip_prefix, charm.request.redirect_https) == (False, False)


@pytest.mark.parametrize(
    ("app", "units"),
    [
        ({}, {0: SPEC_REQUIRER_UNIT}),
        # Only keys of no concern to us: still nothing asked.
        ({"is_port_open": "true"}, {0: SPEC_REQUIRER_UNIT}),
        # The spec's interface test: a unit without `host` publishes nothing.
        ({"model": '"bar"', "port": "42", "name": '"true"'}, {0: {"bubble": "blabla"}}),
        (SPEC_REQUIRER_APP, {}),
    ],
)
def test_nothing_asked_yet_is_none_and_publishes_nothing(app, units):
    rel = testing.Relation(
        "ingress", remote_app_name="app_name", remote_app_data=app, remote_units_data=units
    )
    out, charm = run_gateway(rel)
    assert charm.request is None
    assert out.unit_status == testing.WaitingStatus("no request, wrote=False")
    assert out.get_relation(rel.id).local_app_data == {}


# --- what does not parse is refused, naming the key -----------------------------


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"port": "0"}, "port"),
        ({"port": "99999"}, "port"),
        # traefik's validator: 0 < port < 65535.
        ({"port": "65535"}, "port"),
        ({"port": '"abc"'}, "port"),
        ({"port": "abc"}, "port"),
        # A port is a JSON number: not a string holding one, nor a boolean, nor a fraction.
        ({"port": '"4242"'}, "port"),
        ({"port": "true"}, "port"),
        ({"port": "42.5"}, "port"),
        ({"scheme": '"ftp"'}, "scheme"),
        ({"scheme": "http"}, "scheme"),
        ({"scheme": "null"}, "scheme"),
        ({"strip-prefix": '"yes"'}, "strip-prefix"),
        ({"strip-prefix": "1"}, "strip-prefix"),
        ({"redirect-https": "maybe"}, "redirect-https"),
        ({"model": '""'}, "model"),
        ({"name": "42"}, "name"),
        ({"name": "{not json"}, "name"),
        # The spec's interface test: values that are not JSON text.
        ({"model": "bar", "port": "42", "name": "true"}, "model, name"),
        ({"port": "0", "scheme": '"ftp"'}, "port, scheme"),
    ],
)
def test_malformed_app_data_is_refused_naming_the_key(change, fields):
    rel = testing.Relation(
        "ingress",
        remote_app_data={**SPEC_REQUIRER_APP, **change},
        remote_units_data={0: SPEC_REQUIRER_UNIT},
    )
    out, charm = run_gateway(rel)
    assert out.unit_status == testing.BlockedStatus(f"invalid ingress relation data ({fields})")
    assert out.get_relation(rel.id).local_app_data == {}
    assert charm.request is None


def test_partial_app_data_names_what_is_missing():
    rel = testing.Relation(
        "ingress", remote_app_data={"port": "42"}, remote_units_data={0: SPEC_REQUIRER_UNIT}
    )
    out, _ = run_gateway(rel)
    assert out.unit_status == testing.BlockedStatus("invalid ingress relation data (model, name)")


@pytest.mark.parametrize(
    ("unit", "fields"),
    [
        ({"host": "hostname"}, "remote/1 host"),
        ({"host": "42"}, "remote/1 host"),
        ({"host": '""'}, "remote/1 host"),
        ({"host": '"h"', "ip": '"10.1.0"'}, "remote/1 ip"),
        ({"host": '"h"', "ip": "10.1.0.5"}, "remote/1 ip"),
        ({"host": '"h"', "ip": '"not-an-ip"'}, "remote/1 ip"),
    ],
)
def test_malformed_unit_data_is_refused_naming_the_unit_and_key(unit, fields):
    rel = testing.Relation(
        "ingress",
        remote_app_data=SPEC_REQUIRER_APP,
        remote_units_data={0: SPEC_REQUIRER_UNIT, 1: unit},
    )
    out, _ = run_gateway(rel)
    assert out.unit_status == testing.BlockedStatus(f"invalid ingress relation data ({fields})")
    assert out.get_relation(rel.id).local_app_data == {}


def test_app_and_unit_errors_are_named_together():
    rel = testing.Relation(
        "ingress",
        remote_app_data={**SPEC_REQUIRER_APP, "port": "0"},
        remote_units_data={0: {"host": "bare"}},
    )
    out, _ = run_gateway(rel)
    assert out.unit_status == testing.BlockedStatus(
        "invalid ingress relation data (port, remote/0 host)"
    )


# --- what we write is what the spec shows ----------------------------------------


def test_our_requirer_writes_the_spec_example():
    rel = testing.Relation("ingress", remote_app_name="istio")
    out = run_routed(rel, routed(port=4242, host="hostname"))
    assert out.get_relation(rel.id).local_app_data == SPEC_REQUIRER_APP
    # traefik's library adds the unit's address on the relation's binding as `ip`;
    # ops.testing's default binding address is 192.0.2.0.
    assert unit_data(out, rel) == {**SPEC_REQUIRER_UNIT, "ip": '"192.0.2.0"'}
    assert out.unit_status == testing.ActiveStatus("wrote=True url=None")


def test_our_requirer_writes_traefiks_extra_keys_and_default_host():
    rel = testing.Relation("ingress", remote_app_name="istio")
    charm = routed(port=8080, strip_prefix=True, redirect_https=True, scheme="https", ip="fd00::2")
    out = run_routed(rel, charm, name="web")
    assert out.get_relation(rel.id).local_app_data == {
        "model": '"model_name"',
        "name": '"web"',
        "port": "8080",
        "strip-prefix": "true",
        "redirect-https": "true",
        "scheme": '"https"',
    }
    assert unit_data(out, rel) == {
        "host": '"web-0.web-endpoints.model_name.svc.cluster.local"',
        "ip": '"fd00::2"',
    }


def test_our_provider_writes_the_spec_example():
    rel = testing.Relation(
        "ingress",
        remote_app_name="app_name",
        remote_app_data=SPEC_REQUIRER_APP,
        remote_units_data={0: SPEC_REQUIRER_UNIT},
    )

    class Answering(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            framework.observe(self.on["ingress"].relation_changed, self._changed)

        def _changed(self, event: ops.RelationChangedEvent):
            IngressV2Provider(self).publish(
                event.relation, "http://foo.bar:80/model_name-app_name/0"
            )

    ctx = testing.Context(Answering, meta=GATEWAY_META)
    out = ctx.run(ctx.on.relation_changed(rel), testing.State(leader=True, relations=[rel]))
    assert out.get_relation(rel.id).local_app_data == SPEC_PROVIDER_APP


def test_our_requirer_reads_the_spec_provider_example():
    rel = testing.Relation("ingress", remote_app_name="istio", remote_app_data=SPEC_PROVIDER_APP)
    out = run_routed(rel)
    assert out.unit_status == testing.ActiveStatus(
        "wrote=True url=http://foo.bar:80/model_name-app_name/0"
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"ingress": "http://foo.bar/"},
        {"ingress": '{"url": "ftp://foo.bar/"}'},
        {"ingress": '{"url": "http:///path"}'},
        {"ingress": '{"url": "http://foo.bar:port/"}'},
        {"ingress": '{"url": 42}'},
        {"ingress": '"http://foo.bar/"'},
        {"url": '"http://foo.bar/"'},
        {},
    ],
)
def test_requirer_has_no_url_until_a_valid_one_is_published(answer):
    rel = testing.Relation("ingress", remote_app_name="istio", remote_app_data=answer)
    out = run_routed(rel)
    assert out.unit_status == testing.ActiveStatus("wrote=True url=None")


def test_default_path_is_istio_ingress_k8s_s():
    assert IngressV2Provider.default_path("kubeflow", "app") == "/kubeflow-app"
    assert IngressV2Provider.default_path("m", "a/0") == "/m-a-0"


# --- only what changed is written --------------------------------------------------


def test_provider_writes_only_what_changed_and_withdraws():
    rel = ingress.relation_for_provider(remote_app_name="app")
    out, _ = run_gateway(rel)
    answer = out.get_relation(rel.id).local_app_data
    assert answer == {"ingress": '{"url": "http://foo.bar:80/kubeflow-app"}'}
    assert out.unit_status == testing.ActiveStatus("wrote=True")

    again = ingress.relation_for_provider(remote_app_name="app", local_app_data=answer)
    out, _ = run_gateway(again)
    assert out.unit_status == testing.ActiveStatus("wrote=False")
    assert out.get_relation(again.id).local_app_data == answer

    # The requirer's app data went away: the URL is withdrawn, and only once.
    gone = testing.Relation(
        "ingress", local_app_data=answer, remote_units_data={0: SPEC_REQUIRER_UNIT}
    )
    out, _ = run_gateway(gone)
    assert out.unit_status == testing.WaitingStatus("no request, wrote=True")
    assert out.get_relation(gone.id).local_app_data == {}
    out, _ = run_gateway(testing.Relation("ingress", remote_units_data={0: SPEC_REQUIRER_UNIT}))
    assert out.unit_status == testing.WaitingStatus("no request, wrote=False")


def test_provider_publishes_only_as_leader():
    rel = ingress.relation_for_provider()
    out, _ = run_gateway(rel, leader=False)
    assert out.unit_status == testing.ActiveStatus("wrote=False")


def test_provider_refuses_a_url_that_is_not_http():
    class Wrong(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            framework.observe(self.on["ingress"].relation_changed, self._changed)

        def _changed(self, event: ops.RelationChangedEvent):
            IngressV2Provider(self).publish(event.relation, "ftp://foo.bar/")

    ctx = testing.Context(Wrong, meta=GATEWAY_META)
    rel = ingress.relation_for_provider()
    with pytest.raises(testing.errors.UncaughtCharmError) as e:
        ctx.run(ctx.on.relation_changed(rel), testing.State(leader=True, relations=[rel]))
    assert isinstance(e.value.__cause__, ValueError)
    assert "http" in str(e.value.__cause__)


def test_requirer_writes_only_what_changed():
    rel = testing.Relation("ingress", remote_app_name="istio")
    out = run_routed(rel, routed(port=4242, host="hostname"))
    written = out.get_relation(rel.id)
    again = testing.Relation(
        "ingress",
        remote_app_name="istio",
        local_app_data=dict(written.local_app_data),
        local_unit_data=dict(written.local_unit_data),
    )
    out = run_routed(again, routed(port=4242, host="hostname"))
    assert out.unit_status == testing.ActiveStatus("wrote=False url=None")

    # Back to the defaults: the keys that held the old values are removed.
    extra = testing.Relation(
        "ingress",
        remote_app_name="istio",
        local_app_data={**written.local_app_data, "strip-prefix": "true", "scheme": '"https"'},
        local_unit_data=dict(written.local_unit_data),
    )
    out = run_routed(extra, routed(port=4242, host="hostname"))
    assert out.unit_status == testing.ActiveStatus("wrote=True url=None")
    assert out.get_relation(extra.id).local_app_data == SPEC_REQUIRER_APP


def test_a_non_leader_requirer_writes_its_unit_data_only():
    rel = testing.Relation("ingress", remote_app_name="istio")
    out = run_routed(rel, routed(port=4242, host="hostname", ip="10.1.0.7"), leader=False)
    assert out.get_relation(rel.id).local_app_data == {}
    assert unit_data(out, rel) == {"host": '"hostname"', "ip": '"10.1.0.7"'}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 65535},
        {"port": 4242, "scheme": "ftp"},
        {"port": 4242, "ip": "not-an-ip"},
    ],
)
def test_requirer_refuses_a_request_the_interface_cannot_carry(kwargs):
    ctx = testing.Context(routed(**kwargs), meta=routed_meta())
    rel = testing.Relation("ingress")
    with pytest.raises(testing.errors.UncaughtCharmError) as e:
        ctx.run(ctx.on.relation_changed(rel), testing.State(leader=True, relations=[rel]))
    assert isinstance(e.value.__cause__, ValueError)


# --- both sides together ---------------------------------------------------------


def test_request_and_url_round_trip():
    rel = testing.Relation("ingress", remote_app_name="gateway")
    out = run_routed(rel, routed(port=8888, strip_prefix=True), name="web")
    written = out.get_relation(rel.id)

    seen = testing.Relation(
        "ingress",
        remote_app_name="web",
        remote_app_data=dict(written.local_app_data),
        remote_units_data={0: unit_data(out, rel)},
    )
    out2, charm = run_gateway(seen)
    assert charm.request == IngressRequest(
        model="model_name",
        name="web",
        port=8888,
        strip_prefix=True,
        redirect_https=False,
        scheme="http",
        units=(UnitAddress("web-0.web-endpoints.model_name.svc.cluster.local", "192.0.2.0"),),
    )
    answer = dict(out2.get_relation(seen.id).local_app_data)

    back = testing.Relation(
        "ingress",
        remote_app_name="gateway",
        local_app_data=dict(written.local_app_data),
        local_unit_data=dict(written.local_unit_data),
        remote_app_data=answer,
    )
    out3 = run_routed(back, routed(port=8888, strip_prefix=True), name="web")
    assert out3.unit_status == testing.ActiveStatus(
        "wrote=False url=http://foo.bar:80/model_name-web"
    )


def test_helpers_build_what_each_side_parses():
    rel = ingress.relation_for_provider(
        model="kubeflow",
        name="ui",
        port=5000,
        strip_prefix=True,
        scheme="https",
        units=(("ui-0.ui-endpoints.kubeflow.svc.cluster.local", "10.1.0.5"), ("ui-1", None)),
        remote_app_name="ui",
    )
    assert rel.remote_app_data == {
        "model": '"kubeflow"',
        "name": '"ui"',
        "port": "5000",
        "strip-prefix": "true",
        "scheme": '"https"',
    }
    _, charm = run_gateway(rel)
    assert charm.request is not None
    assert charm.request.units == (
        UnitAddress("ui-0.ui-endpoints.kubeflow.svc.cluster.local", "10.1.0.5"),
        UnitAddress("ui-1", None),
    )
    assert ingress.relation_for_requirer().remote_app_data == {
        "ingress": '{"url": "http://10.0.0.1/kubeflow-app"}'
    }
    assert ingress.relation_for_requirer(url=None).remote_app_data == {}
    assert json.loads(
        ingress.relation_for_requirer(url="https://x/y").remote_app_data["ingress"]
    ) == {"url": "https://x/y"}


def test_importing_the_module_stays_light():
    # ops itself imports yaml; these it does not.
    heavy = ["lightkube", "cryptography", "charmlibs", "jinja2", "boto3"]
    result = run_fresh(
        "import json, sys\n"
        "import kubeflow_interfaces.ingress\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))\n"
    )
    assert result == []
