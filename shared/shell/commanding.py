"""People's commands and Azure Monitor alerts: saved with retries on conflict, acted on within the
request (an alert's rollback waits for a busy endpoint)."""

from __future__ import annotations

from datetime import datetime

from shared.payloads import AlertNotice
from shared.ports import (
    ConflictError,
    EndpointBusyError,
    StoredRollout,
)
from shared.rollout import machine
from shared.rollout.actions import (
    Decision,
)
from shared.rollout.machine import CommandKind, CommandRejectedError
from shared.rollout.model import Rollout, RolloutPhase
from shared.shell.base import NotFoundError, log
from shared.shell.starting import Starting

SAVE_RETRIES = 5  # a person's command: then 409, and they can try again
ROLLBACK_RETRIES = 25  # an alert's rollback: each retry reloads; then 503 so the action group retries
MAX_NOTES = 20  # audit notes that change nothing (resolved alerts) kept per rollout; the rest are logged


class Commanding(Starting):
    # -- commands and alerts ----------------------------------------------------------------------

    def command(self, rollout_id: str, kind: CommandKind, *, actor: str, reason: str = "") -> StoredRollout:
        """A person's command. NotFoundError, CommandRejectedError (not in this phase),
        ConflictError (lost every retry of a race) or ProviderError (Azure or storage could not be
        read; try again). A rollback tries harder than the rest."""
        attempts = ROLLBACK_RETRIES if kind == CommandKind.ROLLBACK else SAVE_RETRIES
        for _ in range(attempts):
            stored = self.store.get(rollout_id)
            if stored is None:
                raise NotFoundError(rollout_id)
            decision = self._command_decision(stored, kind, actor=actor, reason=reason)
            try:
                saved = self._commit(stored, decision, urgent=True)
            except EndpointBusyError as exc:
                raise CommandRejectedError(f"{kind} is not possible: {exc}") from exc
            except ConflictError:
                continue
            return self._settle(saved)
        raise ConflictError(f"rollout {rollout_id} kept changing; try again")

    def _command_decision(self, stored: StoredRollout, kind: CommandKind, *, actor: str, reason: str) -> Decision:
        """The command's decision. One that may send users to green first reads the endpoint, so a
        person's click never sends users to a green that failed."""
        if stored.policy_error is not None and kind not in machine.SAFE_WITHOUT_POLICY:
            raise CommandRejectedError(
                f"rollout {stored.rollout.id}'s stored policy cannot be read ({stored.policy_error}); "
                "only pause, rollback and abort are possible"
            )
        endpoint = None
        if kind in machine.TOWARD_GREEN and not stored.rollout.phase.terminal:
            endpoint = self.gateway.read_endpoint(stored.rollout.endpoint)
            if endpoint is None:
                raise CommandRejectedError(f"endpoint {stored.rollout.endpoint.name} was not found; {kind} refused")
        return machine.apply_command(
            stored.rollout, stored.policy, kind, self.clock.now(), actor=actor, reason=reason, endpoint=endpoint
        )

    def _settle(self, saved: StoredRollout) -> StoredRollout:
        """After a rollback order, look once more so the answer can say where traffic now is."""
        if saved.rollout.phase != RolloutPhase.ROLLING_BACK:
            return saved
        try:
            return self.reconcile_one(saved.rollout.id)
        except ConflictError:
            return self.store.get(saved.rollout.id) or saved

    def alert(self, notice: AlertNotice) -> list[dict[str, str]]:
        """Roll back every rollout the alert is about; record Resolved. Idempotent on alertId +
        monitorCondition. A rollout promoted after the alert fired is undone while its old blue is
        kept (rollback wins over a promotion that landed a moment earlier). Returns what happened
        per matched rollout. Raises ProviderError / ConflictError when it could not be applied yet."""
        targets = set(notice.target_ids)
        outcomes: list[dict[str, str]] = []
        for stored in self.store.find(due_only=True):
            rollout = stored.rollout
            if rollout.phase.terminal and not self._undoable_by(rollout, notice):
                continue
            green_id = rollout.endpoint.deployment_arm_id(rollout.green).lower()
            endpoint_id = rollout.endpoint.arm_id.lower()
            about_green = green_id in targets or (
                endpoint_id in targets and rollout.green.lower() in notice.deployments
            )
            endpoint_wide = endpoint_id in targets and not notice.deployments
            if not about_green and not (endpoint_wide and stored.policy.endpoint_alerts_roll_back):
                continue
            outcomes.append({"rollout": rollout.id, "outcome": self._alert_one(stored, notice)})
        if not outcomes:
            log.info(
                "alert %s (%s, %s) about %s matches no active rollout: ignored",
                notice.alert_id,
                notice.rule,
                notice.condition,
                ", ".join(notice.target_ids) or "no resources",
            )
        return outcomes

    def _undoable_by(self, rollout: Rollout, notice: AlertNotice) -> bool:
        """A Succeeded rollout that an alert, fired before the success, may still undo."""
        if rollout.phase != RolloutPhase.SUCCEEDED or notice.condition != "Fired" or rollout.finished_at is None:
            return False
        fired = notice.fired_at or self.clock.now()
        kept = any(item.deployment == rollout.blue for item in rollout.cleanup)
        return kept and fired <= rollout.finished_at

    def _alert_one(self, stored: StoredRollout, notice: AlertNotice) -> str:
        key = notice.idempotency_key
        actor = f"alert:{notice.rule or notice.alert_id}"
        for _ in range(ROLLBACK_RETRIES):
            if self.store.has_marker(stored.rollout.endpoint, key):
                return "duplicate"
            now = self.clock.now()
            rollout = stored.rollout
            if notice.condition == "Fired" and (rollout.phase.active or self._undoable_by(rollout, notice)):
                try:
                    decision = machine.apply_command(
                        rollout,
                        stored.policy,
                        CommandKind.ROLLBACK,
                        now,
                        actor=actor,
                        reason=f"alert {notice.rule} fired ({notice.severity})",
                    )
                except CommandRejectedError as exc:
                    decision = self._note(rollout, now, f"alert {notice.rule} fired: {exc}", actor)
            elif notice.condition == "Fired":
                decision = self._note(rollout, now, f"alert {notice.rule} fired after the rollout ended", actor)
            else:
                decision = self._note(rollout, now, f"alert {notice.rule} resolved", actor)
            try:
                saved = self._commit(stored, decision, markers=[key], urgent=True)
            except EndpointBusyError as exc:
                log.warning("alert %s not applied to rollout %s: %s", notice.alert_id, rollout.id, exc)
                return f"not applied: {exc}"
            except ConflictError:
                fresh = self.store.get(stored.rollout.id)
                if fresh is None:
                    return "gone"
                stored = fresh
                continue
            if saved.rollout.phase in (RolloutPhase.ROLLING_BACK, RolloutPhase.ROLLED_BACK):
                saved = self._settle(saved)
                return f"rolled back ({saved.rollout.phase})"
            return "recorded"
        raise ConflictError(f"rollout {stored.rollout.id} kept changing; the alert could not be applied yet")

    @staticmethod
    def _note(rollout: Rollout, now: datetime, reason: str, actor: str) -> Decision:
        """An audit note that changes nothing. Bounded per rollout: past MAX_NOTES it is logged only,
        so a flapping alert cannot grow the audit trail without end."""
        if rollout.notes >= MAX_NOTES:
            log.info("rollout %s: %s (by %s; not stored: %d notes already)", rollout.id, reason, actor, MAX_NOTES)
            return machine.unrecorded(rollout, now)
        return machine.annotate(rollout.model_copy(update={"notes": rollout.notes + 1}), now, reason, actor)
