"""Scale: one reconcile tick over N active rollouts, with network latency on every Azure call.

The real service, the real SDK adapters, the in-process emulator with 50 ms per ARM call and 150 ms
per metrics call (slept for real, outside the emulator's lock), the in-memory store. Every rollout
is mirroring with its window ready, so each tick reads its endpoint and fetches metrics.
Targets: 1,000 rollouts within a 60 s tick; at most one metrics call per 50 deployments.
Run: python -m bench.scale [--sizes 10 100 500 1000]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.transport import StaticCredential, emulator_transport
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.monitor import MonitorMetrics
from shared.ports import DecisionRecord
from shared.rollout.machine import plan_start, split_for
from shared.rollout.model import EndpointRef, ModelRef, RolloutPhase, WorkspaceRef
from shared.rollout.policy import RolloutPolicy
from shared.service import RolloutService
from shared.store import memory_store
from shared.targets import PolicyFile

LATENCY = {"arm": 0.050, "metrics": 0.150, "logs": 0.200}


def build(n: int) -> tuple[RolloutService, Emulator, Counter[str]]:
    clock = SimClock()
    emu = Emulator(clock, seed=1)
    calls: Counter[str] = Counter()
    policy = RolloutPolicy()
    store = memory_store()
    workspace = WorkspaceRef.parse(emu.workspace_id)
    start = clock.now()
    for i in range(n):
        name = f"ep-{i:04d}"
        emu.add_endpoint(name, rpm=120)
        emu.add_deployment(name, "blue", ("m", "1"), traffic=100)
        emu.add_deployment(name, "green", ("m", "2"))
        endpoint = EndpointRef(workspace=workspace, name=name)
        state = (
            AzureMLGateway(StaticCredential(), transport=emulator_transport(emu)).read_endpoint(endpoint)
            if i == 0
            else None
        )
        del state
        pending = plan_start(endpoint, ModelRef(name="m", version="2"), _state(name), policy, start, trigger="bench")
        pending = pending.rollout.model_copy(update={"green": "green"})
        rollout = pending.model_copy(
            update={
                "phase": RolloutPhase.MIRRORING,
                "stage_started_at": start,
                "desired": split_for(pending, policy, RolloutPhase.MIRRORING, -1),
                "decisions": 1,
            }
        )
        emu.set_traffic_by_hand(name, dict(rollout.desired.live), dict(rollout.desired.mirror))
        store.create(
            rollout,
            policy,
            DecisionRecord(
                seq=1,
                at=start,
                actor="bench",
                from_phase=RolloutPhase.PENDING,
                to_phase=RolloutPhase.MIRRORING,
                reason="set up",
                traffic=rollout.desired,
            ),
        )
    clock.advance(timedelta(minutes=13))

    def latency(service: str) -> None:
        calls[service] += 1
        time.sleep(LATENCY[service])

    transport = emulator_transport(emu)
    service = RolloutService(
        store=store,
        gateway=AzureMLGateway(StaticCredential(), transport=transport, polling_interval=0),
        metrics=MonitorMetrics(
            StaticCredential(), metrics_endpoint="https://eastus.metrics.monitor.azure.com", transport=transport
        ),
        events=NoopPublisher(),
        clock=clock,
        policies=PolicyFile.model_validate({"targets": [{"model": "m", "endpoint": "ep-0000"}]}),
        max_concurrency=32,
        tick_budget_seconds=240,
    )
    emu.latency_hook = latency
    return service, emu, calls


def _state(name: str) -> Any:  # the endpoint as read at start: blue holds all traffic
    from shared.rollout.model import TrafficSplit
    from shared.rollout.observation import DeploymentState, EndpointState

    return EndpointState(
        name=name,
        traffic=TrafficSplit(live={"blue": 100}),
        deployments={"blue": DeploymentState(name="blue", provisioning_state="Succeeded")},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    rows = [
        "| active rollouts | tick | wall time (s) | ARM calls per rollout | metrics calls "
        "| deployments per metrics call | decided |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in args.sizes:
        service, emu, calls = build(n)
        deployments = 2 * n
        for label in ("every rollout moves traffic", "steady (next minute)"):
            calls.clear()
            began = time.monotonic()
            report = service.reconcile_all()
            wall = time.monotonic() - began
            rows.append(
                f"| {n} | {label} | {wall:.1f} | {calls['arm'] / n:.1f} | {calls['metrics']} | "
                f"{deployments / max(1, calls['metrics']):.0f} | {report.reconciled} of {report.due} |"
            )
            print(rows[-1], flush=True)
            emu.clock.advance(timedelta(minutes=1))
    text = (
        "# Scale benchmark\n\nOne reconcile tick; 50 ms per ARM call, 150 ms per metrics call; 32 rollouts "
        "reconciled at once; every rollout mirroring with its window ready.\n\n"
        + "\n".join(rows)
        + "\n\nTargets: 1,000 rollouts within a 60 s tick; at least 50 deployments per metrics call.\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
