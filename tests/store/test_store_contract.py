"""One contract for the rollout store, run against memory and against real Azurite."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.ports import AlreadyExistsError, ConflictError, DecisionRecord, StoredRollout
from shared.rollout.machine import plan_start
from shared.rollout.model import EndpointRef, ModelRef, RolloutPhase, WorkspaceRef
from shared.rollout.policy import RolloutPolicy
from shared.store import RolloutStoreImpl, memory_store, partition_key
from tests.builders import ENDPOINT, T0, endpoint_state

P = RolloutPhase


@pytest.fixture(params=["memory", "azurite"])
def store(request) -> RolloutStoreImpl:
    if request.param == "memory":
        return memory_store()
    from shared.adapters.table_store import table_store

    conn = request.getfixturevalue("azurite")
    return table_store(conn, request.getfixturevalue("table_name"))


def record(seq: int, frm: P, to: P, reason: str = "r") -> DecisionRecord:
    return DecisionRecord(
        seq=seq,
        at=T0,
        actor="test",
        from_phase=frm,
        to_phase=to,
        reason=reason,
        traffic=endpoint_state().traffic,
    )


def new(store: RolloutStoreImpl, version: str = "2", endpoint: EndpointRef = ENDPOINT) -> StoredRollout:
    decision = plan_start(
        endpoint, ModelRef(name="m", version=version), endpoint_state(), RolloutPolicy(), T0, trigger="t"
    )
    return store.create(decision.rollout, RolloutPolicy(), record(1, P.PENDING, P.PENDING, decision.reason))


def test_create_then_get_round_trips_status_and_policy_snapshot(store):
    stored = new(store)
    got = store.get(stored.rollout.id)
    assert got is not None
    assert got.rollout == stored.rollout
    assert got.policy == RolloutPolicy()
    assert got.etag == stored.etag


def test_same_model_version_never_starts_twice(store):
    new(store)
    with pytest.raises(AlreadyExistsError):
        new(store)


def test_one_active_rollout_per_endpoint(store):
    first = new(store, "2")
    with pytest.raises(AlreadyExistsError, match="already has an active rollout"):
        new(store, "3")
    assert store.active_for(ENDPOINT).rollout.id == first.rollout.id
    # a different endpoint is independent
    other = ENDPOINT.model_copy(update={"name": "other-endpoint"})
    new(store, "3", endpoint=other)


def test_stale_etag_is_refused_and_nothing_is_written(store):
    stored = new(store)
    moved = stored.rollout.model_copy(update={"phase": P.MIRRORING, "decisions": 2})
    store.save(stored, moved, record(2, P.PENDING, P.MIRRORING))
    with pytest.raises(ConflictError):
        store.save(
            stored,
            stored.rollout.model_copy(update={"phase": P.PAUSED, "decisions": 2}),
            record(2, P.PENDING, P.PAUSED),
        )
    assert store.get(stored.rollout.id).rollout.phase == P.MIRRORING
    assert [d.to_phase for d in store.decisions(stored.rollout.id)] == [P.PENDING, P.MIRRORING]


def test_racing_writers_exactly_one_wins(store):
    stored = new(store)
    outcomes: list[str] = []

    def write(phase: P) -> None:
        try:
            store.save(
                stored,
                stored.rollout.model_copy(update={"phase": phase, "decisions": 2}),
                record(2, P.PENDING, phase),
            )
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(p,)) for p in (P.MIRRORING, P.PAUSED, P.ROLLING_BACK)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost", "lost", "won"]
    assert len(store.decisions(stored.rollout.id)) == 2


def test_finishing_releases_the_lock_in_the_same_transaction(store):
    stored = new(store)
    done = stored.rollout.model_copy(update={"phase": P.ROLLED_BACK, "finished_at": T0, "decisions": 2})
    store.save(stored, done, record(2, P.PENDING, P.ROLLED_BACK))
    assert store.active_for(ENDPOINT) is None
    new(store, "3")  # the endpoint is free again


def test_superseding_moves_the_lock_atomically(store):
    old = new(store, "2")
    newer = plan_start(
        ENDPOINT, ModelRef(name="m", version="3"), endpoint_state(), RolloutPolicy(), T0, trigger="t"
    ).rollout
    old_status = old.rollout.model_copy(update={"phase": P.ROLLING_BACK, "finish_as": P.SUPERSEDED, "decisions": 2})
    store.create(
        newer,
        RolloutPolicy(),
        record(1, P.PENDING, P.PENDING),
        replacing=(old, old_status, record(2, P.PENDING, P.ROLLING_BACK, "superseded")),
    )
    assert store.active_for(ENDPOINT).rollout.id == newer.id
    assert store.get(old.rollout.id).rollout.phase == P.ROLLING_BACK
    # the superseded rollout finishing later leaves the newer one's lock alone
    old_now = store.get(old.rollout.id)
    store.save(
        old_now,
        old_now.rollout.model_copy(update={"phase": P.SUPERSEDED, "decisions": 3}),
        record(3, P.ROLLING_BACK, P.SUPERSEDED),
    )
    assert store.active_for(ENDPOINT).rollout.id == newer.id


def test_replacing_with_a_stale_holder_changes_nothing(store):
    old = new(store, "2")
    store.save(
        old,
        old.rollout.model_copy(update={"phase": P.MIRRORING, "decisions": 2}),
        record(2, P.PENDING, P.MIRRORING),
    )
    newer = plan_start(
        ENDPOINT, ModelRef(name="m", version="3"), endpoint_state(), RolloutPolicy(), T0, trigger="t"
    ).rollout
    with pytest.raises(ConflictError):
        store.create(
            newer,
            RolloutPolicy(),
            record(1, P.PENDING, P.PENDING),
            replacing=(old, old.rollout, record(3, P.MIRRORING, P.ROLLING_BACK)),
        )
    assert store.get(newer.id) is None
    assert store.active_for(ENDPOINT).rollout.id == old.rollout.id


def test_find_filters_by_endpoint_phase_and_due(store):
    a = new(store, "2")
    other = ENDPOINT.model_copy(update={"name": "other-endpoint"})
    b = new(store, "2", endpoint=other)
    store.save(
        b,
        b.rollout.model_copy(update={"phase": P.SUCCEEDED, "decisions": 2}),
        record(2, P.PENDING, P.SUCCEEDED),
    )
    assert {s.rollout.id for s in store.find()} == {a.rollout.id, b.rollout.id}
    assert [s.rollout.id for s in store.find(endpoint=ENDPOINT)] == [a.rollout.id]
    assert [s.rollout.id for s in store.find(phase=P.SUCCEEDED)] == [b.rollout.id]
    assert [s.rollout.id for s in store.find(due_only=True)] == [a.rollout.id]


def test_markers_are_written_with_the_save_and_are_idempotent(store):
    stored = new(store)
    key = "alert:/subscriptions/x/alerts/1|Fired"
    assert not store.has_marker(ENDPOINT, key)
    saved = store.save(
        stored,
        stored.rollout.model_copy(update={"decisions": 2}),
        record(2, P.PENDING, P.PENDING),
        markers=[key],
    )
    assert store.has_marker(ENDPOINT, key)
    with pytest.raises(ConflictError):
        store.save(
            saved,
            saved.rollout.model_copy(update={"decisions": 3}),
            record(3, P.PENDING, P.PENDING),
            markers=[key],
        )
    assert len(store.decisions(stored.rollout.id)) == 2


def test_keys_survive_arm_ids_with_forbidden_characters(store):
    # `/`, `#`, `?` and `\` are forbidden in Table keys; workspace names can hold odd characters.
    odd = EndpointRef(
        workspace=WorkspaceRef(subscription_id="s", resource_group="rg#1?x", workspace="w\\s"), name="ep-1"
    )
    assert all(c not in partition_key(odd) for c in "/\\#?")
    stored = new(store, "2", endpoint=odd)
    assert store.active_for(odd).rollout.id == stored.rollout.id


def test_audit_trail_is_ordered_and_keeps_evidence(store):
    from shared.rollout.analysis import CheckResult, Verdict

    stored = new(store)
    evidence = (CheckResult(check="latency", verdict=Verdict.FAIL, summary="slow", evidence={"p_value": 1e-9}),)
    rec = record(2, P.PENDING, P.ROLLING_BACK).model_copy(
        update={"evidence": evidence, "at": T0 + timedelta(minutes=1)}
    )
    store.save(stored, stored.rollout.model_copy(update={"decisions": 2}), rec)
    trail = store.decisions(stored.rollout.id)
    assert [d.seq for d in trail] == [1, 2]
    assert trail[1].evidence[0].evidence["p_value"] == 1e-9


def test_oversized_status_is_refused_with_a_clear_error(store):
    stored = new(store)
    huge = stored.rollout.model_copy(update={"last_reason": "x" * 40_000, "decisions": 2})
    with pytest.raises(ValueError, match="Table storage holds at most"):
        store.save(stored, huge, None)
    assert store.get(stored.rollout.id).rollout == stored.rollout
