"""A tick: load the due rollouts, observe them (metrics in one batch), decide, commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.ports import (
    ConflictError,
    StoredRollout,
    ThrottledError,
)
from shared.rollout import machine
from shared.rollout.actions import (
    Decision,
)
from shared.rollout.observation import Observation
from shared.shell.base import NotFoundError, log
from shared.shell.observing import Observing


@dataclass
class TickReport:
    due: int = 0
    reconciled: int = 0
    conflicts: int = 0
    failed: int = 0
    deferred: int = 0  # left for the next tick: the time budget ran out
    metrics_calls: int = 0
    throttled: int = 0  # left for the next tick: Azure answered 429 (never counted as an error)
    skipped: int = 0  # in a work item but no longer due (finished, or gone)
    errors: list[str] = field(default_factory=list)


class Reconciling(Observing):
    # -- reconcile --------------------------------------------------------------------------------

    def reconcile_one(self, rollout_id: str) -> StoredRollout:
        stored = self.store.get(rollout_id)
        if stored is None:
            raise NotFoundError(rollout_id)
        ((stored, obs),) = self._with_metrics([(stored, self._observe_endpoint(stored))])
        return self._commit(stored, self._decide(stored, obs))

    def _decide(self, stored: StoredRollout, observation: Observation) -> Decision:
        if stored.policy_error is not None:
            return machine.decide_isolated(stored.rollout, observation, self.clock.now(), stored.policy_error)
        return machine.decide(stored.rollout, stored.policy, observation, self.clock.now())

    def reconcile_all(self) -> TickReport:
        """One tick in one process (the CLI, the demo, tests): every due rollout, bounded
        concurrency, one failure never blocks the others, and no new work once the time budget is
        spent. In Azure the timer dispatches work items instead and the queue worker calls
        reconcile_batch (functions/reconcile_timer.py, functions/judge_queue.py)."""
        return self._reconcile(self.store.find(due_only=True))

    def reconcile_batch(self, rollout_ids: Sequence[str], *, dispatched_at: datetime | None = None) -> TickReport:
        """One work item: these rollouts (one subscription and region), judged together with one
        metrics fetch. A rollout no longer due, or gone, is skipped; reading one that fails is that
        rollout's failure only. Safe to run twice (at-least-once delivery): every save is
        ETag-guarded and every action is level-triggered. `dispatched_at`: the tick that enqueued
        the item; a rollout judged since (a redelivered item, or a later tick's) is skipped, so a
        redelivery sends no second round of reads, scoring requests and queries."""
        loaded: list[StoredRollout] = []
        report = TickReport()
        for rid in dict.fromkeys(rollout_ids):
            try:
                stored = self.store.get(rid)
            except Exception as exc:  # one unreadable row never blocks the batch
                log.exception("rollout %s: could not be loaded", rid)
                report.failed += 1
                report.errors.append(f"{rid}: {type(exc).__name__}: {exc}")
                continue
            if stored is None or not stored.rollout.due:
                report.skipped += 1
                continue
            if dispatched_at is not None and stored.rollout.updated_at > dispatched_at:
                report.skipped += 1  # judged since this item was enqueued
                continue
            loaded.append(stored)
        judged = self._reconcile(loaded)
        judged.failed += report.failed
        judged.skipped = report.skipped
        judged.errors = report.errors + judged.errors
        return judged

    def _reconcile(self, due: list[StoredRollout]) -> TickReport:
        started = self._monotonic()
        calls_before = int(getattr(self.metrics, "calls", {}).get("metrics", 0))
        report = TickReport()
        report.due = len(due)

        def in_budget() -> bool:
            return self._monotonic() - started < self.tick_budget_seconds

        def observe(stored: StoredRollout) -> tuple[StoredRollout, Observation] | None:
            if not in_budget():
                return None
            try:
                return stored, self._observe_endpoint(stored)
            except ThrottledError as exc:
                log.info("rollout %s: %s", stored.rollout.id, exc)
                with self._lock:
                    report.throttled += 1
                return None

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="reconcile") as pool:
            observed = [o for o in pool.map(self._guard(observe, report), due) if o is not None]
            report.deferred = len(due) - len(observed) - report.throttled
            try:
                with_metrics = self._with_metrics(observed)
            except Exception:  # a bug in the metrics path must not stop traffic decisions
                log.exception("metrics fetch failed for the whole tick; deciding without metrics")
                with_metrics = [
                    (s, o.model_copy(update={"metrics_error": "metrics fetch failed"})) for s, o in observed
                ]
            report.metrics_calls = int(getattr(self.metrics, "calls", {}).get("metrics", 0)) - calls_before

            def decide_and_act(pair: tuple[StoredRollout, Observation]) -> str:
                if not in_budget():
                    return "deferred"
                stored, obs = pair
                try:
                    self._commit(stored, self._decide(stored, obs))
                except ConflictError:
                    return "conflict"
                return "ok"

            for outcome in pool.map(self._guard(decide_and_act, report), with_metrics):
                if outcome == "ok":
                    report.reconciled += 1
                elif outcome == "conflict":
                    report.conflicts += 1
                elif outcome == "deferred":
                    report.deferred += 1
        if report.deferred:
            log.warning(
                "tick ran out of its %.0fs budget: %d rollout(s) left for the next tick",
                self.tick_budget_seconds,
                report.deferred,
            )
        return report

    @staticmethod
    def _guard(fn: Callable[[Any], Any], report: TickReport) -> Callable[[Any], Any]:
        def run(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:  # one failing rollout never blocks the others
                stored = item[0] if isinstance(item, tuple) else item
                rid = getattr(getattr(stored, "rollout", None), "id", "?")
                log.exception("rollout %s: reconcile failed", rid)
                report.failed += 1
                report.errors.append(f"{rid}: {type(exc).__name__}: {exc}")
                return None

        return run
