"""Benchmark: the cost of one `update-status` hook of each charm, run the way Juju runs it.

Not a test: it prints figures. Each charm is staged as it would be packed
(`tools/stage.py`), then its `src/charm.py` runs through `ops.main` in a fresh
Python process, imports included, with the environment Juju gives a hook and
fake hook tools and a fake Pebble (`bench/fakejuju.py`) answering from a
settled model: the charm has done its work already, so a correct charm
changes nothing. For each charm it prints the median wall time and peak RSS
over N runs beside the budget, where the import time goes, and every write
the hook did (hook tools that change the model, Pebble calls that change the
container): there should be none.

    PYTHONPATH=lib python bench/hooks.py [--runs 7] [--charm mysql]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakejuju  # noqa: E402
import stage  # noqa: E402
from fakejuju import Container, FakePebble, Model, Relation, Secret  # noqa: E402

from kubeflow_charms import certificates, kubernetes  # noqa: E402
from kubeflow_interfaces import (  # noqa: E402
    dashboard_links,
    ingress,
    ingress_auth,
    kubernetes_manifests,
    s3,
)

BUDGET_SECONDS = 0.5
BUDGET_MIB = 60.0
JUJU_VERSION = "3.6.4"
MODEL_NAME = "kubeflow"
MODEL_UUID = "7a3c1e0b-5d2f-4b8a-9c6e-0f1d2e3a4b5c"
HOOK = "update-status"

# ops hard-codes /charm/containers/<name>/pebble.socket; this prelude sends
# those sockets to the bench's fake Pebble, then hands over to the charm as
# Juju's dispatch would. The charm imports ops, and with it ops.model, anyway,
# so importing it here first adds nothing to the hook's cost; runpy itself
# costs well under a millisecond (importlib.util, which it uses, the charm's
# imports load anyway).
PRELUDE = """\
import runpy, sys
import ops.model
_get_pebble = ops.model._ModelBackend.get_pebble
def _get_fake_pebble(self, socket_path):
    return _get_pebble(self, socket_path.replace("/charm/", {root!r} + "/", 1))
ops.model._ModelBackend.get_pebble = _get_fake_pebble
sys.argv = [{charm!r}]
runpy.run_path({charm!r}, run_name="__main__")
"""

# Peak RSS survives exec: a child forked (or vforked) from this process would
# start its high-water mark at this process's size, which holds pydantic, ops
# and the charms' modules. So hooks are started by a small launcher process
# (no site, stdlib only) that spawns each one, times it and reports its
# wait4() usage; a hook's figure can then only be inflated up to the
# launcher's own size, about that of a bare interpreter.
LAUNCHER = """\
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    files = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, job["stdout"], flags, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, job["stderr"], flags, 0o600),
    ]
    os.chdir(job["cwd"])
    start = time.perf_counter()
    pid = os.posix_spawn(job["argv"][0], job["argv"], job["env"], file_actions=files)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"seconds": seconds, "kib": usage.ru_maxrss, "code": code}), flush=True)
"""


def fake_key(seed: str, length: int) -> str:
    """A stable stand-in for a generated password or key: letters and digits."""
    text = ""
    while len(text) < length:
        text += hashlib.sha256(f"{seed}{len(text)}".encode()).hexdigest()
    return text[:length]


def secret_id(n: int) -> str:
    """A secret id shaped like Juju's (20 characters of base32hex)."""
    return f"d0ub{n:02d}v7mp25c77e3rl0"[:20]


def load_charm(charm_dir: Path) -> ModuleType:
    """Import a staged charm's charm.py under a name of its own, its src/ on sys.path.

    A charm already imported (as a neighbour of another) is not imported again.
    """
    src = charm_dir / "src"
    name = f"bench_{charm_dir.name.replace('-', '_')}_charm"
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(src))
    spec = importlib.util.spec_from_file_location(name, src / "charm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- the settled models ----------------------------------------------------------------
#
# Built from the charms' own modules wherever the charm derives the content
# (config files, Pebble layers, relation databags), so that what is already
# there is exactly what the charm would write.


# Where charmcraft.yaml mounts the mysql charm's `database` storage.
STORAGE_LOCATION = "/var/lib/mysql"


def mysql_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import mysql_server as server

    config = fakejuju.config_defaults(metadata)
    options = charm.MySQLConfig(**{k.replace("-", "_"): v for k, v in config.items()})
    passwords = {key: fake_key(key, 32) for key in charm.PASSWORD_KEYS.values()}
    admin = server.MySQLServer(
        None,  # type: ignore[arg-type] - only its option file is rendered
        user=server.ADMIN_USER,
        password=passwords[charm.PASSWORD_KEYS[server.ADMIN_USER]],
    )
    layer = server.pebble_layer()
    container = Container(
        charm.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={server.SERVICE},
    )
    container.add_dir(STORAGE_LOCATION, user="mysql", group="mysql")
    container.add_dir(f"{server.DATA_DIR}/mysql", permissions=0o750, user="mysql", group="mysql")
    container.add_file(server.CONFIG_FILE, server.render_config(options.server_config()))
    container.add_file(server.CLIENT_OPTIONS_FILE, admin.client_options(), permissions=0o600)

    database_id, s3_id = 3, 5
    user_secret, s3_secret = secret_id(2), secret_id(3)
    request = {"resource": "kfp", "request-id": "req-kfp", "salt": fake_key("salt", 16)}
    endpoint = f"mysql-0.mysql-endpoints.{MODEL_NAME}.svc.cluster.local:{server.PORT}"
    # Only "is this databag non-empty" is read in a settled update-status.
    answer = {
        **request,
        "endpoints": endpoint,
        "version": "8.4.3",
        "secret-user": f"secret://{MODEL_UUID}/{user_secret}",
    }
    database = Relation(
        "database",
        database_id,
        "kfp",
        ["kfp/0"],
        local_app_data={
            "version": "v1",
            "requests": json.dumps([answer]),
            "data": json.dumps({"req-kfp": request}),
        },
        remote_app_data={"version": "v1", "requests": json.dumps([request])},
    )
    s3_request = s3.S3RequirerData(
        bucket=charm.BACKUP_BUCKET,
        requested_secrets=list(s3.SECRET_FIELDS),
        lib_version=s3.LIB_VERSION,
    )
    s3_answer = s3.S3ProviderData(
        bucket=charm.BACKUP_BUCKET,
        endpoint=f"http://minio.{MODEL_NAME}.svc.cluster.local:9000",
        region="us-east-1",
        s3_uri_style="path",
        secret_extra=f"secret:{s3_secret}",
        lib_version=s3.LIB_VERSION,
    )
    backups = Relation(
        "s3-parameters",
        s3_id,
        "minio",
        ["minio/0"],
        local_app_data=s3_request.dump(),
        remote_app_data=s3_answer.dump(),
    )
    model = Model(
        unit="mysql/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[database, backups],
        secrets=[
            Secret(
                secret_id(1),
                passwords,
                label=charm.CREDENTIALS_LABEL,
                description="MySQL root and admin passwords",
            ),
            Secret(
                user_secret,
                {"username": f"relation-{database_id}", "password": fake_key("kfp", 32)},
                label=f"database.{database_id}.user.secret",
            ),
            Secret(
                s3_secret,
                s3.S3Credentials(access_key="minio-root", secret_key=fake_key("s3", 40)).dump(),
                owner=None,
            ),
        ],
        storages={"database/0": STORAGE_LOCATION},
        opened_ports=[f"{server.PORT}/tcp"],
        unit_status=("active", "primary"),
    )
    return model, [container]


def minio_credentials(server: ModuleType) -> s3.S3Credentials:
    """The root credentials the minio charm made (its minio_server module given)."""
    return s3.S3Credentials(
        access_key=fake_key("access", server.ACCESS_KEY_LENGTH),
        secret_key=fake_key("secret", server.SECRET_KEY_LENGTH),
    )


def minio_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import minio_server as server

    credentials = minio_credentials(server)
    layer = server.pebble_layer(credentials).to_dict()
    container = Container(
        charm.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={server.SERVICE},
    )
    container.add_dir(server.DATA_DIR)

    relation_id, shared = 7, secret_id(5)
    request = s3.S3RequirerData(
        bucket="mlpipeline", requested_secrets=list(s3.SECRET_FIELDS), lib_version=s3.LIB_VERSION
    )
    answer = s3.S3ProviderData(
        bucket="mlpipeline",
        endpoint=f"http://minio.{MODEL_NAME}.svc.cluster.local:{server.API_PORT}",
        region=server.REGION,
        s3_uri_style=server.URI_STYLE,
        secret_extra=f"secret:{shared}",
        lib_version=s3.LIB_VERSION,
    )
    model = Model(
        unit="minio/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=[
            Relation(
                charm.RELATION,
                relation_id,
                "kfp",
                ["kfp/0"],
                local_app_data=answer.dump(),
                remote_app_data=request.dump(),
            )
        ],
        secrets=[
            Secret(
                secret_id(4),
                credentials.dump(),
                label=charm.ROOT_SECRET_LABEL,
                description="MinIO root credentials",
            ),
            Secret(
                shared,
                credentials.dump(),
                label=f"{charm.RELATION}-{relation_id}",
                description=f"S3 credentials for relation {relation_id}",
            ),
        ],
        storages={"data/0": server.DATA_DIR},
        opened_ports=[f"{server.API_PORT}/tcp", f"{server.CONSOLE_PORT}/tcp"],
        unit_status=("active", f"http://minio.{MODEL_NAME}.svc.cluster.local:{server.API_PORT}"),
        app_status=("active", "1 bucket request(s) served"),
    )
    return model, [container]


# --- the platform layer: istio, dex and oidc-gateway ---------------------------------------
#
# These three are related to one another (bundle/bundle.yaml), so each one's
# settled model holds what the others wrote. A databag seen from both sides
# is built once, by the code of the charm that writes it: that charm is
# staged and imported beside the one measured (`neighbour`).

# The ingress gateway's load-balancer address, once Kubernetes gave it one.
GATEWAY_ADDRESS = "10.64.140.43"
# Where the gateway serves every route, with istio's default config (a
# LoadBalancer Service, no external-hostname, no certificate): the origin of
# every ingress URL, Dex's issuer and the login callback.
PLATFORM_URL = f"http://{GATEWAY_ADDRESS}"
# The dashboard's route, behind the login: what the kubeflow-dashboard charm
# asks for (its IngressRequirer's arguments; it leaves the rewrite unset).
DASHBOARD = "kubeflow-dashboard"
DASHBOARD_REQUEST = ingress.IngressRequest(
    prefix="/", service=DASHBOARD, namespace=MODEL_NAME, port=8082, auth=True
)
# Relation ids are the model's: one relation has the same id on both sides.
ISTIO_PEERS_ID, DEX_PEERS_ID = 11, 12
DEX_INGRESS_ID, GATEWAY_INGRESS_ID, DASHBOARD_INGRESS_ID = 13, 14, 15
INGRESS_AUTH_ID, OAUTH_ID = 16, 17
# Secret ids: istiod's certificates, Dex's admin user, the client secret Dex
# issued to the gateway (Dex's secret, granted to the gateway), the gateway's
# cookie key.
CERTS_SECRET, ADMIN_SECRET, CLIENT_SECRET, COOKIE_SECRET = (secret_id(n) for n in range(10, 14))
# What Dex made with secrets.token_urlsafe(32).
DEX_CLIENT_SECRET = fake_key("dex-client-secret", 43)


def neighbour(name: str, charm_dir: Path) -> ModuleType:
    """Another charm of the bundle, staged beside `charm_dir` and imported."""
    staged = charm_dir.parent / name
    if not (staged / "src" / "charm.py").exists():
        staged = stage.stage(name, charm_dir.parent)
    return load_charm(staged)


def default_options(charm: ModuleType, options: type) -> Any:
    """A charm's config dataclass with every option at its default, as load_config makes it."""
    unified = yaml.safe_load((Path(charm.__file__).parents[1] / "charmcraft.yaml").read_text())
    config = fakejuju.config_defaults(unified)
    return options(**{key.replace("-", "_"): value for key, value in config.items()})


@dataclasses.dataclass(frozen=True)
class Named:
    """An application or a model as some charm code reads it: by its name alone."""

    name: str


def as_charm(app: str) -> Any:
    """`self` for a charm method that reads only the application's and the model's names."""
    return SimpleNamespace(app=Named(app), model=Named(MODEL_NAME))


def dex_request(dex: ModuleType) -> ingress.IngressRequest:
    """The route the dex charm asks for (its IngressRequirer's arguments)."""
    return ingress.IngressRequest(
        prefix=dex.INGRESS_PREFIX,
        rewrite=dex.INGRESS_PREFIX,
        service="dex",
        namespace=MODEL_NAME,
        port=dex.HTTP_PORT,
        auth=False,
    )


def gateway_request(oidc_gateway: ModuleType) -> ingress.IngressRequest:
    """The route the oidc-gateway charm asks for (its IngressRequirer's arguments)."""
    return ingress.IngressRequest(
        prefix=oidc_gateway.INGRESS_PREFIX,
        service="oidc-gateway",
        namespace=MODEL_NAME,
        port=oidc_gateway.PORT,
        auth=False,
    )


def gateway_auth_data(oidc_gateway: ModuleType) -> ingress_auth.IngressAuthData:
    """What the oidc-gateway charm publishes on ingress-auth, at its default config."""
    config = default_options(oidc_gateway, oidc_gateway.GatewayConfig)
    return oidc_gateway.OidcGatewayCharm._auth_data(as_charm("oidc-gateway"), config)


def gateway_callback(oidc_gateway: ModuleType) -> str:
    """The login callback the gateway registers: its ingress URL's origin, then the path."""
    return PLATFORM_URL + oidc_gateway.CALLBACK_PATH


def gateway_registration(oidc_gateway: ModuleType) -> dict[str, str]:
    """The gateway's oauth client registration, as the oauth library writes it.

    The library publishes a single redirect URI as a plain string and lists
    as JSON text (the interface's wire format).
    """
    from charmlibs.interfaces.oauth import ClientConfig
    from oauth_registration import GRANT_TYPES

    scope = default_options(oidc_gateway, oidc_gateway.GatewayConfig).scope
    data = ClientConfig(gateway_callback(oidc_gateway), scope, list(GRANT_TYPES)).to_dict()
    return {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in data.items()}


def dex_issuer(dex: ModuleType) -> str:
    """Dex's issuer, from the URL istio answers its route with."""
    issuer = dex.issuer_from_url(PLATFORM_URL + dex.INGRESS_PREFIX)
    assert issuer is not None
    return issuer


def dex_client(oidc_gateway: ModuleType) -> Any:
    """The gateway as a Dex client (the dex charm's Registration: its client id)."""
    from oauth_clients import Registration

    return Registration(OAUTH_ID, "oidc-gateway", (gateway_callback(oidc_gateway),))


def dex_answer(dex: ModuleType, oidc_gateway: ModuleType) -> dict[str, str]:
    """Dex's databag on the oauth relation once it issued the gateway's client.

    The provider info as the dex charm has the library write it, then the
    client's id and its secret's URI, as the library writes them on issuing.
    """
    from dex_server import service_url
    from oauth_clients import provider_info

    return {
        **provider_info(dex_issuer(dex), service_url("dex", MODEL_NAME)),
        "client_id": dex_client(oidc_gateway).client_id,
        "client_secret_id": f"secret:{CLIENT_SECRET}",
    }


def istio_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import gateway
    import istiod

    dex = neighbour("dex", charm_dir)
    oidc_gateway = neighbour("oidc-gateway", charm_dir)
    app, unit = metadata["name"], f"{metadata['name']}/0"
    this = as_charm(app)
    config = fakejuju.config_defaults(metadata)
    options = default_options(charm, charm.IstioConfig)

    # Made an hour ago, with the charm's validities: the serving certificate is
    # due for renewal in eight months, the CA in over six years.
    made = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    bundle = certificates.new_bundle(
        charm.IstioCharm._ca_name(this), istiod.dns_names(MODEL_NAME), now=made
    )
    assert bundle.renewal_due() is None

    # ext_authz as the charm reads it from the gateway's databag.
    auth = ingress_auth.IngressAuthData.model_validate(gateway_auth_data(oidc_gateway).dump())
    ext_authz = istiod.ExtAuthz(
        service=auth.target,
        port=auth.port,
        include_request_headers=tuple(auth.include_request_headers),
        headers_to_upstream=tuple(auth.headers_to_upstream),
        headers_to_downstream=tuple(auth.headers_to_downstream),
    )
    asked = {
        DEX_INGRESS_ID: ("dex", dex_request(dex)),
        GATEWAY_INGRESS_ID: ("oidc-gateway", gateway_request(oidc_gateway)),
        DASHBOARD_INGRESS_ID: (DASHBOARD, DASHBOARD_REQUEST),
    }
    requests = {
        rid: gateway.Route(
            relation_id=rid,
            app=requirer,
            prefix=r.prefix,
            rewrite=r.rewrite,
            service=r.service,
            namespace=r.namespace,
            port=r.port,
            auth=r.auth,
        )
        for rid, (requirer, r) in asked.items()
    }
    inputs = charm._Inputs(config=options, ext_authz=ext_authz, requests=requests)
    plan = gateway.plan_routes(requests, {})
    assert not plan.conflicts
    served = charm.IstioCharm._served(plan, inputs)
    assert served.keys() == requests.keys()

    # The manifests the leader applied last, hashed as the charm hashes them.
    context = charm.IstioCharm._context(this, inputs, bundle, served)
    stages = [
        (
            charm.IstioCharm._resources(this, "crds"),
            kubernetes.render(charm.TEMPLATES, ["crds.yaml.j2"], context),
        ),
        (
            charm.IstioCharm._resources(this, "mesh"),
            kubernetes.render(
                charm.TEMPLATES, ["istiod.yaml.j2", "gateway.yaml.j2", "routes.yaml.j2"], context
            ),
        ),
    ]
    peers = Relation.peer(
        charm.PEERS,
        ISTIO_PEERS_ID,
        app,
        {
            charm.HASH_KEY: kubernetes.stages_hash(stages),
            charm.ROUTES_KEY: gateway.dump_routes(served),
            charm.ADDRESS_KEY: GATEWAY_ADDRESS,
        },
    )
    base = gateway.base_url(
        tls=False,
        external_hostname=options.external_hostname,
        lb_address=GATEWAY_ADDRESS,
        namespace=MODEL_NAME,
    )
    assert base == PLATFORM_URL
    routes = [
        Relation(
            charm.INGRESS,
            rid,
            requirer,
            [f"{requirer}/0"],
            local_app_data=ingress.IngressResponse(url=base + request.prefix).dump(),
            remote_app_data=request.dump(),
        )
        for rid, (requirer, request) in asked.items()
    ]
    auth_relation = Relation(
        charm.INGRESS_AUTH,
        INGRESS_AUTH_ID,
        "oidc-gateway",
        ["oidc-gateway/0"],
        remote_app_data=auth.dump(),
    )

    files = istiod.files(
        namespace=MODEL_NAME, proxy_image=options.proxy_image, ext_authz=ext_authz, bundle=bundle
    )
    layer = istiod.pebble_layer(
        namespace=MODEL_NAME,
        pod_name=unit.replace("/", "-"),
        service_account=app,
        files_hash=istiod.files_hash(files),
    )
    container = Container(
        istiod.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={istiod.SERVICE},
    )
    for f in files:
        container.add_file(f.path, f.content, permissions=f.permissions)

    model = Model(
        unit=unit,
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers, *routes, auth_relation],
        secrets=[
            Secret(
                CERTS_SECRET, bundle.to_content(), label=charm.CERTS_LABEL, description="istiod CA"
            )
        ],
        unit_status=("active", base),
        app_status=("active", base),
    )
    return model, [container]


def dex_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import dex_server
    import identities

    oidc_gateway = neighbour("oidc-gateway", charm_dir)
    app = metadata["name"]
    config = fakejuju.config_defaults(metadata)
    options = default_options(charm, charm.DexConfig)
    admin = options.admin
    assert admin is not None
    password = fake_key("dex-admin", identities.ADMIN_PASSWORD_LENGTH)
    admin_hash = identities.hash_password(password)
    issuer = dex_issuer(charm)
    client = dex_client(oidc_gateway)
    client_secret_uri = f"secret:{CLIENT_SECRET}"

    settings = dex_server.DexSettings(
        issuer=issuer,
        log_level=options.log_level,
        connectors=tuple(c.to_dex(issuer) for c in options.parsed_connectors()),
        static_passwords=(admin.static_user(admin_hash).to_dex(),),
        static_clients=(client.static_client(DEX_CLIENT_SECRET),),
    )
    layer = dex_server.pebble_layer().to_dict()
    container = Container(
        charm.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={dex_server.SERVICE},
    )
    container.add_file(
        dex_server.CONFIG_FILE,
        dex_server.render_config(settings),
        permissions=0o600,
        user="dex",
        group="dex",
    )

    # What the leader keeps in the peer databag: the admin secret it made, the
    # clients it issued.
    issued = [
        {"relation-id": OAUTH_ID, "client-id": client.client_id, "secret-id": client_secret_uri}
    ]
    peers = Relation.peer(
        charm.PEERS,
        DEX_PEERS_ID,
        app,
        {
            charm.ADMIN_SECRET_KEY: f"secret:{ADMIN_SECRET}",
            charm.ISSUED_CLIENTS_KEY: json.dumps(issued),
        },
    )
    route = Relation(
        charm.INGRESS,
        DEX_INGRESS_ID,
        "istio",
        ["istio/0"],
        local_app_data=dex_request(charm).dump(),
        remote_app_data=ingress.IngressResponse(url=PLATFORM_URL + charm.INGRESS_PREFIX).dump(),
    )
    oauth = Relation(
        charm.OAUTH,
        OAUTH_ID,
        "oidc-gateway",
        ["oidc-gateway/0"],
        local_app_data=dex_answer(charm, oidc_gateway),
        remote_app_data=gateway_registration(oidc_gateway),
    )
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers, route, oauth],
        secrets=[
            Secret(
                ADMIN_SECRET,
                {"password": password, "hash": admin_hash},
                label=charm.ADMIN_SECRET_LABEL,
                description="Dex admin user's password and its bcrypt hash",
            ),
            # Made by the oauth library on issuing: its label and content key.
            Secret(
                CLIENT_SECRET, {"secret": DEX_CLIENT_SECRET}, label=f"client_secret_{OAUTH_ID}"
            ),
        ],
        opened_ports=[f"{dex_server.HTTP_PORT}/tcp"],
        unit_status=("active", issuer),
        app_status=("active", "1 oauth client(s)"),
    )
    return model, [container]


def oidc_gateway_settled(
    charm_dir: Path, metadata: dict[str, Any]
) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import oauth2_proxy as proxy
    from charmlibs.interfaces.oauth import OauthProviderConfig
    from oauth_registration import DexRegistration

    dex = neighbour("dex", charm_dir)
    app = metadata["name"]
    config = fakejuju.config_defaults(metadata)
    options = default_options(charm, charm.GatewayConfig)
    answer = dex_answer(dex, charm)
    cookie = proxy.generate_cookie_secret()

    # Dex's answer as the charm turns it into oauth2-proxy's provider: its own
    # DexRegistration.issued, the oauth library's reading of the databag (and
    # of the client secret) given to it.
    dex_app = Named("dex")
    reading = DexRegistration(None, charm.OAUTH)  # type: ignore[arg-type] - no charm is read
    seen = OauthProviderConfig.from_dict({**answer, "client_secret": DEX_CLIENT_SECRET})
    reading._requirer = SimpleNamespace(get_provider_info=lambda relation_id: seen)
    relation = SimpleNamespace(id=OAUTH_ID, app=dex_app, data={dex_app: answer})
    provider = reading.issued(relation, options.scope)
    assert provider is not None
    settings = charm.OidcGatewayCharm._settings(
        as_charm(app), options, PLATFORM_URL, cookie, provider
    )

    layer = proxy.pebble_layer().to_dict()
    container = Container(
        charm.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={proxy.SERVICE},
    )
    container.add_dir(proxy.SECRETS_DIR, permissions=0o700, user="nonroot", group="nonroot")
    for f in proxy.workload_files(settings):
        owner = "nonroot" if f.secret else "root"
        container.add_file(f.path, f.content, permissions=f.permissions, user=owner, group=owner)

    oauth = Relation(
        charm.OAUTH,
        OAUTH_ID,
        "dex",
        ["dex/0"],
        local_app_data=gateway_registration(charm),
        remote_app_data=answer,
    )
    route = Relation(
        charm.INGRESS,
        GATEWAY_INGRESS_ID,
        "istio",
        ["istio/0"],
        local_app_data=gateway_request(charm).dump(),
        remote_app_data=ingress.IngressResponse(url=PLATFORM_URL + charm.INGRESS_PREFIX).dump(),
    )
    auth = Relation(
        charm.INGRESS_AUTH,
        INGRESS_AUTH_ID,
        "istio",
        ["istio/0"],
        local_app_data=gateway_auth_data(charm).dump(),
    )
    message = f"login via dex at {PLATFORM_URL}"
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[oauth, route, auth],
        secrets=[
            Secret(
                COOKIE_SECRET,
                {charm.COOKIE_SECRET_KEY: cookie},
                label=charm.COOKIE_SECRET_LABEL,
                description="oauth2-proxy session cookie key",
            ),
            # Dex's, granted to the gateway: it only reads it.
            Secret(CLIENT_SECRET, {"secret": DEX_CLIENT_SECRET}, owner=None),
        ],
        opened_ports=[f"{proxy.PORT}/tcp"],
        unit_status=("active", message),
        app_status=("active", message),
    )
    return model, [container]


# --- the user-facing layer: kubeflow-dashboard, kubeflow-notebooks, resource-dispatcher ----
#
# Related to one another and to the platform layer: the dashboard shows the
# notebooks' link, both are routed by istio, and the dispatcher keeps what
# minio hands it in every profile namespace.

DASHBOARD_PEERS_ID, NOTEBOOKS_PEERS_ID, DISPATCHER_PEERS_ID = 21, 22, 23
LINKS_ID, NOTEBOOKS_INGRESS_ID, MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID = 24, 25, 26, 27
# The dispatcher's webhook certificates; minio's manifests secrets, one a relation.
WEBHOOK_CERTS_SECRET, MINIO_SECRETS_SECRET, MINIO_POD_DEFAULTS_SECRET = (
    secret_id(n) for n in range(14, 17)
)
# The profile namespaces the dispatcher found when it last applied.
PROFILE_NAMESPACES = ["team-a"]


def leader_view(cls: type, app: str) -> tuple[Any, dict[str, str]]:
    """A charm object with only the model a leader's cluster reconcile reads, and its peer bag.

    The object is of the charm's own class, made without ops' framework: its
    methods and properties run as written, on a model that has the
    application's and the model's names and one peer relation whose
    application databag starts empty.
    """
    databag: dict[str, str] = {}
    named = Named(app)
    peer = SimpleNamespace(data={named: databag})
    model = SimpleNamespace(name=MODEL_NAME, app=named, get_relation=lambda endpoint: peer)
    this = cls.__new__(cls)
    this.framework = SimpleNamespace(model=model)
    return this, databag


def applied_peer_data(cls: type, app: str, *args: Any, **kwargs: Any) -> dict[str, str]:
    """What a charm's leader keeps in its peer databag once the cluster holds its objects.

    Runs the charm's own `_reconcile_cluster` with applying left out:
    `apply_stages` returns the hash of the stages, as it does when nothing
    changed, so the databag gets the hash exactly as the charm computes it.
    """
    this, databag = leader_view(cls, app)
    module = sys.modules[cls.__module__]
    apply_stages = module.apply_stages
    module.apply_stages = lambda stages, last_hash, *, force=False: kubernetes.stages_hash(stages)
    try:
        cls._reconcile_cluster(this, *args, **kwargs)
    finally:
        module.apply_stages = apply_stages
    return databag


def workload_container(name: str, layer: dict[str, Any], *services: str) -> Container:
    """A container whose plan holds the layer's services and checks, the services running."""
    plan = {"services": layer["services"], "checks": layer.get("checks", {})}
    return Container(name, plan=plan, running=set(services))


def dashboard_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import dashboard_services as services

    notebooks = neighbour("kubeflow-notebooks", charm_dir)
    app = metadata["name"]
    config = fakejuju.config_defaults(metadata)
    options = default_options(charm, charm.DashboardConfig)
    assert services.DASHBOARD_PORT == DASHBOARD_REQUEST.port

    # The notebooks' links as the dashboard reads them off the relation, then
    # those of `additional-links`, as the charm's _read_inputs lists them.
    offered = dashboard_links.dump(notebooks.LINKS)
    inputs = charm._Inputs(
        config=options, links=dashboard_links.parse(offered, "kubeflow-notebooks") + options.links
    )
    cls = charm.KubeflowDashboardCharm
    peers = Relation.peer(
        charm.PEERS, DASHBOARD_PEERS_ID, app, applied_peer_data(cls, app, inputs, force=False)
    )

    this, _ = leader_view(cls, app)
    settings = cls._settings(this, options)
    containers = []
    for name in services.CONTAINERS:
        container = workload_container(name, services.layer(name, settings), name)
        for f in services.files(name):
            container.add_file(f.path, f.content)
        containers.append(container)

    links = Relation(
        charm.LINKS,
        LINKS_ID,
        "kubeflow-notebooks",
        ["kubeflow-notebooks/0"],
        remote_app_data={dashboard_links.FIELD: offered},
    )
    url = PLATFORM_URL + DASHBOARD_REQUEST.prefix
    route = Relation(
        charm.INGRESS,
        DASHBOARD_INGRESS_ID,
        "istio",
        ["istio/0"],
        local_app_data=DASHBOARD_REQUEST.dump(),
        remote_app_data=ingress.IngressResponse(url=url).dump(),
    )
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers, links, route],
        opened_ports=[f"{services.DASHBOARD_PORT}/tcp"],
        unit_status=("active", url),
        app_status=("active", url),
    )
    return model, containers


def notebooks_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import jupyter_web_app as web_app
    import notebook_controller as controller
    import spawner_config
    from pebble_workload import File, files_hash

    app = metadata["name"]
    config = fakejuju.config_defaults(metadata)
    options = default_options(charm, charm.NotebooksConfig)
    cls = charm.NotebooksCharm
    peers = Relation.peer(
        charm.PEERS, NOTEBOOKS_PEERS_ID, app, applied_peer_data(cls, app, force=False)
    )

    # The route the charm asks for (its IngressRequirer's arguments), and istio's answer.
    request = ingress.IngressRequest(
        prefix=charm.INGRESS_PREFIX,
        rewrite="/",
        service=app,
        namespace=MODEL_NAME,
        port=web_app.PORT,
        auth=True,
    )
    url = PLATFORM_URL + charm.INGRESS_PREFIX
    route = Relation(
        charm.INGRESS,
        NOTEBOOKS_INGRESS_ID,
        "istio",
        ["istio/0"],
        local_app_data=request.dump(),
        remote_app_data=ingress.IngressResponse(url=url).dump(),
    )
    links = Relation(
        charm.DASHBOARD_LINKS,
        LINKS_ID,
        DASHBOARD,
        [f"{DASHBOARD}/0"],
        local_app_data={dashboard_links.FIELD: dashboard_links.dump(charm.LINKS)},
    )

    ctl = workload_container(
        controller.CONTAINER,
        controller.pebble_layer(
            namespace=MODEL_NAME, culling_idle_minutes=options.culling_idle_minutes
        ),
        controller.SERVICE,
    )
    files = [File(web_app.CONFIG_FILE, spawner_config.render(options))]
    web = workload_container(
        web_app.CONTAINER,
        web_app.pebble_layer(
            secure_cookies=url.startswith("https://"), config_hash=files_hash(files)
        ),
        web_app.SERVICE,
    )
    for f in files:
        web.add_file(f.path, f.content)

    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers, route, links],
        opened_ports=[f"{web_app.PORT}/tcp"],
    )
    return model, [ctl, web]


def dispatcher_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import dispatch
    import namespace_watch
    import webhook

    minio = neighbour("minio", charm_dir)
    import minio_server
    import profile_manifests

    app = metadata["name"]

    # Made an hour ago, with the charm's validities: nothing is due for years.
    made = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    bundle = certificates.new_bundle(
        f"{app} webhook CA ({MODEL_NAME})", webhook.dns_names(app, MODEL_NAME), now=made
    )
    assert bundle.renewal_due() is None

    # What minio hands over on each endpoint, in the secret it grants the
    # relation, as its ManifestsRequirer writes it.
    credentials = minio_credentials(minio_server)
    endpoint = f"http://minio.{MODEL_NAME}.svc.cluster.local:{minio_server.API_PORT}"
    handed = {
        minio.SECRETS: (
            MINIO_SECRETS_ID,
            MINIO_SECRETS_SECRET,
            [profile_manifests.credentials_secret(credentials)],
        ),
        minio.POD_DEFAULTS: (
            MINIO_POD_DEFAULTS_ID,
            MINIO_POD_DEFAULTS_SECRET,
            [profile_manifests.pod_default(endpoint, minio_server.REGION)],
        ),
    }
    relations, secrets, offers = [], [], []
    for name, (rid, sid, objects) in handed.items():
        content = {kubernetes_manifests.CONTENT_KEY: json.dumps(objects, sort_keys=True)}
        relations.append(
            Relation(
                name,
                rid,
                "minio",
                ["minio/0"],
                remote_app_data={
                    kubernetes_manifests.MANIFESTS_FIELD: f"secret:{sid}",
                    kubernetes_manifests.IS_SECRET_FIELD: "true",
                },
            )
        )
        secrets.append(Secret(sid, content, owner=None))
        parsed = kubernetes_manifests.parse(content[kubernetes_manifests.CONTENT_KEY], "minio")
        offers.append(dispatch.Offer(name, "minio", tuple(parsed)))

    # The peer databag as the leader's last apply left it: the hash of its own
    # objects and minio's in each profile namespace known then, those
    # namespaces, the apps applied.
    plan = dispatch.plan(offers)
    assert not dispatch.problems(plan)
    this, _ = leader_view(charm.ResourceDispatcherCharm, app)
    own = charm.ResourceDispatcherCharm._own_manifests(this, bundle)
    peers = Relation.peer(
        charm.PEERS,
        DISPATCHER_PEERS_ID,
        app,
        {
            charm.HASH_KEY: charm._hash(own, plan, PROFILE_NAMESPACES),
            charm.NAMESPACES_KEY: json.dumps(PROFILE_NAMESPACES),
            charm.APPS_KEY: json.dumps(sorted(plan.objects)),
        },
    )
    secrets.append(
        Secret(
            WEBHOOK_CERTS_SECRET,
            bundle.to_content(),
            label=charm.CERTS_LABEL,
            description="webhook certificates",
        )
    )

    hook = workload_container(
        webhook.CONTAINER, webhook.pebble_layer(bundle.serial), webhook.SERVICE
    )
    hook.add_file(webhook.CERT_FILE, bundle.tls_cert, permissions=0o644)
    hook.add_file(webhook.KEY_FILE, bundle.tls_key, permissions=0o600)
    watch = workload_container(
        namespace_watch.CONTAINER, namespace_watch.pebble_layer(), namespace_watch.SERVICE
    )

    message = (
        f"{len(plan.objects)} app(s) dispatched to {len(PROFILE_NAMESPACES)} profile namespace(s)"
    )
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers, *relations],
        secrets=secrets,
        unit_status=("active", message),
        app_status=("active", message),
    )
    return model, [hook, watch]


SETTLED: dict[str, Callable[[Path, dict[str, Any]], tuple[Model, list[Container]]]] = {
    "mysql": mysql_settled,
    "minio": minio_settled,
    "istio": istio_settled,
    "dex": dex_settled,
    "oidc-gateway": oidc_gateway_settled,
    "kubeflow-dashboard": dashboard_settled,
    "kubeflow-notebooks": notebooks_settled,
    "resource-dispatcher": dispatcher_settled,
}


# --- running one hook ---------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One hook: its cost and what it did."""

    seconds: float
    mib: float
    returncode: int
    stderr: str
    tool_calls: int
    pebble_calls: int
    writes: list[str]
    statuses: list[str]
    log: list[tuple[str, str]]
    unanswered: list[str]


class Launcher:
    """The small process that starts each hook and measures it (see LAUNCHER)."""

    def __enter__(self) -> Launcher:
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-P", "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={},
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait()

    def spawn(
        self, argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path
    ) -> tuple[float, float, int]:
        """Run argv to its end: wall seconds, peak RSS in MiB, exit code."""
        job = {"argv": argv, "env": env, "cwd": str(cwd), "stdout": str(stdout)}
        job["stderr"] = str(stderr)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        return answer["seconds"], answer["kib"] / 1024, answer["code"]  # KiB on Linux


@dataclasses.dataclass
class Hook:
    """Everything needed to run one charm's hook against its fake model."""

    name: str
    charm_dir: Path
    env: dict[str, str]
    argv: list[str]
    logs: fakejuju.ToolLogs
    pebbles: list[FakePebble]
    scratch: Path
    launcher: Launcher

    def run(self, *extra_flags: str) -> Run:
        """Run the hook once; `extra_flags` go to the interpreter."""
        self.logs.reset()
        for pebble in self.pebbles:
            pebble.reset()
        err = self.scratch / "stderr"
        argv = [self.argv[0], *extra_flags, *self.argv[1:]]
        seconds, mib, returncode = self.launcher.spawn(
            argv, self.env, self.charm_dir, self.scratch / "stdout", err
        )
        return Run(
            seconds=seconds,
            mib=mib,
            returncode=returncode,
            stderr=err.read_text(errors="replace"),
            tool_calls=len(self.logs.records("calls")),
            pebble_calls=sum(p.calls for p in self.pebbles),
            writes=fakejuju.join_records(self.logs.records("writes"))
            + [w for p in self.pebbles for w in p.writes],
            statuses=fakejuju.join_records(self.logs.records("status")),
            log=self.logs.log_lines(),
            unanswered=fakejuju.join_records(self.logs.records("unanswered"))
            + [u for p in self.pebbles for u in p.unanswered],
        )


def hook_env(model: Model, charm_dir: Path, bin_dir: Path) -> dict[str, str]:
    """The environment Juju gives an update-status hook (what ops reads of it)."""
    return {
        "JUJU_UNIT_NAME": model.unit,
        "JUJU_MODEL_NAME": model.model_name,
        "JUJU_MODEL_UUID": model.model_uuid,
        "JUJU_VERSION": JUJU_VERSION,
        "JUJU_CHARM_DIR": str(charm_dir),
        "JUJU_DISPATCH_PATH": f"hooks/{HOOK}",
        "JUJU_HOOK_NAME": HOOK,
        "JUJU_CONTEXT_ID": f"{model.unit}-{HOOK}-{int(time.time())}",
        "PYTHONPATH": f"{charm_dir}/lib:{charm_dir}/src",
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }


@contextlib.contextmanager
def prepared(name: str, work: Path, launcher: Launcher):
    """Stage the charm, build its settled model, start its fake Pebble."""
    charm_dir = stage.stage(name, work / "stage")
    metadata = fakejuju.write_packed_metadata(charm_dir)
    model, containers = SETTLED[name](charm_dir, metadata)
    base = work / name
    logs = fakejuju.write_hook_tools(model, base / "bin", base / "log")
    pebble_root = base / "charm"  # stands in for /charm
    with contextlib.ExitStack() as stack:
        pebbles = [
            stack.enter_context(
                FakePebble(c, pebble_root / "containers" / c.name / "pebble.socket")
            )
            for c in containers
        ]
        prelude = PRELUDE.format(root=str(pebble_root), charm=str(charm_dir / "src" / "charm.py"))
        # -P: no script directory or cwd on sys.path, as when Juju runs src/charm.py.
        argv = [sys.executable, "-P", "-c", prelude]
        env = hook_env(model, charm_dir, base / "bin")
        yield Hook(name, charm_dir, env, argv, logs, pebbles, base, launcher)


def check(run: Run, name: str) -> None:
    """Stop the bench when the hook itself failed: its figures would mean nothing."""
    if run.returncode == 0:
        return
    print(f"\n{name}: the {HOOK} hook failed (exit {run.returncode})", file=sys.stderr)
    print(run.stderr, file=sys.stderr)
    for level, message in run.log:
        if level in ("ERROR", "CRITICAL"):
            print(f"juju-log {level}: {message}", file=sys.stderr)
    for call in run.unanswered:
        print(f"no answer in the bench's model for: {call}", file=sys.stderr)
    raise SystemExit(1)


# --- where the import time goes --------------------------------------------------------------


@dataclasses.dataclass
class Imports:
    """`python -X importtime` of one hook, in milliseconds."""

    total_ms: float
    top: list[tuple[str, float]]  # the heaviest top-level imports, cumulative
    packages: list[tuple[str, float]]  # the heaviest packages, their modules' own time summed


def import_times(stderr: str, count: int = 5) -> Imports:
    top: list[tuple[str, float]] = []
    packages: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, label = line.removeprefix("import time:").split("|", 2)
        name = label[1:]
        if not name.startswith(" "):  # imported by no other module
            top.append((name, int(cumulative) / 1000))
        package = name.strip().split(".")[0]
        packages[package] = packages.get(package, 0.0) + int(own) / 1000
    return Imports(
        total_ms=sum(packages.values()),
        top=sorted(top, key=lambda t: -t[1])[:count],
        packages=sorted(packages.items(), key=lambda t: -t[1])[: count + 1],
    )


# --- the report --------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """One charm's figures."""

    name: str
    runs: list[Run]
    imports: Imports

    @property
    def seconds(self) -> float:
        """Median wall time."""
        return statistics.median(r.seconds for r in self.runs)

    @property
    def mib(self) -> float:
        """Median peak RSS."""
        return statistics.median(r.mib for r in self.runs)


def bench(name: str, work: Path, runs: int, launcher: Launcher) -> Result:
    with prepared(name, work, launcher) as hook:
        # One run first, unmeasured, as a unit has run hooks before: bytecode
        # is cached and ops' state database exists.
        check(hook.run(), name)
        measured = []
        for _ in range(runs):
            run = hook.run()
            check(run, name)
            measured.append(run)
        # One importtime run can catch a hiccup of the machine: keep the quickest of three.
        traced = []
        for _ in range(3):
            run = hook.run("-X", "importtime")
            check(run, name)
            traced.append(import_times(run.stderr))
    return Result(name, measured, min(traced, key=lambda i: i.total_ms))


def _mark(value: float, budget: float) -> str:
    return "ok" if value <= budget else "OVER"


def _table(results: list[Result]) -> None:
    width = max([len("charm"), *(len(r.name) for r in results)])
    header = (
        f"{'charm':<{width}} {'wall (median)':>13} {'budget':>8}     {'range':>13}  "
        f"{'peak RSS (median)':>17} {'budget':>8}     {'tools':>5} {'pebble':>6} {'writes':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        times = [x.seconds for x in r.runs]
        last = r.runs[-1]
        print(
            f"{r.name:<{width}} {r.seconds:>11.3f} s {BUDGET_SECONDS:>6.1f} s "
            f"{_mark(r.seconds, BUDGET_SECONDS):<4} {min(times):.3f}-{max(times):.3f} s  "
            f"{r.mib:>13.1f} MiB {BUDGET_MIB:>4.0f} MiB "
            f"{_mark(r.mib, BUDGET_MIB):<4} {last.tool_calls:>5} {last.pebble_calls:>6} "
            f"{len(last.writes):>6}"
        )
    print(
        "tools: hook-tool processes the hook started (juju-log included); pebble: Pebble API "
        "requests;\nwrites: hook-tool calls and Pebble requests that change the model or the "
        "container"
    )


def _details(r: Result) -> None:
    print(f"\n{r.name}:")
    share = r.imports.total_ms / 1000 / r.seconds * 100
    print(
        f"  imports: {r.imports.total_ms:.0f} ms (-X importtime, quickest of 3 runs), about "
        f"{share:.0f}% of the median hook;\n  the heaviest top-level imports, cumulative:"
    )
    for module, ms in r.imports.top:
        print(f"    {ms:>6.0f} ms  {module}")
    packages = ", ".join(f"{name} {ms:.0f} ms" for name, ms in r.imports.packages)
    print(f"  by package (own time of its modules): {packages}")
    last = r.runs[-1]
    if any(x.writes != last.writes for x in r.runs):
        print("  the writes differ between runs; those of the last run:")
    print(f"  writes: {len(last.writes) or 'none'}")
    for write in last.writes:
        print(f"    {write}")
    print("  status-set (ops sets both on every hook; Juju ignores an unchanged status):")
    for status in last.statuses:
        print(f"    {status}")
    charm_log = [(level, m) for level, m in last.log if level not in ("DEBUG", "TRACE")]
    if charm_log:
        print("  juju-log above DEBUG:")
        for level, message in charm_log:
            print(f"    {level}: {' '.join(message.split())[:200]}")
    if last.unanswered:
        print("  calls the fake model has no answer for (failed, as Juju or Pebble would):")
        for call in last.unanswered:
            print(f"    {call}")


def report(
    results: list[Result], runs: int, floor: tuple[float, float], missing: list[str]
) -> None:
    print(
        f"One {HOOK} hook per charm on a settled model: a fresh Python process through "
        f"ops.main,\nJuju {JUJU_VERSION} hook environment, Python {sys.version.split()[0]}; "
        f"median of {runs} runs after one warm-up run.\n"
        f"For scale, a bare interpreter start: {floor[0]:.3f} s, {floor[1]:.1f} MiB.\n"
    )
    _table(results)
    for r in results:
        _details(r)
    if missing:
        print(f"\nnot measured, no settled model in bench/hooks.py yet: {', '.join(missing)}")


def interpreter_floor(work: Path, launcher: Launcher) -> tuple[float, float]:
    """Wall time and peak RSS of `python -P -c pass`, measured the same way, for scale."""
    samples = [
        launcher.spawn([sys.executable, "-P", "-c", "pass"], {}, work, work / "out", work / "err")
        for _ in range(5)
    ]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per charm")
    parser.add_argument(
        "--charm", action="append", help="charm to measure (repeatable; default: every charm)"
    )
    # `tox -e bench` hands the same arguments to bench/backup.py: leave its own to it.
    args, _ = parser.parse_known_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    every = sorted(p.parent.name for p in (ROOT / "charms").glob("*/charmcraft.yaml"))
    unknown = [n for n in args.charm or [] if n not in SETTLED]
    if unknown:
        parser.error(f"no settled model for {', '.join(unknown)}: add one to SETTLED")
    names = args.charm or [n for n in every if n in SETTLED]
    missing = [] if args.charm else [n for n in every if n not in SETTLED]
    with tempfile.TemporaryDirectory(prefix="hookbench-") as tmp:
        work = Path(tmp)
        with Launcher() as launcher:
            floor = interpreter_floor(work, launcher)
            results = [bench(name, work, args.runs, launcher) for name in names]
    report(results, args.runs, floor, missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
