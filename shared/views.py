"""What the API shows of a rollout: status, split, stage and the decision history with evidence."""

from __future__ import annotations

from typing import Any

from shared.ports import DecisionRecord, StoredRollout
from shared.rollout.cost import summary
from shared.rollout.machine import max_green_live, stage_label
from shared.rollout.model import RolloutPhase


def stage_of(stored: StoredRollout) -> str:
    """The core's stage label where traffic is being judged step by step; the phase otherwise."""
    r = stored.rollout
    if r.phase in (RolloutPhase.MIRRORING, RolloutPhase.CANARY):
        return stage_label(stored.policy, r.phase, r.step)
    return str(r.phase)


def cost_view(stored: StoredRollout) -> dict[str, Any]:
    """Extra instance-hours and cost so far (as of the last look), and the projected monthly cost of
    green against blue at full traffic (shared/rollout/cost.py)."""
    r = stored.rollout
    s = summary(r, stored.policy, r.updated_at, r.capacity_ratio)
    return {
        "extraInstanceHours": s.extra_instance_hours,
        "extraCost": s.extra_cost,
        "currency": s.currency,
        "greenMonthly": s.green_monthly,
        "blueMonthly": s.blue_monthly,
        "greenInstancesAtFull": s.green_instances_full,
        "blueInstances": s.blue_instances,
        "missingPrices": list(s.missing_prices),
        "sizing": stored.policy.capacity.sizing if stored.policy.capacity is not None else "copy of blue",
        "summary": s.describe(),
    }


def rollout_view(stored: StoredRollout, decisions: list[DecisionRecord] | None = None) -> dict[str, Any]:
    r = stored.rollout
    view: dict[str, Any] = {
        "id": r.id,
        "endpoint": r.endpoint.name,
        "workspace": r.endpoint.workspace.arm_id,
        "model": {"name": r.model.name, "version": r.model.version, "registry": r.model.registry},
        "phase": str(r.phase),
        "stage": stage_of(stored),
        "blue": r.blue,
        "green": r.green,
        "traffic": {"live": r.desired.live, "mirror": r.desired.mirror, "confirmed": r.traffic_confirmed},
        "maxGreenLive": max_green_live(r, stored.policy),
        "reason": r.last_reason,
        "trigger": r.trigger,
        "stageStartedAt": r.stage_started_at.isoformat(),
        "createdAt": r.created_at.isoformat(),
        "updatedAt": r.updated_at.isoformat(),
        "finishedAt": r.finished_at.isoformat() if r.finished_at else None,
        # The checks on the last judged window: verdict and bounds against the margins, in words.
        "checks": [{"check": c, "verdict": v, "summary": t} for c, v, t in r.checks],
        "pendingCleanup": [
            {"deployment": c.deployment, "notBefore": c.not_before.isoformat(), "why": c.why} for c in r.cleanup
        ],
        "cost": cost_view(stored),
    }
    if decisions is not None:
        view["policy"] = stored.policy.model_dump(mode="json")
        view["decisions"] = [
            {
                "seq": d.seq,
                "at": d.at.isoformat(),
                "actor": d.actor,
                "from": str(d.from_phase),
                "to": str(d.to_phase),
                "reason": d.reason,
                "traffic": {"live": d.traffic.live, "mirror": d.traffic.mirror},
                "actions": list(d.actions),
                "events": list(d.events),
                "evidence": [e.model_dump(mode="json") for e in d.evidence],
            }
            for d in decisions
        ]
    return view
