"""The `kubeflow_trial_kinds` interface: job kinds a training charm offers Katib as trials.

Katib runs a Trial as any job kind named in its controller's
`trialResources`; it watches only the kinds whose CRDs exist when it
starts, and it needs RBAC on each kind and on the objects that kind makes
(the pod webhook walks a trial pod's owners up to the Trial). So the charm
that installs a job kind's CRDs (the provider, e.g. `kubeflow-trainer`)
tells the Katib charm (the requirer) about it here, once the CRDs are in
place, and Katib adds the kind, its RBAC and the defaults its Experiments
need.

Wire format (ours; no ecosystem charm speaks it): the provider's leader
writes, in its application databag, `trial_kinds`: a JSON list of objects
with
- `kind`, `api_version` (`group/version`), `plural`: the job kind;
- `success_condition`, `failure_condition`: GJSON expressions over the job
  object that Katib evaluates to tell a finished trial;
- `primary_pod_labels` (object) and `primary_container`: which pod and
  container of a job report the metrics;
- `owned`: a list of `{group, resources}` objects the job kind creates
  between itself and its pods (read-only access for Katib).
The requirer writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import ops

if TYPE_CHECKING:
    from ops import testing

INTERFACE = "kubeflow_trial_kinds"
FIELD = "trial_kinds"


class InvalidTrialKindsError(Exception):
    """A provider's trial kinds do not parse."""


@dataclasses.dataclass(frozen=True)
class OwnedResources:
    """Objects of one API group a job kind creates on its way to pods."""

    group: str
    resources: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TrialKind:
    """One job kind Katib may run as a trial."""

    kind: str
    api_version: str
    plural: str
    success_condition: str
    failure_condition: str
    primary_pod_labels: dict[str, str]
    primary_container: str
    owned: tuple[OwnedResources, ...] = ()

    @property
    def group(self) -> str:
        """The API group of the kind."""
        return self.api_version.partition("/")[0]

    @property
    def version(self) -> str:
        """The API version of the kind, without its group."""
        return self.api_version.partition("/")[2]

    @property
    def trial_resource(self) -> str:
        """The kind as Katib's `trialResources` names it: `Kind.version.group`."""
        return f"{self.kind}.{self.version}.{self.group}"

    def to_json(self) -> dict[str, Any]:
        """The kind as a JSON object of the wire format."""
        return {
            "kind": self.kind,
            "api_version": self.api_version,
            "plural": self.plural,
            "success_condition": self.success_condition,
            "failure_condition": self.failure_condition,
            "primary_pod_labels": dict(self.primary_pod_labels),
            "primary_container": self.primary_container,
            "owned": [{"group": o.group, "resources": list(o.resources)} for o in self.owned],
        }

    @classmethod
    def from_json(cls, data: Any) -> TrialKind:
        """A kind from a JSON object; ValueError naming the first wrong field."""
        if not isinstance(data, dict):
            raise ValueError("a trial kind must be an object")
        strings = (
            "kind",
            "api_version",
            "plural",
            "success_condition",
            "failure_condition",
            "primary_container",
        )
        for name in strings:
            if not isinstance(data.get(name), str) or not data[name]:
                raise ValueError(f"{name} must be a non-empty string")
        if data["api_version"].count("/") != 1:
            raise ValueError("api_version must be group/version")
        labels = data.get("primary_pod_labels")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError("primary_pod_labels must be an object of strings")
        owned = []
        for item in data.get("owned") or []:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("group"), str)
                and isinstance(item.get("resources"), list)
                and all(isinstance(r, str) and r for r in item["resources"])
            ):
                raise ValueError("owned must be a list of {group, resources} objects")
            owned.append(OwnedResources(item["group"], tuple(item["resources"])))
        return cls(
            **{name: data[name] for name in strings},
            primary_pod_labels=dict(labels),
            owned=tuple(owned),
        )


def dump(kinds: list[TrialKind]) -> str:
    """The databag value for a list of kinds."""
    return json.dumps([kind.to_json() for kind in kinds], sort_keys=True)


def parse(raw: str, app: str = "the provider") -> list[TrialKind]:
    """Kinds from a databag value; InvalidTrialKindsError naming what is wrong."""
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidTrialKindsError(f"{app}'s trial kinds are not JSON") from None
    if not isinstance(items, list):
        raise InvalidTrialKindsError(f"{app}'s trial kinds are not a list")
    kinds = []
    for item in items:
        try:
            kinds.append(TrialKind.from_json(item))
        except ValueError as e:
            raise InvalidTrialKindsError(
                f"{app} sent a trial kind that does not parse: {e}"
            ) from None
    return kinds


class TrialKindsProvider:
    """Provider side (a charm that installs job kinds): say which kinds are ready."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "trial-kinds"):
        self._charm = charm
        self._endpoint = endpoint

    def publish(self, kinds: list[TrialKind]) -> bool:
        """Write the kinds on every relation (leader only, only when changed).

        An empty list withdraws them.
        """
        if not self._charm.unit.is_leader():
            return False
        wanted = dump(kinds) if kinds else None
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            databag = relation.data[self._charm.app]
            if databag.get(FIELD) != wanted:
                if wanted is None:
                    del databag[FIELD]
                else:
                    databag[FIELD] = wanted
                wrote = True
        return wrote


class TrialKindsRequirer:
    """Requirer side (Katib): every kind the related charms offer."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "trial-kinds"):
        self._charm = charm
        self._endpoint = endpoint

    def kinds(self) -> list[TrialKind]:
        """Every offered kind, in relation order, first offer of a kind wins.

        Raises InvalidTrialKindsError when a provider's data does not parse.
        """
        out: dict[str, TrialKind] = {}
        relations = sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)
        for relation in relations:
            if relation.app is None:
                continue
            raw = relation.data[relation.app].get(FIELD)
            if not raw:
                continue
            for kind in parse(raw, relation.app.name):
                out.setdefault(kind.trial_resource, kind)
        return list(out.values())


# --- helpers for charm tests -------------------------------------------------


def relation_for_requirer(
    kinds: list[TrialKind],
    endpoint: str = "trial-kinds",
    *,
    remote_app_name: str = "kubeflow-trainer",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as Katib sees it, with a provider's kinds."""
    from ops import testing

    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={FIELD: dump(kinds)} if kinds else {},
        **kwargs,
    )


def relation_for_provider(
    endpoint: str = "trial-kinds", *, remote_app_name: str = "katib", **kwargs: Any
) -> testing.Relation:
    """A relation as the provider sees it (Katib writes nothing)."""
    from ops import testing

    return testing.Relation(
        endpoint, interface=INTERFACE, remote_app_name=remote_app_name, **kwargs
    )
