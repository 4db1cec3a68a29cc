"""Capacity: extra instance-hours and cost per rollout, with and without sizing, on the same scenarios.

The real service and the real SDK adapters against the in-process emulator (shared/rollout/cost.py
counts from what Azure shows: green until it is promoted, a rolled-back green until it is deleted,
the old blue kept as OLD_PROD until it is deleted). The same seeds and scenarios run twice:
- *copy of blue* (today without a `capacity:` section): green is created as an exact copy of blue,
  instance count included, and keeps that size through every stage;
- *sized* (`capacity: {sizing: proportional}`): green at its share of the load, rounded up, scaled
  before each step; blue shrinks to 1 instance as OLD_PROD after success.
Blue serves on 8 Standard_NC6s_v3 instances (the issue's GPU endpoint), priced from the sample
price table (demo/prices.csv: 3.06 USD an hour, a sample figure). Scale-outs take as long as the
emulator's provisioning (570 s, emulator/capacity.py); stages are the default policy's shape with
10-minute soaks. Run: python -m bench.capacity [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import StaticCredential, emulator_transport
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.monitor import MonitorMetrics
from shared.payloads import ModelRegistration
from shared.prices import parse_prices
from shared.rollout.cost import summary
from shared.rollout.model import ModelRef, RolloutPhase, WorkspaceRef
from shared.service import RolloutService
from shared.store import memory_store
from shared.targets import PolicyFile

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT, GREEN, SKU, BLUE_INSTANCES = "gpu-scorer", "m-v2", "Standard_NC6s_v3", 8
BLUE = Scenario(capacity_rpm_per_instance=150.0, cpu_percent=10.0, cpu_per_100rpm=40.0)
SCENARIOS = {
    "healthy": BLUE,
    "1.6x slower (rolled back in the mirror)": Scenario(
        latency_ms=130, capacity_rpm_per_instance=150.0, cpu_percent=10.0, cpu_per_100rpm=40.0
    ),
    "errors under live load (rolled back at 10%)": Scenario(
        live_error_rate=0.06, capacity_rpm_per_instance=150.0, cpu_percent=10.0, cpu_per_100rpm=40.0
    ),
}
STAGES: dict[str, Any] = {
    "mirror": {"percent": 20, "min_duration": "10m", "min_requests": 200, "max_duration": "60m"},
    "steps": [
        {"percent": 10, "min_duration": "10m", "min_requests": 200, "max_duration": "60m"},
        {"percent": 50, "min_duration": "10m", "min_requests": 200, "max_duration": "60m"},
    ],
    "bake": {"duration": "10m", "min_requests": 100, "max_duration": "60m"},
    "keep_old_blue_for": "1h",
    "keep_failed_green_for": "2h",
    "cost": {"max_increase": None},
}
SIZED = {"capacity": {"sizing": "proportional", "old_blue_instances": 1}}


@dataclass
class Run:
    scenario: str
    sized: bool
    seed: int
    phase: RolloutPhase
    minutes_to_end: float  # registration to the rollout's end (promoted or rolled back)
    instance_hours: float  # extra, until every extra deployment is deleted
    cost: float


def run_one(scenario: str, sized: bool, seed: int) -> Run:
    clock = SimClock()
    emu = Emulator(clock, seed=seed)
    emu.add_endpoint(ENDPOINT, rpm=600)
    emu.add_deployment(
        ENDPOINT, "m-v1", ("m", "1"), scenario=BLUE, traffic=100, instance_type=SKU, instance_count=BLUE_INSTANCES
    )
    emu.register_model("m", "2")
    emu.set_scenario(ENDPOINT, GREEN, SCENARIOS[scenario])
    prices = parse_prices((ROOT / "demo" / "prices.csv").read_text())
    files = PolicyFile.model_validate(
        {
            "defaults": STAGES | (SIZED if sized else {}),
            "targets": [{"model": "m", "endpoint": ENDPOINT}],
            "prices": prices,
        }
    )
    transport = emulator_transport(emu)
    service = RolloutService(
        store=memory_store(),
        gateway=AzureMLGateway(StaticCredential(), transport=transport, polling_interval=0),
        metrics=MonitorMetrics(
            StaticCredential(), metrics_endpoint="https://eastus.metrics.monitor.azure.com", transport=transport
        ),
        events=NoopPublisher(),
        clock=clock,
        policies=files,
    )
    started = clock.now()
    service.start(
        ModelRegistration(
            event_id=f"bench-{seed}",
            workspace=WorkspaceRef.parse(emu.workspace_id),
            model=ModelRef(name="m", version="2"),
        )
    )
    ended = None
    for _ in range(400):
        clock.advance(timedelta(minutes=1))
        service.reconcile_all()
        (stored,) = service.store.find()
        r = stored.rollout
        if r.phase.terminal and ended is None:
            ended = clock.now()
        if r.phase.terminal and not r.cleanup:
            break  # every extra deployment deleted: the ledger is closed
    (stored,) = service.store.find()
    s = summary(stored.rollout, stored.policy, clock.now())
    return Run(
        scenario,
        sized,
        seed,
        stored.rollout.phase,
        ((ended or clock.now()) - started).total_seconds() / 60,
        s.extra_instance_hours,
        s.extra_cost or 0.0,
    )


def report(runs: list[Run], seconds: float) -> str:
    lines = [
        "# Capacity: extra instance-hours per rollout, with and without sizing",
        "",
        f"`python -m bench.capacity` ({len(runs)} rollouts, {seconds:.0f} s of wall time). Blue: "
        f"{BLUE_INSTANCES} x {SKU} at the sample price; extra = green until promoted (a rolled-back green "
        "until deleted) + the old blue as OLD_PROD until deleted (keep_old_blue_for 1h, keep_failed_green_for 2h).",
        "",
        "| scenario | green | outcome | runs | extra instance-hours (mean) | extra cost USD (mean) "
        "| minutes to the end (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        for sized in (False, True):
            group = [r for r in runs if r.scenario == scenario and r.sized == sized]
            if not group:
                continue
            outcomes = ", ".join(sorted({str(r.phase) for r in group}))
            lines.append(
                f"| {scenario} | {'sized to its share' if sized else 'copy of blue'} | {outcomes} | {len(group)} "
                f"| {statistics.fmean(r.instance_hours for r in group):.1f} "
                f"| {statistics.fmean(r.cost for r in group):.2f} "
                f"| {statistics.fmean(r.minutes_to_end for r in group):.0f} |"
            )
    total = {s: sum(r.instance_hours for r in runs if r.sized == s) for s in (False, True)}
    if total[False]:
        lines += [
            "",
            f"Over all runs: {total[True]:.1f} extra instance-hours sized vs {total[False]:.1f} as a copy of blue "
            f"({1 - total[True] / total[False]:.0%} fewer). Sizing makes a promoted rollout slower by the "
            "scale-outs it waits for before its steps (570 s each in the emulator, UNVERIFIED for Azure).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "capacity.md")
    args = parser.parse_args()
    began = time.monotonic()
    runs = [
        run_one(scenario, sized, seed)
        for scenario in SCENARIOS
        for seed in range(args.seeds)
        for sized in (False, True)
    ]
    text = report(runs, time.monotonic() - began)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
