"""Carrying out a decision: save it (ETag), act on Azure, confirm the traffic, publish (the order
and its reasons: shared/service.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.ports import (
    ConflictError,
    DecisionRecord,
    OperationInProgressError,
    ProviderError,
    StoredRollout,
)
from shared.rollout.actions import (
    Action,
    CreateDeployment,
    Decision,
    DeleteDeployment,
    ScaleDeployment,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.model import BUSY_REFUSAL, Rollout
from shared.rollout.observation import PROVISIONING_IN_PROGRESS
from shared.shell.base import ServiceBase, log

ACTION_ORDER: dict[type[Any], int] = {
    SetTraffic: 0,
    TagDeployment: 1,
    CreateDeployment: 2,
    ScaleDeployment: 2,
    DeleteDeployment: 3,
}
# A person's or an alert's order that meets an endpoint still applying an earlier update (about 20 s
# in the recorded sessions) waits for it within the request, polling every URGENT_POLL_SECONDS.
URGENT_WAIT_SECONDS = 30.0
URGENT_POLL_SECONDS = 5.0


def decision_record(before: Rollout, decision: Decision, now: datetime) -> DecisionRecord:
    return DecisionRecord(
        seq=decision.rollout.decisions,
        at=now,
        actor=decision.actor,
        from_phase=before.phase,
        to_phase=decision.rollout.phase,
        reason=decision.reason[:4000],
        traffic=decision.rollout.desired,
        actions=tuple(_describe(a) for a in decision.actions),
        events=tuple(e.type for e in decision.events),
        evidence=decision.evidence,
    )


def _describe(action: Action) -> str:
    if isinstance(action, SetTraffic):
        return f"set traffic ({action.split.describe()})"
    if isinstance(action, CreateDeployment):
        return f"create {action.name} ({action.model.label})"
    if isinstance(action, TagDeployment):
        return f"tag {action.name} " + ", ".join(f"{k}={v}" for k, v in action.tags.items())
    if isinstance(action, ScaleDeployment):
        return f"scale {action.name} to {action.instances} instances"
    return f"delete {action.name}"


class Acting(ServiceBase):
    # -- carrying out a decision ------------------------------------------------------------------

    def _commit(
        self, stored: StoredRollout, decision: Decision, *, markers: Sequence[str] = (), urgent: bool = False
    ) -> StoredRollout:
        """Save (ETag), then act, then publish. ConflictError if someone saved first: nothing done.
        `urgent` (a person's or an alert's order): a traffic order Azure refuses because it is still
        applying an earlier update is ordered again within the request, once the endpoint is idle."""
        now = self.clock.now()
        record = decision_record(stored.rollout, decision, now) if decision.record else None
        if not decision.record and not decision.actions and decision.rollout == stored.rollout and not markers:
            return stored
        saved = self.store.save(stored, decision.rollout, record, markers=markers)
        if record is not None:
            log.info(
                "rollout %s [%s] %s -> %s: %s",
                stored.rollout.id,
                stored.rollout.endpoint.name,
                stored.rollout.phase,
                decision.rollout.phase,
                decision.reason,
            )
        refused = self._act(saved.rollout, decision.actions)
        if urgent and refused.startswith(BUSY_REFUSAL) and self._order_when_idle(saved.rollout):
            refused = ""
        if decision.changes_traffic:
            self._reassert(saved)
        if refused:
            saved = self._note_refusal(saved, refused)
        self.events.publish(decision.events)
        return saved

    def _note_refusal(self, saved: StoredRollout, refused: str) -> StoredRollout:
        """Keep what Azure said when it refused our order, so the decision that gives up on it
        (after the error limit) can say why. No audit row: the next tick's decision has one."""
        if saved.rollout.last_action_error == refused:
            return saved
        try:
            return self.store.save(saved, saved.rollout.model_copy(update={"last_action_error": refused}), None)
        except (ConflictError, ProviderError) as exc:
            # A newer decision was saved, or storage blinked: the next tick decides afresh (and the
            # refusal is in the log line above; only its copy in the rollout's reason is lost).
            log.info("rollout %s: Azure's refusal not kept with the rollout: %s", saved.rollout.id, exc)
            return saved

    def _act(self, rollout: Rollout, actions: Sequence[Action]) -> str:
        """Traffic first, teardown last. A failed action stops the rest; the next tick retries.
        A traffic change is only started here (Azure applies it over tens of seconds); the next
        tick's read confirms it. Returns what Azure said if it refused our traffic order."""
        for action in sorted(actions, key=lambda a: ACTION_ORDER[type(a)]):
            try:
                if isinstance(action, SetTraffic):
                    self.gateway.set_traffic(rollout.endpoint, action.split)
                elif isinstance(action, CreateDeployment):
                    self.gateway.create_deployment(rollout.endpoint, action)
                elif isinstance(action, TagDeployment):
                    self.gateway.tag_deployment(rollout.endpoint, action.name, action.tags)
                elif isinstance(action, ScaleDeployment):
                    self.gateway.scale_deployment(rollout.endpoint, action.name, action.instances)
                else:
                    self.gateway.delete_deployment(rollout.endpoint, action.name)
            except OperationInProgressError as exc:
                log.info("rollout %s: %s waits for Azure's operation in flight: %s", rollout.id, _describe(action), exc)
                if isinstance(action, ScaleDeployment):  # capacity.py says why the scale is not under way
                    return f"{_describe(action)}: {exc}"[:500]
                return f"{BUSY_REFUSAL}{exc}"[:500] if isinstance(action, SetTraffic) else ""
            except ProviderError as exc:
                log.warning("rollout %s: %s failed, will retry next tick: %s", rollout.id, _describe(action), exc)
                return f"{_describe(action)}: {exc}"[:500] if isinstance(action, SetTraffic | ScaleDeployment) else ""
        return ""

    def _order_when_idle(self, rollout: Rollout) -> bool:
        """Azure refused our order (409) because an earlier update is still being applied (one takes
        about 20 s). A rollback must not wait for the next tick: wait here for the endpoint to be
        idle, within URGENT_WAIT_SECONDS, and order again. True once the order was accepted."""
        waited = 0.0
        while waited < URGENT_WAIT_SECONDS:
            self._sleep(URGENT_POLL_SECONDS)
            waited += URGENT_POLL_SECONDS
            try:
                endpoint = self.gateway.read_endpoint(rollout.endpoint)
            except ProviderError:
                continue
            if endpoint is None:
                return False
            if endpoint.provisioning_state in PROVISIONING_IN_PROGRESS:
                continue
            latest = self.store.get(rollout.id)
            if latest is None or latest.rollout.desired != rollout.desired:
                return False  # decided anew meanwhile: that decision orders its own split
            try:
                self.gateway.set_traffic(rollout.endpoint, rollout.desired)
            except OperationInProgressError:
                continue
            except ProviderError as exc:
                log.warning("rollout %s: ordering %s again failed: %s", rollout.id, rollout.desired.describe(), exc)
                return False
            log.info(
                "rollout %s: ordered %s after Azure's earlier update (%.0f s)",
                rollout.id,
                rollout.desired.describe(),
                waited,
            )
            return True
        log.warning(
            "rollout %s: the endpoint is still busy after %.0f s; the next tick orders %s",
            rollout.id,
            waited,
            rollout.desired.describe(),
        )
        return False

    def _reassert(self, saved: StoredRollout) -> None:
        """The endpoint has no ETag: if a newer decision was saved while we set traffic, ours may
        have landed after theirs. Re-apply the newest decision's split."""
        latest = self.store.get(saved.rollout.id)
        if latest is None or latest.etag == saved.etag:
            return
        if latest.rollout.desired != saved.rollout.desired:
            log.warning(
                "rollout %s: a newer decision (%s) was saved while we set traffic; re-applying its split",
                saved.rollout.id,
                latest.rollout.phase,
            )
            try:
                self.gateway.set_traffic(latest.rollout.endpoint, latest.rollout.desired)
            except OperationInProgressError:
                self._order_when_idle(latest.rollout)  # ours is being applied: theirs goes next
            except ProviderError as exc:
                log.warning("rollout %s: re-applying traffic failed, next tick retries: %s", saved.rollout.id, exc)
