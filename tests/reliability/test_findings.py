"""Issue 11's findings, each reproduced through the real service, the real SDK adapters on the
emulator and the store; each of these failed before its fix (the note lists them by number)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from emulator.azure import Fault
from shared.payloads import AlertNotice, ModelRegistration
from shared.ports import ProviderError, StoredRollout
from shared.rollout.machine import CommandKind, CommandRejectedError
from shared.rollout.model import ModelRef, RolloutPhase, TrafficSplit
from shared.service import MAX_NOTES, RolloutService
from shared.store import Op, RolloutStoreImpl, partition_key
from shared.targets import PolicyFile
from tests.reliability.world import FAST, GREEN, Fast, fast

P = RolloutPhase


def tick(env: Fast, service: RolloutService, n: int = 1) -> None:
    for _ in range(n):
        env.world.advance(1)
        report = service.reconcile_all()
        assert report.failed == 0, report.errors


def until(env: Fast, service: RolloutService, done: Callable[[], bool], limit: int = 120) -> None:
    for _ in range(limit):
        if done():
            return
        tick(env, service)
    raise AssertionError(f"not reached in {limit} ticks: {[s.rollout.last_reason for s in env.store.find()]}")


def phase_of(env: Fast, rollout_id: str) -> P:
    stored = env.store.get(rollout_id)
    assert stored is not None
    return stored.rollout.phase


def rollout_of(env: Fast, version: str) -> StoredRollout:
    (found,) = [s for s in env.store.find() if s.rollout.model.version == version]
    return found


def deliver(env: Fast, service: RolloutService, version: str, model: str = "fraud-model") -> Any:
    env.world.emu.register_model(model, version)
    return service.start(
        ModelRegistration(
            event_id=f"e-{model}-{version}",
            workspace=env.world.endpoint.workspace,
            model=ModelRef(name=model, version=version),
        )
    )


def alert(env: Fast, rollout_green: str, **kw: Any) -> AlertNotice:
    fields: dict[str, Any] = {
        "alert_id": "a-1",
        "rule": "p99",
        "condition": "Fired",
        "severity": "Sev1",
        "target_ids": (env.world.endpoint.deployment_arm_id(rollout_green).lower(),),
        "deployments": (),
        "fired_at": None,
    }
    return AlertNotice(**(fields | kw))


def rollout_reaching(phase: P) -> tuple[Fast, RolloutService]:
    """A fast world whose version 2 rollout has reached `phase`."""
    env = fast()
    service = env.service()
    env.register(service)
    until(env, service, lambda: env.phase() == phase)
    return env, service


def endpoint_puts(env: Fast) -> int:
    return sum(1 for m, u, _ in env.world.emu.requests if m == "PUT" and u.split("?")[0].endswith("/fraud-scorer"))


def no_gaps(env: Fast) -> None:
    for stored in env.store.find():
        seqs = [d.seq for d in env.store.decisions(stored.rollout.id)]
        assert seqs == list(range(1, stored.rollout.decisions + 1)), (stored.rollout.model.label, seqs)


# --- 1. one bad policy value stops one rollout, not every endpoint --------------------------------


def test_an_unreadable_policy_snapshot_isolates_that_rollout_only():
    env = fast()
    env.world.emu.add_endpoint("churn-scorer")
    env.world.emu.add_deployment("churn-scorer", "blue", ("churn-model", "1"), traffic=100)
    env.policy = PolicyFile.model_validate(
        {
            "defaults": FAST,
            "targets": [
                {"model": "fraud-model", "endpoint": "fraud-scorer"},
                {"model": "churn-model", "endpoint": "churn-scorer"},
            ],
        }
    )
    service = env.service()
    assert deliver(env, service, "2").status == "started"
    assert deliver(env, service, "2", model="churn-model").status == "started"
    until(env, service, lambda: all(s.rollout.phase == P.MIRRORING for s in env.store.find()))
    fraud = next(s for s in env.store.find() if s.rollout.model.name == "fraud-model")
    # A snapshot stored by an earlier version that accepted a negative retention time.
    bad = fraud.policy.model_dump(mode="json") | {"keep_failed_green_for": "-3600s"}
    update = Op("update", f"rollout|{fraud.rollout.id}", {"Policy": json.dumps(bad)})
    env.store._rows.transact(partition_key(fraud.rollout.endpoint), [update])

    tick(env, service, 3)  # every tick completes: reconcile_all reports no failure
    isolated = env.store.get(fraud.rollout.id)
    assert isolated is not None
    assert isolated.policy_error is not None
    assert isolated.rollout.phase == P.PAUSED
    assert "stored policy cannot be read" in isolated.rollout.last_reason
    assert "Paused" in {e.type for e in env.events.events if e.rollout_id == fraud.rollout.id}
    # The other endpoint goes on to the end.
    churn = next(s for s in env.store.find() if s.rollout.model.name == "churn-model").rollout.id
    until(env, service, lambda: phase_of(env, churn) == P.SUCCEEDED)
    # People can still list it and take it back; they cannot push it forward on a policy nobody can read.
    assert len(service.store.find()) == 2
    with pytest.raises(CommandRejectedError, match="only pause, rollback and abort"):
        service.command(fraud.rollout.id, CommandKind.PROMOTE, actor="ana")
    service.command(fraud.rollout.id, CommandKind.ROLLBACK, actor="ana")
    until(env, service, lambda: phase_of(env, fraud.rollout.id) == P.ROLLED_BACK)
    assert env.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})


# --- 2. one transient 404 does not abandon a rollout ----------------------------------------------


def test_a_transient_404_on_the_endpoint_read_is_not_believed():
    env = fast()
    service = env.service()
    env.register(service)
    until(env, service, lambda: env.phase() == P.CANARY and env.only().rollout.step == 1)
    env.world.emu.faults.append(Fault("endpoint.get", status=404, times=1))
    tick(env, service)
    assert env.phase() == P.CANARY
    until(env, service, lambda: env.phase().terminal)
    assert env.phase() == P.SUCCEEDED
    assert env.split() == TrafficSplit(live={GREEN: 100})


def test_a_registration_that_meets_a_transient_404_is_delivered_again_not_dropped():
    env = fast()
    service = env.service()
    env.world.emu.faults.append(Fault("endpoint.get", status=404, times=1))
    with pytest.raises(ProviderError, match="will be delivered again"):
        deliver(env, service, "2")
    assert env.store.find() == []  # nothing written
    assert deliver(env, service, "2").status == "started"  # Event Grid's redelivery


# --- 3. a late, older version never downgrades production -----------------------------------------


def test_an_older_version_delivered_late_is_ignored_against_what_serves_production():
    env = fast()
    service = env.service()
    assert deliver(env, service, "3").status == "started"
    until(env, service, lambda: env.phase().terminal)
    assert env.phase() == P.SUCCEEDED
    late = deliver(env, service, "2")  # v2's event, replayed from the dead-letter container
    assert late.status == "ignored"
    assert "already runs fraud-model:3" in late.message
    assert len(env.store.find()) == 1
    assert env.split() == TrafficSplit(live={"fraud-model-v3": 100})


def test_versions_order_numerically_and_unknown_orders_are_refused():
    env = fast()
    service = env.service()
    assert deliver(env, service, "1.9").status == "started"
    until(env, service, lambda: env.phase() == P.MIRRORING)
    assert deliver(env, service, "1.10").status == "superseded"  # as strings, "1.10" < "1.9"
    refused = deliver(env, service, "1.10a")
    assert refused.status == "ignored"
    assert "cannot tell whether fraud-model:1.10a is newer" in refused.message


# --- 4. every active phase has a way out; the endpoint is never locked forever --------------------


def test_blue_deleted_during_the_bake_then_an_alert_hands_it_to_a_person():
    env, service = rollout_reaching(P.BAKING)
    env.world.emu.delete_behind_our_back("fraud-scorer", "blue")
    service.alert(alert(env, GREEN))
    puts_before = endpoint_puts(env)
    tick(env, service, 10)
    stored = env.only()
    assert stored.rollout.phase == P.PAUSED
    assert "blue blue no longer exists" in stored.rollout.last_reason
    assert endpoint_puts(env) - puts_before <= 1  # no stream of doomed orders
    # A person keeps green: it bakes under the checks and succeeds; the endpoint is free again.
    service.command(stored.rollout.id, CommandKind.PROMOTE_FULL, actor="ana", reason="blue was retired")
    until(env, service, lambda: env.phase().terminal)
    assert env.phase() == P.SUCCEEDED
    assert service.store.active_for(env.world.endpoint) is None
    assert deliver(env, service, "3").status == "started"
    no_gaps(env)


def test_a_newer_version_takes_over_from_a_rollout_whose_blue_is_gone():
    env, service = rollout_reaching(P.BAKING)
    env.world.emu.delete_behind_our_back("fraud-scorer", "blue")
    service.alert(alert(env, GREEN))
    tick(env, service, 3)
    assert env.phase() == P.PAUSED
    outcome = deliver(env, service, "3")  # nothing to send back to: v2 ends, v3 starts from what serves
    assert outcome.status == "superseded", outcome
    assert rollout_of(env, "2").rollout.phase == P.SUPERSEDED
    assert rollout_of(env, "3").rollout.blue == GREEN
    assert env.split() == TrafficSplit(live={GREEN: 100})  # users were not moved anywhere
    until(env, service, lambda: rollout_of(env, "3").rollout.phase.terminal)
    assert rollout_of(env, "3").rollout.phase == P.SUCCEEDED
    no_gaps(env)


def test_an_order_azure_keeps_refusing_pauses_with_its_reason():
    env, service = rollout_reaching(P.MIRRORING)
    env.world.emu.faults.append(Fault("endpoint.put", status=403, times=10_000))
    until(env, service, lambda: env.phase() == P.PAUSED, limit=40)
    reason = env.only().rollout.last_reason
    assert "provider errors in a row" in reason
    assert "RequestDisallowedByPolicy" in reason or "403" in reason
    assert env.split().live_of(GREEN) == 0  # the refused 10% never reached users
    before = len(env.world.emu.requests)
    tick(env, service, 5)
    assert not [r for r in env.world.emu.requests[before:] if r[0] == "PUT"]


# --- 6. races never lose an event or flip users back ----------------------------------------------


class HookedStore(RolloutStoreImpl):
    """The real store, with a hook that runs once just before the next create or save."""

    def __init__(self, inner: RolloutStoreImpl) -> None:
        super().__init__(inner._rows)
        self.before_create: Callable[[], None] | None = None

    def create(self, *args: Any, **kw: Any) -> Any:
        hook, self.before_create = self.before_create, None
        if hook is not None:
            hook()
        return super().create(*args, **kw)


def test_two_versions_registered_together_on_an_idle_endpoint_both_count():
    env = fast()
    env.store = HookedStore(env.store)
    service, other = env.service(), env.service()
    env.world.emu.register_model("fraud-model", "2")
    env.store.before_create = lambda: deliver(env, other, "2")  # v2 takes the endpoint first
    outcome = deliver(env, service, "3")
    assert outcome.status == "superseded", outcome  # not acknowledged as a duplicate and lost
    assert rollout_of(env, "3").rollout.phase == P.PENDING
    until(env, service, lambda: rollout_of(env, "3").rollout.phase.terminal)
    assert rollout_of(env, "3").rollout.phase == P.SUCCEEDED
    no_gaps(env)


def test_a_supersede_racing_the_promotion_starts_from_the_new_production():
    env = fast()
    env.store = HookedStore(env.store)
    service = env.service()
    env.register(service)
    until(env, service, lambda: env.phase() == P.BAKING)

    def promoted() -> None:  # v2 succeeds between v3's look and its write
        until(env, service, lambda: env.phase().terminal)

    env.store.before_create = promoted
    outcome = deliver(env, service, "3")
    assert rollout_of(env, "2").rollout.phase == P.SUCCEEDED
    assert outcome.status == "started", outcome
    assert rollout_of(env, "3").rollout.blue == GREEN  # v3 is compared with what serves now
    # Users were never sent back to v1 after v2 took them all.
    splits = env.world.emu.splits("fraud-scorer")
    first_all_green = splits.index(TrafficSplit(live={GREEN: 100}))
    assert TrafficSplit(live={"blue": 100}) not in splits[first_all_green:]
    no_gaps(env)


def test_an_alert_that_fired_before_a_promotion_still_rolls_back():
    env, service = rollout_reaching(P.BAKING)
    fired = env.world.clock.now()
    env.world.advance(0.1)
    service.command(env.only().rollout.id, CommandKind.PROMOTE, actor="ana")  # lands a moment first
    assert env.phase() == P.SUCCEEDED
    outcomes = service.alert(alert(env, GREEN, fired_at=fired))
    assert outcomes[0]["outcome"].startswith("rolled back"), outcomes
    until(env, service, lambda: env.phase().terminal)
    assert env.phase() == P.ROLLED_BACK
    assert env.split() == TrafficSplit(live={"blue": 100})
    # An alert raised after the success is about the new production: not an undo.
    env2 = fast()
    s2 = env2.service()
    env2.register(s2)
    until(env2, s2, lambda: env2.phase().terminal)
    later = env2.world.clock.now() + timedelta(minutes=1)
    assert s2.alert(alert(env2, GREEN, fired_at=later)) == []
    assert env2.phase() == P.SUCCEEDED


# --- 8. a failed green never gets users by a click --------------------------------------------------


def test_promote_on_a_paused_rollout_whose_green_failed_is_refused_and_the_pause_rolls_back():
    env, service = rollout_reaching(P.CANARY)
    env.world.clock.advance(env.world.emu.endpoint_update)  # Azure applies the canary split
    rid = env.only().rollout.id
    service.command(rid, CommandKind.PAUSE, actor="ana")
    env.world.emu.break_deployment("fraud-scorer", GREEN)
    with pytest.raises(CommandRejectedError, match="is Failed"):
        service.command(rid, CommandKind.PROMOTE_FULL, actor="ana")
    assert env.split().live_of(GREEN) == 10
    until(env, service, lambda: env.phase().terminal, limit=5)
    assert env.phase() == P.ROLLED_BACK
    assert env.split() == TrafficSplit(live={"blue": 100})


# --- 10. smaller ------------------------------------------------------------------------------------


def test_resolved_alerts_cannot_grow_the_audit_trail_without_bound():
    env, service = rollout_reaching(P.MIRRORING)
    service.command(env.only().rollout.id, CommandKind.PAUSE, actor="ana")
    before = env.only().rollout.decisions
    for i in range(MAX_NOTES + 30):
        service.alert(alert(env, GREEN, alert_id=f"flap-{i}", condition="Resolved"))
    assert env.only().rollout.decisions - before == MAX_NOTES
    no_gaps(env)


class CountingRows:
    def __init__(self, inner: Any) -> None:
        self.inner, self.queries = inner, 0

    def get(self, *a: Any) -> Any:
        return self.inner.get(*a)

    def query(self, *a: Any, **kw: Any) -> Any:
        self.queries += 1
        return self.inner.query(*a, **kw)

    def transact(self, *a: Any) -> Any:
        return self.inner.transact(*a)


def test_reading_a_rollout_by_id_is_point_reads_not_a_table_scan():
    env = fast()
    service = env.service()
    env.register(service)
    rows = CountingRows(env.store._rows)
    store = RolloutStoreImpl(rows)
    rid = env.only().rollout.id
    assert store.get(rid) is not None
    assert store.decisions(rid)
    assert rows.queries == 1  # the decisions of one partition; the rollout itself by point reads
