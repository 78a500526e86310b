"""The `kubeflow_knative_serving` interface: Knative Serving tells KServe where it runs.

KServe's Serverless mode makes a Knative Service per predictor and routes
to it through Knative's cluster-local gateway, so the KServe charm (the
requirer) needs to know that Knative Serving is installed (its CRDs are in
place: KServe's controller watches Knative Services only if their CRD
exists when it starts), the namespace its config lives in, the local
gateway and the Service in front of it, and the external domain Knative
gives routes. The `knative-serving` charm (the provider) says so once its
CRDs, config and gateways are applied.

Wire format (ours; no ecosystem charm speaks it): the provider's leader
writes, in its application databag,
- `namespace`: Knative Serving's system namespace (its ConfigMaps);
- `local-gateway`: `<namespace>/<name>` of the Istio Gateway for
  cluster-local traffic;
- `local-gateway-service`: the host of the Service in front of it;
- `domain`: the domain of routes' external hosts;
- `version`: the Knative Serving release, e.g. `1.16.2`.
The requirer writes nothing. A provider that withdraws (its objects are
not in place) removes every key.
"""

from __future__ import annotations

import dataclasses
import re

import ops

INTERFACE = "kubeflow_knative_serving"
KEYS = ("namespace", "local-gateway", "local-gateway-service", "domain", "version")

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME = re.compile(rf"^{_LABEL}$")
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class InvalidKnativeServingError(Exception):
    """The provider's data does not parse; `keys` names the wrong ones."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.keys = keys


@dataclasses.dataclass(frozen=True)
class KnativeServing:
    """Where Knative Serving runs, as its charm says."""

    namespace: str
    local_gateway: str
    local_gateway_service: str
    domain: str
    version: str

    def __post_init__(self):
        bad = []
        if not _NAME.match(self.namespace or ""):
            bad.append("namespace")
        namespace, _, name = (self.local_gateway or "").partition("/")
        if not (_NAME.match(namespace) and _NAME.match(name)):
            bad.append("local-gateway")
        for key, value in (
            ("local-gateway-service", self.local_gateway_service),
            ("domain", self.domain),
        ):
            if not isinstance(value, str) or len(value) > 253 or not _HOST.match(value):
                bad.append(key)
        if not _VERSION.match(self.version or ""):
            bad.append("version")
        if bad:
            raise InvalidKnativeServingError(f"invalid {', '.join(bad)}", tuple(bad))

    def to_databag(self) -> dict[str, str]:
        """The provider's application databag."""
        return {key: getattr(self, key.replace("-", "_")) for key in KEYS}

    @classmethod
    def from_databag(cls, data: dict[str, str]) -> KnativeServing | None:
        """The provider's data; None while it has written none.

        Raises InvalidKnativeServingError naming missing or wrong keys.
        """
        present = [key for key in KEYS if data.get(key)]
        if not present:
            return None
        missing = tuple(key for key in KEYS if key not in present)
        if missing:
            raise InvalidKnativeServingError(f"missing {', '.join(missing)}", missing)
        return cls(**{key.replace("-", "_"): data[key] for key in KEYS})


class KnativeServingProvider:
    """Provider side (`knative-serving`): publish or withdraw on every relation."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "knative-serving"):
        self._charm = charm
        self._endpoint = endpoint

    def publish(self, serving: KnativeServing | None) -> bool:
        """Leader: write `serving` (None withdraws it); only what changed. Whether it wrote."""
        if not self._charm.unit.is_leader():
            return False
        wanted = serving.to_databag() if serving is not None else {}
        wrote = False
        for relation in self._charm.model.relations[self._endpoint]:
            databag = relation.data[self._charm.app]
            for key in KEYS:
                value = wanted.get(key)
                if databag.get(key) == value:
                    continue
                if value is None:
                    del databag[key]
                else:
                    databag[key] = value
                wrote = True
        return wrote


class KnativeServingRequirer:
    """Requirer side (`kserve`): Knative Serving, once its charm says it is in place."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "knative-serving"):
        self._charm = charm
        self._endpoint = endpoint

    @property
    def relation(self) -> ops.Relation | None:
        """The relation, if there is one (a requirer takes one provider)."""
        return self._charm.model.get_relation(self._endpoint)

    def get(self) -> KnativeServing | None:
        """The provider's data; None without a relation or data.

        Raises InvalidKnativeServingError when the data does not parse.
        """
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        return KnativeServing.from_databag(dict(relation.data[relation.app]))
