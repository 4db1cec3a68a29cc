"""The imperative shell around decide(): load (with ETag), observe, decide, save, act, publish.

Order of a change: the decision is saved first (ETag-guarded, with its audit row), then carried out.
Whoever wins the save is the one who acts, so a timer tick and an alert cannot both act on stale
state. Every action is idempotent and traffic is level-triggered (see shared/rollout/machine.py), so
a tick that dies after saving is finished by the next one. The endpoint itself has no ETag: after a
traffic change we re-read the rollout and, if someone saved a newer decision meanwhile, re-apply
its split, so the last word on traffic is always the latest decision's (rollback wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shared.ports import (
    MetricsQuery,
    ProviderError,
)
from shared.report import ReportItem, render_report
from shared.rollout.model import Rollout
from shared.shell.acting import ACTION_ORDER, URGENT_POLL_SECONDS, URGENT_WAIT_SECONDS
from shared.shell.base import NotFoundError, log
from shared.shell.commanding import MAX_NOTES, ROLLBACK_RETRIES, SAVE_RETRIES, Commanding
from shared.shell.observing import THROTTLE_PATIENCE
from shared.shell.reconciling import TickReport
from shared.shell.starting import (
    START_RETRIES,
    EndpointNotFoundError,
    StartOutcome,
    StartRefusedError,
    WorkspaceNeededError,
)

__all__ = [
    "ACTION_ORDER",
    "MAX_NOTES",
    "ROLLBACK_RETRIES",
    "SAVE_RETRIES",
    "START_RETRIES",
    "THROTTLE_PATIENCE",
    "URGENT_POLL_SECONDS",
    "URGENT_WAIT_SECONDS",
    "EndpointNotFoundError",
    "NotFoundError",
    "RolloutService",
    "StartOutcome",
    "StartRefusedError",
    "TickReport",
    "WorkspaceNeededError",
]


class RolloutService(Commanding):
    """The shell, one concern a module: shared/shell/acting.py (save, act, confirm, publish),
    observing.py (the endpoint, smoke test, model checks, metrics), reconciling.py (a tick),
    starting.py (events and starts by hand), commanding.py (people and alerts); reads here."""

    # -- reads ------------------------------------------------------------------------------------

    def report(self, rollout_ids: Sequence[str], title: str = "Safe Rollout report") -> str:
        """The HTML report of rollouts, from their stored history and Azure Monitor's minutes."""
        items = []
        for rollout_id in rollout_ids:
            stored = self.get(rollout_id)
            r = stored.rollout
            end = min(self.clock.now(), (r.finished_at or self.clock.now()) + timedelta(minutes=5))
            query = MetricsQuery(
                endpoint=r.endpoint,
                blue=r.blue,
                green=r.green,
                start=r.created_at,
                end=end,
                error_codes=stored.policy.errors.status_codes,
                percentile=stored.policy.latency.percentile,
                region=r.region or self._region_of(r),
            )
            found = self.metrics.timeline(query)
            timeline = None if isinstance(found, ProviderError) else found
            if timeline is None:
                log.warning("report of %s without metrics: %s", rollout_id, found)
            items.append(ReportItem(stored, self.store.decisions(rollout_id), timeline))
        return render_report(items, title)

    def _region_of(self, rollout: Rollout) -> str:
        """A rollout stored before regions were kept: read the endpoint's region from Azure."""
        try:
            endpoint = self.gateway.read_endpoint(rollout.endpoint)
        except ProviderError:
            return ""
        return endpoint.location if endpoint is not None else ""
