"""A simulated Juju model that runs a bundle offline, with every charm's real code.

Each unit of each application is an `ops.testing` Context and State. The
model deals out events the way Juju would: the deploy sequence for every unit,
then relation-changed on the other side whenever a databag changes, and
secret-changed to every consumer whenever an owner changes a secret, until
nothing changes any more (a fixpoint), within a bound on hooks. Secrets are
held model-wide, so a secret one application grants on a relation is
readable by the other side, as in Juju.

Teardown and secrets follow Juju where a charm could tell: a removed relation
departs each remote unit, then breaks, with no relation-changed after it
started leaving; a grant to a unit is only that unit's; each unit tracks the
revision it read, gets secret-changed only then, and the owner is told to
remove revisions nobody tracks; the model's clock (`advance`) raises
secret-rotate and secret-expired when they fall due.

Leadership is the model's: unit 0 leads until `elect` gives it to another
unit, or the leader is scaled away (`remove_unit`, the highest-numbered unit
as on Kubernetes) and the next unit is elected. `add_unit` scales up.

Without a seed the model deals events out in one fixed order; with one
(`Model(..., seed=N)`, `simulate(..., seed=N)`) in another order Juju allows,
the same for the same seed: units deploy in any order, the bundle's
relations are integrated at any moment, and the units' events interleave.

What a workload would do (exec output, where a service listens and what it
answers, so whether a Pebble check passes; an S3 server behind MinIO) comes
from `workloads.py`, beside this file; `break_workload` and `mend_workload`
make a service fail and work again. The charms are not changed for the
simulation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import ops
import yaml
from bundle.fake_kubernetes import routed_lightkube
from charm_loader import CHARMS, charm_dir, load_charm
from ops import testing

logger = logging.getLogger(__name__)

ROOT = CHARMS.parent
BUNDLE = ROOT / "bundle" / "bundle.yaml"
MODEL = testing.Model(name="kubeflow", uuid="5f1c0c1e-3a7d-4a69-9e5b-6a1f0c0de001")
DEFAULT_MAX_HOOKS = 2000
# Secret content keys whose values are public: certificates and their
# serials and validity, user names.
_PUBLIC_KEY = re.compile(r"(^|-)(cert|serial|not-after|not-before|username|email)$")
# The access key of a scoped MinIO user is that user's name, which the minio
# charm makes from the relation id or the profile namespace and logs (charms/
# minio/src/minio_users.py, RELATION_USER_PREFIX and PROFILE_USER_PREFIX); its
# secret key, and the root user's random access key, stay credentials.
_MINIO_USER_NAME = re.compile(r"^kf-(s3|profile)-[a-z0-9-]+$")


class SimulationError(Exception):
    """The model did not settle, or a charm raised."""


# --- bundle files ----------------------------------------------------------------


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge an overlay's mapping into a bundle's, as `juju deploy --overlay` does."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)  # an application set to null is removed
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class BundleError(Exception):
    """A bundle or overlay file that is missing, not YAML, or not shaped like a bundle.

    The message is one line that names the file and the problem.
    """


def _read_yaml(path: Path, what: str) -> Any:
    """The YAML document in a file; a BundleError when it cannot be read or parsed."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BundleError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise BundleError(f"{path}: the {what} is not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = e.problem or e.context or "unreadable"
        raise BundleError(f"{path}: the {what} is not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as e:
        flat = " ".join(str(e).split())
        raise BundleError(f"{path}: the {what} is not valid YAML: {flat}") from None


def _kind(value: Any) -> str:
    """How a YAML value reads to a user: a list, a string, a number..."""
    names = {list: "a list", str: "a string", int: "a number", float: "a number"}
    names |= {bool: "true/false", dict: "a mapping"}
    return "empty" if value is None else names.get(type(value), type(value).__name__)


def _check_application(path: Path, name: Any, spec: Any, *, overlay: bool) -> None:
    """One application's settings, as far as the simulation reads them."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{path}: application names must be strings, not {name!r}")
    where = f"{path}: applications.{name}"
    if spec is None and overlay:
        return  # an overlay removes the application
    if not isinstance(spec, dict):
        raise BundleError(f"{where} must be a mapping (charm:, options:, ...), not {_kind(spec)}")
    charm = spec.get("charm")
    if "charm" in spec and (not isinstance(charm, str) or not charm.strip()):
        raise BundleError(f"{where}.charm must be a charm name or path, not {charm!r}")
    if not overlay and "charm" not in spec:
        raise BundleError(f"{where} has no charm")
    options = spec.get("options")
    if options is not None and not isinstance(options, dict):
        raise BundleError(f"{where}.options must be a mapping of option: value")
    for key in ("scale", "num_units"):
        value = spec.get(key)
        if value is not None and (type(value) is not int or value < 0):
            raise BundleError(f"{where}.{key} must be a whole number of units, not {value!r}")
    if spec.get("constraints") is not None and not isinstance(spec["constraints"], str):
        raise BundleError(f"{where}.constraints must be a string like 'arch=amd64'")
    if "trust" in spec and not isinstance(spec["trust"], bool):
        raise BundleError(f"{where}.trust must be true or false, not {spec['trust']!r}")


def _check_relations(path: Path, relations: Any) -> list[list[str]]:
    """The relations of one file, each a pair of `application:endpoint` strings."""
    if relations is None:
        return []
    if not isinstance(relations, list):
        raise BundleError(f"{path}: relations must be a list of pairs, not {_kind(relations)}")
    pairs = []
    for pair in relations:
        ends = pair if isinstance(pair, list) else [pair]
        well_formed = len(ends) == 2 and all(
            isinstance(end, str) and len(end.split(":")) == 2 and all(end.split(":"))
            for end in ends
        )
        if not well_formed:
            raise BundleError(
                f"{path}: relation {pair!r} must be a pair [app:endpoint, app:endpoint]"
                " (the simulation does not guess endpoints)"
            )
        pairs.append(list(ends))
    return pairs


def _check_file(path: Path, data: Any, *, overlay: bool) -> dict[str, Any]:
    """A bundle's or an overlay's top level; the mapping, empty for an empty overlay."""
    what = "overlay" if overlay else "bundle"
    if data is None and overlay:
        return {}
    if not isinstance(data, dict):
        raise BundleError(
            f"{path}: the {what} must be a mapping with applications: and relations:,"
            f" not {_kind(data)}"
        )
    if overlay and "applications" not in data and "relations" not in data:
        keys = ", ".join(map(str, data)) or "nothing"
        raise BundleError(
            f"{path}: the overlay has neither applications: nor relations: (it has {keys})"
        )
    apps = data.get("applications")
    if apps is None and overlay:
        apps = {}
    if not isinstance(apps, dict) or not (apps or overlay):
        raise BundleError(f"{path}: applications must be a mapping of name: settings")
    for name, spec in apps.items():
        _check_application(path, name, spec, overlay=overlay)
    return data


def load_bundle(bundle: Path = BUNDLE, overlays: Iterable[Path] = ()) -> dict[str, Any]:
    """The bundle with its overlays applied, as `juju deploy --overlay` reads them.

    Overlays merge into the bundle's applications (null removes one, with its
    relations) and add their relations. A file that is missing, not YAML, or
    not shaped like a bundle or an overlay raises BundleError naming it, as
    does an application whose charm is not in the repository, an option its
    charm does not have, or a relation to an application nobody deploys.
    """
    bundle = Path(bundle)
    data = _check_file(bundle, _read_yaml(bundle, "bundle"), overlay=False)
    relations = [(bundle, r) for r in _check_relations(bundle, data.get("relations"))]
    origin = dict.fromkeys(data["applications"], bundle)  # who named each charm
    settings = [(bundle, name, spec) for name, spec in data["applications"].items()]
    removed: set[str] = set()
    for path in map(Path, overlays):
        overlay = _check_file(path, _read_yaml(path, "overlay"), overlay=True)
        apps = overlay.get("applications") or {}
        for name, spec in apps.items():
            if spec is None:
                removed.add(name)
                continue
            removed.discard(name)
            if "charm" in spec or name not in data["applications"]:
                origin[name] = path
            settings.append((path, name, spec))
        data["applications"] = _merge(data["applications"], apps)
        relations += [(path, r) for r in _check_relations(path, overlay.get("relations"))]
    apps = data["applications"]
    for name, spec in apps.items():
        _check_charm(origin[name], name, spec)
    for path, name, spec in settings:
        if name in apps:
            _check_options(path, name, spec, charm_name(apps[name]))
    kept = []
    for path, pair in relations:
        names = [end.split(":")[0] for end in pair]
        unknown = [n for n in names if n not in apps and n not in removed]
        if unknown:
            raise BundleError(
                f"{path}: relation {' - '.join(pair)} names {unknown[0]!r},"
                " which is not an application of the bundle"
            )
        if all(n in apps for n in names):
            kept.append(pair)
    data["relations"] = kept
    return data


def _check_charm(path: Path, name: str, spec: dict[str, Any]) -> None:
    """The application's charm is one the simulation can run: one of the repository's."""
    if "charm" not in spec:
        raise BundleError(f"{path}: applications.{name} is not in the bundle and has no charm")
    charm = charm_name(spec)
    try:
        charm_dir(charm)
    except FileNotFoundError:
        raise BundleError(
            f"{path}: applications.{name}.charm {spec['charm']!r} is not a charm of this"
            f" repository (no charms/{charm} or tests/charms/{charm})"
        ) from None


def _check_options(path: Path, name: str, spec: dict[str, Any], charm: str) -> None:
    """Every option a file sets is one the charm declares."""
    declared = (charm_meta(charm).get("config") or {}).get("options") or {}
    for option in spec.get("options") or {}:
        if option not in declared:
            raise BundleError(f"{path}: applications.{name}.options: {charm} has no {option!r}")


def charm_name(spec: dict[str, Any]) -> str:
    """`../build/mysql_amd64.charm`, `./charms/mysql` or `mysql` to `mysql`."""
    ref = str(spec["charm"]).rstrip("/").split("/")[-1]
    return ref.split("_")[0].removesuffix(".charm")


def charm_meta(name: str) -> dict[str, Any]:
    """The charm's charmcraft.yaml."""
    return yaml.safe_load((charm_dir(name) / "charmcraft.yaml").read_text())


def endpoints(meta: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Endpoint name to (role, interface)."""
    out = {}
    for role in ("provides", "requires", "peers"):
        for name, spec in (meta.get(role) or {}).items():
            out[name] = (role, spec["interface"])
    return out


# --- the model's records ------------------------------------------------------------


@dataclasses.dataclass
class RelationRecord:
    """One relation between two applications (or an app and itself, for peers)."""

    id: int
    apps: tuple[str, str]
    endpoints: tuple[str, str]
    interface: str
    app_data: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    unit_data: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # Teardown (`remove_relation`): a dying relation gets no more relation-changed;
    # what each local unit still sees of the other side as it departs and breaks.
    dying: bool = False
    departed: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # unit: gone
    departing: dict[str, str] = dataclasses.field(default_factory=dict)  # unit: its departee
    broken: set[str] = dataclasses.field(default_factory=set)  # units in or past broken

    def side(self, app: str) -> int:
        """0 or 1: which end `app` is."""
        return self.apps.index(app)

    def other(self, app: str) -> str:
        """The application at the other end."""
        return self.apps[1 - self.side(app)]

    @property
    def is_peer(self) -> bool:
        """Whether both ends are the same application."""
        return self.apps[0] == self.apps[1]


@dataclasses.dataclass
class SecretRecord:
    """A secret as the model holds it: its owner, its revisions, who may read it, who reads which.

    As Juju keeps a charm secret: `content` is the latest revision's; each
    consumer unit tracks the revision it last read (a unit, not its
    application); a revision other than the latest that no unit tracks is
    obsolete, and its owner is told once to remove it; a rotation policy and a
    revision's expiry fall due on the model's clock. Times are the model's.
    """

    id: str
    owner_app: str
    owner: str  # "app" or "unit"
    owner_unit: str | None
    content: dict[str, str]
    revision: int = 1
    label: str | None = None
    description: str | None = None
    grants: dict[int, frozenset[str]] = dataclasses.field(default_factory=dict)
    tracked: dict[str, int] = dataclasses.field(default_factory=dict)  # consumer unit: revision
    revisions: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # consumer unit: its label
    obsolete: set[int] = dataclasses.field(default_factory=set)  # the owner was told
    rotate: str | None = None  # the rotation policy: hourly, daily, ...
    rotate_at: dt.datetime | None = None
    expiry: dict[int, dt.datetime] = dataclasses.field(default_factory=dict)  # revision: when
    expired_at: dict[int, dt.datetime] = dataclasses.field(default_factory=dict)  # next hook

    def __post_init__(self) -> None:
        self.revisions.setdefault(self.revision, dict(self.content))


@dataclasses.dataclass
class Unit:
    """One unit: its Context and the State it was left in."""

    app: str
    index: int
    ctx: testing.Context
    state: testing.State

    @property
    def name(self) -> str:
        """`app/index`."""
        return f"{self.app}/{self.index}"

    @property
    def leader(self) -> bool:
        """Whether the unit leads its application (unit 0, until the model elects another)."""
        return self.state.leader


@dataclasses.dataclass
class Application:
    """One application of the bundle."""

    name: str
    charm: str
    meta: dict[str, Any]
    config: dict[str, Any]
    scale: int
    constraints: str = ""
    trust: bool = False
    units: list[Unit] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class HookRecord:
    """One hook run, for the report."""

    unit: str
    event: str


# --- Juju's teardown and secrets, as ops.testing states them ------------------------------

# How long Juju waits to run secret-rotate again when the hook made no new
# revision, and secret-expired again while the expired revision is still there
# (juju/juju core/secrets/rotate.go: RotateRetryDelay, ExpireRetryDelay).
ROTATE_RETRY = dt.timedelta(minutes=5)
EXPIRE_RETRY = dt.timedelta(minutes=5)
# A rotation policy's step from the last rotation, as (years, months, days, hours)
# (juju/juju core/secrets/rotate.go: RotatePolicy.NextRotateTime, Go's AddDate).
_ROTATION_STEPS = {
    "hourly": (0, 0, 0, 1),
    "daily": (0, 0, 1, 0),
    "weekly": (0, 0, 7, 0),
    "monthly": (0, 1, 0, 0),
    "quarterly": (0, 3, 0, 0),
    "yearly": (1, 0, 0, 0),
}


def next_rotation(policy: str | None, last: dt.datetime) -> dt.datetime | None:
    """When a secret with this rotation policy, last rotated at `last`, is due again.

    Months and years step as Go's `AddDate` does: a day past the month's end
    runs on into the next month (31 January plus a month is 3 March).
    """
    if policy not in _ROTATION_STEPS:
        return None  # never, or no policy
    years, months, days, hours = _ROTATION_STEPS[policy]
    month = last.month - 1 + months
    year = last.year + years + month // 12
    first = last.replace(year=year, month=month % 12 + 1, day=1)
    return first + dt.timedelta(days=last.day - 1 + days, hours=hours)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepartingRelation(testing.Relation):
    """A relation as a unit sees it in relation-departed: the departing unit is not listed.

    Juju still answers relation-get for the departing unit (juju/juju
    docs/reference/hook.md, relation-departed); ops reads it through
    `event.unit` (ops/_main.py, `remote_unit_name`). Leaving it out of
    relation-list is this simulator's reading of "departed": the hook reference
    does not say it in so many words, so a charm must not rely on either.
    """

    departing_unit_id: int = 0

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _remote_unit_ids(self) -> tuple[int, ...]:
        return tuple(i for i in self.remote_units_data if i != self.departing_unit_id)


class ConsumedSecret(testing.Secret):
    """A secret as a consumer unit is given it, noting whether the charm read it.

    Any `secret-get` without --peek or --refresh makes a unit a consumer of the
    secret, tracking the revision it got (juju/juju docs/reference/hook.md,
    secret-changed); ops runs one for `Model.get_secret` too. ops.testing
    answers it from `tracked_content`, and keeps no trace of it, so reading
    that content here leaves one.
    """

    @property
    def tracked_content(self) -> dict[str, str]:  # type: ignore[override]
        self.__dict__["_read"] = True
        return self.__dict__["_tracked_content"]

    @tracked_content.setter
    def tracked_content(self, value: dict[str, str]) -> None:
        self.__dict__["_tracked_content"] = value


def was_read(secret: testing.Secret) -> bool:
    """Whether the charm read a `ConsumedSecret`'s tracked revision in its hook."""
    return bool(secret.__dict__.get("_read"))


def _revisions(secret: testing.Secret, *, tracked: int, latest: int) -> testing.Secret:
    """Give an ops.testing Secret its tracked and latest revision numbers.

    ops.testing keeps them in the Secret's `_tracked_revision` and
    `_latest_revision` (what `get_info()` answers, what `refresh=True` moves
    to, what `remove_revision` may not remove) and starts both at 1.
    """
    object.__setattr__(secret, "_tracked_revision", tracked)
    object.__setattr__(secret, "_latest_revision", latest)
    return secret


# --- the simulated model --------------------------------------------------------------


class Model:
    """A whole bundle deployed into one simulated model."""

    # The secret event the hook running now was given: (kind, secret id, revision).
    _secret_hook: tuple[str, str, int] | None = None

    def __init__(
        self,
        bundle: dict[str, Any],
        workloads: Any,
        *,
        tmp_path: Path,
        max_hooks: int = DEFAULT_MAX_HOOKS,
        seed: int | None = None,
    ):
        self.bundle = bundle
        self.workloads = workloads
        self.tmp_path = tmp_path
        self.max_hooks = max_hooks
        # With a seed, events come in one of the orders Juju may deal them out
        # (see `_next_event`); without, in the one fixed order.
        self.seed = seed
        self._rng = random.Random(seed) if seed is not None else None
        self._unadded: list[int] = []  # bundle relations not integrated yet (seeded only)
        self._installed: set[str] = set()
        self._started: set[str] = set()
        self._created: set[tuple[str, int]] = set()  # (unit, relation id) it was told of
        self.apps: dict[str, Application] = {}
        self.relations: dict[int, RelationRecord] = {}
        self.secrets: dict[str, SecretRecord] = {}
        self.hooks: list[HookRecord] = []
        self.logs: list[tuple[str, str, str]] = []  # unit, level, message
        self.statuses: dict[str, testing.StatusBase] = {}
        self.app_statuses: dict[str, testing.StatusBase] = {}
        self.settle_seconds = 0.0
        self._queue: deque[tuple[Unit, Callable[[testing.State], Any], str]] = deque()
        self._ids = itertools.count(1)
        self._build()

    # --- building

    def _build(self) -> None:
        for name, spec in self.bundle.get("applications", {}).items():
            charm = charm_name(spec)
            app = Application(
                name=name,
                charm=charm,
                meta=charm_meta(charm),
                config=dict(spec.get("options") or {}),
                scale=int(spec.get("scale", spec.get("num_units", 1))),
                constraints=str(spec.get("constraints") or ""),
                trust=bool(spec.get("trust", False)),
            )
            self.apps[name] = app
        for pair in self.bundle.get("relations", []):
            record = self._add_relation(*pair)
            if self._rng is not None:
                self._unadded.append(record.id)
        if self._rng is not None:
            self._rng.shuffle(self._unadded)
        for app in self.apps.values():
            for peer, (role, interface) in endpoints(app.meta).items():
                if role == "peers":
                    self._new_relation((app.name, app.name), (peer, peer), interface)
            for index in range(app.scale):
                app.units.append(self._new_unit(app, index))

    def check_interfaces(self) -> list[str]:
        """Every bundle relation joins endpoints that exist, with one interface, one each side."""
        problems = []
        for pair in self.bundle.get("relations", []):
            (a, ea), (b, eb) = (end.split(":") for end in pair)
            sides = []
            for app, ep in ((a, ea), (b, eb)):
                known = endpoints(self.apps[app].meta)
                if ep not in known:
                    problems.append(f"{app} has no endpoint {ep!r}")
                    break
                sides.append(known[ep])
            else:
                (ra, ia), (rb, ib) = sides
                if ia != ib:
                    problems.append(f"{a}:{ea} ({ia}) and {b}:{eb} ({ib}) differ in interface")
                if {ra, rb} != {"provides", "requires"}:
                    problems.append(f"{a}:{ea} and {b}:{eb} are {ra} and {rb}")
        return problems

    def _add_relation(self, end_a: str, end_b: str) -> RelationRecord:
        (a, ea), (b, eb) = end_a.split(":"), end_b.split(":")
        interface = endpoints(self.apps[a].meta)[ea][1]
        return self._new_relation((a, b), (ea, eb), interface)

    def _new_relation(
        self, apps: tuple[str, str], eps: tuple[str, str], interface: str
    ) -> RelationRecord:
        record = RelationRecord(next(self._ids), apps, eps, interface)
        for app in set(apps):
            record.app_data[app] = {}
        self.relations[record.id] = record
        return record

    def _new_unit(self, app: Application, index: int) -> Unit:
        charm = load_charm(app.charm)
        class_name = self.workloads.charm_class(app.charm)
        ctx = testing.Context(getattr(charm, class_name), app_name=app.name, unit_id=index)
        unit_dir = self.tmp_path / app.name / str(index)
        unit_dir.mkdir(parents=True, exist_ok=True)
        storages = {testing.Storage(name, index=0) for name in (app.meta.get("storage") or {})}
        state = testing.State(
            leader=index == 0,
            model=MODEL,
            config=app.config,
            containers=self.workloads.containers(app.charm, app.meta, unit_dir),
            storages=storages,
            planned_units=app.scale,
        )
        unit = Unit(app.name, index, ctx, state)
        for record in self.relations.values():
            if app.name in record.apps:
                record.unit_data[unit.name] = {}
        return unit

    # --- state assembly

    def _relation_for(self, unit: Unit, record: RelationRecord) -> testing.RelationBase:
        app = unit.app
        endpoint = record.endpoints[record.side(app)]
        local_unit = record.unit_data.get(unit.name, {})
        if record.is_peer:
            peers = {
                u.index: dict(record.unit_data.get(u.name, {}))
                for u in self.apps[app].units
                if u.name != unit.name
            }
            return testing.PeerRelation(
                endpoint,
                interface=record.interface,
                id=record.id,
                local_app_data=dict(record.app_data[app]),
                local_unit_data=dict(local_unit),
                peers_data=peers,
            )
        other = record.other(app)
        fields: dict[str, Any] = {
            "interface": record.interface,
            "id": record.id,
            "remote_app_name": other,
            "local_app_data": dict(record.app_data[app]),
            "local_unit_data": dict(local_unit),
        }
        if unit.name in record.broken:
            # relation-broken: the relation has no members and no data left to read
            # (juju/juju docs/reference/hook.md, relation-broken: the relation is no
            # longer valid and its data can no longer be read).
            return testing.Relation(endpoint, **fields, remote_app_data={}, remote_units_data={})
        gone = record.departed.get(unit.name, set())
        remote_units = {
            u.index: dict(record.unit_data.get(u.name, {}))
            for u in self.apps[other].units
            if u.name not in gone
        }
        fields["remote_app_data"] = dict(record.app_data[other])
        departing = record.departing.get(unit.name)
        if departing is None:
            return testing.Relation(endpoint, **fields, remote_units_data=remote_units)
        index = int(departing.split("/")[1])
        remote_units[index] = dict(record.unit_data.get(departing, {}))
        return DepartingRelation(
            endpoint, **fields, remote_units_data=remote_units, departing_unit_id=index
        )

    def _secrets_for(self, unit: Unit) -> set[testing.Secret]:
        """The secrets a unit manages, and those it may read, as it last read them."""
        self._secret_hook = None  # a new hook: no secret event of its own yet
        out: set[testing.Secret] = set()
        for record in self.secrets.values():
            if self._owns(unit, record):
                out.add(self._owner_view(record))
            elif self._reads(record, unit):
                out.add(self._consumer_view(record, unit))
        return out

    @staticmethod
    def _owns(unit: Unit, record: SecretRecord) -> bool:
        """Whether the unit manages the secret: its owning unit, or its owning app's leader."""
        if record.owner_app != unit.app:
            return False
        return record.owner_unit == unit.name if record.owner == "unit" else unit.leader

    def _reads(self, record: SecretRecord, unit: Unit) -> bool:
        """Whether a unit that does not manage the secret may read it, as a consumer.

        The other units of an owning application read its secrets as consumers
        do: they track revisions and get secret-changed, the leader does not
        (juju/juju issue 19035, as Juju 3.6 behaves).
        """
        peer = record.owner == "app" and record.owner_app == unit.app
        return peer or self._granted(record, unit)

    def _owner_view(self, record: SecretRecord) -> testing.Secret:
        """The owner's secret: the latest revision, its grants, expiry and rotation policy."""
        secret = testing.Secret(
            id=record.id,
            tracked_content=dict(record.content),
            latest_content=dict(record.content),
            owner=record.owner,  # type: ignore[arg-type]
            label=record.label,
            description=record.description,
            remote_grants=dict(record.grants),
            expire=self._charm_time(record.expiry.get(record.revision)),
            rotate=ops.SecretRotate(record.rotate) if record.rotate else None,
        )
        return _revisions(secret, tracked=record.revision, latest=record.revision)

    def _consumer_view(self, record: SecretRecord, unit: Unit) -> testing.Secret:
        """A consumer's secret: the revision the unit tracks (the latest if none yet)."""
        tracked = record.tracked.get(unit.name)
        content = record.revisions[tracked] if tracked else record.content
        # Units of the owning app know it by the owner's label.
        peer = record.owner_app == unit.app
        secret = ConsumedSecret(
            dict(content),
            latest_content=dict(record.content),
            id=record.id,
            owner=None,
            label=record.label if peer else record.labels.get(unit.name),
        )
        return _revisions(secret, tracked=tracked or 0, latest=record.revision)

    def _granted(self, record: SecretRecord, unit: Unit) -> bool:
        """Whether the secret is granted to the unit, or to its application, on a live relation.

        A grant names the remote application or one remote unit (`secret-grant
        --unit`); a grant to a unit is not a grant to its application.
        """
        for rel_id, names in record.grants.items():
            relation = self.relations.get(rel_id)
            if (
                relation is None
                or unit.app not in relation.apps
                or record.owner_app not in relation.apps
            ):
                continue
            if unit.app in names or unit.name in names:
                return True
        return False

    def _unit(self, name: str) -> Unit | None:
        """The unit of this name, if the model has it."""
        app = self.apps.get(name.partition("/")[0])
        return next((u for u in app.units if u.name == name), None) if app else None

    def _owner_unit(self, record: SecretRecord) -> Unit | None:
        """Who gets the owner's secret hooks: the owning unit, or the owning app's leader."""
        if record.owner == "unit":
            return self._unit(record.owner_unit or "")
        app = self.apps.get(record.owner_app)
        return next((u for u in app.units if u.leader), None) if app else None

    def state_for(self, unit: Unit) -> testing.State:
        """The unit's state with the model's current relations and secrets."""
        relations = {
            self._relation_for(unit, r)
            for r in self.relations.values()
            if unit.app in r.apps and r.id not in self._unadded
        }
        return dataclasses.replace(
            unit.state, relations=relations, secrets=self._secrets_for(unit)
        )

    # --- running hooks

    def enqueue(self, unit: Unit, make_event: Callable[[testing.State], Any], label: str) -> None:
        """Queue an event for a unit; `make_event` builds it from the state it runs on."""
        self._queue.append((unit, make_event, label))

    def relation_in(self, state: testing.State, rel_id: int) -> testing.RelationBase:
        """The relation with this id in a state."""
        return state.get_relation(rel_id)

    def run(
        self, unit: Unit, make_event: Callable[[testing.State], Any], label: str
    ) -> testing.State:
        """Run one hook on one unit and fold what it changed into the model."""
        if len(self.hooks) >= self.max_hooks:
            raise SimulationError(f"the model did not settle within {self.max_hooks} hooks")
        state = self.state_for(unit)
        event = make_event(state)
        if event is None:  # what it was about is gone (a check no longer planned, say)
            return state
        self.hooks.append(HookRecord(unit.name, label))
        unit.ctx.juju_log.clear()
        # The charm's API requests (lightkube's and drift's raw ones) go to this model's
        # cluster with its application's service-account token: what Juju lets the pod do.
        cluster, trusted = self.workloads.kubernetes, self.apps[unit.app].trust
        try:
            with routed_lightkube(cluster, MODEL.name, app=unit.app, trusted=trusted):
                out = unit.ctx.run(event, state)
        except Exception as e:
            raise SimulationError(f"{unit.name} raised in {label}: {e}") from e
        for line in unit.ctx.juju_log:
            self.logs.append((unit.name, line.level, line.message))
        out = self.workloads.after_hook(self.apps[unit.app].charm, out, unit=unit.name)
        self._queue_check_events(unit, unit.state, out)
        self._absorb(unit, out)
        unit.state = dataclasses.replace(out, relations=frozenset(), secrets=frozenset())
        self.statuses[unit.name] = out.unit_status
        if unit.leader:
            self.app_statuses[unit.app] = out.app_status
        return out

    def _absorb(self, unit: Unit, out: testing.State) -> None:
        for relation in out.relations:
            record = self.relations.get(relation.id)
            if record is None:
                continue
            app = unit.app
            if unit.leader and dict(relation.local_app_data) != record.app_data[app]:
                record.app_data[app] = dict(relation.local_app_data)
                self._relation_changed(record, app, changed_unit=None)
            if dict(relation.local_unit_data) != record.unit_data.get(unit.name, {}):
                record.unit_data[unit.name] = dict(relation.local_unit_data)
                self._relation_changed(record, app, changed_unit=unit)
        self._absorb_secrets(unit, out)

    def _absorb_secrets(self, unit: Unit, out: testing.State) -> None:
        hook, self._secret_hook = self._secret_hook, None
        seen = set()
        for secret in out.secrets:
            seen.add(secret.id)
            record = self.secrets.get(secret.id)
            if secret.owner is not None:
                self._absorb_owned(unit, secret, record)
            elif record is not None and self._reads(record, unit):
                self._absorb_consumed(unit, secret, record)
        self._absorb_removed_revisions(unit, hook)
        # An owner that removed its secret: it is gone for everyone.
        for record in list(self.secrets.values()):
            if self._owns(unit, record) and record.id not in seen:
                del self.secrets[record.id]
        if hook is not None:
            self._after_secret_hook(*hook)
        self._queue_obsolete_revisions()

    def _absorb_owned(
        self, unit: Unit, secret: testing.Secret, record: SecretRecord | None
    ) -> None:
        """What an owner did to its secret: made it, a new revision, grants, expiry, rotation."""
        content = dict(secret.latest_content)
        if record is None:
            record = SecretRecord(
                id=secret.id,
                owner_app=unit.app,
                owner=secret.owner,  # type: ignore[arg-type]
                owner_unit=unit.name if secret.owner == "unit" else None,
                content=content,
                label=secret.label,
                description=secret.description,
            )
            self.secrets[secret.id] = record
            given_expiry = None
        else:
            given_expiry = self._charm_time(record.expiry.get(record.revision))
            if content != record.content:
                record.revision += 1
                record.content = content
                record.revisions[record.revision] = dict(content)
                self._secret_changed(record)
        record.label = secret.label
        record.description = secret.description
        record.grants = {k: frozenset(v) for k, v in secret.remote_grants.items()}
        if secret.expire is not None and secret.expire != given_expiry:
            # An expiry set in this hook: the latest revision's (juju/juju
            # docs/reference/hook.md, secret-expired).
            when = self._model_time(secret.expire)
            record.expiry[record.revision] = record.expired_at[record.revision] = when
        policy = getattr(secret.rotate, "value", secret.rotate)
        if policy != record.rotate:
            # A secret already rotating keeps its next rotation; one that was
            # not starts now (juju/juju domain/secret/service/service.go,
            # UpdateCharmSecret).
            due = next_rotation(policy, self.now())
            if due is None or record.rotate_at is None:
                record.rotate_at = due
            record.rotate = policy

    def _absorb_consumed(self, unit: Unit, secret: testing.Secret, record: SecretRecord) -> None:
        """What a consumer read: it tracks the revision it got, per unit, as Juju keeps it."""
        given = record.tracked.get(unit.name, 0)
        refreshed = secret._tracked_revision != given  # `get_content(refresh=True)`
        if refreshed or (given == 0 and was_read(secret)):
            record.tracked[unit.name] = record.revision
        if secret.label and record.owner_app != unit.app:
            record.labels[unit.name] = secret.label

    def _absorb_removed_revisions(self, unit: Unit, hook: tuple[str, str, int] | None) -> None:
        """Forget the revisions an owner removed (`Secret.remove_revision`) in its hook.

        ops.testing lists their numbers, not their secret: in a secret-remove
        or secret-expired hook they are that secret's; otherwise the one
        secret of the unit's that has such an old revision.
        """
        removed = list(unit.ctx.removed_secret_revisions)
        unit.ctx.removed_secret_revisions.clear()
        for revision in removed:
            if hook is not None and hook[0] in ("remove", "expired"):
                record = self.secrets.get(hook[1])
            else:
                old = [r for r in self.secrets.values() if self._owns(unit, r)]
                old = [r for r in old if revision in r.revisions and revision != r.revision]
                record = old[0] if len(old) == 1 else None
            if record is not None and revision != record.revision:
                record.revisions.pop(revision, None)
                record.expiry.pop(revision, None)
                record.expired_at.pop(revision, None)
                # A unit that tracked it (an expired revision, say) reads the latest next.
                record.tracked = {u: r for u, r in record.tracked.items() if r != revision}

    def _after_secret_hook(self, kind: str, secret_id: str, revision: int) -> None:
        """Juju's retries: rotate again if no new revision came, expire again if still there."""
        record = self.secrets.get(secret_id)
        if record is None:
            return
        if kind == "rotate" and record.rotate:
            rotated = record.revision > revision
            record.rotate_at = (
                next_rotation(record.rotate, self.now()) if rotated else self.now() + ROTATE_RETRY
            )
        if kind == "expired" and revision in record.revisions:
            record.expired_at[revision] = self.now() + EXPIRE_RETRY

    def _queue_obsolete_revisions(self) -> None:
        """secret-remove to the owner, once, for each old revision no consumer unit tracks.

        Units that can no longer read the secret (its grant or relation gone),
        or that manage it now, are no longer its consumers.
        """
        for record in self.secrets.values():
            record.tracked = {
                name: revision
                for name, revision in record.tracked.items()
                if (unit := self._unit(name)) is not None
                and not self._owns(unit, record)
                and self._reads(record, unit)
            }
            owner = self._owner_unit(record)
            if owner is None:
                continue
            held = {record.revision, *record.tracked.values(), *record.obsolete}
            for revision in sorted(set(record.revisions) - held):
                record.obsolete.add(revision)
                self._queue_secret_hook(owner, "remove", record, revision)

    def _queue_secret_hook(
        self, unit: Unit, kind: str, record: SecretRecord, revision: int | None = None
    ) -> None:
        """Queue secret-changed, -remove, -expired or -rotate, unless the same one is queued."""
        # What it is about; a rotation also keeps the revision it started from.
        hook = (kind, record.id, record.revision if kind == "rotate" else revision or 0)
        for entry in self._queue:
            if entry[0] is unit and getattr(entry[1], "secret_hook", None) == hook:
                return  # Juju runs it once for all that happened since

        def make_event(state: testing.State) -> Any:
            self._secret_hook = hook
            secret = state.get_secret(id=hook[1])
            event = getattr(testing.CharmEvents, f"secret_{kind}")
            if kind in ("remove", "expired"):
                return event(secret, revision=hook[2])
            return event(secret)

        make_event.secret_hook = hook  # type: ignore[attr-defined]
        self.enqueue(unit, make_event, f"secret-{kind}")

    def _relation_changed(
        self, record: RelationRecord, app: str, changed_unit: Unit | None
    ) -> None:
        if record.dying:
            return  # a relation being removed: Juju runs no more relation-changed for it
        other = record.other(app)
        source = changed_unit or self.apps[app].units[0]
        for unit in self.apps[other].units:
            if unit is changed_unit or not self._in_relation(unit, record):
                continue
            if record.is_peer:
                if changed_unit is None and unit.leader:
                    continue  # the leader wrote the peer app data itself
                self.enqueue(
                    unit,
                    lambda s, rid=record.id: testing.CharmEvents.relation_changed(
                        s.get_relation(rid), remote_unit=source.index
                    ),
                    f"{record.endpoints[0]}-relation-changed",
                )
                continue
            endpoint = record.endpoints[record.side(other)]
            self.enqueue(
                unit,
                lambda s, rid=record.id, ru=source.index: testing.CharmEvents.relation_changed(
                    s.get_relation(rid), remote_unit=ru
                ),
                f"{endpoint}-relation-changed",
            )

    def _secret_changed(self, record: SecretRecord) -> None:
        """secret-changed to each unit that tracks the secret and may still read it.

        Only consumers get it: units that read the secret (juju/juju
        docs/reference/hook.md, secret-changed), each unit for itself, the
        owning app's other units included, its leader not.
        """
        for app in self.apps.values():
            for unit in app.units:
                if unit.name not in record.tracked or self._owns(unit, record):
                    continue
                if self._reads(record, unit):
                    self._queue_secret_hook(unit, "changed", record)

    # --- the lifecycle

    def deploy(self) -> None:
        """Queue every unit's deploy sequence, then the relations' first events."""
        if self._rng is not None:
            self._deploy_in_any_order()
            return
        for app in self.apps.values():
            for unit in app.units:
                self._queue_deploy(app, unit)
        for app in self.apps.values():
            for unit in app.units:
                self._queue_relation_start(app, unit)

    def _queue_deploy(self, app: Application, unit: Unit) -> None:
        for storage in app.meta.get("storage") or {}:
            self.enqueue(
                unit,
                lambda s, n=storage: testing.CharmEvents.storage_attached(s.get_storage(n)),
                f"{storage}-storage-attached",
            )
        self.enqueue(unit, lambda s: testing.CharmEvents.install(), "install")
        for record in self.relations.values():
            if app.name in record.apps:
                endpoint = record.endpoints[record.side(app.name)]
                self.enqueue(
                    unit,
                    lambda s, rid=record.id: testing.CharmEvents.relation_created(
                        s.get_relation(rid)
                    ),
                    f"{endpoint}-relation-created",
                )
        if unit.leader:
            self.enqueue(unit, lambda s: testing.CharmEvents.leader_elected(), "leader-elected")
        else:
            self._queue_leader_settings_changed(unit)
        self.enqueue(unit, lambda s: testing.CharmEvents.config_changed(), "config-changed")
        self.enqueue(unit, lambda s: testing.CharmEvents.start(), "start")
        for container in app.meta.get("containers") or {}:
            self.enqueue(
                unit,
                lambda s, c=container: testing.CharmEvents.pebble_ready(s.get_container(c)),
                f"{container}-pebble-ready",
            )

    def _queue_relation_start(self, app: Application, unit: Unit) -> None:
        for record in self.relations.values():
            if app.name not in record.apps:
                continue
            other = record.other(app.name)
            endpoint = record.endpoints[record.side(app.name)]
            for remote in self.apps[other].units:
                if remote.name == unit.name:
                    continue
                self._queue_join(unit, record, endpoint, remote)

    def _queue_join(self, unit: Unit, record: RelationRecord, endpoint: str, remote: Unit) -> None:
        """relation-joined, then relation-changed, on `unit` for `remote` joining."""
        for kind in ("joined", "changed"):
            make = getattr(testing.CharmEvents, f"relation_{kind}")
            self.enqueue(
                unit,
                lambda s, rid=record.id, ru=remote.index, m=make: m(
                    s.get_relation(rid), remote_unit=ru
                ),
                f"{endpoint}-relation-{kind}",
            )

    def settle(self) -> None:
        """Run queued events until none is left; raise if the bound is reached."""
        started = time.perf_counter()
        while self._queue or self._unadded:
            if self._unadded and (not self._queue or self._integrate_now()):
                self._integrate(self._unadded.pop())
                continue
            unit, make_event, label = self._next_event()
            if unit.app not in self.apps:
                continue
            self.run(unit, make_event, label)
            if self._rng is not None and label in ("install", "start"):
                self._lifecycle_step(unit, label)
        self.settle_seconds += time.perf_counter() - started

    def update_status_everywhere(self) -> list[str]:
        """One update-status on every unit; return what it changed (a settled model: nothing)."""
        before = self._snapshot()
        for app in self.apps.values():
            for unit in app.units:
                self.run(unit, lambda s: testing.CharmEvents.update_status(), "update-status")
        self.settle()
        after = self._snapshot()
        return [key for key in before.keys() | after.keys() if before.get(key) != after.get(key)]

    def update_status(self, unit_name: str) -> list[str]:
        """One update-status on one unit; return what it changed (a settled unit: nothing)."""
        before = self._snapshot()
        self.run(
            self.unit(unit_name), lambda s: testing.CharmEvents.update_status(), "update-status"
        )
        self.settle()
        after = self._snapshot()
        return [key for key in before.keys() | after.keys() if before.get(key) != after.get(key)]

    def _snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {}
        for record in self.relations.values():
            for app, data in record.app_data.items():
                snap[f"relation {record.id} app {app}"] = dict(data)
            for unit, data in record.unit_data.items():
                snap[f"relation {record.id} unit {unit}"] = dict(data)
        for record in self.secrets.values():
            snap[f"secret {record.label or record.id}"] = (record.revision, dict(record.content))
        for app in self.apps.values():
            for unit in app.units:
                for container in unit.state.containers:
                    snap[f"plan {unit.name} {container.name}"] = container.plan.to_dict()
        return snap

    def remove_relation(self, end_a: str, end_b: str) -> None:
        """`juju remove-relation`: departed, then broken, on each unit of both sides; forget it.

        As Juju runs it (juju/juju worker/uniter/relation/resolver.go,
        docs/reference/hook.md): a dying relation gets no more
        relation-changed, queued ones included; each unit departs each remote
        unit in name order, the departing unit left out of the relation's
        units but its data still readable; relation-broken follows once every
        departed hook has run, with no remote units and no remote data.
        """
        apps = {end_a.split(":")[0], end_b.split(":")[0]}
        for record in list(self.relations.values()):
            ends = {f"{a}:{e}" for a, e in zip(record.apps, record.endpoints, strict=True)}
            if ends != {end_a, end_b} or set(record.apps) != apps or record.is_peer:
                continue
            record.dying = True
            self._drop_queued_changes(record)
            self.settle()  # what was already under way
            self._depart(record)
            self._break(record)
            self.settle_relation_end(record)

    def _drop_queued_changes(self, record: RelationRecord) -> None:
        """Take the relation's queued relation-changed events out of the queue."""
        kept = deque()
        for entry in self._queue:
            unit, make_event, label = entry[0], entry[1], entry[2]
            if label.endswith("-relation-changed") and unit.app in record.apps:
                event = make_event(self.state_for(unit))
                if event.relation is not None and event.relation.id == record.id:
                    continue
            kept.append(entry)
        self._queue = kept

    def _depart(self, record: RelationRecord) -> None:
        """relation-departed on each unit of both sides, once for each remote unit."""
        for app in dict.fromkeys(record.apps):
            endpoint = record.endpoints[record.side(app)]
            remotes = sorted(self.apps[record.other(app)].units, key=lambda u: u.name)
            for unit in self.apps[app].units:
                gone = record.departed.setdefault(unit.name, set())
                for remote in remotes:
                    record.departing[unit.name] = remote.name
                    try:
                        self.run(
                            unit,
                            lambda s, rid=record.id, ru=remote.index: (
                                testing.CharmEvents.relation_departed(
                                    s.get_relation(rid), remote_unit=ru, departing_unit=ru
                                )
                            ),
                            f"{endpoint}-relation-departed",
                        )
                    finally:
                        del record.departing[unit.name]
                    gone.add(remote.name)

    def _break(self, record: RelationRecord) -> None:
        """relation-broken on each unit of both sides."""
        for app in dict.fromkeys(record.apps):
            endpoint = record.endpoints[record.side(app)]
            for unit in self.apps[app].units:
                record.broken.add(unit.name)
                self.run(
                    unit,
                    lambda s, rid=record.id: testing.CharmEvents.relation_broken(
                        s.get_relation(rid)
                    ),
                    f"{endpoint}-relation-broken",
                )

    def settle_relation_end(self, record: RelationRecord) -> None:
        """Drop a broken relation from the model, its grants with it, then run what followed."""
        del self.relations[record.id]
        for secret in self.secrets.values():
            secret.grants.pop(record.id, None)
        self._queue_obsolete_revisions()
        self.settle()

    # --- the clock: secret rotation and expiry

    _clock_offset = dt.timedelta(0)  # how far the model's clock runs ahead of the wall's

    def now(self) -> dt.datetime:
        """The model's time: the wall clock, moved on by every `advance`."""
        return dt.datetime.now(dt.timezone.utc) + self._clock_offset

    def _model_time(self, when: dt.datetime) -> dt.datetime:
        """A time a charm gave (by the wall clock it reads) on the model's clock."""
        aware = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
        return aware + self._clock_offset

    def _charm_time(self, when: dt.datetime | None) -> dt.datetime | None:
        """A time on the model's clock as a charm, reading the wall clock, would give it."""
        return None if when is None else when - self._clock_offset

    def advance(self, by: dt.timedelta) -> None:
        """Let time pass: secret-rotate and secret-expired run as they fall due, in order.

        Each is raised on the secret's owner (an application's leader) when its
        time comes, and the model settles before the clock moves on, so a
        rotation made or a retry asked for within `by` runs too.
        """
        until = self._clock_offset + by
        while (due := self._next_alarm()) is not None:
            ahead = due - dt.datetime.now(dt.timezone.utc)
            if ahead > until:
                break
            self._clock_offset = max(self._clock_offset, ahead)
            self._ring_alarms()
            self.settle()
        self._clock_offset = until

    def _next_alarm(self) -> dt.datetime | None:
        times = [r.rotate_at for r in self.secrets.values() if r.rotate_at is not None]
        times += [t for r in self.secrets.values() for t in r.expired_at.values()]
        return min(times, default=None)

    def _ring_alarms(self) -> None:
        """Queue each secret-rotate and secret-expired that is due, on the owner."""
        now = self.now()
        for record in list(self.secrets.values()):
            owner = self._owner_unit(record)
            if owner is None:  # nobody left to tell
                record.rotate_at = None
                record.expired_at.clear()
                continue
            if record.rotate_at is not None and record.rotate_at <= now:
                record.rotate_at = None  # set again once the hook has run
                self._queue_secret_hook(owner, "rotate", record)
            for revision, when in sorted(record.expired_at.items()):
                if when <= now:
                    del record.expired_at[revision]
                    self._queue_secret_hook(owner, "expired", record, revision)

    def set_config(self, app: str, **options: Any) -> None:
        """`juju config app key=value`: config-changed on every unit."""
        application = self.apps[app]
        application.config.update(options)
        for unit in application.units:
            unit.state = dataclasses.replace(unit.state, config=dict(application.config))
            self.enqueue(unit, lambda s: testing.CharmEvents.config_changed(), "config-changed")

    def notify(self, unit_name: str, container: str, key: str, **data: str) -> None:
        """`pebble notify KEY` in a unit's container: the charm gets pebble-custom-notice."""
        unit = self.unit(unit_name)
        notice = testing.Notice(key=key, last_data=data)
        current = unit.state.get_container(container)
        updated = dataclasses.replace(current, notices=[*current.notices, notice])
        unit.state = dataclasses.replace(
            unit.state, containers=(set(unit.state.containers) - {current}) | {updated}
        )
        self.enqueue(
            unit,
            lambda s: testing.CharmEvents.pebble_custom_notice(s.get_container(container), notice),
            f"{container}-pebble-custom-notice",
        )
        self.settle()

    def run_action(self, unit_name: str, action: str, **params: Any) -> dict[str, Any]:
        """`juju run unit action`: the results, or SimulationError with the failure message."""
        unit = self.unit(unit_name)
        try:
            self.run(unit, lambda s: testing.CharmEvents.action(action, params=params), action)
        except SimulationError as e:
            cause = e.__cause__
            if isinstance(cause, testing.ActionFailed):
                raise SimulationError(f"{action} failed: {cause.message}") from cause
            raise
        results = unit.ctx.action_results or {}
        self.settle()
        return results

    # --- workloads

    def _queue_check_events(self, unit: Unit, before: testing.State, after: testing.State) -> None:
        """pebble-check-failed for a check that went down, -recovered for one back up.

        Pebble starts a check up and calls it down once it failed its
        threshold of times; Juju then runs <container>-pebble-check-failed,
        and -recovered when it passes again (juju/juju docs/reference/hook.md).
        """
        down, up = ops.pebble.CheckStatus.DOWN, ops.pebble.CheckStatus.UP
        for container in after.containers:
            try:
                old = {i.name: i.status for i in before.get_container(container.name).check_infos}
            except KeyError:
                old = {}
            for info in container.check_infos:
                was = old.get(info.name, up)
                if info.status == was or down not in (info.status, was):
                    continue
                kind = "failed" if info.status == down else "recovered"
                self.enqueue(
                    unit,
                    lambda s, c=container.name, n=info.name, k=kind: _check_event(s, c, n, k),
                    f"{container.name}-pebble-check-{kind}",
                )

    def break_workload(self, unit_name: str, service: str, how: str) -> None:
        """A unit's service breaks: it exits, answers 500, or does not listen; then settle.

        Its checks go down at once (Pebble would take its threshold of
        periods), and the charm hears of it as it would from Juju.
        """
        faults = self.workloads.FAULTS
        if how not in faults:
            raise ValueError(f"a workload breaks in one of {faults}, not {how!r}")
        self.workloads.faults[(unit_name, service)] = how
        self._workload_changed(self.unit(unit_name))

    def mend_workload(self, unit_name: str, service: str) -> None:
        """The service works again; Pebble restarts it if it had given up; then settle."""
        how = self.workloads.faults.pop((unit_name, service))
        unit = self.unit(unit_name)
        if how == "exits":
            containers = set()
            for container in unit.state.containers:
                statuses = dict(container.service_statuses)
                if statuses.get(service) == ops.pebble.ServiceStatus.ERROR:
                    statuses[service] = ops.pebble.ServiceStatus.ACTIVE
                containers.add(dataclasses.replace(container, service_statuses=statuses))
            unit.state = dataclasses.replace(unit.state, containers=frozenset(containers))
        self._workload_changed(unit)

    def _workload_changed(self, unit: Unit) -> None:
        after = self.workloads.after_hook(self.apps[unit.app].charm, unit.state, unit=unit.name)
        self._queue_check_events(unit, unit.state, after)
        unit.state = after
        self.settle()

    # --- event orders

    # In a seeded model Juju's freedom is used: units install in any order,
    # the bundle's relations are integrated at any moment (before a unit
    # installs, or long after it started), and the units' queued events
    # interleave. What Juju guarantees holds (juju/juju docs/reference/hook.md,
    # worker/uniter/resolver.go and relation/resolver.go): a unit runs
    # install, relation-created for the relations it is in, leader-elected
    # (or leader-settings-changed), config-changed and start in that order,
    # and its other events only after start; relation-created comes before
    # relation-joined, which comes right before relation-changed, for a
    # remote unit only once that unit is in the relation too; the events of
    # one endpoint, and any two events of one kind, keep their order.

    def _integrate_now(self) -> bool:
        """Whether `juju integrate` for the next relation comes before the next hook."""
        assert self._rng is not None
        return self._rng.random() < 0.1

    def _deploy_in_any_order(self) -> None:
        assert self._rng is not None
        units = [unit for app in self.apps.values() for unit in app.units]
        self._rng.shuffle(units)
        for unit in units:
            self.enqueue(unit, lambda s: testing.CharmEvents.install(), "install")

    def _lifecycle_step(self, unit: Unit, label: str) -> None:
        """After install: the rest of the deploy sequence, then the relations' first events."""
        assert self._rng is not None
        if label == "start":
            self._started.add(unit.name)
            return
        app = self.apps[unit.app]
        self._installed.add(unit.name)
        records = [
            r for r in self.relations.values() if app.name in r.apps and r.id not in self._unadded
        ]
        self._rng.shuffle(records)
        for record in records:
            self._queue_created(unit, record)
        if unit.leader:
            self.enqueue(unit, lambda s: testing.CharmEvents.leader_elected(), "leader-elected")
        else:
            self._queue_leader_settings_changed(unit)
        self.enqueue(unit, lambda s: testing.CharmEvents.config_changed(), "config-changed")
        self.enqueue(unit, lambda s: testing.CharmEvents.start(), "start")
        # On Kubernetes storage-attached comes after start (juju/juju docs/reference/hook.md).
        later: list[tuple[Callable[[testing.State], Any], str]] = [
            (
                lambda s, n=name: testing.CharmEvents.storage_attached(s.get_storage(n)),
                f"{name}-storage-attached",
            )
            for name in app.meta.get("storage") or {}
        ]
        later += [
            (
                lambda s, c=name: testing.CharmEvents.pebble_ready(s.get_container(c)),
                f"{name}-pebble-ready",
            )
            for name in app.meta.get("containers") or {}
        ]
        self._rng.shuffle(later)
        for make_event, event_label in later:
            self.enqueue(unit, make_event, event_label)
        for record in records:
            self._join(record, [unit])

    def _in_relation(self, unit: Unit, record: RelationRecord) -> bool:
        """Whether the unit hears of changes in the relation (seeded: once it is in it)."""
        return self._rng is None or (unit.name, record.id) in self._created

    def _queue_created(self, unit: Unit, record: RelationRecord) -> None:
        self._created.add((unit.name, record.id))
        endpoint = record.endpoints[record.side(unit.app)]
        self.enqueue(
            unit,
            lambda s, rid=record.id: testing.CharmEvents.relation_created(s.get_relation(rid)),
            f"{endpoint}-relation-created",
        )

    def _integrate(self, relation_id: int) -> None:
        """`juju integrate`: relation-created on the installed units, then they meet."""
        record = self.relations[relation_id]
        installed = [
            unit
            for app in dict.fromkeys(record.apps)
            for unit in self.apps[app].units
            if unit.name in self._installed
        ]
        for unit in installed:
            self._queue_created(unit, record)
        self._join(record, installed)

    def _join(self, record: RelationRecord, newcomers: list[Unit]) -> None:
        """relation-joined then -changed, both ways, between newcomers and the installed units."""
        met: set[frozenset[str]] = set()
        for unit in newcomers:
            for remote in self.apps[record.other(unit.app)].units:
                pair = frozenset((unit.name, remote.name))
                if remote is unit or remote.name not in self._installed or pair in met:
                    continue
                met.add(pair)
                for here, there in ((unit, remote), (remote, unit)):
                    endpoint = record.endpoints[record.side(here.app)]
                    self._queue_join(here, record, endpoint, there)

    def _next_event(self) -> tuple[Unit, Callable[[testing.State], Any], str]:
        """The next event to run: the queue's first, or in a seeded model any allowed one.

        Seeded: a unit with queued events, picked at random, runs one of them:
        before it started, its first; after, the first of any of its streams
        (an endpoint's relation events, or one kind of event), at random.
        """
        if self._rng is None:
            return self._queue.popleft()
        units: dict[int, Unit] = {}
        for unit, _, _ in self._queue:
            units.setdefault(id(unit), unit)
        chosen = self._rng.choice(list(units.values()))
        candidates: list[int] = []
        streams: set[str] = set()
        for position, (unit, _, label) in enumerate(self._queue):
            if unit is not chosen:
                continue
            stream = _stream(label)
            if stream not in streams:
                streams.add(stream)
                candidates.append(position)
            if chosen.name not in self._started:
                break
        position = self._rng.choice(candidates)
        entry = self._queue[position]
        del self._queue[position]
        return entry

    # --- units and leadership

    def unit(self, unit_name: str) -> Unit:
        """The unit `app/index` of the model; KeyError if the model has no such unit."""
        app, _, index = unit_name.partition("/")
        for unit in self.apps[app].units if app in self.apps else ():
            if str(unit.index) == index:
                return unit
        raise KeyError(f"the model has no unit {unit_name}")

    def leader_of(self, app: str) -> Unit:
        """The unit that leads an application."""
        (leader,) = [unit for unit in self.apps[app].units if unit.leader]
        return leader

    def _queue_leader_settings_changed(self, unit: Unit) -> None:
        # Juju runs leader-settings-changed on a unit that does not lead
        # whenever the leader settings' version moved since it last ran it
        # (juju/juju worker/uniter/leadership/resolver.go); the version starts
        # one ahead, so every follower runs it once after install, and a
        # leader's going is followed by it on the units that remain (juju/juju
        # docs/reference/hook.md). ops.testing builds the event but does not
        # name it in CharmEvents.
        event_class = type(testing.CharmEvents.leader_elected())
        self.enqueue(
            unit, lambda s: event_class("leader_settings_changed"), "leader-settings-changed"
        )

    def _set_planned_units(self, app: Application) -> None:
        for unit in app.units:
            unit.state = dataclasses.replace(unit.state, planned_units=app.scale)

    def add_unit(self, app_name: str) -> Unit:
        """`juju add-unit`: a new unit runs its deploy sequence and joins every relation.

        It follows the application's leader; every unit related to it (its
        peers too) runs relation-joined and relation-changed for it. Settle
        the model to run them.
        """
        app = self.apps[app_name]
        index = max((u.index for u in app.units), default=-1) + 1
        app.scale += 1
        unit = self._new_unit(app, index)
        has_leader = any(u.leader for u in app.units)
        unit.state = dataclasses.replace(unit.state, leader=not has_leader)
        app.units.append(unit)
        self._set_planned_units(app)
        if self._rng is not None:  # the rest follows install, in any allowed order
            self.enqueue(unit, lambda s: testing.CharmEvents.install(), "install")
            return unit
        self._queue_deploy(app, unit)
        self._queue_relation_start(app, unit)
        for record in self.relations.values():
            if app_name not in record.apps:
                continue
            other = record.other(app_name)
            endpoint = record.endpoints[record.side(other)]
            for remote in self.apps[other].units:
                if remote is unit:
                    continue
                for kind in ("joined", "changed"):
                    make = getattr(testing.CharmEvents, f"relation_{kind}")
                    self.enqueue(
                        remote,
                        lambda s, rid=record.id, m=make: m(s.get_relation(rid), remote_unit=index),
                        f"{endpoint}-relation-{kind}",
                    )
        return unit

    def remove_unit(self, unit_name: str) -> None:
        """`juju remove-unit APP --num-units 1`: the highest-numbered unit leaves the model.

        On Kubernetes Juju removes no named unit: remove-unit scales the
        application down (juju/juju cmd/juju/application/removeunit.go) and
        the StatefulSet's highest ordinal goes, so only that unit can be named
        here (ValueError otherwise). As Juju's uniter runs it (juju/juju
        worker/uniter/resolver.go, relation/resolver.go): the dying unit runs
        relation-departed for every unit it was related to and relation-broken
        for every relation but its peers, then stop, storage-detaching and
        remove. A leader keeps its lease meanwhile: the uniter's "resign
        leadership" only notes it locally (worker/uniter/operation/leader.go)
        and is-leader asks the lease (worker/uniter/runner/context/leader.go),
        so the dying leader still reads `is_leader()` true. Every unit related
        to it runs relation-departed for it; once it is gone, if it led, the
        unit with the lowest number is elected (leader-elected on it,
        leader-settings-changed on the others). Then the model settles.
        """
        unit = self.unit(unit_name)
        app = self.apps[unit.app]
        if unit.index != max(u.index for u in app.units):
            raise ValueError(
                f"{unit_name} cannot go alone: a Kubernetes application scales down"
                " from its highest-numbered unit"
            )
        was_leader = unit.leader
        app.scale -= 1
        self._set_planned_units(app)
        self._queue = deque(entry for entry in self._queue if entry[0] is not unit)
        queued = len(self._queue)
        for make_event, label in self._teardown_events(app, unit):
            self.run(unit, make_event, label)
        # Its peers and remote units hear no more from it once it departs, and
        # it runs nothing after remove (a check that failed as it stopped, say).
        left = list(self._queue)
        self._queue = deque(
            left[:queued]
            + [
                e
                for e in left[queued:]
                if e[0] is not unit and not e[2].endswith("-relation-changed")
            ]
        )
        app.units = [u for u in app.units if u is not unit]
        self.statuses.pop(unit.name, None)
        for record in self.relations.values():
            if app.name not in record.apps:
                continue
            record.unit_data.pop(unit.name, None)
            other = record.other(app.name)
            endpoint = record.endpoints[record.side(other)]
            for remote in self.apps[other].units:
                self.enqueue(
                    remote,
                    lambda s, rid=record.id, i=unit.index: testing.CharmEvents.relation_departed(
                        s.get_relation(rid), remote_unit=i, departing_unit=i
                    ),
                    f"{endpoint}-relation-departed",
                )
        if was_leader and app.units:
            self.elect(app.units[0].name)
        self.settle()

    def _teardown_events(
        self, app: Application, unit: Unit
    ) -> list[tuple[Callable[[testing.State], Any], str]]:
        """The hooks a dying unit runs, in order."""
        events: list[tuple[Callable[[testing.State], Any], str]] = []
        for record in self.relations.values():
            if app.name not in record.apps:
                continue
            endpoint = record.endpoints[record.side(app.name)]
            for remote in self.apps[record.other(app.name)].units:
                if remote is unit:
                    continue
                events.append(
                    (
                        lambda s, rid=record.id, ru=remote.index: (
                            testing.CharmEvents.relation_departed(
                                s.get_relation(rid), remote_unit=ru, departing_unit=unit.index
                            )
                        ),
                        f"{endpoint}-relation-departed",
                    )
                )
            if not record.is_peer:
                events.append(
                    (
                        lambda s, rid=record.id: testing.CharmEvents.relation_broken(
                            s.get_relation(rid)
                        ),
                        f"{endpoint}-relation-broken",
                    )
                )
        events.append((lambda s: testing.CharmEvents.stop(), "stop"))
        for storage in app.meta.get("storage") or {}:
            events.append(
                (
                    lambda s, n=storage: testing.CharmEvents.storage_detaching(s.get_storage(n)),
                    f"{storage}-storage-detaching",
                )
            )
        events.append((lambda s: testing.CharmEvents.remove(), "remove"))
        return events

    def elect(self, unit_name: str) -> None:
        """Juju gives the application's leadership to this unit.

        The unit that led loses it (Juju runs no hook for that: leader-deposed
        was never implemented); the new leader runs leader-elected, and every
        other unit leader-settings-changed.
        """
        unit = self.unit(unit_name)
        for other in self.apps[unit.app].units:
            if other is unit:
                continue
            other.state = dataclasses.replace(other.state, leader=False)
            self._queue_leader_settings_changed(other)
        unit.state = dataclasses.replace(unit.state, leader=True)
        self.enqueue(unit, lambda s: testing.CharmEvents.leader_elected(), "leader-elected")

    # --- reading the outcome

    def container_file(self, unit_name: str, container: str, path: str) -> str:
        """A file a unit's workload holds, in one of its persistent folders."""
        app, index = unit_name.split("/")
        unit_dir = self.tmp_path / app / index / container
        for mount in self.unit(unit_name).state.get_container(container).mounts.values():
            location = mount.location.rstrip("/")
            if path.startswith(location + "/"):
                return (Path(mount.source) / path[len(location) + 1 :]).read_text()
        raise FileNotFoundError(f"{path} is in no persistent folder of {unit_dir}")

    def secret_values(self) -> set[str]:
        """Every credential held in a secret (long enough to be told apart).

        What a secret holds beside its credentials and is public by nature
        (a certificate, its serial and validity, a user name) is left out.
        """
        return {
            value
            for record in self.secrets.values()
            for key, value in record.content.items()
            if len(value) >= 8
            and not _PUBLIC_KEY.search(key)
            and not (key == "access-key" and _MINIO_USER_NAME.match(value))
        }

    def leaks(self) -> list[str]:
        """Places outside secrets where a secret's value shows.

        Databags, config, statuses, logs, every container's Pebble plan, and
        every object in the cluster but Secrets (whose data holds credentials
        by design): ConfigMaps, PodDefaults, Deployments, webhooks...
        """
        values = self.secret_values()
        return [where for where, text in self._public_places() if any(v in text for v in values)]

    def _public_places(self) -> Iterator[tuple[str, str]]:
        """Every place a credential must not be, and its text."""
        for record in self.relations.values():
            for app, data in record.app_data.items():
                yield f"relation {record.id} app data of {app}", repr(data)
            for unit, data in record.unit_data.items():
                yield f"relation {record.id} unit data of {unit}", repr(data)
        for app in self.apps.values():
            yield f"config of {app.name}", repr(app.config)
        for name, status in {**self.statuses, **self.app_statuses}.items():
            yield f"status of {name}", status.message
        for unit, level, message in self.logs:
            yield f"{level} log line of {unit}", message
        for app in self.apps.values():
            for unit in app.units:
                for container in unit.state.containers:
                    plan = yaml.safe_dump(container.plan.to_dict())
                    yield f"Pebble plan of {unit.name} {container.name}", plan
        for stored in self.workloads.kubernetes.objects.values():
            body = stored.body
            if body["kind"] == "Secret":
                continue
            meta = body["metadata"]
            where = "/".join(filter(None, [meta.get("namespace"), meta["name"]]))
            yield f"{body['kind']} {where}", yaml.safe_dump(body)

    def status_table(self) -> str:
        """A `juju status`-like table of applications, units and relations."""
        rows = [("App", "Charm", "Units", "Trust", "Constraints", "Status", "Message")]
        for app in self.apps.values():
            status = self.app_statuses.get(app.name)
            rows.append(
                (
                    app.name,
                    app.charm,
                    str(len(app.units)),
                    "yes" if app.trust else "no",
                    app.constraints or "-",
                    status.name if status else "unknown",
                    status.message if status else "",
                )
            )
        unit_rows = [("Unit", "Workload", "Message")]
        for app in self.apps.values():
            for unit in app.units:
                status = self.statuses.get(unit.name)
                mark = "*" if unit.leader else ""
                unit_rows.append(
                    (
                        unit.name + mark,
                        status.name if status else "unknown",
                        status.message if status else "",
                    )
                )
        rel_rows = [("Integration provider", "Requirer", "Interface", "Type")]
        for record in self.relations.values():
            if record.is_peer:
                end = f"{record.apps[0]}:{record.endpoints[0]}"
                rel_rows.append((end, end, record.interface, "peer"))
                continue
            a, b = (f"{app}:{ep}" for app, ep in zip(record.apps, record.endpoints, strict=True))
            role = endpoints(self.apps[record.apps[0]].meta)[record.endpoints[0]][0]
            provider, requirer = (a, b) if role == "provides" else (b, a)
            rel_rows.append((provider, requirer, record.interface, "regular"))
        return "\n\n".join(_table(t) for t in (rows, unit_rows, rel_rows))


def _check_event(state: testing.State, container: str, check: str, kind: str) -> Any:
    """pebble-check-failed or -recovered for a check, if the container still has it."""
    infos = [i for i in state.get_container(container).check_infos if i.name == check]
    if not infos:
        return None
    make = getattr(testing.CharmEvents, f"pebble_check_{kind}")
    return make(state.get_container(container), infos[0])


def _stream(label: str) -> str:
    """Events whose order Juju keeps share a stream: an endpoint's relation events, or a kind."""
    match = re.fullmatch(r"(.+)-relation-(created|joined|changed|departed|broken)", label)
    return f"relation {match.group(1)}" if match else label


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def simulate(
    bundle: dict[str, Any],
    workloads: Any,
    tmp_path: Path,
    *,
    max_hooks: int = DEFAULT_MAX_HOOKS,
    seed: int | None = None,
) -> Model:
    """Deploy a bundle into a fresh simulated model and let it settle (in the seed's order)."""
    model = Model(bundle, workloads, tmp_path=tmp_path, max_hooks=max_hooks, seed=seed)
    problems = model.check_interfaces()
    if problems:
        raise SimulationError("; ".join(problems))
    model.deploy()
    model.settle()
    return model
