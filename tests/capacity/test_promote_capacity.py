"""A person's promote under sizing and the cost gate, end to end through the real service and SDK
adapters against the emulator: a click never puts users on a green sized for a smaller share."""

from __future__ import annotations

import pytest

from shared.rollout.analysis import Verdict
from shared.rollout.machine import CommandKind, CommandRejectedError
from shared.rollout.model import RolloutPhase
from tests.capacity.test_capacity_check import HEAVIER
from tests.capacity.test_rollout_sizing import SIZE_FOR_SHARE, _watch
from tests.capacity.world import BLUE_INSTANCES, CAPACITY, GREEN, sized_world

P = RolloutPhase


def _mirroring(**policy: object):
    env = sized_world(**(CAPACITY | policy))  # type: ignore[arg-type]
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 60, until={P.MIRRORING})
    _watch(env, service, 2)  # the mirror is confirmed
    assert env.phase() == P.MIRRORING, env.only().rollout.last_reason
    assert seen
    return env, service


def test_promote_full_from_the_mirror_scales_green_first_and_steps_only_when_promoted_again():
    env, service = _mirroring()
    rid = env.only().rollout.id
    assert env.world.emu.instances_serving("fraud-scorer", GREEN) == 2
    decision = service.command(rid, CommandKind.PROMOTE_FULL, actor="alice")
    reason = getattr(decision, "reason", None) or env.only().rollout.last_reason
    assert "green is being scaled from 2 to 10 instances before bake at 100%" in reason, reason
    assert "promote again once it is done" in reason
    assert env.phase() == P.MIRRORING  # no step
    seen = _watch(env, service, 10)
    assert all(s.green_share <= 20 for s in seen), seen
    assert env.world.emu.instances_serving("fraud-scorer", GREEN) == BLUE_INSTANCES
    service.command(rid, CommandKind.PROMOTE_FULL, actor="alice")
    seen = _watch(env, service, 5)
    assert any(s.green_share == 100 for s in seen), seen
    for s in seen:
        assert s.green_serving >= SIZE_FOR_SHARE[s.green_share], s


def test_promote_full_past_the_cost_gate_is_refused_or_counts_as_the_approval_with_the_figures():
    policy = {
        "capacity": {"check": {"max_increase": 1.0}},  # the check lets 1.3x pass ...
        "mirror": {"percent": 20, "min_duration": "30m", "min_requests": 100, "max_duration": "60m"},
    }
    for action in ("refuse", "approval"):
        env = sized_world(green=HEAVIER, **policy, cost={"max_increase": 0.1, "action": action})
        service = env.service()
        env.register(service)
        _watch(env, service, 20)  # long enough in the mirror to measure green's 1.3x CPU per instance
        rollout = env.only().rollout
        assert rollout.phase == P.MIRRORING, rollout.last_reason
        assert rollout.capacity_ratio is not None, rollout.last_reason
        service.command(rollout.id, CommandKind.PROMOTE_FULL, actor="alice")  # green scaled first
        _watch(env, service, 8)
        if action == "refuse":
            with pytest.raises(CommandRejectedError) as refused:
                service.command(rollout.id, CommandKind.PROMOTE_FULL, actor="alice")
            assert "cost gate" in str(refused.value)
            assert "green projected at" in str(refused.value)
            assert "vs blue" in str(refused.value)
            assert env.phase() == P.MIRRORING
            continue
        service.command(rollout.id, CommandKind.PROMOTE_FULL, actor="alice")
        assert env.phase() == P.BAKING
        last = env.store.decisions(rollout.id)[-1]
        cost = next(r for r in last.evidence if r.check == "cost")
        assert cost.verdict == Verdict.FAIL
        assert "approved by alice" in cost.summary
        assert cost.evidence["green_monthly"] > cost.evidence["blue_monthly"] * 1.1  # type: ignore[operator]
