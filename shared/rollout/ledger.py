"""The cost ledger's bound: a rollout lives on for its retention period and an autoscaler may change
counts all along, so the spans (one per count change) would outgrow the status document Table
storage holds (store.py: 30,000 characters). Only the latest MAX_SPANS are kept; older ones are
folded into per-(deployment, instance type) extra instance-seconds, counted exactly as cost.py
counts a span, so the cost does not change. Pure: `now` is passed in."""

from __future__ import annotations

from datetime import datetime

from shared.rollout.model import FoldedUsage, InstanceSpan, Rollout, RolloutPhase

P = RolloutPhase
# 32 spans are about 3,700 characters of the status document: the latest count changes (what the
# capacity check's windows read) stay, far under the limit.
MAX_SPANS = 32


def extra_windows(rollout: Rollout, deployment: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """When `deployment` counts as extra: green until success, blue from success on."""
    succeeded = rollout.phase == P.SUCCEEDED and rollout.finished_at is not None
    if deployment == rollout.green.lower():
        return None, (rollout.finished_at if succeeded else None)
    if succeeded:
        return rollout.finished_at, None
    return now, now  # blue while it serves production is not extra


def extra_seconds(rollout: Rollout, span: InstanceSpan, end: datetime, now: datetime) -> float:
    """A span's extra instance-seconds, the span lasting until `end`."""
    lo, hi = extra_windows(rollout, span.deployment, now)
    start = max(span.since, lo) if lo is not None else span.since
    stop = min(end, hi) if hi is not None else end
    if stop <= start or span.instances <= 0:
        return 0.0
    return span.instances * (stop - start).total_seconds()


def bound(
    rollout: Rollout, ledger: list[InstanceSpan], now: datetime
) -> tuple[tuple[InstanceSpan, ...], tuple[FoldedUsage, ...]]:
    """The ledger kept (at most MAX_SPANS, each deployment's latest span and latest non-zero span
    always among them) and the folded usage with the older spans added."""
    if len(ledger) <= MAX_SPANS:
        return tuple(ledger), rollout.ledger_folded
    keep: set[int] = set()
    for name in {s.deployment for s in ledger}:
        mine = [i for i, s in enumerate(ledger) if s.deployment == name]
        keep.add(mine[-1])
        positive = [i for i in mine if ledger[i].instances > 0]
        if positive:
            keep.add(positive[-1])
    folded = {(f.deployment, f.instance_type): f.extra_seconds for f in rollout.ledger_folded}
    drop: set[int] = set()
    for i, span in enumerate(ledger):
        if len(ledger) - len(drop) <= MAX_SPANS:
            break
        if i in keep:
            continue
        end = next(s.since for s in ledger[i + 1 :] if s.deployment == span.deployment)  # not its latest: one follows
        key = (span.deployment, span.instance_type)
        folded[key] = folded.get(key, 0.0) + extra_seconds(rollout, span, end, now)
        drop.add(i)
    kept = tuple(s for i, s in enumerate(ledger) if i not in drop)
    usage = tuple(FoldedUsage(deployment=d, instance_type=t, extra_seconds=v) for (d, t), v in sorted(folded.items()))
    return kept, usage
