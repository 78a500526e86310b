#!/usr/bin/env python3
"""A test charm: logs what Juju shows it as relations are torn down and secrets change."""

from __future__ import annotations

import datetime as dt
import logging

import ops

logger = logging.getLogger(__name__)

GIVE = "give"
TAKE = "take"
LABEL = "shared"


class JujuProbeCharm(ops.CharmBase):
    """Shares a secret over `give`, reads one over `take`, and says what it saw."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        on = self.on
        for event in (
            on.leader_elected,
            on.config_changed,
            on[GIVE].relation_joined,
            on[GIVE].relation_changed,
            on[TAKE].relation_joined,
        ):
            framework.observe(event, self._publish)
        framework.observe(on[TAKE].relation_changed, self._on_take_changed)
        for endpoint in (GIVE, TAKE):
            framework.observe(on[endpoint].relation_departed, self._on_departed)
            framework.observe(on[endpoint].relation_broken, self._on_broken)
        framework.observe(on.secret_changed, self._on_secret_changed)
        framework.observe(on.secret_rotate, self._on_secret_rotate)
        framework.observe(on.secret_expired, self._on_secret_expired)
        framework.observe(on.secret_remove, self._on_secret_remove)
        framework.observe(on.set_content_action, self._on_set_content)
        framework.observe(on.refresh_action, self._on_refresh)
        framework.observe(on.collect_unit_status, self._on_collect_status)
        framework.observe(on.collect_app_status, self._on_collect_status)

    # --- the databags and the shared secret

    def _publish(self, _: ops.EventBase) -> None:
        relations = [*self.model.relations[GIVE], *self.model.relations[TAKE]]
        for relation in relations:
            relation.data[self.unit].update({"unit": self.unit.name, "note": self._note})
            if self.unit.is_leader():
                relation.data[self.app]["app"] = self.app.name
        if not self.model.relations[GIVE]:
            return
        if not self.unit.is_leader():
            # The app's other units read its secret as consumers do.
            try:
                shared = self.model.get_secret(label=LABEL)
            except ops.SecretNotFoundError:
                return
            logger.info("probe: own secret n=%s", shared.get_content()["count"])
            return
        secret = self._shared()
        for relation in self.model.relations[GIVE]:
            chosen = int(self.config["grant-unit"])
            if chosen < 0:
                secret.grant(relation)
            for unit in relation.units:
                if unit.name.endswith(f"/{chosen}"):
                    secret.grant(relation, unit=unit)
            relation.data[self.app]["secret-id"] = secret.id or ""

    @property
    def _note(self) -> str:
        return str(self.config["note"])

    def _shared(self) -> ops.Secret:
        try:
            return self.model.get_secret(label=LABEL)
        except ops.SecretNotFoundError:
            policy = str(self.config["rotate"])
            return self.app.add_secret(
                {"count": "1"},
                label=LABEL,
                rotate=ops.SecretRotate(policy) if policy else None,
                expire=self._expiry(),
            )

    def _expiry(self) -> dt.timedelta | None:
        minutes = int(self.config["expire-minutes"])
        return dt.timedelta(minutes=minutes) if minutes > 0 else None

    def _bump(self, secret: ops.Secret) -> int:
        """A new revision of the shared secret, expiring in turn if the config says so."""
        n = int(secret.get_content(refresh=True)["count"]) + 1
        secret.set_content({"count": str(n)})
        if (expiry := self._expiry()) is not None:
            secret.set_info(expire=expiry)
        return n

    # --- the taking side

    def _given(self) -> ops.Secret | None:
        """The secret the giving side shares, if this unit may read it."""
        for relation in self.model.relations[TAKE]:
            secret_id = relation.data[relation.app].get("secret-id") if relation.app else None
            if not secret_id:
                continue
            try:
                return self.model.get_secret(id=secret_id)
            except ops.ModelError:  # not granted to this unit
                logger.info("probe: cannot read the secret")
        return None

    def _on_take_changed(self, _: ops.RelationChangedEvent) -> None:
        if self.config["read"] and (secret := self._given()) is not None:
            logger.info("probe: read n=%s", secret.get_content()["count"])

    def _on_secret_changed(self, event: ops.SecretChangedEvent) -> None:
        plain = str(self.config["plain-readers"]).split(",")
        if self.unit.name.split("/")[1] in plain:
            tracked = event.secret.get_content()["count"]
            latest = event.secret.peek_content()["count"]
            logger.info("probe: changed, tracked n=%s, latest n=%s", tracked, latest)
        else:
            logger.info(
                "probe: changed, refreshed to n=%s",
                event.secret.get_content(refresh=True)["count"],
            )

    def _on_refresh(self, event: ops.ActionEvent) -> None:
        secret = self._given()
        if secret is None:
            event.fail("no secret to read")
            return
        event.set_results({"count": secret.get_content(refresh=True)["count"]})

    # --- the giving side's secret hooks

    def _on_set_content(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run set-content on the leader")
            return
        event.set_results({"count": str(self._bump(self._shared()))})

    def _on_secret_rotate(self, event: ops.SecretRotateEvent) -> None:
        if self.config["rotate-writes"]:
            logger.info("probe: rotate, now n=%d", self._bump(event.secret))
        else:
            logger.info("probe: rotate, left as it is")

    def _on_secret_expired(self, event: ops.SecretExpiredEvent) -> None:
        latest = event.secret.get_info().revision
        if event.revision == latest:
            logger.info(
                "probe: expired revision %d, now n=%d", event.revision, self._bump(event.secret)
            )
        else:
            event.remove_revision()
            logger.info("probe: expired revision %d, removed", event.revision)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        event.remove_revision()
        logger.info("probe: remove revision %d", event.revision)

    # --- teardown

    def _on_departed(self, event: ops.RelationDepartedEvent) -> None:
        relation = event.relation
        remote = event.unit
        departing = event.departing_unit
        listed = ",".join(sorted(u.name for u in relation.units))
        its_data = relation.data[remote].get("unit") if remote else None
        app_data = relation.data[relation.app].get("app") if relation.app else None
        logger.info(
            "probe: departed %s: departing=%s units=[%s] its-data=%s app-data=%s",
            remote.name if remote else None,
            departing.name if departing else None,
            listed,
            its_data,
            app_data,
        )
        relation.data[self.unit]["leaving"] = remote.name if remote else "?"

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        relation = event.relation
        listed = ",".join(sorted(u.name for u in relation.units))
        app_data = dict(relation.data[relation.app]) if relation.app else None
        logger.info(
            "probe: broken: units=[%s] app-data=%s active=%s", listed, app_data, relation.active
        )

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        event.add_status(ops.ActiveStatus())


if __name__ == "__main__":  # pragma: nocover
    ops.main(JujuProbeCharm)
