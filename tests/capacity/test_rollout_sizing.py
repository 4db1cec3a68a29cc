"""End to end through the real service and the real SDK adapters against the emulator: green sized
to its share and scaled before each step; a failed or refused scale never lets the step happen;
blue shrinks after success and an undo grows it back before traffic returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from cli.main import _summary
from emulator.azure import Fault
from shared.rollout.machine import CommandKind
from shared.rollout.model import RolloutPhase, TrafficSplit
from shared.service import RolloutService
from shared.views import rollout_view
from tests.capacity.world import BLUE_INSTANCES, CAPACITY, GREEN, sized_world
from tests.reliability.world import Fast

P = RolloutPhase
# mirror 20%, canary 10% and 50%, bake 100% of blue's 10 instances
SIZE_FOR_SHARE = {0: 0, 10: 1, 20: 2, 50: 5, 100: 10}


@dataclass
class Seen:
    minute: int
    green_share: int  # live, or mirrored
    green_serving: int
    blue_live: int
    blue_serving: int
    phase: P


def _watch(env: Fast, service: RolloutService, minutes: int, until: set[P] | None = None) -> list[Seen]:
    emu, seen = env.world.emu, []
    for minute in range(minutes):
        env.world.advance(1)
        service.reconcile_all()
        routed = emu.routed_split("fraud-scorer")  # what users' requests follow now
        seen.append(
            Seen(
                minute,
                routed.live_of(GREEN) or routed.mirror_of(GREEN),
                emu.instances_serving("fraud-scorer", GREEN) if (("fraud-scorer", GREEN) in emu.deployments) else 0,
                routed.live_of("blue"),
                emu.instances_serving("fraud-scorer", "blue"),
                env.phase(),
            )
        )
        if until and env.phase() in until:
            break
    return seen


def _never_too_few(seen: list[Seen]) -> None:
    for s in seen:
        assert s.green_serving >= SIZE_FOR_SHARE[s.green_share], s


def test_green_is_sized_to_each_stage_scaled_before_each_step_and_blue_shrinks_after():
    env = sized_world(**CAPACITY)
    service = env.service()
    assert env.register(service).status == "started"
    seen = _watch(env, service, 150, until={P.SUCCEEDED, P.ROLLED_BACK, P.PAUSED})
    stored = env.only()
    assert stored.rollout.phase == P.SUCCEEDED, stored.rollout.last_reason
    _never_too_few(seen)
    # created at the mirror's size, never at blue's 10 while it only took copies
    assert max(s.green_serving for s in seen if s.green_share == 20) == 2
    assert min(s.green_serving for s in seen if s.green_share == 50) == 5  # then 10 before the bake
    trail = [d.reason for d in env.store.decisions(stored.rollout.id)]
    assert any("scaling green fraud-model-v2 from 2 to 5 instances before canary 50%" in r for r in trail), trail
    assert any("from 5 to 10 instances before bake at 100%" in r for r in trail), trail
    # the scale is ordered, then the step waits for Azure to finish it
    actions = [a for d in env.store.decisions(stored.rollout.id) for a in d.actions]
    assert "scale fraud-model-v2 to 5 instances" in actions
    # after success blue, kept as OLD_PROD, shrinks to the policy's 1 instance
    _watch(env, service, 3)
    assert env.world.emu.deployments[("fraud-scorer", "blue")].body["sku"]["capacity"] == 1
    # cost: fewer extra instance-hours than a green the size of blue for the same time
    ledger = env.only().rollout.ledger
    assert any(s.deployment == "blue" and s.instances == 1 for s in ledger)
    # the status API, the CLI and the report show what the rollout cost
    view = rollout_view(env.only())
    cost = view["cost"]
    assert cost["sizing"] == "proportional"
    assert 0 < cost["extraInstanceHours"] < BLUE_INSTANCES * 2  # green on 10 for 2 h would be 20
    assert cost["extraCost"] == pytest.approx(cost["extraInstanceHours"] * 0.229, rel=1e-3)
    assert cost["greenMonthly"] == cost["blueMonthly"] == pytest.approx(10 * 0.229 * 730)
    assert "extra instance-hours" in _summary(view)
    assert "extra instance-hours" in service.report([stored.rollout.id])


def test_without_a_capacity_section_green_copies_blues_size():
    env = sized_world()
    service = env.service()
    env.register(service)
    _watch(env, service, 6)
    green = env.world.emu.deployments[("fraud-scorer", GREEN)].body
    assert green["sku"]["capacity"] == BLUE_INSTANCES
    assert all(not a.startswith("scale") for d in env.store.decisions(env.only().rollout.id) for a in d.actions)


def test_a_failed_scale_is_a_provider_error_with_a_reason_and_never_a_step():
    env = sized_world(**CAPACITY)
    env.world.emu.capacity.scale_failures[GREEN] = 1  # the first scale of green ends Failed
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 150, until={P.SUCCEEDED, P.ROLLED_BACK, P.PAUSED})
    stored = env.only()
    _never_too_few(seen)
    trail = env.store.decisions(stored.rollout.id)
    failed = [d for d in trail if "failed (green is Failed)" in d.reason]
    assert failed, [d.reason for d in trail][-6:]
    assert any(r.check == "provider" for d in failed for r in d.evidence)
    # ordered again, done, and the rollout went on
    assert stored.rollout.phase == P.SUCCEEDED, stored.rollout.last_reason


def test_a_scale_azure_refuses_every_time_ends_at_the_error_limit_without_stepping():
    env = sized_world(**CAPACITY)
    env.world.emu.capacity.max_instances = 4  # quota: the scale to 5 is refused (400 OutOfQuota)
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 120, until={P.PAUSED, P.ROLLED_BACK, P.SUCCEEDED})
    stored = env.only()
    _never_too_few(seen)
    assert all(s.green_share <= 20 for s in seen)  # mirror 20%, canary 10%: never stepped to 50%
    assert stored.rollout.phase == P.PAUSED, stored.rollout.last_reason
    assert "provider errors in a row" in stored.rollout.last_reason
    assert "OutOfQuota" in stored.rollout.last_reason


def test_a_slow_scale_counts_as_an_error_past_its_timeout():
    env = sized_world(capacity={"scale_timeout": "2m"})
    env.world.emu.capacity.hung_scales.add(GREEN)
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 120, until={P.PAUSED, P.ROLLED_BACK, P.SUCCEEDED})
    _never_too_few(seen)
    stored = env.only()
    assert stored.rollout.phase == P.PAUSED
    assert "not done after" in stored.rollout.last_reason


def test_a_409_on_the_scale_is_ordered_again():
    env = sized_world(**CAPACITY)
    env.world.emu.faults.append(Fault("deployment.scale", status=409, times=1))
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 150, until={P.SUCCEEDED, P.ROLLED_BACK, P.PAUSED})
    _never_too_few(seen)
    assert env.phase() == P.SUCCEEDED


def test_undo_scales_blue_back_up_before_traffic_returns():
    env = sized_world(**CAPACITY)
    service = env.service()
    env.register(service)
    _watch(env, service, 150, until={P.SUCCEEDED})
    _watch(env, service, 3)  # blue shrinks to 1
    assert env.world.emu.instances_serving("fraud-scorer", "blue") == 1
    rid = env.only().rollout.id
    service.command(rid, CommandKind.ROLLBACK, actor="alice", reason="bad predictions")
    assert env.world.emu.routed_split("fraud-scorer") == TrafficSplit(live={GREEN: 100})  # not yet
    seen = _watch(env, service, 30, until={P.ROLLED_BACK})
    assert env.phase() == P.ROLLED_BACK
    # traffic went back to blue only once all 10 of its instances served
    assert all(s.blue_serving == BLUE_INSTANCES for s in seen if s.blue_live > 0), seen
    assert env.world.emu.routed_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    reasons = [d.reason for d in env.store.decisions(rid)]
    assert any("scaling blue blue back to 10 instances before traffic returns" in r for r in reasons), reasons


def test_an_undo_during_blues_shrink_waits_for_it_and_then_grows_blue_back():
    env = sized_world(**CAPACITY)
    env.world.emu.capacity.scale_in = timedelta(minutes=5)  # the shrink still runs when the undo comes
    service = env.service()
    env.register(service)
    _watch(env, service, 150, until={P.SUCCEEDED})
    _watch(env, service, 1)
    assert env.world.emu.deployments[("fraud-scorer", "blue")].body["properties"]["provisioningState"] == "Scaling"
    service.command(env.only().rollout.id, CommandKind.ROLLBACK, actor="alice")
    seen = _watch(env, service, 40, until={P.ROLLED_BACK})
    assert env.phase() == P.ROLLED_BACK, env.only().rollout.last_reason
    assert all(s.blue_serving == BLUE_INSTANCES for s in seen if s.blue_live > 0), seen


def test_an_undo_right_after_success_grows_blue_back_before_traffic_returns():
    # The shrink was ordered at success but no later tick has seen it yet: the undo must still wait.
    env = sized_world(**CAPACITY)
    service = env.service()
    env.register(service)
    _watch(env, service, 150, until={P.SUCCEEDED})
    assert env.phase() == P.SUCCEEDED
    service.command(env.only().rollout.id, CommandKind.ROLLBACK, actor="alice")
    assert env.world.emu.routed_split("fraud-scorer") == TrafficSplit(live={GREEN: 100})  # not yet
    seen = _watch(env, service, 40, until={P.ROLLED_BACK})
    assert env.phase() == P.ROLLED_BACK, env.only().rollout.last_reason
    assert any(s.blue_live > 0 for s in seen)
    assert all(s.blue_serving == BLUE_INSTANCES for s in seen if s.blue_live > 0), seen


def test_an_autoscaler_shrinking_blue_while_it_serves_nothing_does_not_lower_what_an_undo_restores():
    env = sized_world(**CAPACITY)
    service = env.service()
    env.register(service)
    _watch(env, service, 150, until={P.BAKING})
    assert env.phase() == P.BAKING
    # blue serves nothing in the bake: its autoscaler takes it down to 3 instances
    env.world.emu.deployments[("fraud-scorer", "blue")].body["sku"]["capacity"] = 3
    _watch(env, service, 150, until={P.SUCCEEDED})
    assert env.phase() == P.SUCCEEDED
    rid = env.only().rollout.id
    service.command(rid, CommandKind.ROLLBACK, actor="alice")
    seen = _watch(env, service, 40, until={P.ROLLED_BACK})
    assert env.phase() == P.ROLLED_BACK, env.only().rollout.last_reason
    assert all(s.blue_serving == BLUE_INSTANCES for s in seen if s.blue_live > 0), seen
    reasons = [d.reason for d in env.store.decisions(rid)]
    assert any(f"scaling blue blue back to {BLUE_INSTANCES} instances" in r for r in reasons), reasons[-5:]
