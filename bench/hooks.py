"""Benchmark: the cost of one `update-status` hook of each charm, run the way Juju runs it.

Not a test: it prints figures. Each charm is staged as it would be packed
(`tools/stage.py`), then its `src/charm.py` runs through `ops.main` in a fresh
Python process, imports included, with the environment Juju gives a hook and
fake hook tools and a fake Pebble (`bench/fakejuju.py`) answering from a
settled model: the charm has done its work already, so a correct charm
changes nothing. For each charm it prints the median wall time and peak RSS
over N runs beside the budget, where the import time goes, which heavy
modules (ecosystem charm libraries, pydantic, lightkube, cryptography, boto3)
the hook loads and from which of the charm's calls, and every write the hook
did (hook tools that change the model, Pebble calls that change the
container): there should be none.

    PYTHONPATH=lib python bench/hooks.py [--runs 7] [--charm mysql]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import ops
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakejuju  # noqa: E402
import stage  # noqa: E402
from fakejuju import Container, FakePebble, Model, Relation, Secret  # noqa: E402

from kubeflow_charms import certificates, drift, kubernetes  # noqa: E402
from kubeflow_interfaces import s3  # noqa: E402

# A settled hook may cost at most this many times a fresh `python -c "import ops"`
# measured in the same run (absolute times on a shared machine are noise), and this much memory.
BUDGET_RATIO = 1.5
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
# For a charm that lists its own objects (kubeflow_charms.drift), before PRELUDE:
# the service account's token and CA are the bench's, as a pod's are mounted. The
# charm imports the module anyway, so importing it first adds nothing.
API_PRELUDE = """\
import pathlib, kubeflow_charms.drift
kubeflow_charms.drift.SERVICE_ACCOUNT = pathlib.Path({account!r})
"""

# The modules a settled hook should not need: the ecosystem's charm libraries
# (pydantic models, jsonschema), pydantic, lightkube, cryptography, boto3.
HEAVY = ("charmlibs", "dpcharmlibs", "pydantic", "lightkube", "cryptography", "boto3")
# Put before PRELUDE in one more run of each hook, not measured: an audit hook
# notes, for each heavy module (each charmlibs.interfaces.* library apart), the
# frames of the charm's own code (src/ and lib/) that first imported it, and
# prints them on stderr at exit.
TRACER = """\
import atexit, json, sys, traceback
_heavy, _root, _first = {heavy!r}, {charm_dir!r} + "/", {{}}
def _audit(event, args):
    if event != "import" or not isinstance(args[0], str):
        return
    parts = args[0].split(".")
    if parts[0] not in _heavy or (parts[0] == "charmlibs" and len(parts) < 3):
        return
    key = ".".join(parts[:3]) if parts[0] == "charmlibs" else parts[0]
    if key in _first:
        return
    frames = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(_root)]
    _first[key] = [f"{{f.filename[len(_root):]}}:{{f.lineno}} {{f.name}}" for f in frames]
sys.addaudithook(_audit)
atexit.register(lambda: print("heavy-imports " + json.dumps(_first), file=sys.stderr))
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
    """Import a staged charm's module, `<name>_charm`, which its src/charm.py runs.

    The charm's src/ goes on sys.path. A charm already imported (as a
    neighbour of another) is not imported again.
    """
    src = charm_dir / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module(f"{charm_dir.name.replace('-', '_')}_charm")


# --- charm code run in the bench's process -------------------------------------------------
#
# A settled model is what the charms' own code leaves behind. What a charm
# derives on its own (config files, Pebble layers) comes from its modules;
# what it and its neighbours write on their relations and keep in secrets
# comes from running their code here, on `ModelView`, a stand-in for ops'
# model that holds names, the leader unit, relations with their application
# databags, and secrets. A `World` of related applications runs pass after
# pass of every application's code, as hooks follow one another on a real
# model, until a pass writes nothing; Kubernetes answers as a cluster that
# holds every object already (`cluster_holds_everything`).


class Databag(collections.UserDict):  # type: ignore[type-arg]
    """An application databag as ops gives it to charm code: setting "" deletes the key."""

    def __setitem__(self, key: str, value: str) -> None:
        if value == "":
            self.pop(key, None)
        else:
            super().__setitem__(key, value)


@dataclasses.dataclass(frozen=True)
class Named:
    """An application, unit or model as charm code reads it: by its name.

    An application of a `World` makes secrets as ops' Application does.
    """

    name: str
    world: World | None = dataclasses.field(default=None, compare=False, repr=False)

    def add_secret(
        self, content: dict[str, str], *, label: str | None = None, description: str | None = None
    ) -> SecretView:
        """A new secret owned by this application."""
        assert self.world is not None
        return self.world.add_secret(self.name, content, label=label, description=description)


@dataclasses.dataclass(frozen=True)
class LeaderUnit:
    """The unit a `ModelView`'s code runs as: the leader."""

    name: str

    def is_leader(self) -> bool:
        """Always: the bench's models are of leaders."""
        return True

    def set_ports(self, *ports: Any) -> None:
        """Nothing to record: the bench's models list the ports as opened already."""

    def get_container(self, name: str) -> Unreachable:
        """A workload container: the bench's Pebble holds its settled state, not this code."""
        return Unreachable()


@dataclasses.dataclass(eq=False)
class RelationView:
    """A relation as charm code reads it off ops' model."""

    name: str
    id: int
    app: Named
    units: set[Named]
    data: dict[Named, Databag]

    @property
    def remote_model(self) -> Any:
        """The other side's model: the same one (the bundle has no cross-model relation)."""
        return SimpleNamespace(name=MODEL_NAME, uuid=MODEL_UUID)


@dataclasses.dataclass
class SecretRecord:
    """A secret as Juju keeps it: owner, content, label, and the applications granted it."""

    bare: str
    owner: str
    content: dict[str, str]
    label: str | None = None
    description: str | None = None
    granted: set[str] = dataclasses.field(default_factory=set)


class SecretView:
    """A secret as ops hands it to charm code.

    Just made, its id is the `secret:<id>` form; found by label it has none,
    and its info gives the `secret://<model>/<id>` form ops makes of the bare
    id `secret-info-get` answers with, as in a real hook.
    """

    def __init__(self, record: SecretRecord, id: str | None):
        self._record = record
        self.id = id
        self.label = record.label

    def get_content(self, *, refresh: bool = False) -> dict[str, str]:
        """The latest content."""
        return dict(self._record.content)

    def set_content(self, content: dict[str, str]) -> None:
        """A new revision."""
        self._record.content = dict(content)

    def grant(self, relation: RelationView, *, unit: Any = None) -> None:
        """Let the relation's other application read it."""
        self._record.granted.add(relation.app.name)

    def get_info(self) -> Any:
        """Its metadata: only the id is read."""
        return SimpleNamespace(id=f"secret://{MODEL_UUID}/{self._record.bare}")


def bare_secret_id(uri: str) -> str:
    """`secret://<model>/<id>`, `secret:<id>` and `<id>` all to `<id>`."""
    return uri.rsplit("/", 1)[-1].removeprefix("secret:")


class ModelView:
    """ops' model as one leader unit's charm code uses it, held in plain Python."""

    def __init__(self, world: World, app: str, relations: Iterable[RelationView]):
        self.name = MODEL_NAME
        self.uuid = MODEL_UUID
        self.app = Named(app, world)
        self.unit = LeaderUnit(f"{app}/0")
        self.relations: dict[str, list[RelationView]] = collections.defaultdict(list)
        for relation in relations:
            self.relations[relation.name].append(relation)
        self._world = world

    def get_relation(
        self, relation_name: str, relation_id: int | None = None
    ) -> RelationView | None:
        """The relation on an endpoint (the one with this id)."""
        for relation in self.relations[relation_name]:
            if relation_id is None or relation.id == relation_id:
                return relation
        return None

    def get_secret(self, *, id: str | None = None, label: str | None = None) -> SecretView:
        """A secret this application owns (by label or id) or was granted (by id)."""
        return self._world.get_secret(self.app.name, id=id, label=label)


@dataclasses.dataclass
class Link:
    """A relation seen from both ends: its id, each application's endpoint and databag.

    A peer relation has one end, and one application databag, the one its
    units share.
    """

    id: int
    ends: dict[str, str]
    bags: dict[str, Databag] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for app in self.ends:
            self.bags.setdefault(app, Databag())

    def other(self, app: str) -> str:
        """The application at the other end (`app` itself on a peer relation)."""
        return next((a for a in self.ends if a != app), app)

    def view(self, app: str) -> RelationView:
        """The relation as `app`'s code sees it."""
        other = self.other(app)
        units = set() if other == app else {Named(f"{other}/0")}
        data = {Named(a): bag for a, bag in self.bags.items()}
        return RelationView(self.ends[app], self.id, Named(other), units, data)

    def relation(self, app: str) -> Relation:
        """The relation in `app`'s model for the bench's hook tools."""
        other = self.other(app)
        if other == app:
            return Relation.peer(self.ends[app], self.id, app, dict(self.bags[app]))
        return Relation(
            self.ends[app],
            self.id,
            other,
            [f"{other}/0"],
            local_app_data=dict(self.bags[app]),
            remote_app_data=dict(self.bags[other]),
        )


class World:
    """Applications related to one another: their relations, and the secrets they made."""

    def __init__(self, first_secret: int):
        self.links: dict[int, Link] = {}
        self.secrets: dict[str, SecretRecord] = {}
        self._next_secret = first_secret

    def link(self, relation_id: int, ends: dict[str, str]) -> Link:
        """Relate applications (application -> its endpoint)."""
        self.links[relation_id] = Link(relation_id, ends)
        return self.links[relation_id]

    def model(self, app: str, *relation_ids: int) -> ModelView:
        """`app`'s model, with these of its relations."""
        return ModelView(self, app, [self.links[i].view(app) for i in relation_ids])

    def relations(self, app: str, *relation_ids: int) -> list[Relation]:
        """These relations, in `app`'s model for the bench's hook tools."""
        return [self.links[i].relation(app) for i in relation_ids]

    def bag(self, relation_id: int, app: str) -> Databag:
        """`app`'s application databag on a relation."""
        return self.links[relation_id].bags[app]

    def add_secret(
        self, owner: str, content: dict[str, str], *, label: str | None, description: str | None
    ) -> SecretView:
        """A new secret owned by `owner`, as `secret-add` makes one."""
        bare = secret_id(self._next_secret)
        self._next_secret += 1
        self.secrets[bare] = SecretRecord(bare, owner, dict(content), label, description)
        return SecretView(self.secrets[bare], f"secret:{bare}")

    def get_secret(self, app: str, *, id: str | None, label: str | None) -> SecretView:
        """A secret `app` owns (by label or id) or was granted (by id), as ops finds it."""
        for record in self.secrets.values():
            if id is not None:
                readable = record.owner == app or app in record.granted
                if record.bare == bare_secret_id(id) and readable:
                    return SecretView(record, id)
            elif record.owner == app and record.label == label:
                return SecretView(record, None)
        raise ops.SecretNotFoundError(id or label)

    def bench_secrets(self, app: str) -> list[Secret]:
        """The secrets `app` reads in the bench's model: its own, and those granted to it."""
        out = []
        for r in self.secrets.values():
            if r.owner == app:
                out.append(Secret(r.bare, r.content, label=r.label, description=r.description))
            elif app in r.granted:
                out.append(Secret(r.bare, r.content, owner=None))
        return out

    def state(self) -> str:
        """Every databag and secret, as text to compare."""
        bags = {i: {a: dict(b) for a, b in link.bags.items()} for i, link in self.links.items()}
        secrets = {
            b: [r.owner, r.content, r.label, sorted(r.granted)] for b, r in self.secrets.items()
        }
        return json.dumps([bags, secrets], sort_keys=True)

    def settle(self, one_pass: Callable[[], object], what: str) -> None:
        """Run `one_pass` (every application's code, once) until a pass writes nothing."""
        for _ in range(5):
            before = self.state()
            one_pass()
            if self.state() == before:
                return
        raise RuntimeError(f"{what}: the charms' code still writes after 5 passes")


def charm_view(cls: type, model: ModelView, options: Any) -> Any:
    """An object of a charm's class on `model`, made without ops' framework.

    Its methods run as written; `load_config` gives `options`. The caller
    sets what else of the charm's `__init__` the code it runs reads (the
    charm's relation helpers, made with the same arguments).
    """
    this = cls.__new__(cls)
    this.framework = SimpleNamespace(model=model)
    this.load_config = lambda *_, **__: options
    return this


class Unreachable:
    """A workload container the code run here does not reach: its state is the bench's."""

    name = "unreachable"

    def can_connect(self) -> bool:
        """Never: the container's settled state is built for the bench's Pebble instead."""
        return False

    def get_services(self, *names: str) -> Any:
        """What an unreachable Pebble answers: no connection."""
        raise ops.pebble.ConnectionError(f"{self.name}: the bench's Pebble holds this container")


# The ingress gateway's load-balancer address, once Kubernetes gave it one.
GATEWAY_ADDRESS = "10.64.140.43"
# The profile namespaces the dispatcher found when it last applied.
PROFILE_NAMESPACES = ["team-a"]


def api_answer(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """The API server's answer to a drift check's list: the metadata of two objects of the kind.

    The same in the settled model (which records its digest) and in the hook.
    A GET of one StatefulSet (a charm's own, which Juju made) answers it with
    Istio's sidecar injection label on its pod template, as the charms that
    put their pods in the mesh leave it.
    """
    route = path.split("?", 1)[0].split("/")
    if route[-2:-1] == ["statefulsets"]:
        name, namespace = route[-1], route[-3]
        labels = {"app.kubernetes.io/name": name, "sidecar.istio.io/inject": "true"}
        statefulset = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "4242"},
            "spec": {"template": {"metadata": {"labels": labels}}},
        }
        return 200, json.dumps(statefulset).encode()
    plural = route[-1]
    items = [
        {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {
                "name": f"{plural}-{n}",
                "namespace": MODEL_NAME,
                "uid": hashlib.sha256(f"{plural}{n}".encode()).hexdigest()[:36],
                "resourceVersion": "4242",
                "generation": n,
            },
        }
        for n in (1, 2)
    ]
    body = {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadataList",
        "metadata": {"resourceVersion": "4242"},
        "items": items,
    }
    return 200, json.dumps(body).encode()


@contextlib.contextmanager
def api_server(work: Path):
    """An HTTPS server on localhost answering `api_answer`, and the hook environment to reach it.

    Yields the environment (KUBERNETES_SERVICE_HOST and _PORT) and the folder
    standing in for the pod's service-account mount (token and CA).
    """
    import http.server
    import ssl
    import threading

    account = work / "serviceaccount"
    account.mkdir()
    bundle = certificates.new_bundle("bench API CA", ["localhost"])
    (account / "ca.crt").write_text(bundle.ca_cert)
    (account / "token").write_text("bench-token\n")
    (work / "api.pem").write_text(bundle.tls_cert + bundle.tls_key)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the API server
        # Headers and body go out in two writes: without this, Nagle's algorithm
        # holds the body until the client's delayed ACK, 40 ms a request.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            status, body = api_answer("GET", self.path, dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(work / "api.pem"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "KUBERNETES_SERVICE_HOST": "localhost",
        "KUBERNETES_SERVICE_PORT": str(server.server_address[1]),
    }
    try:
        yield env, account
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def cluster_holds_everything(*modules: ModuleType):
    """Kubernetes (and MinIO) as the modules' code finds them once everything is applied.

    `apply_stages` returns the hash of the stages, as it does when nothing
    changed; the gateway Service has its address; the profile namespaces
    are those known; buckets exist; MinIO's admin API makes every user asked for.
    """
    stubs: dict[str, Callable[..., Any]] = {
        "apply_stages": lambda stages, last_hash, *, force=False: kubernetes.stages_hash(stages),
        "load_balancer_address": lambda service, namespace: GATEWAY_ADDRESS,
        "profile_namespaces": lambda *_, **__: list(PROFILE_NAMESPACES),
        "ensure_bucket": lambda credentials, bucket: False,
        # MinIO's admin API: every scoped user made with its policy.
        "connect": lambda root, endpoint: None,
        "ensure_user": lambda admin, name, secret_key, policy: None,
        "remove_user": lambda admin, name: None,
        "send": api_answer,  # what the drift check lists, and records after an apply
    }
    saved = []
    for module in (*modules, drift):
        for name, stub in stubs.items():
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, stub)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def staged(name: str, stage_dir: Path) -> ModuleType:
    """A charm of the bundle, staged in `stage_dir` (once) and imported."""
    charm_dir = stage_dir / name
    if not (charm_dir / "src" / "charm.py").exists():
        charm_dir = stage.stage(name, stage_dir)
    return load_charm(charm_dir)


def default_options(charm: ModuleType, options: type) -> Any:
    """A charm's config dataclass with every option at its default, as load_config makes it."""
    unified = yaml.safe_load((Path(charm.__file__).parents[1] / "charmcraft.yaml").read_text())
    config = fakejuju.config_defaults(unified)
    return options(**{key.replace("-", "_"): value for key, value in config.items()})


def workload_container(name: str, layer: dict[str, Any], *services: str) -> Container:
    """A container whose plan holds the layer's services and checks, the services running."""
    plan = {"services": layer["services"], "checks": layer.get("checks", {})}
    return Container(name, plan=plan, running=set(services))


# --- the data layer: mysql, minio and the resource dispatcher --------------------------------
#
# Related as in bundle/bundle.yaml: mysql's backups go to a bucket on minio;
# minio hands the dispatcher the objects to keep in every profile namespace.

MYSQL_S3_ID, MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID, DISPATCHER_PEERS_ID = 5, 26, 27, 23
# Where charmcraft.yaml mounts the mysql charm's `database` storage.
STORAGE_LOCATION = "/var/lib/mysql"


def minio_credentials(server: ModuleType) -> s3.S3Credentials:
    """The root credentials the minio charm made (its minio_server module given)."""
    return s3.S3Credentials(
        access_key=fake_key("access", server.ACCESS_KEY_LENGTH),
        secret_key=fake_key("secret", server.SECRET_KEY_LENGTH),
    )


@dataclasses.dataclass
class DataLayer:
    """The data layer's relations and secrets, and the charm objects that wrote them."""

    world: World
    dispatcher: Any


@functools.cache
def data_layer(stage_dir: Path) -> DataLayer:
    """Run mysql's s3 request, minio's answers and the dispatcher's apply until settled."""
    mysql = staged("mysql", stage_dir)
    minio = staged("minio", stage_dir)
    dispatcher = staged("resource-dispatcher", stage_dir)
    import minio_server
    import minio_users

    world = World(first_secret=30)
    world.link(MYSQL_S3_ID, {"mysql": "s3-parameters", "minio": minio.RELATION})
    world.link(MINIO_SECRETS_ID, {"minio": minio.SECRETS, "resource-dispatcher": "secrets"})
    world.link(
        MINIO_POD_DEFAULTS_ID, {"minio": minio.POD_DEFAULTS, "resource-dispatcher": "pod-defaults"}
    )
    world.link(DISPATCHER_PEERS_ID, {"resource-dispatcher": dispatcher.PEERS})

    # Each object with the relation helpers its charm's __init__ makes.
    backups = charm_view(mysql.MySQLCharm, world.model("mysql", MYSQL_S3_ID), None)
    backups._s3 = s3.S3Requirer(backups, "s3-parameters", bucket=mysql.BACKUP_BUCKET)
    options = default_options(minio, minio.MinioConfig)
    store = charm_view(
        minio.MinioCharm,
        world.model("minio", MYSQL_S3_ID, MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID),
        options,
    )
    store._provider = s3.S3Provider(store, minio.RELATION)
    store._manifests = {
        e: minio.ManifestsRequirer(store, e) for e in (minio.SECRETS, minio.POD_DEFAULTS)
    }
    store._admin_problem = None
    hands = charm_view(
        dispatcher.ResourceDispatcherCharm,
        world.model(
            "resource-dispatcher", MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID, DISPATCHER_PEERS_ID
        ),
        None,
    )
    hands._providers = {
        e: dispatcher.ManifestsProvider(hands, e) for e in dispatcher.ENDPOINT_KINDS
    }
    hands._plan = hands._kubernetes_error = None
    hands._certs = certificates.CertificateKeeper(
        hands,
        label=dispatcher.CERTS_LABEL,
        ca_name=f"{hands.app.name} webhook CA ({hands.model.name})",
        dns_names=dispatcher.webhook.dns_names(hands.app.name, hands.model.name),
        description="webhook certificates",
    )
    hands._apply = lambda *_: None  # the cluster holds the objects already
    credentials = minio_credentials(minio_server)

    def one_pass() -> None:
        backups._s3.publish_request()
        store._reconcile_server(options, credentials, running=True)
        bundle = hands._certificates()
        assert bundle is not None
        hands._reconcile_cluster(bundle, force=False, routine=False)

    with cluster_holds_everything(minio_server, minio_users, dispatcher):
        world.settle(one_pass, "mysql, minio and the resource dispatcher")
    return DataLayer(world, hands)


# Dex's database on mysql (bundle/bundle.yaml: dex:relational-db, mysql:database).
DEX_DATABASE_ID, MYSQL_PEERS_ID, DEX_DATABASE_SECRET = 3, 29, secret_id(2)


@dataclasses.dataclass
class DatabaseRelation:
    """A mysql_client relation once mysql answered the requirer's one request (v1).

    The requirer's databag as the data platform's requirer library writes it
    (`version`, and `requests`: a JSON list of `resource`, `request-id`,
    `salt`); mysql's answer as the provider library writes it: the request
    echoed with `endpoints`, `version` and `secret-user` (a secret of mysql's,
    granted to the relation, holding `username` and `password`), the request
    recorded under `data`. The same shapes as tests/unit/dex/helpers.py and
    kubeflow_interfaces.mysql_client.relation_for_requirer.
    """

    id: int
    requirer: str
    database: str
    endpoint: str  # mysql's address, host:port
    username: str
    password: str

    def _bags(self) -> tuple[dict[str, str], dict[str, str]]:
        request = {
            "resource": self.database,
            "request-id": f"req-{self.database}",
            "salt": fake_key(f"salt-{self.database}", 16),
        }
        answer = {
            **request,
            "endpoints": self.endpoint,
            "version": "8.4.3",
            "secret-user": f"secret://{MODEL_UUID}/{DEX_DATABASE_SECRET}",
        }
        theirs = {"version": "v1", "requests": json.dumps([request])}
        ours = {
            "version": "v1",
            "requests": json.dumps([answer]),
            "data": json.dumps({request["request-id"]: request}),
        }
        return theirs, ours

    def provider(self) -> Relation:
        """The relation in mysql's model."""
        theirs, ours = self._bags()
        units = [f"{self.requirer}/0"]
        return Relation(
            "database", self.id, self.requirer, units, local_app_data=ours, remote_app_data=theirs
        )

    def requirer_side(self, endpoint: str) -> Relation:
        """The relation in the requirer's model."""
        theirs, ours = self._bags()
        return Relation(
            endpoint, self.id, "mysql", ["mysql/0"], local_app_data=theirs, remote_app_data=ours
        )

    def secret(self, *, owner: bool = True) -> Secret:
        """The credentials secret: mysql's own, or as the requirer reads it (granted)."""
        content = {"username": self.username, "password": self.password}
        if owner:
            label = f"database.{self.id}.user.secret"
            return Secret(DEX_DATABASE_SECRET, content, label=label)
        return Secret(DEX_DATABASE_SECRET, content, owner=None)


def dex_database(port: int) -> DatabaseRelation:
    """Dex's database relation, answered by mysql (its `PORT` given)."""
    return DatabaseRelation(
        DEX_DATABASE_ID,
        "dex",
        "dex",
        f"mysql-0.mysql-endpoints.{MODEL_NAME}.svc.cluster.local:{port}",
        f"relation-{DEX_DATABASE_ID}",
        fake_key("dex-database", 32),
    )


def mysql_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    settled_unit(charm_dir, charm.MySQLCharm)
    import mysql_server as server

    world = data_layer(charm_dir.parent).world
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

    database = dex_database(server.PORT)
    peers = Relation.peer(
        charm.PEERS,
        MYSQL_PEERS_ID,
        "mysql",
        {
            charm.DATA_UNIT_KEY: "mysql/0",
            charm.USERS_CHECKED_KEY: json.dumps([DEX_DATABASE_ID]),
            charm.GRANTS_CHECKED_KEY: charm.requests_digest(
                {DEX_DATABASE_ID: database.provider().remote_app_data}
            ),
        },
    )
    model = Model(
        unit="mysql/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=config,
        endpoints=fakejuju.endpoints(metadata),
        relations=[database.provider(), peers, *world.relations("mysql", MYSQL_S3_ID)],
        secrets=[
            Secret(
                secret_id(1),
                passwords,
                label=charm.CREDENTIALS_LABEL,
                description="MySQL root and admin passwords",
            ),
            database.secret(),
            *world.bench_secrets("mysql"),  # minio's, granted: the bucket's credentials
        ],
        storages={"database/0": STORAGE_LOCATION},
        opened_ports=[f"{server.PORT}/tcp"],
        unit_status=("active", "primary"),
    )
    return model, [container]


def minio_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    settled_unit(charm_dir, charm.MinioCharm)
    import minio_server as server

    world = data_layer(charm_dir.parent).world
    credentials = minio_credentials(server)
    layer = server.pebble_layer().to_dict()
    container = Container(
        charm.CONTAINER,
        plan={"services": layer["services"], "checks": layer["checks"]},
        running={server.SERVICE},
    )
    container.add_dir(server.DATA_DIR)
    container.add_dir(server.KEYS_DIR, permissions=0o700)
    container.add_file(server.ROOT_USER_FILE, credentials.access_key, permissions=0o600)
    container.add_file(server.ROOT_PASSWORD_FILE, credentials.secret_key, permissions=0o600)

    url = f"http://minio.{MODEL_NAME}.svc.cluster.local:{server.API_PORT}"
    model = Model(
        unit="minio/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations("minio", MYSQL_S3_ID, MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID),
        secrets=[
            Secret(
                secret_id(4),
                credentials.dump(),
                label=charm.ROOT_SECRET_LABEL,
                description="MinIO root credentials",
            ),
            *world.bench_secrets("minio"),
        ],
        storages={"data/0": server.DATA_DIR},
        opened_ports=[f"{server.API_PORT}/tcp", f"{server.CONSOLE_PORT}/tcp"],
        unit_status=("active", url),
        app_status=("active", "1 bucket request(s) served"),
    )
    return model, [container]


# How long the bench's watch token has to live: a day, as the charm asks for.
LIFETIME_LEFT = 24 * 3600


def unit_state(charm_dir: Path, charm_class: type, **stored: Any) -> None:
    """Write a charm's `_stored` values into ops' local state database, as hooks left them."""
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    storage.save_snapshot(f"{charm_class.__name__}/StoredStateData[_stored]", stored)
    storage.commit()
    storage.close()


def settled_unit(charm_dir: Path, charm_class: type) -> None:
    """Note in the unit's stored state that its last full reconcile left it active."""
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    storage.save_snapshot(f"{charm_class.__name__}/StoredStateData[_settled]", {"active": True})
    storage.commit()
    storage.close()


def dispatcher_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import namespace_watch
    import watch_token
    import webhook

    layer = data_layer(charm_dir.parent)
    world, hands = layer.world, layer.dispatcher
    _, bundle = certificates.load(hands.model, charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None
    hook = workload_container(
        webhook.CONTAINER, webhook.pebble_layer(bundle.serial), webhook.SERVICE
    )
    hook.add_file(webhook.CERT_FILE, bundle.tls_cert, permissions=0o644)
    hook.add_file(webhook.KEY_FILE, bundle.tls_key, permissions=0o600)
    watch = workload_container(
        namespace_watch.CONTAINER, namespace_watch.pebble_layer(), namespace_watch.SERVICE
    )
    # The watch's own token, issued a minute ago and not due for renewal: its
    # file in the watch container, its issue and expiry in the unit's stored
    # state (ops' local state database, which a unit that ran hooks has).
    now = time.time()
    token = watch_token.Token("bench-watch-token", issued=now - 60, expires=now + LIFETIME_LEFT)
    assert not watch_token.renewal_due(token.issued, token.expires, now)
    watch.add_file(watch_token.TOKEN_FILE, token.value, permissions=0o600)
    unit_state(
        charm_dir,
        charm.ResourceDispatcherCharm,
        watch_token_issued=token.issued,
        watch_token_expires=token.expires,
        settled=True,  # its last full reconcile left it active
    )

    plan = hands._current_plan()
    message = (
        f"{len(plan.objects)} app(s) dispatched to {len(PROFILE_NAMESPACES)} profile namespace(s)"
    )
    model = Model(
        unit=f"{metadata['name']}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(
            "resource-dispatcher", DISPATCHER_PEERS_ID, MINIO_SECRETS_ID, MINIO_POD_DEFAULTS_ID
        ),
        secrets=world.bench_secrets("resource-dispatcher"),
        unit_status=("active", message),
        app_status=("active", message),
    )
    return model, [hook, watch]


# --- the platform and its UIs: istio, dex, oidc-gateway, the dashboard, notebooks -----------
#
# Related as in bundle/bundle.yaml: every UI asks istio for its route over
# istio-ingress-route (dex and the gateway's login pages on the
# unauthenticated endpoint, the dashboard and the notebooks behind the
# login), istio asks the gateway about every authenticated request over
# forward-auth, the gateway is Dex's oauth client, and the notebooks give
# the dashboard their link.

# Where the gateway serves every route, with istio's default config (a
# LoadBalancer Service, no external-hostname, no certificate): the origin of
# every route's URL, Dex's issuer and the login callback.
PLATFORM_URL = f"http://{GATEWAY_ADDRESS}"
DASHBOARD, NOTEBOOKS = "kubeflow-dashboard", "kubeflow-notebooks"
# Relation ids are the model's: one relation has the same id on both sides.
ISTIO_PEERS_ID, DEX_PEERS_ID, DASHBOARD_PEERS_ID, NOTEBOOKS_PEERS_ID = 11, 12, 21, 22
DEX_ROUTE_ID, GATEWAY_ROUTE_ID, DASHBOARD_ROUTE_ID, NOTEBOOKS_ROUTE_ID = 13, 14, 15, 25
FORWARD_AUTH_ID, OAUTH_ID, LINKS_ID, GATEWAY_METADATA_ID = 16, 17, 24, 28
ISTIO_RELATIONS = (
    ISTIO_PEERS_ID,
    DEX_ROUTE_ID,
    GATEWAY_ROUTE_ID,
    DASHBOARD_ROUTE_ID,
    NOTEBOOKS_ROUTE_ID,
    FORWARD_AUTH_ID,
    GATEWAY_METADATA_ID,
)
# Secret ids: Dex's admin user, the client secret Dex issued to the gateway
# (Dex's secret, granted to the gateway), the gateway's cookie key.
ADMIN_SECRET, CLIENT_SECRET, COOKIE_SECRET = (secret_id(n) for n in range(11, 14))
# What Dex made with secrets.token_urlsafe(32).
DEX_CLIENT_SECRET = fake_key("dex-client-secret", 43)


def neighbour(name: str, charm_dir: Path) -> ModuleType:
    """Another charm of the bundle, staged beside `charm_dir` and imported."""
    return staged(name, charm_dir.parent)


def as_charm(app: str) -> Any:
    """`self` for a charm method that reads only the application's and the model's names."""
    return SimpleNamespace(app=Named(app), model=Named(MODEL_NAME))


def gateway_callback(oidc_gateway: ModuleType) -> str:
    """The login callback the gateway registers: its route URL's origin, then the path."""
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
    """Dex's issuer, from the URL istio serves its route at."""
    issuer = dex.issuer_from_url(PLATFORM_URL + dex.ISSUER_PATH)
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
    The gateway asks only for scopes Dex serves, so nothing is dropped.
    """
    from dex_server import service_url
    from oauth_clients import provider_info

    return {
        **provider_info(dex_issuer(dex), service_url("dex", MODEL_NAME)),
        "client_id": dex_client(oidc_gateway).client_id,
        "client_secret_id": f"secret:{CLIENT_SECRET}",
    }


def forward_auth_library(charm: Any, endpoint: str) -> Any:
    """The forward-auth library's provider for a charm object of the bench's.

    The gateway's ForwardAuthProvider writes the interface's own keys through
    it. Made without its `__init__`, which only observes relation events
    through ops' framework; writing reads the model and the endpoint alone.
    """
    from charmlibs.interfaces.forward_auth import ForwardAuthProvider

    library = ForwardAuthProvider.__new__(ForwardAuthProvider)
    library.framework = charm.framework
    library.charm = charm
    library._relation_name = endpoint
    library.forward_auth_config = None
    return library


@dataclasses.dataclass
class Platform:
    """The platform's relations and secrets, and the charm objects that wrote them."""

    world: World
    charms: dict[str, Any]


@functools.cache
def platform(stage_dir: Path) -> Platform:
    """Run every UI's route request, the gateway's forward-auth and istio until settled."""
    istio = staged("istio", stage_dir)
    dex = staged("dex", stage_dir)
    gateway = staged("oidc-gateway", stage_dir)
    dashboard = staged(DASHBOARD, stage_dir)
    notebooks = staged(NOTEBOOKS, stage_dir)

    world = World(first_secret=40)
    world.link(DEX_ROUTE_ID, {"istio": istio.ROUTE_OPEN, "dex": dex.ROUTE})
    world.link(GATEWAY_ROUTE_ID, {"istio": istio.ROUTE_OPEN, "oidc-gateway": gateway.ROUTE})
    world.link(DASHBOARD_ROUTE_ID, {"istio": istio.ROUTE, DASHBOARD: dashboard.ROUTE})
    world.link(NOTEBOOKS_ROUTE_ID, {"istio": istio.ROUTE, NOTEBOOKS: notebooks.ROUTE})
    world.link(
        FORWARD_AUTH_ID, {"istio": istio.FORWARD_AUTH, "oidc-gateway": gateway.FORWARD_AUTH}
    )
    world.link(OAUTH_ID, {"dex": dex.OAUTH, "oidc-gateway": gateway.OAUTH})
    world.link(LINKS_ID, {DASHBOARD: dashboard.LINKS, NOTEBOOKS: notebooks.DASHBOARD_LINKS})
    world.link(
        GATEWAY_METADATA_ID, {"istio": istio.GATEWAY_METADATA, DASHBOARD: dashboard.GATEWAY}
    )
    for rid, app, endpoint in (
        (ISTIO_PEERS_ID, "istio", istio.PEERS),
        (DASHBOARD_PEERS_ID, DASHBOARD, dashboard.PEERS),
        (NOTEBOOKS_PEERS_ID, NOTEBOOKS, notebooks.PEERS),
    ):
        world.link(rid, {app: endpoint})
    # The oauth library's data, issued and registered (see dex_answer).
    world.bag(OAUTH_ID, "dex").update(dex_answer(dex, gateway))
    world.bag(OAUTH_ID, "oidc-gateway").update(gateway_registration(gateway))

    # Each object with what its charm's __init__ makes that the code run reads;
    # the workload containers are left to the bench's Pebble.
    mesh = charm_view(
        istio.IstioCharm,
        world.model("istio", *ISTIO_RELATIONS),
        default_options(istio, istio.IstioConfig),
    )
    mesh._container = Unreachable()
    mesh._tls = mesh._inputs = mesh._plan = mesh._kubernetes_error = mesh._bundle = None

    idp = charm_view(
        dex.DexCharm,
        world.model("dex", DEX_ROUTE_ID, OAUTH_ID),
        default_options(dex, dex.DexConfig),
    )
    idp._route = dex.RouteRequirer(idp, dex.ROUTE, prefix=dex.ISSUER_PATH, port=dex.HTTP_PORT)

    login = charm_view(
        gateway.OidcGatewayCharm,
        world.model("oidc-gateway", GATEWAY_ROUTE_ID, FORWARD_AUTH_ID, OAUTH_ID),
        default_options(gateway, gateway.GatewayConfig),
    )
    login._route = gateway.RouteRequirer(
        login, gateway.ROUTE, prefix=gateway.PROXY_PREFIX, port=gateway.PORT
    )
    login._forward_auth = gateway.ForwardAuthProvider(login, gateway.FORWARD_AUTH)
    login._forward_auth._library = forward_auth_library(login, gateway.FORWARD_AUTH)

    board = charm_view(
        dashboard.KubeflowDashboardCharm,
        world.model(
            DASHBOARD, DASHBOARD_ROUTE_ID, LINKS_ID, DASHBOARD_PEERS_ID, GATEWAY_METADATA_ID
        ),
        default_options(dashboard, dashboard.DashboardConfig),
    )
    board._workloads = []
    board._links = dashboard.DashboardLinksProvider(board, dashboard.LINKS)
    board._route = dashboard.RouteRequirer(
        board, dashboard.ROUTE, prefix="/", port=dashboard.DASHBOARD_PORT
    )
    board._inputs = board._kubernetes_error = None

    books = charm_view(
        notebooks.NotebooksCharm,
        world.model(NOTEBOOKS, NOTEBOOKS_ROUTE_ID, LINKS_ID, NOTEBOOKS_PEERS_ID),
        default_options(notebooks, notebooks.NotebooksConfig),
    )
    # Their containers are the bench's: configuring them here does nothing.
    books._controller = books._web_app = SimpleNamespace(
        container=Unreachable(), configure=lambda *_: False
    )
    web_app = notebooks.jupyter_web_app
    books._route = notebooks.RouteRequirer(
        books, notebooks.ROUTE, prefix=web_app.PREFIX, rewrite="/", port=web_app.PORT
    )
    books._links = notebooks.DashboardLinksRequirer(
        books, notebooks.LINKS, notebooks.DASHBOARD_LINKS
    )
    books._inputs = books._kubernetes_error = None

    def one_pass() -> None:
        # What each charm's reconcile writes on these relations (the dashboard's,
        # the notebooks' and istio's reconcile as a whole; event None is neither
        # an upgrade nor an update-status).
        idp._route.publish()
        login._route.publish()
        login._publish_forward_auth(login.load_config())
        board._reconcile(None)
        books._reconcile(None)
        mesh._reconcile(None)

    with cluster_holds_everything(istio, dashboard, notebooks):
        world.settle(one_pass, "the platform")
    charms = {
        "istio": mesh,
        "dex": idp,
        "oidc-gateway": login,
        DASHBOARD: board,
        NOTEBOOKS: books,
    }
    for app in ("dex", "oidc-gateway", DASHBOARD, NOTEBOOKS):
        url = charms[app]._route.url
        assert url is not None and url.startswith(PLATFORM_URL), (app, url)
    return Platform(world, charms)


def istio_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    settled_unit(charm_dir, charm.IstioCharm)
    import istiod

    settled = platform(charm_dir.parent)
    world, mesh = settled.world, settled.charms["istio"]
    app, unit = metadata["name"], f"{metadata['name']}/0"
    inputs = mesh._read_inputs()
    assert inputs.config is not None and inputs.ext_authz is not None and not inputs.invalid
    # Routes with and without a login, served; the reading of their requests kept.
    stored = world.bag(ISTIO_PEERS_ID, app)
    served = charm.routes.load_requests(stored[charm.ROUTES_KEY])
    assert {r.auth for r in served.values()} == {True, False}, served
    assert json.loads(stored[charm.REQUESTS_KEY])["digest"] == inputs.requests_digest
    _, bundle = certificates.load(mesh.model, charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None

    files = istiod.files(
        namespace=MODEL_NAME,
        proxy_image=inputs.config.proxy_image,
        ext_authz=inputs.ext_authz,
        bundle=bundle,
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
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(app, *ISTIO_RELATIONS),
        secrets=world.bench_secrets(app),
        unit_status=("active", PLATFORM_URL),
        app_status=("active", PLATFORM_URL),
    )
    return model, [container]


def dex_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    settled_unit(charm_dir, charm.DexCharm)
    import dex_server
    import identities

    world = platform(charm_dir.parent).world
    oidc_gateway = neighbour("oidc-gateway", charm_dir)
    app = metadata["name"]
    options = default_options(charm, charm.DexConfig)
    admin = options.admin
    assert admin is not None
    password = fake_key("dex-admin", identities.ADMIN_PASSWORD_LENGTH)
    admin_hash = identities.hash_password(password)
    issuer = dex_issuer(charm)
    client = dex_client(oidc_gateway)
    client_secret_uri = f"secret:{CLIENT_SECRET}"
    neighbour("mysql", charm_dir)
    import mysql_server

    database = dex_database(mysql_server.PORT)
    host, port = database.endpoint.rsplit(":", 1)

    settings = dex_server.DexSettings(
        issuer=issuer,
        database=dex_server.DexDatabase(
            host=host,
            port=int(port),
            name=database.database,
            user=database.username,
            password=database.password,
        ),
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
    # clients it issued, the registrations as it read them from the gateway's data.
    issued = [
        {"relation-id": OAUTH_ID, "client-id": client.client_id, "secret-id": client_secret_uri}
    ]
    from oauth_clients import registrations_digest, registrations_record

    registered = dict(world.bag(OAUTH_ID, "oidc-gateway"))
    digest = registrations_digest([(OAUTH_ID, "oidc-gateway", registered)])
    peers = Relation.peer(
        charm.PEERS,
        DEX_PEERS_ID,
        app,
        {
            charm.ADMIN_SECRET_KEY: f"secret:{ADMIN_SECRET}",
            charm.ISSUED_CLIENTS_KEY: json.dumps(issued),
            charm.REGISTRATIONS_KEY: registrations_record(digest, [client], []),
        },
    )
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=[
            peers,
            database.requirer_side(charm.DATABASE),
            *world.relations(app, DEX_ROUTE_ID, OAUTH_ID),
        ],
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
            database.secret(owner=False),  # mysql's, granted
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

    world = platform(charm_dir.parent).world
    app = metadata["name"]
    options = default_options(charm, charm.GatewayConfig)
    answer = dict(world.bag(OAUTH_ID, "dex"))
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

    message = f"login via dex at {PLATFORM_URL}"
    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(app, OAUTH_ID, GATEWAY_ROUTE_ID, FORWARD_AUTH_ID),
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


def dashboard_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    settled_unit(charm_dir, load_charm(charm_dir).KubeflowDashboardCharm)
    import dashboard_services as services

    settled = platform(charm_dir.parent)
    world, board = settled.world, settled.charms[DASHBOARD]
    app = metadata["name"]
    inputs = board._read_inputs()
    assert inputs.config is not None and inputs.url is not None and not inputs.bad_links
    assert inputs.links, "the notebooks' link, as the dashboard reads it"
    settings = board._settings(inputs)
    containers = []
    for name in services.CONTAINERS:
        container = workload_container(name, services.layer(name, settings), name)
        for f in services.files(name):
            container.add_file(f.path, f.content)
        containers.append(container)

    model = Model(
        unit=f"{app}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(
            app, DASHBOARD_PEERS_ID, LINKS_ID, DASHBOARD_ROUTE_ID, GATEWAY_METADATA_ID
        ),
        opened_ports=[f"{services.DASHBOARD_PORT}/tcp"],
        unit_status=("active", inputs.url),
        app_status=("active", inputs.url),
    )
    return model, containers


def notebooks_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    settled_unit(charm_dir, load_charm(charm_dir).NotebooksCharm)
    import jupyter_web_app as web_app
    import notebook_controller as controller
    import spawner_config
    from pebble_workload import File, files_hash

    settled = platform(charm_dir.parent)
    world, books = settled.world, settled.charms[NOTEBOOKS]
    app = metadata["name"]
    inputs = books._read_inputs()
    assert inputs.config is not None and inputs.url is not None
    header, prefix = inputs.user_header

    ctl = workload_container(
        controller.CONTAINER,
        controller.pebble_layer(
            namespace=MODEL_NAME, culling_idle_minutes=inputs.config.culling_idle_minutes
        ),
        controller.SERVICE,
    )
    files = [File(web_app.CONFIG_FILE, spawner_config.render(inputs.config))]
    web = workload_container(
        web_app.CONTAINER,
        web_app.pebble_layer(
            secure_cookies=inputs.url.startswith("https://"),
            config_hash=files_hash(files),
            userid_header=header,
            userid_prefix=prefix,
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
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(app, NOTEBOOKS_PEERS_ID, NOTEBOOKS_ROUTE_ID, LINKS_ID),
        opened_ports=[f"{web_app.PORT}/tcp"],
    )
    return model, [ctl, web]


# --- Kubeflow Pipelines -----------------------------------------------------------------------
#
# Related as in bundle/bundle.yaml: its two databases on mysql, its bucket on
# minio, its routes and the gateway's identity from istio, its links on the
# dashboard, and each profile's ConfigMaps and PodDefault through the
# dispatcher. kfp's own reconcile writes its side; the providers answer as
# their code writes: istio's databags are those its code wrote for the
# dashboard in `platform`, minio answers through the s3 library's provider,
# the dispatcher lists the profile namespaces it knows, and mysql answers
# as `DatabaseRelation` does (one answer per database asked for).

KFP = "kfp"
(
    KFP_DB_ID,
    KFP_S3_ID,
    KFP_ROUTE_ID,
    KFP_LINKS_ID,
    KFP_CONFIG_MAPS_ID,
    KFP_PEERS_ID,
    KFP_GATEWAY_ID,
    KFP_POD_DEFAULTS_ID,
) = range(33, 41)
KFP_RELATIONS = (
    KFP_PEERS_ID,
    KFP_DB_ID,
    KFP_S3_ID,
    KFP_ROUTE_ID,
    KFP_LINKS_ID,
    KFP_CONFIG_MAPS_ID,
    KFP_GATEWAY_ID,
    KFP_POD_DEFAULTS_ID,
)
KFP_DB_SECRET = secret_id(59)


def mysql_answers(requests: str, endpoint: str) -> dict[str, str]:
    """The databag mysql writes once it answered each database of a request list (v1).

    Each request echoed with `endpoints`, `version` and `secret-user` (one
    secret of mysql's for the relation's user), as `DatabaseRelation`.
    """
    asked = json.loads(requests)
    answers = [
        {
            **r,
            "endpoints": endpoint,
            "version": "8.4.3",
            "secret-user": f"secret://{MODEL_UUID}/{KFP_DB_SECRET}",
        }
        for r in asked
    ]
    return {
        "version": "v1",
        "requests": json.dumps(answers),
        "data": json.dumps({r["request-id"]: r for r in asked}),
    }


def bench_object(cls: type, charm: Any, **attributes: Any) -> Any:
    """One of a charm's `ops.Object` parts, made without ops' framework, on the charm's model."""
    this = cls.__new__(cls)
    this.framework = charm.framework
    this._charm = charm
    for name, value in attributes.items():
        setattr(this, name, value)
    return this


@dataclasses.dataclass
class Pipelines:
    """kfp's relations and secrets, and the charm object that wrote them."""

    world: World
    charm: Any
    options: Any


@functools.cache
def pipelines(stage_dir: Path) -> Pipelines:
    """Run kfp's reconcile and its neighbours' answers until settled."""
    kfp = staged(KFP, stage_dir)
    minio = staged("minio", stage_dir)
    import kfp_cluster
    import kfp_data
    import kfp_links
    import kfp_mesh
    import kfp_pod_defaults
    import kfp_profile_workloads
    import kfp_profiles
    import kfp_route
    import minio_server

    from kubeflow_interfaces import kubernetes_manifests

    mesh = platform(stage_dir).world  # istio's databags, as its code wrote them
    world = World(first_secret=60)
    world.link(KFP_DB_ID, {KFP: kfp_data.DATABASE, "mysql": "database"})
    world.link(KFP_S3_ID, {KFP: kfp_data.OBJECT_STORAGE, "minio": minio.RELATION})
    world.link(KFP_ROUTE_ID, {KFP: kfp_route.ROUTE, "istio": "istio-ingress-route"})
    world.link(KFP_GATEWAY_ID, {KFP: kfp.GATEWAY, "istio": "gateway-metadata"})
    world.link(KFP_LINKS_ID, {KFP: kfp_links.DASHBOARD_LINKS, DASHBOARD: "links"})
    world.link(
        KFP_CONFIG_MAPS_ID, {KFP: kfp_profiles.CONFIG_MAPS, "resource-dispatcher": "config-maps"}
    )
    world.link(
        KFP_POD_DEFAULTS_ID,
        {KFP: kfp_pod_defaults.POD_DEFAULTS, "resource-dispatcher": "pod-defaults"},
    )
    world.link(KFP_PEERS_ID, {KFP: kfp_cluster.PEERS})
    world.bag(KFP_ROUTE_ID, "istio").update(mesh.bag(DASHBOARD_ROUTE_ID, "istio"))
    world.bag(KFP_GATEWAY_ID, "istio").update(mesh.bag(GATEWAY_METADATA_ID, "istio"))
    # mysql's user for the relation, in a secret of mysql's granted to kfp.
    world.secrets[KFP_DB_SECRET] = SecretRecord(
        KFP_DB_SECRET,
        "mysql",
        {"username": f"relation-{KFP_DB_ID}", "password": fake_key("kfp-database", 32)},
        label=f"database.{KFP_DB_ID}.user.secret",
        granted={KFP},
    )
    endpoint = f"mysql-0.mysql-endpoints.{MODEL_NAME}.svc.cluster.local:3306"

    # kfp, with what its __init__ makes that its reconcile reads; the workload
    # containers are left to the bench's Pebble, the mesh label is there.
    options = default_options(kfp, kfp.KfpConfig)
    pipes = charm_view(kfp.KfpCharm, world.model(KFP, *KFP_RELATIONS), options)
    pipes._config_error = pipes._data = pipes._profiles_problem = pipes._gateway_read = None
    pipes._cluster = bench_object(kfp_cluster.KfpCluster, pipes, error=None, token_problem=None)
    pipes._mesh = bench_object(
        kfp_mesh.MeshJoin, pipes, error=None, _stored=SimpleNamespace(labelled=True)
    )
    pipes._profile_workloads = bench_object(
        kfp_profile_workloads.ProfileWorkloads, pipes, failed={}, error=None
    )

    store = charm_view(minio.MinioCharm, world.model("minio", KFP_S3_ID), None)
    s3_provider = s3.S3Provider(store, minio.RELATION)
    # What of the dispatcher charm its provider reads: the model, its app and leader unit.
    hands_model = world.model("resource-dispatcher", KFP_CONFIG_MAPS_ID, KFP_POD_DEFAULTS_ID)
    hands = SimpleNamespace(model=hands_model, app=hands_model.app, unit=hands_model.unit)
    dispatcher = kubernetes_manifests.ManifestsProvider(hands, "config-maps")
    url = f"http://minio.{MODEL_NAME}.svc.cluster.local:{minio_server.API_PORT}"
    bucket_user = s3.S3Credentials(
        access_key=f"kf-s3-{KFP_S3_ID}", secret_key=fake_key("kfp-bucket", 40)
    )

    def one_pass() -> None:
        pipes._reconcile(None)
        asked = world.bag(KFP_DB_ID, KFP).get("requests")
        if asked:
            world.bag(KFP_DB_ID, "mysql").update(mysql_answers(asked, endpoint))
        relation = s3_provider.relations[0]
        request = s3_provider.request(relation)
        if request.bucket:
            info = s3.S3ProviderInfo(endpoint=url, bucket=request.bucket, region="us-east-1")
            s3_provider.publish(relation, info, bucket_user)
        dispatcher.publish_namespaces(PROFILE_NAMESPACES)

    # Each profile's objects are in the cluster already: nothing to prune or apply.
    profiles_applied = {
        "prune": lambda app, model, objects: 0,
        "apply_namespace": lambda app, model, namespace, objects: None,
    }
    saved = {name: getattr(kfp_profile_workloads, name) for name in profiles_applied}
    vars(kfp_profile_workloads).update(profiles_applied)
    try:
        with cluster_holds_everything(kfp_cluster):
            world.settle(one_pass, "kfp and its neighbours")
    finally:
        vars(kfp_profile_workloads).update(saved)
    assert pipes._gateway_read is not None and pipes._gateway_read[0] is not None
    return Pipelines(world, pipes, options)


def kfp_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import kfp_charm
    import kfp_cluster
    import kfp_data
    import kfp_workloads as wl

    settled = pipelines(charm_dir.parent)
    world, pipes = settled.world, settled.charm
    data = kfp_data.read(pipes)
    assert data.status is None and data.store is not None, data.status
    layers = wl.layers(
        settled.options, namespace=MODEL_NAME, pod_name="kfp-0", leader=True, store=data.store
    )
    files = {f.container: [f] for f in (wl.ui_viewer_template(), wl.envoy_config())}
    for container, f in data.files().items():
        service = container  # each workload's one service is named after its container
        layers[container] = kfp_data.with_hash(layers[container], service, f)
        files[container] = [f]
    # What the reconcile noted it gave each container's Pebble, in the unit's stored state.
    applied = {c: kfp_charm._digest(layer, files.get(c)) for c, layer in layers.items()}
    # The persistence agent's token, issued a minute ago and not due for renewal: its
    # file in the agent's container, its issue and expiry in the unit's stored state;
    # the mesh's label on the pod template, as the stored state says.
    now = time.time()
    token = kfp_cluster.Token("bench-agent-token", issued=now - 60, expires=now + LIFETIME_LEFT)
    assert not kfp_cluster.renewal_due(token.issued, token.expires, now)
    agent = wl.PERSISTENCE_AGENT
    files.setdefault(agent.container, []).append(
        wl.File(agent.container, wl.PERSISTENCE_AGENT_TOKEN_PATH, token.value, 0, 0)
    )
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    for part, stored in (
        (
            "KfpCluster[cluster]/StoredStateData[_stored]",
            {"token_issued": token.issued, "token_expires": token.expires},
        ),
        ("MeshJoin[mesh]/StoredStateData[_stored]", {"labelled": True}),
        ("StoredStateData[_applied]", {"digests": applied}),
    ):
        storage.save_snapshot(f"{charm.KfpCharm.__name__}/{part}", stored)
    storage.commit()
    storage.close()
    containers = []
    for workload in wl.WORKLOADS:
        container = workload_container(
            workload.container, dict(layers[workload.container]), workload.service
        )
        for f in files.get(workload.container, []):
            container.add_file(f.path, f.content, permissions=f.permissions)
        containers.append(container)

    model = Model(
        unit=f"{KFP}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(KFP, *KFP_RELATIONS),
        secrets=world.bench_secrets(KFP),
    )
    return model, containers


# --- Katib ------------------------------------------------------------------------------------
#
# Related as bundle/bundle.yaml will relate it: its database on mysql, its
# route and the gateway's identity from istio, its links on the dashboard.
# katib's own reconcile writes its side and makes its webhooks' certificates;
# istio's databags are those its code wrote for the dashboard in `platform`,
# and mysql answers as `DatabaseRelation` does.

KATIB = "katib"
KATIB_DB_ID, KATIB_ROUTE_ID, KATIB_LINKS_ID, KATIB_PEERS_ID, KATIB_GATEWAY_ID = range(41, 46)
KATIB_RELATIONS = (KATIB_PEERS_ID, KATIB_DB_ID, KATIB_ROUTE_ID, KATIB_LINKS_ID, KATIB_GATEWAY_ID)
KATIB_DB_SECRET = secret_id(79)


@dataclasses.dataclass
class Tuning:
    """katib's relations and secrets, and the charm object that wrote them."""

    world: World
    charm: Any
    options: Any


@functools.cache
def tuning(stage_dir: Path) -> Tuning:
    """Run katib's reconcile and its neighbours' answers until settled."""
    katib = staged(KATIB, stage_dir)
    import katib_cluster
    import katib_data
    import katib_links
    import katib_route

    mesh = platform(stage_dir).world  # istio's databags, as its code wrote them
    world = World(first_secret=80)
    world.link(KATIB_DB_ID, {KATIB: katib_data.DATABASE, "mysql": "database"})
    world.link(KATIB_ROUTE_ID, {KATIB: katib_route.ROUTE, "istio": "istio-ingress-route"})
    world.link(KATIB_GATEWAY_ID, {KATIB: katib.GATEWAY, "istio": "gateway-metadata"})
    world.link(KATIB_LINKS_ID, {KATIB: katib_links.DASHBOARD_LINKS, DASHBOARD: "links"})
    world.link(KATIB_PEERS_ID, {KATIB: katib_cluster.PEERS})
    world.bag(KATIB_ROUTE_ID, "istio").update(mesh.bag(DASHBOARD_ROUTE_ID, "istio"))
    world.bag(KATIB_GATEWAY_ID, "istio").update(mesh.bag(GATEWAY_METADATA_ID, "istio"))
    world.secrets[KATIB_DB_SECRET] = SecretRecord(
        KATIB_DB_SECRET,
        "mysql",
        {"username": f"relation-{KATIB_DB_ID}", "password": fake_key("katib-database", 32)},
        label=f"database.{KATIB_DB_ID}.user.secret",
        granted={KATIB},
    )
    endpoint = f"mysql-0.mysql-endpoints.{MODEL_NAME}.svc.cluster.local:3306"

    options = default_options(katib, katib.KatibConfig)
    charm = charm_view(katib.KatibCharm, world.model(KATIB, *KATIB_RELATIONS), options)
    charm._config_error = charm._kinds_error = charm._cert_problem = None
    charm._data = charm._gateway_read = None
    charm._note_renewal = lambda bundle: None  # the unit's stored state is written below
    charm._cluster = bench_object(katib_cluster.KatibCluster, charm, error=None)
    charm._certs = certificates.CertificateKeeper(
        charm,
        label=katib.CERTS_LABEL,
        ca_name=f"{KATIB} webhook CA ({MODEL_NAME})",
        dns_names=certificates.service_dns_names("katib-controller", MODEL_NAME),
    )

    def one_pass() -> None:
        charm._reconcile(None)
        asked = world.bag(KATIB_DB_ID, KATIB).get("requests")
        if asked:
            answers = mysql_answers(asked, endpoint)
            secret = f"secret://{MODEL_UUID}/{KATIB_DB_SECRET}"
            answers["requests"] = answers["requests"].replace(
                f"secret://{MODEL_UUID}/{KFP_DB_SECRET}", secret
            )
            world.bag(KATIB_DB_ID, "mysql").update(answers)

    with cluster_holds_everything(katib_cluster):
        world.settle(one_pass, "katib and its neighbours")
    assert charm._gateway_read is not None and charm._gateway_read[0] is not None
    return Tuning(world, charm, options)


def katib_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import katib_charm
    import katib_data
    import katib_workloads as wl

    settled = tuning(charm_dir.parent)
    world, katib = settled.world, settled.charm
    data = katib_data.read(katib)
    assert data.status is None and data.database is not None, data.status
    _, bundle = certificates.load(katib.model, katib_charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None
    config_file = wl.controller_config_file([])
    env = wl.db_manager_env(data.database)
    layers = {
        wl.CONTROLLER.container: wl.controller_layer(
            namespace=MODEL_NAME, leader=True, config_file=config_file, serial=bundle.serial
        ),
        wl.UI.container: wl.ui_layer(namespace=MODEL_NAME),
        wl.DB_MANAGER.container: wl.db_manager_layer(env),
    }
    files = {
        wl.CONTROLLER.container: [
            config_file,
            wl.File(wl.CONTROLLER.container, wl.CERT_FILE, bundle.tls_cert, 0o644),
            wl.File(wl.CONTROLLER.container, wl.KEY_FILE, bundle.tls_key, 0o600),
        ],
        wl.UI.container: [],
        wl.DB_MANAGER.container: [env],
    }
    applied = {c: katib_charm._digest(layer, files[c]) for c, layer in layers.items()}
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    for part, stored in (
        ("StoredStateData[_applied]", {"digests": applied}),
        (
            "StoredStateData[_settled]",
            {"active": True, "renewal": bundle.next_renewal().timestamp()},
        ),
    ):
        storage.save_snapshot(f"{charm.KatibCharm.__name__}/{part}", stored)
    storage.commit()
    storage.close()
    containers = []
    for workload in wl.WORKLOADS:
        container = workload_container(
            workload.container, dict(layers[workload.container]), workload.service
        )
        for f in files[workload.container]:
            container.add_file(f.path, f.content, permissions=f.permissions)
        containers.append(container)
    model = Model(
        unit=f"{KATIB}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(KATIB, *KATIB_RELATIONS),
        secrets=world.bench_secrets(KATIB),
    )
    return model, containers


# --- Kubeflow Trainer ---------------------------------------------------------------------------
#
# The charm alone, with its peer relation: the leader made its webhook
# certificates (a secret of its own) and applied its objects; the trial-kinds
# relation is optional and the bundle does not relate it yet.

TRAINER = "kubeflow-trainer"
TRAINER_PEERS_ID = 42


@functools.cache
def training(stage_dir: Path) -> tuple[World, Any]:
    """Run kubeflow-trainer's certificates and apply until settled."""
    trainer = staged(TRAINER, stage_dir)
    import trainer_cluster

    world = World(first_secret=70)
    world.link(TRAINER_PEERS_ID, {TRAINER: trainer_cluster.PEERS})
    options = default_options(trainer, trainer.TrainerConfig)
    charm = charm_view(
        trainer.KubeflowTrainerCharm, world.model(TRAINER, TRAINER_PEERS_ID), options
    )
    charm._certs = certificates.CertificateKeeper(
        charm,
        label=trainer.CERTS_LABEL,
        ca_name=f"{TRAINER} webhook CA ({MODEL_NAME})",
        dns_names=trainer.dns_names(MODEL_NAME),
    )
    charm._cluster = bench_object(
        trainer_cluster.TrainerCluster, charm, error=None, base_applied=False
    )
    charm._cluster.runtimes_waiting = False

    def one_pass() -> None:
        bundle = charm._certs.current()
        assert bundle is not None
        charm._cluster.reconcile(options, bundle, trainer_running=True, force=False, routine=False)
        assert charm._cluster.error is None, charm._cluster.error

    with cluster_holds_everything(trainer_cluster):
        world.settle(one_pass, "kubeflow-trainer")
    return world, charm


def trainer_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import trainer_workloads as wl

    world, trainer = training(charm_dir.parent)
    _, bundle = certificates.load(trainer.model, charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None
    containers, applied = [], {}
    for workload in wl.WORKLOADS:
        layer = wl.layer(workload, leader=True, serial=bundle.serial)
        config = wl.config_file(workload)
        applied[workload.container] = charm._digest(layer, config)
        container = workload_container(workload.container, dict(layer), workload.service)
        container.add_file(wl.CERT_FILE, bundle.tls_cert, permissions=0o644)
        container.add_file(wl.KEY_FILE, bundle.tls_key, permissions=0o600)
        container.add_file(config.path, config.content, permissions=config.permissions)
        containers.append(container)
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    name = charm.KubeflowTrainerCharm.__name__
    storage.save_snapshot(f"{name}/StoredStateData[_applied]", {"digests": applied})
    storage.save_snapshot(
        f"{name}/StoredStateData[_settled]",
        {"active": True, "next_renewal": bundle.next_renewal().timestamp()},
    )
    storage.commit()
    storage.close()
    model = Model(
        unit=f"{TRAINER}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(TRAINER, TRAINER_PEERS_ID),
        secrets=world.bench_secrets(TRAINER),
    )
    return model, containers


# --- MLflow -------------------------------------------------------------------------------------
#
# A settled unit's update-status reads only its stored state, the server's
# status in Pebble and the checks Pebble said fail: the relations' answers are
# not read, so the model holds the server's layer, its secrets file and the
# peer relation where the leader recorded the migrated version.

MLFLOW = "mlflow"
MLFLOW_PEERS_ID = 90


def mlflow_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import mlflow_workload as wl

    settings = wl.ServerSettings(
        db_host="mysql-primary.kubeflow.svc.cluster.local",
        db_port=3306,
        db_user="relation-91",
        db_password=fake_key("mlflow-database", 32),
        s3_endpoint="http://minio.kubeflow.svc.cluster.local:9000",
        s3_bucket="mlflow",
        s3_path="artifacts",
        s3_region="us-east-1",
        s3_access_key="relation-92",
        s3_secret_key=fake_key("mlflow-s3", 40),
    )
    layer = wl.server_layer(settings)
    secrets_file = charm._File(wl.SECRETS_FILE, wl.secrets_env(settings))
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    name = charm.MlflowCharm.__name__
    storage.save_snapshot(f"{name}/StoredStateData[_settled]", {"active": True})
    storage.save_snapshot(f"{name}/StoredStateData[_checks]", {"failing": []})
    storage.save_snapshot(
        f"{name}/StoredStateData[_workload]",
        {
            "digest": charm._digest(layer, [secrets_file]),
            "version": wl.MLFLOW_VERSION,
            "migrate_due": False,
        },
    )
    storage.commit()
    storage.close()
    container = workload_container(wl.CONTAINER, dict(layer), wl.SERVICE)
    container.add_file(secrets_file.path, secrets_file.content, permissions=0o600)
    peers = Relation(
        endpoint=charm.PEERS,
        id=MLFLOW_PEERS_ID,
        remote_app=MLFLOW,
        remote_units=[],
        local_app_data={charm.MIGRATED_KEY: wl.MLFLOW_VERSION},
    )
    model = Model(
        unit=f"{MLFLOW}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=[peers],
        opened_ports=[f"{wl.PORT}/tcp"],
    )
    return model, [container]


# --- KServe -------------------------------------------------------------------------------------
#
# The charm with its peer relation and istio's gateway-metadata (the databag istio's code wrote
# in `platform`): the leader made its webhook certificates and applied its objects, the
# runtimes too (its controller runs). The service-accounts relation is optional.

KSERVE = "kserve"
KSERVE_PEERS_ID, KSERVE_GATEWAY_ID = 47, 48


@functools.cache
def serving(stage_dir: Path) -> tuple[World, Any]:
    """Run kserve's certificates and apply until settled."""
    kserve = staged(KSERVE, stage_dir)
    import kserve_cluster

    mesh = platform(stage_dir).world  # istio's databags, as its code wrote them
    world = World(first_secret=90)
    world.link(KSERVE_PEERS_ID, {KSERVE: kserve_cluster.PEERS})
    world.link(KSERVE_GATEWAY_ID, {KSERVE: kserve.GATEWAY, "istio": "gateway-metadata"})
    world.bag(KSERVE_GATEWAY_ID, "istio").update(mesh.bag(GATEWAY_METADATA_ID, "istio"))
    options = default_options(kserve, kserve.KServeConfig)
    charm = charm_view(
        kserve.KServeCharm, world.model(KSERVE, KSERVE_PEERS_ID, KSERVE_GATEWAY_ID), options
    )
    charm._certs = certificates.CertificateKeeper(
        charm,
        label=kserve.CERTS_LABEL,
        ca_name=f"{KSERVE} webhook CA ({MODEL_NAME})",
        dns_names=certificates.service_dns_names("kserve-webhook-server-service", MODEL_NAME),
    )
    charm._cluster = bench_object(
        kserve_cluster.KServeCluster, charm, error=None, base_applied=False
    )
    charm._cluster.runtimes_waiting = False

    def one_pass() -> None:
        bundle = charm._certs.current()
        assert bundle is not None
        gateway, problem = kserve.read_gateway(charm)
        assert gateway is not None, problem
        charm._cluster.reconcile_base(
            options,
            bundle,
            gateway_namespace=gateway[0],
            gateway_name=gateway[1],
            force=False,
            routine=False,
        )
        charm._cluster.reconcile_runtimes(
            options, controller_running=True, force=False, routine=False
        )
        assert charm._cluster.error is None, charm._cluster.error

    with cluster_holds_everything(kserve_cluster):
        world.settle(one_pass, "kserve")
    return world, charm


def kserve_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import kserve_workloads as wl

    world, kserve = serving(charm_dir.parent)
    _, bundle = certificates.load(kserve.model, charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None
    containers, applied = [], {}
    for workload in wl.WORKLOADS:
        layer = wl.layer(workload, leader=True, namespace=MODEL_NAME, serial=bundle.serial)
        applied[workload.container] = hashlib.sha256(
            json.dumps(layer, sort_keys=True).encode()
        ).hexdigest()
        container = workload_container(workload.container, dict(layer), workload.service)
        if workload is wl.CONTROLLER:
            container.add_file(wl.CERT_FILE, bundle.tls_cert, permissions=0o644)
            container.add_file(wl.KEY_FILE, bundle.tls_key, permissions=0o600)
        containers.append(container)
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    name = charm.KServeCharm.__name__
    storage.save_snapshot(f"{name}/StoredStateData[_applied]", {"digests": applied})
    storage.save_snapshot(
        f"{name}/StoredStateData[_settled]",
        {
            "active": True,
            "next_renewal": bundle.next_renewal().timestamp(),
            "message": "RawDeployment, hosts *.example.com",
        },
    )
    storage.commit()
    storage.close()
    model = Model(
        unit=f"{KSERVE}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(KSERVE, KSERVE_PEERS_ID, KSERVE_GATEWAY_ID),
        secrets=world.bench_secrets(KSERVE),
    )
    return model, containers


# --- Knative Serving ---------------------------------------------------------------------------
#
# The charm with its peer relation and istio's gateway-metadata: the leader made its webhook
# certificates, applied its objects and runs its control plane. knative-serving is optional.

KNATIVE = "knative-serving"
KNATIVE_PEERS_ID, KNATIVE_GATEWAY_ID = 49, 50


@functools.cache
def knative(stage_dir: Path) -> tuple[World, Any]:
    """Run knative-serving's certificates and apply until settled."""
    module = staged(KNATIVE, stage_dir)
    import knative_cluster

    mesh = platform(stage_dir).world  # istio's databags, as its code wrote them
    world = World(first_secret=110)
    world.link(KNATIVE_PEERS_ID, {KNATIVE: knative_cluster.PEERS})
    world.link(KNATIVE_GATEWAY_ID, {KNATIVE: module.GATEWAY, "istio": "gateway-metadata"})
    world.bag(KNATIVE_GATEWAY_ID, "istio").update(mesh.bag(GATEWAY_METADATA_ID, "istio"))
    options = default_options(module, module.KnativeConfig)
    charm = charm_view(
        module.KnativeServingCharm,
        world.model(KNATIVE, KNATIVE_PEERS_ID, KNATIVE_GATEWAY_ID),
        options,
    )
    charm._certs = certificates.CertificateKeeper(
        charm,
        label=module.CERTS_LABEL,
        ca_name=f"{KNATIVE} webhook CA ({MODEL_NAME})",
        dns_names=[
            name
            for service in ("webhook", "net-istio-webhook")
            for name in certificates.service_dns_names(service, MODEL_NAME)
        ],
    )
    charm._cluster = bench_object(
        knative_cluster.KnativeCluster, charm, error=None, base_applied=False
    )

    def one_pass() -> None:
        bundle = charm._certs.current()
        assert bundle is not None
        gateway, problem = module.read_gateway(charm)
        assert gateway is not None, problem
        charm._cluster.reconcile(options, bundle, gateway=gateway, force=False, routine=False)
        assert charm._cluster.error is None, charm._cluster.error

    with cluster_holds_everything(knative_cluster):
        world.settle(one_pass, "knative-serving")
    return world, charm


def knative_settled(charm_dir: Path, metadata: dict[str, Any]) -> tuple[Model, list[Container]]:
    charm = load_charm(charm_dir)
    import knative_workloads as wl

    world, _ = knative(charm_dir.parent)
    containers, applied = [], {}
    for workload in wl.WORKLOADS:
        layer = wl.layer(workload, leader=True, namespace=MODEL_NAME, pod=f"{KNATIVE}-0")
        applied[workload.container] = hashlib.sha256(
            json.dumps(layer, sort_keys=True).encode()
        ).hexdigest()
        containers.append(workload_container(workload.container, dict(layer), workload.service))
    world_model = world.model(KNATIVE, KNATIVE_PEERS_ID, KNATIVE_GATEWAY_ID)
    _, bundle = certificates.load(world_model, charm.CERTS_LABEL)
    assert bundle is not None and bundle.renewal_due() is None
    storage = ops.storage.SQLiteStorage(charm_dir / ".unit-state.db")
    name = charm.KnativeServingCharm.__name__
    storage.save_snapshot(f"{name}/StoredStateData[_applied]", {"digests": applied})
    storage.save_snapshot(
        f"{name}/StoredStateData[_settled]",
        {
            "active": True,
            "next_renewal": bundle.next_renewal().timestamp(),
            "message": f"Knative Serving {wl.VERSION}, routes *.example.com",
        },
    )
    storage.commit()
    storage.close()
    model = Model(
        unit=f"{KNATIVE}/0",
        model_name=MODEL_NAME,
        model_uuid=MODEL_UUID,
        leader=True,
        config=fakejuju.config_defaults(metadata),
        endpoints=fakejuju.endpoints(metadata),
        relations=world.relations(KNATIVE, KNATIVE_PEERS_ID, KNATIVE_GATEWAY_ID),
        secrets=world.bench_secrets(KNATIVE),
    )
    return model, containers


SETTLED: dict[str, Callable[[Path, dict[str, Any]], tuple[Model, list[Container]]]] = {
    "mysql": mysql_settled,
    "minio": minio_settled,
    "istio": istio_settled,
    "dex": dex_settled,
    "oidc-gateway": oidc_gateway_settled,
    "kubeflow-dashboard": dashboard_settled,
    "kubeflow-notebooks": notebooks_settled,
    "resource-dispatcher": dispatcher_settled,
    "kfp": kfp_settled,
    "katib": katib_settled,
    "kubeflow-trainer": trainer_settled,
    "kserve": kserve_settled,
    "knative-serving": knative_settled,
    "mlflow": mlflow_settled,
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

    def run(self, *extra_flags: str, prelude: str = "") -> Run:
        """Run the hook once; `extra_flags` go to the interpreter, `prelude` before the hook's."""
        self.logs.reset()
        for pebble in self.pebbles:
            pebble.reset()
        err = self.scratch / "stderr"
        argv = [self.argv[0], *extra_flags, *self.argv[1:-1], prelude + self.argv[-1]]
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
        env = hook_env(model, charm_dir, base / "bin")
        if (charm_dir / "lib" / "kubeflow_charms" / "drift.py").exists():
            api_env, account = stack.enter_context(api_server(base))
            prelude = API_PRELUDE.format(account=str(account)) + prelude
            env.update(api_env)
        # -P: no script directory or cwd on sys.path, as when Juju runs src/charm.py.
        argv = [sys.executable, "-P", "-c", prelude]
        yield Hook(name, charm_dir, env, argv, logs, pebbles, base, launcher)


def check(run: Run, name: str) -> None:
    """Stop the bench when the hook failed, wrote, or found its model not settled.

    The figures are those of a settled hook: one that writes something, or
    sets a status other than active, is not one, and its figures would mean
    nothing.
    """
    unsettled = [s for s in run.statuses if s.split()[1:2] != ["active"]]
    if run.returncode == 0 and not run.writes and not unsettled:
        return
    if run.returncode != 0:
        print(f"\n{name}: the {HOOK} hook failed (exit {run.returncode})", file=sys.stderr)
    for write in run.writes:
        print(f"\n{name}: the settled {HOOK} hook wrote: {write}", file=sys.stderr)
    for status in unsettled:
        print(f"\n{name}: the {HOOK} hook found its model not settled: {status}", file=sys.stderr)
    print(run.stderr, file=sys.stderr)
    for level, message in run.log:
        if level in ("ERROR", "CRITICAL"):
            print(f"juju-log {level}: {message}", file=sys.stderr)
    for call in run.unanswered:
        print(f"no answer in the bench's model for: {call}", file=sys.stderr)
    raise SystemExit(1)


def check_cached(charm_dir: Path) -> None:
    """Stop the bench unless the warm-up hook cached the bytecode of the charm's module.

    Python caches no bytecode for the script it runs, src/charm.py, which a
    hook compiles every time, but it does for the modules the script imports:
    in a unit, the first hook caches them in the charm's directory (the unit
    agent's to write), so a settled hook does not compile the charm. Here the
    warm-up hook must have done the same; the bench itself writes no bytecode
    (see `main`).
    """
    module = charm_dir / "src" / f"{charm_dir.name.replace('-', '_')}_charm.py"
    if not Path(importlib.util.cache_from_source(str(module))).is_file():
        raise SystemExit(f"{charm_dir.name}: the warm-up hook cached no bytecode of {module.name}")


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
    heavy: dict[str, list[str]]  # heavy module -> the charm's frames that first imported it

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
        check_cached(hook.charm_dir)
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
        run = hook.run(prelude=TRACER.format(heavy=HEAVY, charm_dir=str(hook.charm_dir)))
        check(run, name)
    return Result(name, measured, min(traced, key=lambda i: i.total_ms), heavy_imports(run.stderr))


def heavy_imports(stderr: str) -> dict[str, list[str]]:
    """What TRACER printed: each heavy module the hook loaded, and from where."""
    for line in stderr.splitlines():
        if line.startswith("heavy-imports "):
            return json.loads(line.removeprefix("heavy-imports "))
    raise RuntimeError("the traced hook printed no heavy-imports line")


def _mark(value: float, budget: float) -> str:
    return "ok" if value <= budget else "OVER"


def _table(results: list[Result], floor: tuple[float, float]) -> None:
    width = max([len("charm"), *(len(r.name) for r in results)])
    header = (
        f"{'charm':<{width}} {'wall (median)':>13} {'range':>15}  "
        f"{'x ops':>6} {'budget':>6}      {'peak RSS (median)':>17} {'budget':>8}     "
        f"{'tools':>5} {'pebble':>6} {'writes':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        times = [x.seconds for x in r.runs]
        last = r.runs[-1]
        print(
            f"{r.name:<{width}} {r.seconds:>11.3f} s {min(times):.3f}-{max(times):.3f} s  "
            f"{r.seconds / floor[0]:>6.2f} {BUDGET_RATIO:>6.1f} "
            f"{_mark(r.seconds / floor[0], BUDGET_RATIO):<4} "
            f"{r.mib:>13.1f} MiB {BUDGET_MIB:>4.0f} MiB "
            f"{_mark(r.mib, BUDGET_MIB):<4} {last.tool_calls:>5} {last.pebble_calls:>6} "
            f"{len(last.writes):>6}"
        )
    print(
        'x ops: wall time over a fresh `python -c "import ops"` (the budget: 1.5); '
        "tools: hook-tool processes the hook "
        "started\n(juju-log included); pebble: Pebble API requests; writes: hook-tool calls and "
        "Pebble requests\nthat change the model or the container"
    )
    print(f"\nheavy modules each settled hook loads ({', '.join(HEAVY)}):")
    for r in results:
        print(f"{r.name:<{width}}  {', '.join(sorted(r.heavy)) or 'none'}")


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
    if r.heavy:
        print("  heavy modules, each with the charm's frames that first imported it:")
        for module, frames in sorted(r.heavy.items()):
            print(f"    {module}:")
            for frame in frames:
                print(f"      {frame}")
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
        f'The floor, a fresh `python -c "import ops"`: {floor[0]:.3f} s, {floor[1]:.1f} MiB.\n'
    )
    _table(results, floor)
    for r in results:
        _details(r)
    if missing:
        print(f"\nnot measured, no settled model in bench/hooks.py yet: {', '.join(missing)}")


def interpreter_floor(work: Path, launcher: Launcher) -> tuple[float, float]:
    """Wall time and peak RSS of a fresh `python -c "import ops"`, measured the same way.

    The floor a hook is held to: a settled hook may cost at most 1.5 times it.
    """
    samples = [
        launcher.spawn([sys.executable, "-c", "import ops"], {}, work, work / "out", work / "err")
        for _ in range(7)
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
    # The bench imports the staged charms to build their settled models: it must
    # not cache their bytecode for the hooks, which cache it themselves, as a
    # unit's hooks do.
    sys.dont_write_bytecode = True
    with tempfile.TemporaryDirectory(prefix="hookbench-") as tmp:
        work = Path(tmp)
        with Launcher() as launcher:
            floor = interpreter_floor(work, launcher)
            results = [bench(name, work, args.runs, launcher) for name in names]
    report(results, args.runs, floor, missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
