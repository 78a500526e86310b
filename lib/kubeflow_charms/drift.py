"""Notice, cheaply, that objects a charm applied were deleted or changed behind its back.

A charm applies its objects only when what it renders changes, so an object
someone deletes or edits would stay that way. After each apply the leader
keeps a digest of its objects as the API server lists them (`OwnedObjects.
record`); on update-status it lists them again (`OwnedObjects.drifted`) and,
when the digest differs, applies everything again.

Listing costs a settled hook little: one request per kind the charm owns,
for the objects' metadata only (a PartialObjectMetadataList), over one
keep-alive HTTPS connection made with `http.client`, `ssl` and `json`, which
ops imports anyway: no lightkube, no httpx. The digest covers each object's
kind, namespace, name, uid and `metadata.generation` where the kind keeps
one (Deployments, CustomResourceDefinitions, custom resources, webhook
configurations: the API server bumps it on a change of spec, not of status),
else its `resourceVersion` (ConfigMaps, Secrets, Services, RBAC), which
changes on every write. So a controller writing a Deployment's or a custom
resource's status changes nothing here; a Service's load-balancer status
changes its resourceVersion and costs one re-apply, after which the new
digest is kept and the next update-status writes nothing.

`send` is the one function that talks to the API server: tests and the
bundle simulation replace it to answer from a fake cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from kubeflow_charms.kubernetes import Kind, KubernetesError, Resources, apply_stages

logger = logging.getLogger(__name__)

# The labels lightkube-extensions puts on every object a KubernetesResourceManager
# applies (create_charm_default_labels in lightkube_extensions/batch/
# _kubernetes_resource_manager.py, lightkube-extensions 1.0.0): the app's
# instance, "{model}-{app}" while that fits a label value, and the scope.
INSTANCE_LABEL = "app.kubernetes.io/instance"
SCOPE_LABEL = "kubernetes-resource-handler-scope"
LABEL_VALUE_MAX = 63
# Where Kubernetes mounts a pod's service-account token and the cluster's CA.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Metadata only, or the full objects from an API server that cannot do that.
ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
PAGE = 500
TIMEOUT = 10.0

_connection: Any = None  # the hook's one keep-alive connection to the API server


def selector(app: str, model: str) -> str:
    """The label selector of every object lightkube-extensions applied for `app`, any scope."""
    instance = f"{model}-{app}"
    if len(instance) > LABEL_VALUE_MAX:
        # lightkube-extensions shortens a long value and adds a hash: ask it.
        from lightkube_extensions.batch import create_charm_default_labels

        instance = create_charm_default_labels(app, model, scope="-")[INSTANCE_LABEL]
    return f"{INSTANCE_LABEL}={instance},{SCOPE_LABEL}"


def resource_name(kind: Kind) -> str:
    """A kind's resource name: its own `plural`, else the name Kubernetes guesses for it.

    Built-in kinds follow Kubernetes' guess (UnsafeGuessKindToResource in
    apimachinery's pkg/api/meta/restmapper.go): the lower-cased kind, "es"
    after an "s", "ies" for a final "y", else "s"; Endpoints stays as it is.
    A wrong name would be a 404, which reads as "no objects": drift unseen.
    """
    if kind.plural:
        return kind.plural
    name = kind.kind.lower()
    if name.endswith("endpoints"):
        return name
    if name.endswith("s"):
        return f"{name}es"
    if name.endswith("y"):
        return f"{name[:-1]}ies"
    return f"{name}s"


def list_path(kind: Kind) -> str:
    """The API path that lists a kind's objects in every namespace."""
    group, _, version = kind.api_version.rpartition("/")
    plural = resource_name(kind)
    return f"/apis/{group}/{version}/{plural}" if group else f"/api/{version}/{plural}"


def send(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request to the API server from inside the pod: (HTTP status, body).

    The token is read for every request (Kubernetes rotates it); the
    connection is kept for the rest of the hook. Raises KubernetesError when
    the pod has no API credentials or the server cannot be reached.
    """
    global _connection
    import http.client
    import ssl

    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if not host:
        raise KubernetesError("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST is unset")
    try:
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
    except OSError as e:
        raise KubernetesError(f"no Kubernetes API credentials: {e.strerror or e}") from None
    try:
        if _connection is None:
            context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
            _connection = http.client.HTTPSConnection(
                host, int(port), context=context, timeout=TIMEOUT
            )
        _connection.request(method, path, headers={**headers, "Authorization": f"Bearer {token}"})
        response = _connection.getresponse()
        return response.status, response.read()
    except (OSError, ValueError, http.client.HTTPException) as e:
        if _connection is not None:
            _connection.close()
        _connection = None
        raise KubernetesError(f"the Kubernetes API is unreachable: {e}") from None


def _metadata(kind: Kind, labels: str) -> Iterator[dict[str, Any]]:
    """The metadata of a kind's objects that carry `labels`, page by page."""
    query = {"labelSelector": labels, "limit": str(PAGE)}
    while True:
        status, body = send("GET", f"{list_path(kind)}?{urlencode(query)}", {"Accept": ACCEPT})
        if status == 404:
            return  # the kind is not served (its CustomResourceDefinition is gone): no objects
        data: Any
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"message": "not a list"}
        # An empty list may come as "items": null (Go's nil slice).
        items = data.get("items", False)
        if status != 200 or not isinstance(items, (list, type(None))):
            message = data.get("message") or "not a list"
            raise KubernetesError(
                f"listing {kind.kind} objects failed: HTTP {status} {message}",
                status=status,
            )
        for item in items or []:
            yield (item if isinstance(item, dict) else {}).get("metadata") or {}
        token = (data.get("metadata") or {}).get("continue")
        if not token:
            return
        query["continue"] = token


def digest(labels: str, kinds: Iterable[Kind]) -> str:
    """A digest of the objects of these kinds that carry `labels`, as the API server has them.

    Raises KubernetesError when they cannot be listed.
    """
    rows = []
    for kind in sorted(set(kinds), key=lambda k: (k.api_version, k.kind)):
        for meta in _metadata(kind, labels):
            version = meta.get("generation")
            rows.append(
                [
                    kind.api_version,
                    kind.kind,
                    meta.get("namespace") or "",
                    meta.get("name") or "",
                    meta.get("uid") or "",
                    f"g{version}" if version else f"rv{meta.get('resourceVersion') or ''}",
                    "deleting" if meta.get("deletionTimestamp") else "",
                ]
            )
    rows.sort()
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


class OwnedObjects:
    """A charm's objects in the cluster, and the digest its leader kept in a databag."""

    def __init__(
        self,
        databag: MutableMapping[str, str],
        key: str,
        *,
        app: str,
        model: str,
        kinds: Sequence[Kind],
    ):
        self.databag = databag
        self.key = key
        self.app = app
        self.model = model
        self.kinds = tuple(kinds)

    def _now(self) -> str:
        return digest(selector(self.app, self.model), self.kinds)

    def drifted(self) -> bool:
        """Whether the objects differ from those recorded after the last apply.

        Nothing recorded counts as different. When the API server cannot be
        read, the reason is logged and nothing is forced (the status stays as
        it is; the next update-status looks again). When it refuses the
        application (401, 403: its trust was removed, say), that counts as
        different: the charm applies again, and the apply's refusal puts what
        to do in its status instead of an active status it can no longer keep.
        """
        try:
            now = self._now()
        except KubernetesError as e:
            if e.status in (401, 403):
                logger.warning("cannot check the Kubernetes objects: %s; applying them again", e)
                return True
            logger.warning("cannot check the Kubernetes objects for changes: %s", e)
            return False
        if now == self.databag.get(self.key):
            return False
        logger.info("the Kubernetes objects changed or went missing: applying them again")
        return True

    def record(self) -> None:
        """After an apply: keep the digest of the objects as they are now (written if changed).

        A failure is logged and the old digest stays, so the next
        update-status finds a difference and applies again.
        """
        try:
            now = self._now()
        except KubernetesError as e:
            logger.warning("cannot record the applied Kubernetes objects: %s", e)
            return
        if self.databag.get(self.key) != now:
            self.databag[self.key] = now

    def apply_when_wanted(
        self,
        hash_key: str,
        wanted: str,
        stages: Callable[[], Sequence[tuple[Resources, str]]],
        *,
        force: bool,
        routine: bool,
    ) -> bool:
        """Apply the objects if `wanted` is not what was applied last, if forced, or if drifted.

        `wanted` is a digest of what `stages` would render, kept in the same
        databag under `hash_key`; `stages` is called only when applying (a
        settled hook renders nothing). Drift is looked for only on a routine
        hook (update-status). Raises KubernetesError when the apply fails;
        returns whether `wanted` was new.
        """
        if self.databag.get(hash_key) == wanted and not force:
            if not (routine and self.drifted()):
                return False
        apply_stages(stages(), None)
        self.record()
        if self.databag.get(hash_key) == wanted:
            return False
        self.databag[hash_key] = wanted
        return True
