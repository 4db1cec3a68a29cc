"""Detection quality: Safe Rollout vs a Flagger-style and an Azure ML pipeline-style policy.

Every policy sees the same simulated traffic (the emulator's traffic simulator, same seed): users'
requests routed by the split the policy sets, mirrored copies where it mirrors. Safe Rollout runs
its real decision core (`decide()` and the analysis) minute by minute with its default policy;
the two baselines are implemented as their documentation describes them:

- Flagger-style: analysis every minute; request success rate >= 99% and P99 <= threshold over
  the last minute; a failed or empty check increments a counter that never resets, rollback at 5;
  live steps of 10% up to 50%, then promotion; no mirroring.
- Azure ML pipeline-style (GitHub Actions): steps 10%, 50%, 100%, each gated after 5 minutes by
  "every one-minute P90 <= threshold" and "non-2xx requests per minute <= 1 (at 10%) or 0 (at 50%
  and 100%)"; empty metrics pass; a failed gate stops where it is (no rollback: the split stays).

The latency threshold is the same for both baselines: 1.5x the healthy P99.
Run: python -m bench.detection [--seeds 20] [--out bench/results]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean, median
from typing import Any

import numpy as np

from emulator.traffic import MinuteStats, Scenario, TrafficSimulator
from shared.adapters.monitor import is_error
from shared.rollout.actions import SetTraffic
from shared.rollout.analysis import DeploymentMetrics, WindowMetrics
from shared.rollout.machine import analysis_window, decide, plan_start
from shared.rollout.model import EndpointRef, ModelRef, RolloutPhase, TrafficSplit, WorkspaceRef
from shared.rollout.observation import DeploymentState, EndpointState, Observation
from shared.rollout.policy import ErrorCheck, RolloutPolicy

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EP = "bench-endpoint"
HORIZON = 240  # simulated minutes per run
READY_AFTER = 5  # green's provisioning takes this long
BLUE = Scenario()
MAX_SAMPLES = 5000
ENDPOINT = EndpointRef(workspace=WorkspaceRef(subscription_id="s", resource_group="rg", workspace="ws"), name=EP)


def _spikes(every: int, length: int, factor: float) -> tuple[tuple[float, dict[str, Any]], ...]:
    out: list[tuple[float, dict[str, Any]]] = []
    for start in range(every, HORIZON, every):
        out += [
            (float(start), {"latency_ms": BLUE.latency_ms * factor}),
            (float(start + length), {"latency_ms": BLUE.latency_ms}),
        ]
    return tuple(out)


@dataclass(frozen=True)
class Case:
    name: str
    bad: bool
    green: Scenario
    rpm: float = 1200.0
    provisioning_fails: bool = False


CASES = (
    Case("healthy, high traffic", False, Scenario()),
    Case("healthy, low traffic (60 rpm)", False, Scenario(), rpm=60),
    Case("latency 1.2x", True, Scenario(latency_ms=96)),
    Case("latency 1.5x", True, Scenario(latency_ms=120)),
    Case("latency 2x", True, Scenario(latency_ms=160)),
    Case("tail only (P99 3x)", True, Scenario(tail_rate=0.03, tail_multiplier=4)),
    Case("errors +0.5 points", True, Scenario(error_rate=0.007)),
    Case("errors +2 points", True, Scenario(error_rate=0.022)),
    Case("model errors (424) +1 point", True, Scenario(model_error_rate=0.01)),
    Case("provisioning fails", True, Scenario(), provisioning_fails=True),
    Case("slow memory leak", True, Scenario(memory_leak_per_hour=80)),
    Case("intermittent latency spikes", True, Scenario(changes=_spikes(12, 3, 3.0))),
    Case("regression only under load", True, Scenario(capacity_rpm=450)),
    Case("latency 1.5x at low traffic", True, Scenario(latency_ms=120), rpm=60),
)


@dataclass
class Run:
    policy: str
    case: str
    seed: int
    outcome: str  # promoted | rolled back | stopped | paused | failed | pending
    exposed_at: int | None = None  # first minute green received traffic (mirrored or live)
    detected_at: int | None = None  # minute of the rollback / stop
    promoted_at: int | None = None  # minute green reached 100%
    bad_user_requests: int = 0


@dataclass
class World:
    sim: TrafficSimulator
    split: TrafficSplit = field(default_factory=lambda: TrafficSplit(live={"blue": 100}))

    def set(self, minute: int, split: TrafficSplit) -> None:
        if split != self.split:
            self.split = split
            self.sim.record_split(EP, T0 + timedelta(minutes=minute), split)

    def minutes(self, deployment: str, start: datetime, end: datetime) -> list[MinuteStats]:
        return list(self.sim.minutes(EP, deployment, start, end).values())


def _counts(stats: list[MinuteStats]) -> tuple[int, int, int]:
    """(requests, errors as Safe Rollout counts them (the policy's status codes), non-2xx)."""
    requests = sum(s.requests for s in stats)
    codes = ErrorCheck().status_codes
    errors = sum(n for s in stats for (code, model), n in s.by_status.items() if is_error(str(code), str(model), codes))
    non2xx = sum(n for s in stats for (code, _), n in s.by_status.items() if code >= 300)
    return requests, errors, non2xx


def _latencies(stats: list[MinuteStats], rng: np.random.Generator) -> tuple[float, ...]:
    values = np.fromiter((v for s in stats for v in s.latencies), dtype=float)
    if len(values) > MAX_SAMPLES:
        values = rng.choice(values, MAX_SAMPLES, replace=False)
    return tuple(values.tolist())


def _deployment_metrics(
    world: World, name: str, start: datetime, end: datetime, rng: np.random.Generator
) -> DeploymentMetrics:
    stats = world.minutes(name, start, end)
    requests, errors, _ = _counts(stats)
    return DeploymentMetrics(
        requests=requests,
        errors=errors,
        latency_ms=_latencies(stats, rng),
        latency_kind="request",
        cpu_percent=tuple(s.cpu for s in stats if s.cpu is not None),
        memory_percent=tuple(s.memory for s in stats if s.memory is not None),
    )


# -- the three policies -------------------------------------------------------------------------


def safe_rollout(world: World, case: Case, run: Run, threshold_ms: float) -> None:
    policy = RolloutPolicy()
    rng = np.random.default_rng(run.seed)
    start = plan_start(
        ENDPOINT,
        ModelRef(name="m", version="2"),
        EndpointState(
            name=EP,
            traffic=world.split,
            deployments={"blue": DeploymentState(name="blue", provisioning_state="Succeeded")},
        ),
        policy,
        T0,
        trigger="bench",
    )
    rollout = start.rollout.model_copy(update={"green": "green"})
    for minute in range(1, HORIZON):
        now = T0 + timedelta(minutes=minute)
        world.sim.advance(now)
        if rollout.phase.terminal:
            break
        state = "Creating" if minute < READY_AFTER else ("Failed" if case.provisioning_fails else "Succeeded")
        endpoint = EndpointState(
            name=EP,
            traffic=world.split,
            deployments={
                "blue": DeploymentState(name="blue", provisioning_state="Succeeded"),
                "green": DeploymentState(name="green", provisioning_state=state),
            },
        )
        window = analysis_window(rollout, policy, now)
        metrics = None
        if window is not None:
            metrics = WindowMetrics(
                start=window[0],
                end=window[1],
                green=_deployment_metrics(world, "green", window[0], window[1], rng),
                blue=_deployment_metrics(world, "blue", window[0], window[1], rng),
            )
        decision = decide(rollout, policy, Observation(endpoint=endpoint, metrics=metrics), now)
        before = rollout.phase
        rollout = decision.rollout
        for action in decision.actions:
            if isinstance(action, SetTraffic):
                world.set(minute, action.split)
        if rollout.phase == RolloutPhase.ROLLING_BACK and before != RolloutPhase.ROLLING_BACK:
            run.detected_at = minute
        if world.split.live_of("green") == 100 and run.promoted_at is None:
            run.promoted_at = minute
    run.outcome = {
        RolloutPhase.SUCCEEDED: "promoted",
        RolloutPhase.ROLLED_BACK: "rolled back",
        RolloutPhase.FAILED: "failed",
        RolloutPhase.PAUSED: "paused",
    }.get(rollout.phase, "pending")
    if rollout.phase == RolloutPhase.ROLLING_BACK:
        run.outcome = "rolled back"


def flagger(world: World, case: Case, run: Run, threshold_ms: float) -> None:
    weights, step, failed = [10, 20, 30, 40, 50], -1, 0
    for minute in range(1, HORIZON):
        now = T0 + timedelta(minutes=minute)
        world.sim.advance(now)
        if minute < READY_AFTER:
            continue
        if case.provisioning_fails:
            run.outcome = "failed"
            return
        if step == -1:
            step = 0
            world.set(minute, TrafficSplit(live={"blue": 90, "green": 10}))
            continue
        last = world.minutes("green", now - timedelta(minutes=1), now)
        requests, errors, _ = _counts(last)
        lat = [v for s in last for v in s.latencies]
        ok = requests > 0 and (1 - errors / requests) >= 0.99 and float(np.percentile(lat, 99)) <= threshold_ms
        if not ok:
            failed += 1  # never resets
            if failed >= 5:
                world.set(minute, TrafficSplit(live={"blue": 100}))
                run.outcome, run.detected_at = "rolled back", minute
                return
            continue
        if step + 1 < len(weights):
            step += 1
            w = weights[step]
            world.set(minute, TrafficSplit(live={"blue": 100 - w, "green": w}))
        else:
            world.set(minute, TrafficSplit(live={"green": 100}))
            run.outcome, run.promoted_at = "promoted", minute
            return
    run.outcome = "pending"


def azureml_pipeline(world: World, case: Case, run: Run, threshold_ms: float) -> None:
    steps = [(10, 1), (50, 0), (100, 0)]  # (percent, non-2xx allowed per minute)
    minute = READY_AFTER
    world.sim.advance(T0 + timedelta(minutes=minute))
    if case.provisioning_fails:
        run.outcome = "failed"
        return
    for percent, allowed in steps:
        world.set(
            minute,
            TrafficSplit(live={"green": 100})
            if percent == 100
            else TrafficSplit(live={"blue": 100 - percent, "green": percent}),
        )
        if percent == 100:
            run.promoted_at = minute
        start = minute
        minute += 5
        world.sim.advance(T0 + timedelta(minutes=minute))
        per_minute = world.minutes("green", T0 + timedelta(minutes=start), T0 + timedelta(minutes=minute))
        for s in per_minute:  # empty minutes pass
            _, _, non2xx = _counts([s])
            p90 = s.percentile(90)
            if (p90 is not None and p90 > threshold_ms) or non2xx > allowed:
                run.outcome, run.detected_at = "stopped", minute  # the split stays where it is
                return
    run.outcome = "promoted"


POLICIES: dict[str, Callable[[World, Case, Run, float], None]] = {
    "Safe Rollout": safe_rollout,
    "Flagger-style": flagger,
    "Azure ML pipeline-style": azureml_pipeline,
}


def run_one(args: tuple[str, int, int, float]) -> Run:
    policy, case_index, seed, threshold_ms = args
    case = CASES[case_index]
    sim = TrafficSimulator(T0, seed=seed, keep_logs=False)
    sim.set_rpm(EP, case.rpm)
    sim.set_scenario(EP, "blue", BLUE)
    sim.set_scenario(EP, "green", case.green)
    world = World(sim)
    sim.record_split(EP, T0, world.split)
    run = Run(policy=policy, case=case.name, seed=seed, outcome="pending")
    POLICIES[policy](world, case, run, threshold_ms)
    world.sim.advance(T0 + timedelta(minutes=HORIZON))  # a stopped pipeline keeps serving until then
    first = min((t for (e, d), t in sim.first_traffic.items() if d == "green"), default=None)
    run.exposed_at = None if first is None else int((first - T0).total_seconds() // 60)
    if case.bad:
        run.bad_user_requests = sim.user_answers[(EP, "green")]
    return run


def healthy_p99(seed: int = 12345) -> float:
    sim = TrafficSimulator(T0, seed=seed, keep_logs=False)
    sim.set_rpm(EP, 1200)
    sim.set_scenario(EP, "blue", BLUE)
    sim.record_split(EP, T0, TrafficSplit(live={"blue": 100}))
    sim.advance(T0 + timedelta(minutes=60))
    lat = [v for s in sim.minutes(EP, "blue", T0, T0 + timedelta(minutes=60)).values() for v in s.latencies]
    return float(np.percentile(lat, 99))


@dataclass
class Summary:
    policy: str
    false_rollbacks: str
    missed: str
    detection_minutes: str
    bad_requests: float
    healthy_minutes: str


def summarise(runs: list[Run]) -> list[Summary]:
    out = []
    for policy in POLICIES:
        mine = [r for r in runs if r.policy == policy]
        healthy = [r for r in mine if not _case(r).bad]
        bad = [r for r in mine if _case(r).bad and not _case(r).provisioning_fails]
        false_rb = sum(r.outcome in ("rolled back", "stopped") for r in healthy)
        missed = sum(r.outcome == "promoted" for r in bad)
        delays = [r.detected_at - r.exposed_at for r in bad if r.detected_at is not None and r.exposed_at is not None]
        durations = [r.promoted_at for r in healthy if r.promoted_at is not None]
        out.append(
            Summary(
                policy=policy,
                false_rollbacks=f"{false_rb}/{len(healthy)} ({false_rb / max(1, len(healthy)):.1%})",
                missed=f"{missed}/{len(bad)}",
                detection_minutes=f"{median(delays):.0f} (mean {mean(delays):.1f})" if delays else "-",
                bad_requests=mean(r.bad_user_requests for r in mine if _case(r).bad),
                healthy_minutes=f"{median(durations):.0f}" if durations else "-",
            )
        )
    return out


def _case(run: Run) -> Case:
    return next(c for c in CASES if c.name == run.case)


def per_case_table(runs: list[Run]) -> str:
    lines = ["| scenario | " + " | ".join(POLICIES) + " |", "|---|" + "---|" * len(POLICIES)]
    for case in CASES:
        cells = []
        for policy in POLICIES:
            mine = [r for r in runs if r.case == case.name and r.policy == policy]
            outcomes: dict[str, int] = {}
            for r in mine:
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
            text = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
            if case.bad:
                text += f"; {mean(r.bad_user_requests for r in mine):,.0f} bad user req."
            cells.append(text)
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bad_cases = [c for c in CASES if c.bad and not c.provisioning_fails]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.27
    colors = {"Safe Rollout": "#16a34a", "Flagger-style": "#2563eb", "Azure ML pipeline-style": "#f59e0b"}
    for i, policy in enumerate(POLICIES):
        values = [
            max(1.0, mean(r.bad_user_requests for r in runs if r.case == c.name and r.policy == policy))
            for c in bad_cases
        ]
        ax.bar([x + (i - 1) * width for x in range(len(bad_cases))], values, width, label=policy, color=colors[policy])
    ax.set_yscale("log")
    ax.set_ylabel("user requests answered by the bad green (mean per run, log)")
    ax.set_xticks(range(len(bad_cases)))
    ax.set_xticklabels([c.name for c in bad_cases], rotation=30, ha="right", fontsize=8)
    ax.set_title("Users exposed to a bad model, per scenario and policy (lower is better)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    began = time.monotonic()
    threshold = 1.5 * healthy_p99()
    jobs = [(p, i, seed, threshold) for p in POLICIES for i in range(len(CASES)) for seed in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(run_one, jobs, chunksize=8))
    elapsed = time.monotonic() - began
    summary = summarise(runs)
    head = (
        "| policy | false rollbacks (healthy) | missed regressions (promoted) | minutes to detection, median "
        "| bad user requests per bad run (mean) | healthy rollout to 100%, minutes (median) |\n"
        "|---|---|---|---|---|---|"
    )
    rows = "\n".join(
        f"| {s.policy} | {s.false_rollbacks} | {s.missed} | {s.detection_minutes} | {s.bad_requests:,.0f} "
        f"| {s.healthy_minutes} |"
        for s in summary
    )
    ours = summary[0]
    flag = summary[1]
    ratio = flag.bad_requests / ours.bad_requests if ours.bad_requests else math.inf
    report = (
        f"# Detection benchmark\n\n{len(CASES)} scenarios x {args.seeds} seeds x {len(POLICIES)} policies "
        f"= {len(runs)} runs, "
        f"{HORIZON} simulated minutes each; latency threshold for the baselines {threshold:.0f} ms (1.5x healthy P99); "
        f"{elapsed:.0f} s on 2 cores.\n\n{head}\n{rows}\n\n"
        f"Bad user requests, Flagger-style / Safe Rollout: **{ratio:.1f}x**.\n\n"
        "Targets for Safe Rollout: zero missed regressions of 1.5x latency or +1 point of errors; at most 1% false "
        "rollbacks; at least 10x fewer bad user requests than Flagger-style; a healthy rollout no slower than "
        "Flagger-style's default.\n\n## Per scenario\n\n" + per_case_table(runs) + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.md").write_text(report)
    chart(runs, args.out / "detection.png")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
