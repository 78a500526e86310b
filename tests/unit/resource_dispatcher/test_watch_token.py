"""The namespace watch runs on a narrow token of its own, never the pod's.

The `namespace-watch` container mounts the `watch-credentials` storage where
Kubernetes would put the pod's token, so it gets none; the charm writes a
token of the `<app>-namespace-watch` service account there (get, list, watch
on namespaces only), renews it when a third of its life is left and restarts
the watch on the new one.
"""

from __future__ import annotations

import dataclasses
import logging
import stat
import time
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing
from unit.resource_dispatcher.helpers import (
    CHARM,
    CLUSTER_CA,
    MODEL,
    WATCH_ACCOUNT,
    containers,
    namespace_watch,
    state,
    watch_mount,
    watch_token,
)

from kubeflow_charms import certificates
from kubeflow_charms.kubernetes import KubernetesError

DAY = 24 * 3600


@pytest.fixture(scope="module")
def certs() -> testing.Secret:
    """The webhook certificates the leader made, as a non-leader unit sees them."""
    bundle = certificates.new_bundle("test CA", ["resource-dispatcher-webhook.kubeflow.svc"])
    return testing.Secret(
        tracked_content=bundle.to_content(), owner="app", label="webhook-certificates"
    )


@dataclasses.dataclass
class Issuer:
    """Stands in for the TokenRequest API: each call issues a new token."""

    lifetime: float = DAY
    error: KubernetesError | None = None
    calls: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __call__(self, app: str, namespace: str, now: float) -> Any:
        self.calls.append((app, namespace))
        if self.error is not None:
            raise self.error
        value = f"issued-token-{len(self.calls)}"
        return watch_token.Token(value, issued=now, expires=now + self.lifetime)


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Issuer:
    issuer = Issuer()
    monkeypatch.setattr(watch_token, "request_token", issuer)
    return issuer


@pytest.fixture
def restarts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every restart of the watch service."""
    calls: list[str] = []
    original = CHARM.NamespaceWatch.restart

    def restart(self):
        calls.append(namespace_watch.SERVICE)
        original(self)

    monkeypatch.setattr(CHARM.NamespaceWatch, "restart", restart)
    return calls


def _files(mount: testing.Mount) -> dict[str, Path]:
    source = Path(mount.source)
    return {name: source / name for name in ("token", "ca.crt", "namespace")}


def _watch(out: testing.State) -> testing.Container:
    return out.get_container(namespace_watch.CONTAINER)


def _running(out: testing.State) -> bool:
    return _watch(out).service_statuses.get(namespace_watch.SERVICE) == (
        ops.pebble.ServiceStatus.ACTIVE
    )


def _stored(out: testing.State) -> dict[str, Any]:
    (stored,) = [s for s in out.stored_states if s.owner_path == "ResourceDispatcherCharm"]
    return dict(stored.content)


def test_first_hook_writes_the_watch_token_then_starts_the_watch(ctx, kube, issuer):
    mount = watch_mount()
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(mount=mount)))

    assert issuer.calls == [("resource-dispatcher", MODEL)]
    files = _files(mount)
    assert files["token"].read_text() == "issued-token-1"
    assert files["ca.crt"].read_text() == CLUSTER_CA
    assert files["namespace"].read_text() == MODEL
    # Only the owner (root, the image's user) may read the token.
    assert stat.S_IMODE(files["token"].stat().st_mode) == 0o600
    assert _running(out)
    assert out.unit_status == testing.ActiveStatus("0 app(s) dispatched to 0 profile namespace(s)")


def test_the_token_is_in_no_plan_log_or_status(ctx, kube, issuer, caplog):
    caplog.set_level(logging.DEBUG)
    out = ctx.run(ctx.on.config_changed(), state())

    assert _running(out)
    plan = str(_watch(out).plan.to_dict())
    shown = [plan, caplog.text, str(out.unit_status), str(out.app_status)]
    shown += [str(r.local_app_data) + str(r.local_unit_data) for r in out.relations]
    assert not [place for place in shown if "issued-token" in place]


def test_a_fresh_token_is_not_requested_again(ctx, kube, issuer, restarts):
    out = ctx.run(ctx.on.config_changed(), state())
    again = ctx.run(ctx.on.update_status(), out)

    assert len(issuer.calls) == 1
    assert restarts == []
    assert _stored(again) == _stored(out)
    assert _running(again)


def test_a_token_with_a_third_of_its_life_left_is_renewed_and_the_watch_restarted(
    ctx, kube, issuer, restarts
):
    mount = watch_mount()
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(mount=mount)))
    issued = time.time() - DAY * 2 / 3 - 60  # a day's token issued 16h01m ago
    (stored,) = [s for s in out.stored_states if s.owner_path == "ResourceDispatcherCharm"]
    aged = dataclasses.replace(
        stored,
        content={"watch_token_issued": issued, "watch_token_expires": issued + DAY},
    )
    again = ctx.run(ctx.on.update_status(), dataclasses.replace(out, stored_states={aged}))

    assert len(issuer.calls) == 2
    assert _files(mount)["token"].read_text() == "issued-token-2"
    assert restarts == [namespace_watch.SERVICE]
    assert _running(again)
    assert _stored(again)["watch_token_expires"] > time.time() + DAY - 60


def test_a_token_short_of_renewal_is_kept(ctx, kube, issuer, restarts):
    out = ctx.run(ctx.on.config_changed(), state())
    issued = time.time() - DAY * 2 / 3 + 300  # five minutes before renewal is due
    (stored,) = [s for s in out.stored_states if s.owner_path == "ResourceDispatcherCharm"]
    young = dataclasses.replace(
        stored, content={"watch_token_issued": issued, "watch_token_expires": issued + DAY}
    )
    ctx.run(ctx.on.update_status(), dataclasses.replace(out, stored_states={young}))

    assert len(issuer.calls) == 1
    assert restarts == []


def test_a_replaced_pod_gets_its_token_again(ctx, kube, issuer):
    """The storage is an emptyDir: a new pod has none, whatever the unit remembers."""
    out = ctx.run(ctx.on.config_changed(), state())
    fresh = watch_mount()
    replaced = dataclasses.replace(out, containers=containers(mount=fresh))
    again = ctx.run(ctx.on.update_status(), replaced)

    assert len(issuer.calls) == 2
    assert _files(fresh)["token"].read_text() == "issued-token-2"
    assert _running(again)


def test_non_leader_waits_for_the_service_account(ctx, issuer, certs):
    issuer.error = KubernetesError('NotFound: serviceaccounts "x" not found', status=404)
    mount = watch_mount()
    out = ctx.run(
        ctx.on.config_changed(),
        state(leader=False, containers=containers(mount=mount), secrets={certs}),
    )

    assert not _running(out)
    assert not _files(mount)["token"].exists()
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to create the namespace watch's service account"
    )


def test_refused_token_request_blocks_and_starts_nothing(ctx, issuer, certs):
    issuer.error = KubernetesError("Forbidden: no", status=403)
    out = ctx.run(ctx.on.config_changed(), state(leader=False, secrets={certs}))

    assert not _running(out)
    assert out.unit_status == testing.BlockedStatus(
        "not allowed to manage Kubernetes objects: "
        "run `juju trust resource-dispatcher --scope=cluster`"
    )


def test_missing_cluster_ca_waits(ctx, issuer, cluster_ca, certs):
    cluster_ca.unlink()
    out = ctx.run(ctx.on.config_changed(), state(leader=False, secrets={certs}))

    assert issuer.calls == []
    assert not _running(out)
    assert out.unit_status.name == "waiting"
    assert "cluster CA" in out.unit_status.message


def test_token_directory_not_writable_blocks_naming_the_storage(
    ctx, issuer, certs, monkeypatch: pytest.MonkeyPatch
):
    """Without the storage there, the directory is the pod's read-only token volume."""
    push = ops.Container.push

    def refuse(self, path, *args, **kwargs):
        if not str(path).startswith(watch_token.TOKEN_DIR):
            return push(self, path, *args, **kwargs)
        raise ops.pebble.PathError("generic-file-error", f"open {path}: read-only file system")

    monkeypatch.setattr(ops.Container, "push", refuse)
    out = ctx.run(ctx.on.config_changed(), state(leader=False, secrets={certs}))

    assert not _running(out)
    assert out.unit_status.name == "blocked"
    assert "watch-credentials storage" in out.unit_status.message
    assert _stored(out)["watch_token_expires"] == 0.0


def test_leader_makes_the_watch_account_with_namespace_reads_only(ctx, kube, issuer):
    ctx.run(ctx.on.config_changed(), state())

    account = kube.get("ServiceAccount", WATCH_ACCOUNT, MODEL)
    assert account is not None
    assert account["automountServiceAccountToken"] is False
    name = f"resource-dispatcher-{MODEL}-namespace-watch"
    role = kube.get("ClusterRole", name)
    assert role is not None
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
    ]
    binding = kube.get("ClusterRoleBinding", name)
    assert binding is not None
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": WATCH_ACCOUNT, "namespace": MODEL}
    ]


def test_removal_deletes_the_watch_account(ctx, kube, issuer):
    out = ctx.run(ctx.on.config_changed(), state())
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))

    assert kube.get("ServiceAccount", WATCH_ACCOUNT, MODEL) is None
    assert kube.get("ClusterRoleBinding", f"resource-dispatcher-{MODEL}-namespace-watch") is None


def test_token_request_asks_the_api_for_a_day(kube):
    """The real request, against the fake API: a TokenRequest on the watch's account."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    kube.client().create(ServiceAccount(metadata=ObjectMeta(name=WATCH_ACCOUNT, namespace=MODEL)))
    now = time.time()
    token = watch_token.request_token("resource-dispatcher", MODEL, now)

    assert token.value.startswith(f"fake-token-{WATCH_ACCOUNT}-")
    assert token.issued == now
    assert now + DAY - 60 < token.expires <= now + DAY + 1
    assert "fake-token" not in repr(token)


def test_token_request_for_a_missing_account_is_a_404(kube):
    with pytest.raises(KubernetesError) as raised:
        watch_token.request_token("resource-dispatcher", MODEL, time.time())
    assert raised.value.status == 404


@pytest.mark.parametrize(
    ("age", "due"),
    [(0, False), (DAY * 2 / 3 - 1, False), (DAY * 2 / 3, True), (DAY + 1, True)],
)
def test_renewal_is_due_with_a_third_of_the_life_left(age, due):
    assert watch_token.renewal_due(1000.0, 1000.0 + DAY, 1000.0 + age) is due


def test_no_token_yet_is_due():
    assert watch_token.renewal_due(0.0, 0.0, time.time()) is True
