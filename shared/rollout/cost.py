"""What a rollout costs and what the new model will cost to serve: from the instance type, count and
time in the rollout's ledger (capacity.observe) and the operator's per-SKU hourly prices (policy
`cost.prices`, read from prices.csv beside the policy file). Pure: `now` is passed in.

- Extra instance-hours and cost so far: green until it becomes production (a rolled-back green until
  it is deleted), and blue kept as OLD_PROD after success until it is deleted.
- Projected monthly cost at full traffic: blue at its size; green at its full-traffic size, grown by
  the CPU ratio the capacity check measured when green needs more per instance than blue. A month
  is 730 hours, as the Azure pricing calculator counts it.
- The cost gate (before green gets all users): green's projection above blue's by more than
  `cost.max_increase` asks for a person's approval, or refuses (rolls back), with the figures in
  the decision's evidence. A price missing from the table cannot be judged: it asks for approval
  (refuse: rolls back), never passes quietly.

The Azure ML safe-rollout guidance asks for this comparison before a rollout goes live (Learn,
"Safe rollout for online endpoints"); Azure publishes pay-as-you-go prices through the Azure Retail
Prices API (https://prices.azure.com/api/retail/prices, docs/OPERATIONS.md says how to refresh).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from shared.rollout.actions import Decision
from shared.rollout.analysis import CheckResult, EvidenceValue, Verdict
from shared.rollout.ledger import extra_seconds
from shared.rollout.model import Frozen, Rollout, RolloutPhase
from shared.rollout.policy import RolloutPolicy
from shared.rollout.sizing import green_size, load_ratio
from shared.rollout.stages import next_stage
from shared.rollout.transitions import begin_rollback, event, make_decision

HOURS_PER_MONTH = 730.0
P = RolloutPhase


def price_of(prices: Mapping[str, float], instance_type: str | None) -> float | None:
    if not instance_type:
        return None
    wanted = instance_type.lower()
    return next((float(v) for k, v in prices.items() if k.lower() == wanted), None)


class CostSummary(Frozen):
    extra_instance_hours: float
    extra_cost: float | None  # None: a price is missing (see `missing_prices`)
    currency: str = "USD"
    missing_prices: tuple[str, ...] = ()
    blue_monthly: float | None = None
    green_monthly: float | None = None
    blue_instances: int | None = None
    green_instances_full: int | None = None

    def describe(self) -> str:
        cost = f"{self.extra_cost:.2f} {self.currency}" if self.extra_cost is not None else "unpriced"
        text = f"{self.extra_instance_hours:.2f} extra instance-hours, {cost}"
        if self.blue_monthly is not None and self.green_monthly is not None:
            text += (
                f"; monthly at full traffic: green {self.green_monthly:.0f} vs blue "
                f"{self.blue_monthly:.0f} {self.currency}"
            )
        if self.missing_prices:
            text += f" (no price for {', '.join(self.missing_prices)})"
        return text


def extra_usage(rollout: Rollout, now: datetime) -> dict[str, float]:
    """Extra instance-hours per instance type (spans folded away to bound the ledger included)."""
    out: dict[str, float] = {}
    for folded in rollout.ledger_folded:
        if folded.extra_seconds > 0:
            out[folded.instance_type] = out.get(folded.instance_type, 0.0) + folded.extra_seconds / 3600
    spans = sorted(rollout.ledger, key=lambda s: s.since)
    for i, span in enumerate(spans):
        end = next((s.since for s in spans[i + 1 :] if s.deployment == span.deployment), now)
        seconds = extra_seconds(rollout, span, end, now)
        if seconds > 0:
            out[span.instance_type] = out.get(span.instance_type, 0.0) + seconds / 3600
    return out


def _latest(rollout: Rollout, name: str | None) -> tuple[str, int] | None:
    if not name:
        return None
    for span in reversed(rollout.ledger):
        if span.deployment == name.lower() and span.instances > 0:
            return span.instance_type, span.instances
    return None


def full_green_instances(rollout: Rollout, policy: RolloutPolicy, ratio: float | None = None) -> int | None:
    """Green's count at full traffic: its bake size (blue's count without sizing), grown by the
    capacity check's CPU ratio where green needs more per instance."""
    blue = rollout.blue_instances or (b[1] if (b := _latest(rollout, rollout.blue)) else None)
    if blue is None:
        return None
    n = green_size(policy.capacity, policy, P.BAKING, -1, blue) if policy.capacity is not None else blue
    if ratio is not None and ratio > 1:
        n = max(n, math.ceil(blue * ratio - 1e-9))
    return n


def summary(rollout: Rollout, policy: RolloutPolicy, now: datetime, ratio: float | None = None) -> CostSummary:
    prices = policy.cost.prices if policy.cost is not None else {}
    currency = policy.cost.currency if policy.cost is not None else "USD"
    usage = extra_usage(rollout, now)
    missing = sorted({t for t in usage if price_of(prices, t) is None})
    hours = sum(usage.values())
    cost = None if missing else sum(h * (price_of(prices, t) or 0.0) for t, h in usage.items())
    blue = _latest(rollout, rollout.blue)
    green = _latest(rollout, rollout.green)
    blue_n = rollout.blue_instances or (blue[1] if blue else None)
    green_full = full_green_instances(rollout, policy, ratio)
    blue_monthly = green_monthly = None
    if blue is not None and blue_n is not None:
        bp = price_of(prices, blue[0])
        if bp is None:
            missing = sorted({*missing, blue[0]})
        else:
            blue_monthly = bp * blue_n * HOURS_PER_MONTH
    if green is not None and green_full is not None:
        gp = price_of(prices, green[0])
        if gp is None:
            missing = sorted({*missing, green[0]})
        else:
            green_monthly = gp * green_full * HOURS_PER_MONTH
    return CostSummary(
        extra_instance_hours=round(hours, 4),
        extra_cost=None if cost is None else round(cost, 4),
        currency=currency,
        missing_prices=tuple(missing),
        blue_monthly=None if blue_monthly is None else round(blue_monthly, 2),
        green_monthly=None if green_monthly is None else round(green_monthly, 2),
        blue_instances=blue_n,
        green_instances_full=green_full,
    )


def gate(rollout: Rollout, policy: RolloutPolicy, now: datetime, ratio: float | None) -> CheckResult | None:
    """The cost gate's finding before full traffic; None when the policy has no gate."""
    cost = policy.cost
    if cost is None or cost.max_increase is None or not rollout.blue:
        return None
    s = summary(rollout, policy, now, ratio)
    evidence: dict[str, EvidenceValue] = {
        "green_monthly": s.green_monthly,
        "blue_monthly": s.blue_monthly,
        "green_instances": s.green_instances_full,
        "blue_instances": s.blue_instances,
        "max_increase": cost.max_increase,
        "currency": cost.currency,
        "cpu_ratio": ratio,
        "action": cost.action,
    }
    if s.green_monthly is None or s.blue_monthly is None:
        missing = ", ".join(s.missing_prices) or "an instance type or count"
        return CheckResult(
            check="cost",
            verdict=Verdict.FAIL,
            summary=f"green's monthly cost cannot be projected (no price for {missing}): a person decides",
            evidence=evidence,
        )
    limit = s.blue_monthly * (1 + cost.max_increase)
    increase = s.green_monthly / s.blue_monthly - 1 if s.blue_monthly > 0 else (math.inf if s.green_monthly else 0.0)
    evidence["increase"] = round(increase, 4) if math.isfinite(increase) else "inf"
    what = (
        f"green projected at {s.green_monthly:.2f} {cost.currency}/month ({s.green_instances_full} instances) "
        f"vs blue {s.blue_monthly:.2f} ({s.blue_instances} instances), {increase:+.1%}"
    )
    if s.green_monthly > limit + 1e-9:
        return CheckResult(
            check="cost",
            verdict=Verdict.FAIL,
            summary=f"{what}: above the {cost.max_increase:.0%} allowed",
            evidence=evidence,
        )
    return CheckResult(
        check="cost", verdict=Verdict.PASS, summary=f"{what}: within {cost.max_increase:.0%}", evidence=evidence
    )


def gate_decision(
    rollout: Rollout, policy: RolloutPolicy, now: datetime, evidence: tuple[CheckResult, ...] | list[CheckResult]
) -> Decision | CheckResult | None:
    """Before the step to full traffic: a Decision when the gate stops the step (approval, or a
    rollback when the policy refuses), else the finding to record with the step (or None)."""
    nxt = next_stage(rollout, policy, rollout.phase, rollout.step)
    if nxt is None or nxt[0] != P.BAKING or policy.cost is None:
        return None
    ratio = load_ratio(evidence)
    finding = gate(rollout, policy, now, ratio if ratio is not None else rollout.capacity_ratio)
    if finding is None or finding.verdict == Verdict.PASS:
        return finding
    why = f"cost gate: {finding.summary}"
    if policy.cost.action == "refuse":
        return begin_rollback(rollout, now, why, evidence=[*evidence, finding])
    waiting = rollout.model_copy(
        update={"phase": P.AWAITING_APPROVAL, "gate_to": P.BAKING, "step": -1, "stage_started_at": now}
    )
    why = f"{why}; waiting for approval before bake at 100%"
    return make_decision(
        rollout,
        waiting,
        now,
        why,
        events=[event(waiting, "ApprovalRequested", why, cost=dict(finding.evidence))],
        evidence=[*evidence, finding],
    )
