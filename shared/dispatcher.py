"""The dispatcher's shell: find the due rollouts, enqueue them as work items, report the poison
queue. The grouping itself is pure (shared/dispatch.py); the judging is the queue worker's
(RolloutService.reconcile_batch, called by functions/judge_queue.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.dispatch import Due, WorkItem, plan_batches
from shared.ports import ProviderError

if TYPE_CHECKING:
    from shared.adapters.work_queue import Poisoned, WorkQueue
    from shared.service import RolloutService

log = logging.getLogger("safe_rollout")


@dataclass
class DispatchReport:
    due: int = 0
    batches: int = 0
    enqueued: int = 0  # work items sent
    poisoned: list[Poisoned] = field(default_factory=list)
    poison_error: str | None = None

    @property
    def poisoned_rollouts(self) -> list[str]:
        return sorted({rid for p in self.poisoned for rid in p.rollouts})


def plan_tick(service: RolloutService, batch_size: int) -> list[WorkItem]:
    due = [
        Due(s.rollout.id, s.rollout.endpoint.workspace.subscription_id, s.rollout.region)
        for s in service.store.find(due_only=True)
    ]
    return plan_batches(due, service.clock.now(), batch_size)


def dispatch(service: RolloutService, queue: WorkQueue, batch_size: int) -> DispatchReport:
    """One tick. Raises ProviderError if the due rollouts or the queue cannot be reached (the timer
    logs it; the next tick dispatches everything again, nothing is lost)."""
    items = plan_tick(service, batch_size)
    report = DispatchReport(due=sum(len(i.rollouts) for i in items), batches=len(items))
    report.enqueued = queue.send(items)
    try:
        report.poisoned = queue.poisoned()
    except ProviderError as exc:
        report.poison_error = str(exc)
    if report.poisoned:
        # A person must look: the host gave up on these after maxDequeueCount tries. Their rollouts
        # are still dispatched every tick, so none is abandoned; the log names them.
        log.error(
            "poison queue %s-poison holds %d work item(s) the worker could not process; rollouts: %s; problems: %s",
            queue.name,
            len(report.poisoned),
            ", ".join(report.poisoned_rollouts) or "-",
            "; ".join(sorted({p.problem for p in report.poisoned if p.problem})) or "-",
        )
    return report
