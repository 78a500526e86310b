"""What charms running webhook-serving controllers under Pebble share around their reconcile.

Such a charm reconciles everything from one handler, observed on the events
`reconcile_events` lists; on a settled unit's update-status it first asks
`settled_as_left` whether anything could have drifted without an event of
its own, and stops there when nothing did. Its leader makes the webhooks'
certificates with a `CertificateKeeper`, which the rotate-certificates
action replaces through `rotate_webhook_certificates`.

Nothing here sets a status; only `certificates` (no cryptography until a
certificate is made) and `pebble` are imported, so a settled hook stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

import ops

from kubeflow_charms import certificates
from kubeflow_charms.pebble import service_running

if TYPE_CHECKING:
    from kubeflow_charms.certificates import CertificateBundle, CertificateKeeper
    from kubeflow_charms.kubernetes import KubernetesError

logger = logging.getLogger(__name__)

Config = TypeVar("Config")


class Controller(Protocol):
    """A workload under Pebble: its container and service.

    One that also says `leader_only = False` runs on every unit; any other
    runs on the leader only.
    """

    @property
    def container(self) -> str: ...  # noqa: D102

    @property
    def service(self) -> str: ...  # noqa: D102


class AppliedBase(Protocol):
    """What the leader's cluster part says after it applied: its error, if its base is in."""

    @property
    def error(self) -> KubernetesError | None: ...  # noqa: D102

    @property
    def base_applied(self) -> bool: ...  # noqa: D102


def reconcile_events(
    charm: ops.CharmBase, *, peers: str, containers: Iterable[str]
) -> list[ops.BoundEvent]:
    """The events every such charm reconciles on: its own, its peers' arrival, Pebble ready."""
    on = charm.on
    return [
        on.install,
        on.config_changed,
        on.upgrade_charm,
        on.leader_elected,
        on.update_status,
        on.secret_changed,
        on[peers].relation_created,
        *(on[container].pebble_ready for container in containers),
    ]


def settled_as_left(
    unit: ops.Unit,
    workloads: Iterable[Controller],
    *,
    next_renewal: float,
    drifted: Callable[[], bool],
) -> bool:
    """On a settled unit: whether the services, certificates and objects are as left.

    Each service runs where it should and is stopped elsewhere; on the
    leader, the certificates are not yet due for renewal (`next_renewal`,
    seconds since the epoch) and `drifted` says the cluster objects are as
    applied.
    """
    leader = unit.is_leader()
    for workload in workloads:
        running = service_running(unit.get_container(workload.container), workload.service)
        if running is None or running != (leader or not getattr(workload, "leader_only", True)):
            return False
    if not leader:
        return True
    if certificates._now().timestamp() >= next_renewal:
        return False  # a certificate is due: renew it and its caBundles
    return not drifted()


def rotate_webhook_certificates(
    event: ops.ActionEvent,
    keeper: CertificateKeeper,
    cluster: AppliedBase,
    *,
    peers: str,
    containers: Iterable[ops.Container],
    load: Callable[[], Config | None],
    problem: Callable[[], str | None],
    apply: Callable[[Config, CertificateBundle], None],
) -> None:
    """The rotate-certificates action: a new CA and certificate, applied in this same hook.

    Refused off the leader or before the peer relation (`refuse_rotation`),
    while a controller's container is unreachable, and while the
    configuration is bad (`load` gives None, `problem` says why): then
    nothing changes. `apply` puts the new bundle into the webhooks and the
    controllers; when the webhook configurations could not take it, the
    action fails saying so (the new certificates stay; the next hook retries).
    """
    if keeper.refuse_rotation(event, peers=peers):
        return
    if not all(container.can_connect() for container in containers):
        event.fail("the controller containers are not reachable: try again later")
        return
    config = load()
    if config is None:
        event.fail(f"fix the configuration first: {problem()}")
        return
    bundle = keeper.rotate()
    logger.info("rotated the webhook CA (serial %s)", bundle.ca_serial)
    apply(config, bundle)
    if cluster.error is not None and not cluster.base_applied:
        event.fail(
            "the new certificates are in place but the webhook configurations were not "
            f"updated: {cluster.error}; the charm retries on its next hook"
        )
        return
    event.set_results(keeper.results(bundle))
