"""Dispatcher -> Azure Storage queue (real Azurite) -> queue worker, through the registered
functions and the Functions host's queue loop: what a person running a fleet would notice."""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

from azure.functions.timer import TimerRequest

from emulator.queue_host import QueueHost, WorkerDied
from shared.dispatch import parse_message
from shared.rollout.model import RolloutPhase as P
from tests.scale.fleet import ENDPOINTS, fleet, start_all


def _phases(harness: Any) -> dict[str, P]:
    return {s.rollout.endpoint.name: s.rollout.phase for s in harness.rollouts()}


def test_every_rollout_of_a_fleet_moves_to_live_traffic_through_the_queue(
    fns, azurite, table_name, tmp_path, azurite_queue, queue_name
):
    harness, queue, _host = fleet(fns, azurite, table_name, tmp_path, azurite_queue, queue_name, batch=2)
    start_all(harness)
    harness.tick_until(lambda: set(_phases(harness).values()) == {P.CANARY}, limit=60)
    assert set(_phases(harness)) == set(ENDPOINTS)
    harness.azure_applies()
    for endpoint in ENDPOINTS:
        split = harness.world.emu.current_split(endpoint)
        assert split.live["blue"] == 90, split
        assert len(split.live) == 2, split
    assert queue.depth() == 0  # every work item was taken and deleted
    assert queue.poisoned() == []


def test_the_timer_only_enqueues_batches_of_one_subscription_and_region(
    fns, azurite, table_name, tmp_path, azurite_queue, queue_name
):
    harness, queue, _host = fleet(fns, azurite, table_name, tmp_path, azurite_queue, queue_name, batch=2)
    start_all(harness)
    before = {s.rollout.id: s.etag for s in harness.rollouts()}
    harness.world.advance(1)
    harness.fns["reconcile_timer"](TimerRequest(past_due=False))
    assert {s.rollout.id: s.etag for s in harness.rollouts()} == before  # nothing judged by the timer
    peeked = queue._queue.peek_messages(max_messages=32)
    items = [parse_message(m.content) for m in peeked]
    assert sorted(len(i.rollouts) for i in items) == [1, 2]  # 3 due rollouts, batches of 2
    assert {r for i in items for r in i.rollouts} == set(before)
    assert len({(i.subscription, i.region) for i in items}) == 1
    # on the wire the message is base64, as the Functions trigger expects by default
    raw = QueueHost.over(fns["judge_queue"], queue).raw.peek_messages(max_messages=1)[0].content
    assert parse_message(base64.b64decode(raw)) == items[0]


def test_a_worker_dying_mid_batch_loses_nothing_and_the_redelivery_moves_no_rollout_twice(
    fns, azurite, table_name, tmp_path, azurite_queue, queue_name, monkeypatch
):
    harness, queue, host = fleet(fns, azurite, table_name, tmp_path, azurite_queue, queue_name)
    start_all(harness)
    harness.tick()
    assert set(_phases(harness).values()) == {P.PENDING}
    harness.world.advance(7)  # every green is provisioned: this tick starts mirroring on each endpoint
    decisions_before = {s.rollout.id: s.rollout.decisions for s in harness.rollouts()}

    service = harness.service
    commit = service._commit
    done: list[str] = []
    lock = threading.Lock()

    def dies_after_the_first(stored: Any, decision: Any, **kw: Any) -> Any:
        with lock:  # the batch's rollouts are judged on several threads: the first one through wins
            first = not done
            done.append(stored.rollout.id)
        if not first:
            raise WorkerDied  # the instance is gone after saving and acting for one rollout
        return commit(stored, decision, **kw)

    monkeypatch.setattr(service, "_commit", dies_after_the_first)
    harness.fns["reconcile_timer"](TimerRequest(past_due=False))
    report = host.run_once()
    assert report.died == 1
    phases = _phases(harness)
    assert sorted(phases.values()) == sorted([P.MIRRORING, P.PENDING, P.PENDING]), phases
    assert host.run_once().delivered == 0  # still leased by the dead instance: nobody else takes it

    monkeypatch.setattr(service, "_commit", commit)  # a healthy instance
    assert host.expire_leases() == 1  # the lease runs out (10 minutes in Azure)
    again = host.drain()
    assert again.succeeded == 1
    assert set(_phases(harness).values()) == {P.MIRRORING}  # all three judged, none lost
    for stored in harness.rollouts():
        records = harness.service.store.decisions(stored.rollout.id)
        started = [d for d in records if d.from_phase == P.PENDING and d.to_phase == P.MIRRORING]
        assert len(started) == 1, "moved once: the redelivered item judged the first one again, as a hold"
        assert stored.rollout.decisions >= decisions_before[stored.rollout.id] + 1
        assert stored.rollout.consecutive_errors == 0
        assert harness.world.emu.current_split(stored.rollout.endpoint.name).live == {"blue": 100}
    assert queue.depth() == 0


def test_a_message_the_worker_cannot_process_lands_in_the_poison_queue_and_the_timer_reports_it(
    fns, azurite, table_name, tmp_path, azurite_queue, queue_name, caplog
):
    harness, queue, host = fleet(fns, azurite, table_name, tmp_path, azurite_queue, queue_name)
    start_all(harness)
    queue._queue.send_message('{"v": 1, "rollouts": []}')  # not a work item
    tries = [host.run_once() for _ in range(5)]  # maxDequeueCount (host.json): five, then the poison queue
    assert [t.failed for t in tries] == [1] * 5
    assert tries[-1].poisoned == 1
    assert queue.depth() == 0
    (poisoned,) = queue.poisoned()
    assert "not a work item" in (poisoned.problem or "")
    assert "rollouts" in (poisoned.problem or "")
    caplog.set_level(logging.ERROR, logger="safe_rollout")
    harness.tick()
    assert any("poison queue" in r.getMessage() and "not a work item" in r.getMessage() for r in caplog.records)
    assert set(_phases(harness).values()) <= {P.PENDING, P.MIRRORING}  # the fleet goes on
