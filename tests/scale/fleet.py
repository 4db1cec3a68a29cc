"""Several rollouts at once, through the registered functions, with the work queue on a real
Azurite queue service and the Functions host's queue loop (emulator/queue_host.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emulator.queue_host import QueueHost
from shared.adapters.work_queue import WorkQueue
from shared.queue_wiring import set_work_queue
from tests.functions.harness import Harness, make_harness

ENDPOINTS = ("fraud-scorer", "ep-b", "ep-c")
MODELS = {"fraud-scorer": "fraud-model", "ep-b": "model-b", "ep-c": "model-c"}
POLICY = """
defaults:
  mirror: {percent: 20, min_duration: 10m, min_requests: 200, max_duration: 40m}
  steps:
    - {percent: 10, min_duration: 10m, min_requests: 200, max_duration: 40m}
  bake: {duration: 10m, min_requests: 200, max_duration: 40m}
targets:
""" + "".join(f"  - {{model: {MODELS[e]}, endpoint: {e}}}\n" for e in ENDPOINTS)


def fleet(
    fns: dict[str, Any], azurite: str, table: str, tmp_path: Path, queue_conn: str, queue_name: str, *, batch: int = 25
) -> tuple[Harness, WorkQueue, QueueHost]:
    harness = make_harness(fns, azurite, table, tmp_path, policy=POLICY)
    emu = harness.world.emu
    for endpoint in ENDPOINTS[1:]:
        emu.add_endpoint(endpoint, rpm=600)
        emu.add_deployment(endpoint, "blue", (MODELS[endpoint], "1"), traffic=100)
    queue = WorkQueue(queue_name, connection=queue_conn)
    queue.ensure()
    set_work_queue(queue, batch_size=batch)
    host = QueueHost.over(fns["judge_queue"], queue)
    harness.queue_host = host
    return harness, queue, host


def start_all(harness: Harness) -> None:
    for endpoint in ENDPOINTS:
        harness.register("2", model=MODELS[endpoint], event_id=f"evt-{endpoint}")
