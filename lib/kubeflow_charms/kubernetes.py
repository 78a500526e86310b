"""Kubernetes objects a charm owns: rendered from Jinja2 templates, applied, pruned, deleted.

A charm keeps its manifests in `src/templates/*.j2`. `render()` turns some of
them into YAML text; `Resources` applies that text with server-side apply
(the app is the field manager), labels every object with the app, model and
a scope, prunes objects of those labels that the text no longer holds, and
deletes them all on removal (`lightkube-extensions`' KubernetesResourceManager
does the work).

A reconcile with nothing to change writes nothing: `apply_if_changed()`
compares a hash of the rendered text with the one the caller kept from the
last apply (say in its peer relation's app databag) and does not touch the
cluster when they match. Rendering itself costs a settled hook more than
the rest of its work (Jinja2's import and template compilation): a caller
may keep `render_digest()` of the templates and context beside that hash and
not render at all while the digest is the same.

lightkube and its models take half a second to import, so they are
imported only inside the functions that talk to Kubernetes: rendering and
hashing need only Jinja2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ops

logger = logging.getLogger(__name__)


class KubernetesError(Exception):
    """The API refused a request or could not be reached; the message says which."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


def error_status(error: KubernetesError, app: str) -> ops.StatusBase:
    """What a charm's status says when applying its objects failed.

    Not allowed: the operator must trust the application. The API server
    unreachable, overloaded, or a kind not served yet: wait, the next hook
    retries. Anything else is refused for good until the input changes.
    """
    if error.status in (401, 403):
        return ops.BlockedStatus(
            f"not allowed to manage Kubernetes objects: run `juju trust {app} --scope=cluster`"
        )
    if error.status is None or error.status >= 500 or error.status in (404, 409, 429):
        return ops.WaitingStatus(f"Kubernetes objects not applied yet: {error}")
    return ops.BlockedStatus(f"applying Kubernetes objects failed: {error}")


def delete_all(app: str, scopes: Iterable[Resources]) -> None:
    """The application is going: delete the objects of every scope, failures logged."""
    for resources in scopes:
        try:
            resources.delete()
        except KubernetesError as e:
            logger.error("deleting the %s objects failed: %s", resources.scope, e)
    logger.info("deleted the Kubernetes objects of %s", app)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of object a charm manages.

    Built-in kinds need only `api_version` and `kind`. Kinds defined by a
    CustomResourceDefinition also need their `plural` and scope.
    """

    api_version: str
    kind: str
    plural: str | None = None
    namespaced: bool = True


# The kinds most charms' scopes hold: CRDs, and the RBAC a controller and its users need.
CRD_KINDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)
RBAC_KINDS = (
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole"),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    Kind("rbac.authorization.k8s.io/v1", "Role"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding"),
)


def render(template_dir: Path, names: Iterable[str], context: Mapping[str, Any]) -> str:
    """Render templates into one multi-document YAML text (a missing variable is an error)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML
    )
    env.filters["tojson"] = _tojson
    documents = [env.get_template(name).render(**context).strip() for name in names]
    return "\n---\n".join(d for d in documents if d) + "\n"


def render_digest(template_dir: Path, names: Iterable[str], context: Mapping[str, Any]) -> str:
    """A hash of what `render` reads: the names, every file under `template_dir`, the context.

    The same digest renders the same text (with the same code and Jinja2, so
    a charm upgrade must not trust a digest kept before it). Every template
    file counts, so templates another one includes do too. The context is
    hashed as JSON with sorted keys, dataclasses as their fields; any other
    value JSON cannot hold is a TypeError.
    """
    import json

    digest = hashlib.sha256()
    digest.update(json.dumps(list(names)).encode())
    for path in sorted(p for p in template_dir.rglob("*") if p.is_file()):
        digest.update(b"\0" + str(path.relative_to(template_dir)).encode() + b"\0")
        digest.update(path.read_bytes())
    digest.update(b"\0")
    digest.update(json.dumps(context, sort_keys=True, default=_plain).encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": type(value).__qualname__, "fields": dataclasses.asdict(value)}
    raise TypeError(f"a {type(value).__name__} has no stable digest: use JSON values")


def _tojson(value: Any) -> str:
    # JSON is YAML: a safe way to put any string, list or map into a manifest.
    import json

    return json.dumps(value, sort_keys=True)


def manifest_hash(*texts: str) -> str:
    """A stable hash of rendered manifests (sha256, hex)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class Resources:
    """The objects of one app and scope in the cluster."""

    def __init__(
        self,
        *,
        app: str,
        model: str,
        scope: str,
        kinds: Sequence[Kind],
        field_manager: str | None = None,
    ):
        self.app = app
        self.model = model
        self.scope = scope
        self.kinds = tuple(kinds)
        self.field_manager = field_manager or app

    def reconcile(self, manifests: str) -> None:
        """Apply the objects in `manifests` and delete those of this scope it no longer holds."""
        with _api_errors():
            manager = self._manager()
            objects = self._load(manifests)
            manager.reconcile(objects)

    def delete(self) -> None:
        """Delete every object of this app and scope."""
        with _api_errors():
            self._manager().delete()

    def apply_if_changed(
        self, manifests: str, last_hash: str | None, *, force: bool = False
    ) -> str:
        """Reconcile unless `manifests` hashes to `last_hash`; return the hash now applied."""
        return apply_stages([(self, manifests)], last_hash, force=force)

    # --- lightkube from here on

    def _manager(self) -> Any:
        from lightkube import Client
        from lightkube_extensions.batch import (
            KubernetesResourceManager,
            create_charm_default_labels,
        )

        client = Client(field_manager=self.field_manager, namespace=self.model)
        return KubernetesResourceManager(
            labels=create_charm_default_labels(self.app, self.model, scope=self.scope),
            resource_types={_resource_type(k) for k in self.kinds},
            lightkube_client=client,
            logger=logger,
        )

    def _load(self, manifests: str) -> list[Any]:
        from lightkube import codecs

        for kind in self.kinds:
            _resource_type(kind)  # custom kinds must be known before their objects load
        objects = codecs.load_all_yaml(manifests)
        known = {(k.api_version, k.kind) for k in self.kinds}
        for obj in objects:
            if (obj.apiVersion, obj.kind) not in known:
                raise KubernetesError(
                    f"{obj.apiVersion} {obj.kind} is not a kind of scope {self.scope!r}"
                )
        return objects


def apply_stages(
    stages: Sequence[tuple[Resources, str]], last_hash: str | None, *, force: bool = False
) -> str:
    """Reconcile each (resources, manifests) in order, unless together they hash to `last_hash`.

    Returns the hash of what is now applied; the caller keeps it for next time.
    Order matters: CustomResourceDefinitions before objects of their kinds.
    """
    wanted = stages_hash(stages)
    if wanted == last_hash and not force:
        return wanted
    for resources, text in stages:
        resources.reconcile(text)
    return wanted


def stages_hash(stages: Sequence[tuple[Resources, str]]) -> str:
    """The hash `apply_stages` compares: every stage's scope and manifests, in order."""
    return manifest_hash(*(f"{r.scope}\0{text}" for r, text in stages))


def _resource_type(kind: Kind) -> Any:
    from lightkube.codecs import resource_registry
    from lightkube.generic_resource import create_global_resource, create_namespaced_resource

    if kind.plural is None:
        return resource_registry.load(kind.api_version, kind.kind)
    group, _, version = kind.api_version.rpartition("/")
    create = create_namespaced_resource if kind.namespaced else create_global_resource
    return create(group, version, kind.kind, kind.plural)


def api_errors() -> contextlib.AbstractContextManager[None]:
    """A block whose lightkube and transport errors are raised as KubernetesError.

    For code that calls a lightkube Client itself, a charm's action say:
    an API refusal, an unreachable API server and missing credentials then
    end as one exception with a message fit to show. Other errors pass.
    """
    return _api_errors()


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Turn lightkube's and the transport's errors into KubernetesError."""
    try:
        yield
    except KubernetesError:
        raise
    except Exception as exc:
        translated = _translate(exc)
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: Exception) -> KubernetesError | None:
    import httpx
    from lightkube.core.exceptions import ApiError, ConfigError, LoadResourceError
    from lightkube_extensions.batch import K8sApiError

    if isinstance(exc, ApiError):
        status = exc.status
        return KubernetesError(f"{status.reason or 'error'}: {status.message}", status=status.code)
    if isinstance(exc, (K8sApiError, httpx.HTTPError)):
        return KubernetesError(f"the Kubernetes API is unreachable: {exc}")
    if isinstance(exc, ConfigError):
        return KubernetesError(f"no Kubernetes API credentials: {exc}")
    if isinstance(exc, LoadResourceError):
        return KubernetesError(f"a manifest does not load: {exc}")
    return None


def load_balancer_address(service: str, namespace: str) -> str | None:
    """The first load-balancer IP or hostname in a Service's status, None while it has none."""
    with _api_errors():
        from lightkube import Client
        from lightkube.resources.core_v1 import Service

        obj = Client(namespace=namespace).get(Service, service, namespace=namespace)
    balancer = obj.status.loadBalancer if obj.status else None
    for ingress in (balancer.ingress if balancer else None) or []:
        if ingress.ip or ingress.hostname:
            return ingress.ip or ingress.hostname
    return None
