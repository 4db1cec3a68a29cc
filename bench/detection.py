"""Detection quality: Safe Rollout against Flagger (at our tolerances, and at its documented
defaults) and rsethur/saferollout, on a simulator that does not flatter per-request tests.

Every policy sees the same simulated users (same seed: same load, bursts and shared noise),
routed by the split it sets. Safe Rollout runs its real decision core (`decide()`) minute by
minute with its default policy, on the window `analysis_window()` names, in both metric modes:
"per request" (the traffic log: at most LOG_SAMPLE random rows per deployment over the window, one
query for both) and "per minute" (no traffic log: Azure Monitor's per-minute percentiles). The
baselines are described in bench/baselines.py; the simulator in bench/simulator.py.

Run: python -m bench.detection [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean, median
from typing import Literal

from scipy.stats import binomtest

from bench.baselines import READY_AFTER, Thresholds, flagger, rsethur
from bench.simulator import BLUE, Load, Minute, Model, Noise, Simulator, healthy_percentile
from shared.adapters.monitor import LOG_SAMPLE
from shared.rollout.actions import SetTraffic
from shared.rollout.analysis import DeploymentMetrics, MinuteSample, WindowMetrics
from shared.rollout.machine import analysis_window, decide, plan_start
from shared.rollout.model import EndpointRef, ModelRef, RolloutPhase, TrafficSplit, WorkspaceRef
from shared.rollout.observation import DeploymentState, EndpointState, Observation
from shared.rollout.policy import RolloutPolicy

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EP = "bench-endpoint"
HORIZON = 240  # simulated minutes per run
ENDPOINT = EndpointRef(workspace=WorkspaceRef(subscription_id="s", resource_group="rg", workspace="ws"), name=EP)
Kind = Literal["healthy", "within", "bad"]
Mode = Literal["request", "minute"]


@dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    green: Model
    rpm: float = 1200.0
    provisioning_fails: bool = False


# A tail of 3% of requests 6x slower puts green's P99 at about 3x blue's while its P90 barely moves.
CASES = (
    Case("healthy, 1,200 rpm", "healthy", BLUE),
    Case("healthy, 60 rpm", "healthy", BLUE, rpm=60),
    Case("within tolerance: errors +0.25 points", "within", BLUE.scaled(error_rate=0.0045)),
    Case("within tolerance: latency 1.1x", "within", BLUE.scaled(latency_ms=88)),
    Case("latency 1.5x", "bad", BLUE.scaled(latency_ms=120)),
    Case("latency 2x", "bad", BLUE.scaled(latency_ms=160)),
    Case("errors +1 point", "bad", BLUE.scaled(error_rate=0.012)),
    Case("errors +2 points", "bad", BLUE.scaled(error_rate=0.022)),
    Case("tail only (P99 3x)", "bad", BLUE.scaled(tail_rate=0.03, tail_multiplier=6.0)),
    Case("model errors (424) +1 point", "bad", BLUE.scaled(model_error_rate=0.01)),
    Case("throttling (429) +1.5 points", "bad", BLUE.scaled(throttle_rate=0.0155)),
    Case("provisioning fails", "bad", BLUE, provisioning_fails=True),
    Case("memory leak, OOM after ~40 min", "bad", BLUE.scaled(memory_leak_per_hour=80)),
    Case("memory leak, OOM after ~2 h", "bad", BLUE.scaled(memory_leak_per_hour=26)),
    Case("latency spikes 3x, 3 of every 12 min", "bad", BLUE.scaled(spike_every=12, spike_length=3, spike_factor=3)),
    Case("latency spikes 3x, 2 of every 40 min", "bad", BLUE.scaled(spike_every=40, spike_length=2, spike_factor=3)),
    Case("regression only under load (450 rpm)", "bad", BLUE.scaled(capacity_rpm=450)),
    Case("latency 1.5x at 60 rpm", "bad", BLUE.scaled(latency_ms=120), rpm=60),
)
SEEDS: dict[Kind, int] = {"healthy": 500, "within": 100, "bad": 30}
QUICK_SEEDS: dict[Kind, int] = {"healthy": 3, "within": 2, "bad": 2}

# Ablation: Safe Rollout's healthy and within-tolerance runs with one of the simulator's
# imperfections removed at a time, to show which of them its false rollbacks come from.
NOISE: dict[str, Noise] = {
    "all (the benchmark)": Noise(),
    "no green warm-up": Noise(warm_up=0.0, cold_requests=0),
    "no load bursts": Noise(bursts_per_hour=0.0, load_latency_slope=0.0),
    "no shared error bursts or overdispersion": Noise(shared_error_bursts_per_hour=0.0, error_gamma_shape=None),
    "no per-deployment noise": Noise(own_latency_sigma=0.0, own_error_bursts_per_hour=0.0),
    "none of these, no shared latency noise": Noise(
        bursts_per_hour=0.0,
        shared_latency_sigma=0.0,
        own_latency_sigma=0.0,
        load_latency_slope=0.0,
        error_gamma_shape=None,
        shared_error_bursts_per_hour=0.0,
        own_error_bursts_per_hour=0.0,
        cold_requests=0,
        warm_up=0.0,
    ),
}
ABLATION_SEEDS = {
    "healthy, 1,200 rpm": 80,
    "within tolerance: latency 1.1x": 40,
    "within tolerance: errors +0.25 points": 40,
}
QUICK_ABLATION_SEEDS = dict.fromkeys(ABLATION_SEEDS, 2)

SR_REQUEST = "Safe Rollout (per request)"
SR_MINUTE = "Safe Rollout (per minute)"
FLAGGER_EQUAL = "Flagger, our tolerances + mirror"
FLAGGER_DOCS = "Flagger, docs defaults"
RSETHUR = "rsethur/saferollout"


@dataclass
class Run:
    policy: str
    case: str
    seed: int
    outcome: str  # promoted | rolled back | stopped | paused | failed | pending
    exposed_at: int | None = None  # first minute green received traffic (mirrored or live)
    detected_at: int | None = None  # minute of the rollback order / the stop
    full_at: int | None = None  # first minute green served 100% of users
    done_at: int | None = None  # minute the rollout finished (promoted)
    bad_user_requests: int = 0  # users' requests answered by a bad green over the horizon
    seconds: float = 0.0
    reason: str = ""  # Safe Rollout's reason for a rollback
    noise: str = ""  # an ablation variant (NOISE); "" for the benchmark itself


# -- Safe Rollout -------------------------------------------------------------------------------


def _minute_of(when: datetime) -> int:
    return math.floor((when - T0).total_seconds() / 60)


class MetricsReader:
    """What production's MetricsSource returns for a window, read from the simulator."""

    def __init__(self, sim: Simulator, policy: RolloutPolicy, mode: Mode) -> None:
        self.sim, self.mode = sim, mode
        self.codes = tuple(policy.errors.status_codes)
        self.latency_q = float(policy.latency.percentile)
        self.tail_q = float(policy.tail_latency.percentile)
        self._samples: dict[tuple[str, int], MinuteSample] = {}

    def _sample(self, name: str, m: int, d: Minute) -> MinuteSample:
        key = (name, m)
        if key not in self._samples:
            self._samples[key] = MinuteSample(
                at=T0 + timedelta(minutes=m),
                requests=d.requests,
                errors=d.errors(self.codes),
                latency_ms=d.percentile(self.latency_q),
                tail_ms=d.percentile(self.tail_q),
            )
        return self._samples[key]

    def deployment(self, name: str, start: int, end: int) -> DeploymentMetrics:
        minutes = self.sim.minutes(name, start, end)
        if self.mode == "request":
            latency = tuple(self.sim.log_sample(name, start, end, LOG_SAMPLE).tolist())
        else:
            latency = tuple(d.percentile(self.latency_q) for _, d in minutes)
        return DeploymentMetrics(
            requests=sum(d.requests for _, d in minutes),
            errors=sum(d.errors(self.codes) for _, d in minutes),
            latency_ms=latency,
            latency_kind=self.mode,
            minutes=tuple(self._sample(name, m, d) for m, d in minutes),
            cpu_percent=tuple(d.cpu for _, d in minutes) if name == "green" else (),
            memory_percent=tuple(d.memory for _, d in minutes) if name == "green" else (),
        )

    def window(self, start: datetime, end: datetime) -> WindowMetrics:
        lo, hi = _minute_of(start), math.ceil((end - T0).total_seconds() / 60)
        return WindowMetrics(
            start=start, end=end, green=self.deployment("green", lo, hi), blue=self.deployment("blue", lo, hi)
        )


def safe_rollout(sim: Simulator, case: Case, run: Run, mode: Mode) -> None:
    policy = RolloutPolicy()
    reader = MetricsReader(sim, policy, mode)
    blue_state = DeploymentState(name="blue", provisioning_state="Succeeded")
    start = plan_start(
        ENDPOINT,
        ModelRef(name="m", version="2"),
        EndpointState(name=EP, traffic=TrafficSplit(live={"blue": 100}), deployments={"blue": blue_state}),
        policy,
        T0,
        trigger="bench",
    )
    rollout = start.rollout.model_copy(update={"green": "green"})
    for minute in range(1, sim.horizon):
        now = T0 + timedelta(minutes=minute)
        sim.advance(minute)
        if rollout.phase.terminal or rollout.phase == RolloutPhase.PAUSED:
            break  # finished, or handed to a person: the split stays where it is
        ready = "Failed" if case.provisioning_fails else "Succeeded"
        green_state = "Creating" if minute < READY_AFTER else ready
        traffic, endpoint_state = sim.observed(minute)
        endpoint = EndpointState(
            name=EP,
            provisioning_state=endpoint_state,
            traffic=traffic,
            deployments={"blue": blue_state, "green": DeploymentState(name="green", provisioning_state=green_state)},
        )
        window = analysis_window(rollout, policy, now)
        metrics = reader.window(*window) if window is not None else None
        decision = decide(rollout, policy, Observation(endpoint=endpoint, metrics=metrics), now)
        before = rollout.phase
        rollout = decision.rollout
        for action in decision.actions:
            if isinstance(action, SetTraffic):
                sim.order(minute, action.split)
        if rollout.phase == RolloutPhase.ROLLING_BACK and before != RolloutPhase.ROLLING_BACK:
            run.detected_at = minute
            run.reason = decision.reason
        if rollout.phase == RolloutPhase.SUCCEEDED and run.done_at is None:
            run.done_at = minute
    phase = rollout.phase
    run.outcome = {
        RolloutPhase.SUCCEEDED: "promoted",
        RolloutPhase.ROLLED_BACK: "rolled back",
        RolloutPhase.ROLLING_BACK: "rolled back",
        RolloutPhase.FAILED: "failed",
        RolloutPhase.PAUSED: "paused",
    }.get(phase, "pending")


# -- runs ---------------------------------------------------------------------------------------


def _thresholds() -> Thresholds:
    policy = RolloutPolicy()
    return Thresholds(
        flagger_p99_ms=1.5 * healthy_percentile(99),
        rsethur_p90_ms=1.2 * healthy_percentile(90),
        error_codes=tuple(policy.errors.status_codes),
        mirror_percent=policy.mirror.percent if policy.mirror else 20,
    )


_THRESHOLDS: Thresholds | None = None


def thresholds() -> Thresholds:
    global _THRESHOLDS  # noqa: PLW0603 - computed once per worker process
    if _THRESHOLDS is None:
        _THRESHOLDS = _thresholds()
    return _THRESHOLDS


def _baseline(name: str) -> Callable[[Simulator, Case, Run], None]:
    def play(sim: Simulator, case: Case, run: Run) -> None:
        th = thresholds()
        if name == RSETHUR:
            run.outcome, run.detected_at = rsethur(sim, case.provisioning_fails, th)
        else:
            run.outcome, run.detected_at = flagger(sim, case.provisioning_fails, th, equal=name == FLAGGER_EQUAL)

    return play


POLICIES: dict[str, Callable[[Simulator, Case, Run], None]] = {
    SR_REQUEST: lambda sim, case, run: safe_rollout(sim, case, run, "request"),
    SR_MINUTE: lambda sim, case, run: safe_rollout(sim, case, run, "minute"),
    FLAGGER_EQUAL: _baseline(FLAGGER_EQUAL),
    FLAGGER_DOCS: _baseline(FLAGGER_DOCS),
    RSETHUR: _baseline(RSETHUR),
}


def case_index(name: str) -> int:
    return next(i for i, c in enumerate(CASES) if c.name == name)


def run_one(args: tuple[str, int, int] | tuple[str, int, int, str]) -> Run:
    policy, index, seed = args[:3]
    noise = args[3] if len(args) > 3 else ""
    case = CASES[index]
    began = time.process_time()
    sim = Simulator(seed, case.green, load=Load(rpm=case.rpm), horizon=HORIZON, noise=NOISE[noise] if noise else None)
    run = Run(policy=policy, case=case.name, seed=seed, outcome="pending", noise=noise)
    POLICIES[policy](sim, case, run)
    sim.finish()  # a stopped pipeline, a paused rollout or a promoted green keep serving users
    if case.kind == "bad":
        run.bad_user_requests = sim.user_answers["green"]
    run.exposed_at = sim.first_green_minute()
    run.full_at = sim.green_full_from()
    if run.outcome == "promoted" and run.done_at is None:
        run.done_at = run.full_at
    run.seconds = time.process_time() - began
    return run


def jobs(seeds: dict[Kind, int], ablation: dict[str, int]) -> list[tuple[str, int, int, str]]:
    out = []
    for index, case in enumerate(CASES):
        for seed in range(seeds[case.kind]):
            out += [(policy, index, seed, "") for policy in POLICIES]
    for variant in list(NOISE)[1:]:  # the first variant is the benchmark itself
        for name, count in ablation.items():
            for seed in range(count):
                out += [(policy, case_index(name), seed, variant) for policy in (SR_REQUEST, SR_MINUTE)]
    # Slow runs first (healthy Safe Rollout runs are the longest), so the pool ends evenly.
    return sorted(out, key=lambda j: (not j[0].startswith("Safe"), CASES[j[1]].kind != "healthy"))


# -- statistics and report ----------------------------------------------------------------------


def upper95(k: int, n: int) -> float:
    """Exact (Clopper-Pearson) two-sided 95% upper bound of a binomial proportion."""
    return float(binomtest(k, n).proportion_ci(0.95, method="exact").high) if n else 1.0


def lower95(k: int, n: int) -> float:
    return float(binomtest(k, n).proportion_ci(0.95, method="exact").low) if n else 0.0


def _case(run: Run) -> Case:
    return CASES[case_index(run.case)]


def _alarm(run: Run) -> bool:
    return run.outcome in ("rolled back", "stopped")


def _delay(run: Run) -> int | None:
    if run.detected_at is None or run.exposed_at is None:
        return None
    return run.detected_at - run.exposed_at


def _bad(runs: list[Run]) -> list[Run]:
    return [r for r in runs if _case(r).kind == "bad" and not _case(r).provisioning_fails]


def summary_table(runs: list[Run]) -> str:
    head = (
        "| policy | false alarms, healthy (rolled back or stopped) | 95% upper bound | within tolerance promoted "
        "| regressions missed (promoted) | minutes to detection after exposure, median | bad user requests "
        "per bad run (mean) | healthy 1,200 rpm: minutes from green ready to 100% (median) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for policy in POLICIES:
        mine = [r for r in runs if r.policy == policy]
        healthy = [r for r in mine if _case(r).kind == "healthy"]
        within = [r for r in mine if _case(r).kind == "within"]
        bad = _bad(mine)
        alarms = sum(_alarm(r) for r in healthy)
        promoted = sum(r.outcome == "promoted" for r in within)
        missed = sum(r.outcome == "promoted" for r in bad)
        delays = [d for r in bad if (d := _delay(r)) is not None]
        fast = [r.full_at - READY_AFTER for r in healthy if r.case == CASES[0].name and r.full_at is not None]
        rows.append(
            f"| {policy} | {alarms}/{len(healthy)} ({alarms / max(1, len(healthy)):.1%}) "
            f"| {upper95(alarms, len(healthy)):.2%} | {promoted}/{len(within)} ({promoted / max(1, len(within)):.0%}) "
            f"| {missed}/{len(bad)} | {median(delays) if delays else '-'} "
            f"| {mean(r.bad_user_requests for r in bad) if bad else 0:,.0f} "
            f"| {median(fast) if fast else '-'} |"
        )
    return "\n".join(rows)


def _cell(runs: list[Run], case: Case) -> str:
    outcomes: dict[str, int] = {}
    for r in runs:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    text = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
    if case.kind == "bad" and not case.provisioning_fails:
        delays = [d for r in runs if (d := _delay(r)) is not None]
        if delays:
            text += f"; detected after {median(delays):g} min"
        text += f"; {mean(r.bad_user_requests for r in runs):,.0f} bad req."
    elif case.kind != "bad":
        full = [r.full_at - READY_AFTER for r in runs if r.full_at is not None]
        if full:
            text += f"; 100% after {median(full):g} min"
    return text


def per_case_table(runs: list[Run]) -> str:
    lines = ["| scenario | seeds | " + " | ".join(POLICIES) + " |", "|---|---|" + "---|" * len(POLICIES)]
    for case in CASES:
        cells = []
        seeds = 0
        for policy in POLICIES:
            mine = [r for r in runs if r.case == case.name and r.policy == policy]
            seeds = len(mine)
            cells.append(_cell(mine, case) if mine else "-")
        lines.append(f"| {case.name} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "**short**"


def targets_table(runs: list[Run]) -> str:
    lines = ["| target | mode | measured | |", "|---|---|---|---|"]
    flagger_bad = _bad([r for r in runs if r.policy == FLAGGER_EQUAL])
    flagger_mean = mean(r.bad_user_requests for r in flagger_bad) if flagger_bad else 0.0
    for policy in (SR_REQUEST, SR_MINUTE):
        mode = "per request" if policy == SR_REQUEST else "per minute"
        mine = [r for r in runs if r.policy == policy]
        healthy = [r for r in mine if _case(r).kind == "healthy"]
        alarms = sum(_alarm(r) for r in healthy)
        bound = upper95(alarms, len(healthy))
        lines.append(
            f"| 95% upper bound of false rollbacks <= 1% | {mode} | {alarms} of {len(healthy)} healthy runs; "
            f"upper bound {bound:.2%} | {_met(bound <= 0.01)} |"
        )
        within = [r for r in mine if _case(r).kind == "within"]
        promoted = sum(r.outcome == "promoted" for r in within)
        share = promoted / max(1, len(within))
        detail = "; ".join(
            f"{c.name.split(': ')[1]}: {sum(r.outcome == 'promoted' for r in mine if r.case == c.name)}"
            f"/{sum(r.case == c.name for r in mine)}"
            for c in CASES
            if c.kind == "within"
        )
        lines.append(
            f"| within-tolerance changes promoted >= 95% | {mode} | {promoted} of {len(within)} ({share:.1%}; "
            f"95% lower bound {lower95(promoted, len(within)):.1%}): {detail} | {_met(share >= 0.95)} |"
        )
        must = ("latency 1.5x", "errors +1 point", "tail only (P99 3x)")
        missed = {n: sum(r.outcome == "promoted" for r in mine if r.case == n) for n in must}
        total = {n: sum(r.case == n for r in mine) for n in must}
        lines.append(
            "| zero missed regressions (1.5x latency, +1 point errors, tail-only P99 3x) | "
            f"{mode} | "
            + ", ".join(f"{n}: {missed[n]} of {total[n]}" for n in must)
            + f" | {_met(sum(missed.values()) == 0)} |"
        )
        for name in ("latency 2x", "errors +2 points"):
            delays = [d for r in mine if r.case == name and (d := _delay(r)) is not None]
            value = median(delays) if delays else math.inf
            lines.append(
                f"| median detection <= 5 min after first exposure: {name} | {mode} | "
                f"{value:g} min ({len(delays)} of {sum(r.case == name for r in mine)} detected) | {_met(value <= 5)} |"
            )
        bad = _bad(mine)
        ours = mean(r.bad_user_requests for r in bad) if bad else 0.0
        ratio = flagger_mean / ours if ours else math.inf
        lines.append(
            f"| >= 10x fewer bad user requests than Flagger at equal tolerances | {mode} | "
            f"{flagger_mean:,.0f} / {ours:,.0f} per bad run = {ratio:.1f}x | {_met(ratio >= 10)} |"
        )
        fast = [r.full_at - READY_AFTER for r in healthy if r.case == CASES[0].name and r.full_at is not None]
        value = median(fast) if fast else math.inf
        lines.append(
            f"| healthy rollout at 1,200 rpm reaches 100% in <= 30 min | {mode} | median {value:g} min from green "
            f"ready ({len(fast)} of {sum(r.case == CASES[0].name for r in healthy)} reached 100%) "
            f"| {_met(value <= 30)} |"
        )
    return "\n".join(lines)


COLORS = {
    SR_REQUEST: "#15803d",
    SR_MINUTE: "#4ade80",
    FLAGGER_EQUAL: "#1d4ed8",
    FLAGGER_DOCS: "#93c5fd",
    RSETHUR: "#f59e0b",
}


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bad_cases = [c for c in CASES if c.kind == "bad" and not c.provisioning_fails]
    fig, ax = plt.subplots(figsize=(13, 6))
    width = 0.8 / len(POLICIES)
    for i, policy in enumerate(POLICIES):
        values = []
        for c in bad_cases:
            mine = [r.bad_user_requests for r in runs if r.case == c.name and r.policy == policy]
            values.append(max(1.0, mean(mine)) if mine else 1.0)
        offsets = [x + (i - (len(POLICIES) - 1) / 2) * width for x in range(len(bad_cases))]
        ax.bar(offsets, values, width, label=policy, color=COLORS[policy])
    ax.set_yscale("log")
    ax.set_ylabel("users' requests answered by the bad green\n(mean per run over 240 min, log; 1 = none)")
    ax.set_xticks(range(len(bad_cases)))
    ax.set_xticklabels([c.name for c in bad_cases], rotation=30, ha="right", fontsize=8)
    ax.set_title("Users exposed to a bad model, per scenario and policy (lower is better)", pad=34)
    ax.legend(fontsize=8, ncol=len(POLICIES), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(runs: list[Run], seeds: dict[Kind, int], elapsed: float, total: int, cpu: float) -> str:
    th = thresholds()
    policy = RolloutPolicy()
    # The benchmark names the commit it measured (git on PATH; "unknown" outside a checkout).
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)  # noqa: S607
    core = f"the decision core at commit {commit.stdout.strip() or 'unknown'}"
    return (
        f"{len(CASES)} scenarios x {len(POLICIES)} policies; seeds per scenario: {seeds['healthy']} healthy, "
        f"{seeds['within']} within tolerance, {seeds['bad']} regressions; {len(runs)} runs of up to {HORIZON} "
        f"simulated minutes (plus {total - len(runs)} ablation runs below); {elapsed:.0f} s wall time for all "
        f"{total} on 2 workers ({cpu:.0f} s of CPU in the runs; the machine was shared with other work). Safe Rollout: "
        f"default policy (mirror {policy.mirror.percent if policy.mirror else 0}%, steps "
        f"{', '.join(str(s.percent) for s in policy.steps)}%, bake), {core}. Fixed thresholds: Flagger docs "
        f"P99 <= {th.flagger_p99_ms:.0f} ms (1.5x healthy P99); rsethur P90 <= {th.rsethur_p90_ms:.0f} ms "
        f"(1.2x healthy P90). Error codes (ours, and Flagger at our tolerances): {', '.join(th.error_codes)}.\n\n"
        f"{summary_table(runs)}\n\n"
        "### Against the targets (Safe Rollout)\n\n"
        f"{targets_table(runs)}\n\n"
        "### Per scenario\n\n"
        "Outcomes over the seeds; for regressions the median minutes from green's first traffic to the "
        "rollback (or stop) and the mean bad user requests per run; for healthy and within-tolerance "
        "runs the median minutes from green ready to 100%.\n\n"
        f"{per_case_table(runs)}\n"
    )


def _rollback_cause(run: Run) -> str:
    stage = run.reason.split(" failed:")[0] if " failed:" in run.reason else run.reason[:40]
    checks = sorted(set(re.findall(r"(?:failed: |; )([a-z_ ]+):", run.reason)))
    return f"{stage}: {', '.join(checks) or '?'}"


def causes_table(runs: list[Run]) -> str:
    """Why Safe Rollout rolled back runs it should have promoted (healthy and within tolerance)."""
    lines = ["| policy | scenario | stage: checks that proved green worse | runs |", "|---|---|---|---|"]
    for policy in (SR_REQUEST, SR_MINUTE):
        for case in CASES:
            if case.kind == "bad":
                continue
            causes: dict[str, int] = {}
            for r in runs:
                if r.policy == policy and r.case == case.name and r.outcome == "rolled back":
                    cause = _rollback_cause(r)
                    causes[cause] = causes.get(cause, 0) + 1
            for cause, n in sorted(causes.items(), key=lambda kv: -kv[1]):
                lines.append(f"| {policy} | {case.name} | {cause} | {n} |")
    return "\n".join(lines)


def ablation_report(done: list[Run], seeds: dict[str, int]) -> str:
    names = list(seeds)
    head = "| simulator | " + " | ".join(
        f"{p.removeprefix('Safe Rollout ')}: {n}" for p in (SR_REQUEST, SR_MINUTE) for n in names
    )
    lines = [head + " |", "|---|" + "---|" * (2 * len(names))]
    for variant in NOISE:
        key = "" if variant == next(iter(NOISE)) else variant
        cells = []
        for policy in (SR_REQUEST, SR_MINUTE):
            for name in names:
                mine = [
                    r for r in done if r.noise == key and r.policy == policy and r.case == name and r.seed < seeds[name]
                ]
                back = sum(r.outcome == "rolled back" for r in mine)
                promoted = sum(r.outcome == "promoted" for r in mine)
                cells.append(f"{back} rolled back, {promoted} promoted of {len(mine)}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return (
        "### Where Safe Rollout's false rollbacks come from\n\n"
        "Healthy and within-tolerance runs Safe Rollout rolled back, by the stage and the checks that "
        "proved green worse than its leave-alone margin:\n\n"
        f"{causes_table([r for r in done if not r.noise])}\n\n"
        "The same runs with one of the simulator's imperfections removed at a time (first seeds of each "
        "scenario; the first row is the benchmark's own runs on those seeds):\n\n" + "\n".join(lines) + "\n"
    )


README_START = "## 1. Detection"
README_END = "## 2. Scale"


def update_readme(path: Path, body: str) -> None:
    text = path.read_text()
    start, end = text.index(README_START), text.index(README_END)
    section = text[start:end]
    marker = "<!-- detection results -->"
    if marker in section:
        head, _, rest = section.partition(marker)
        _, _, tail = rest.partition("<!-- /detection results -->")
        section = f"{head}{marker}\n{body}\n<!-- /detection results -->{tail}"
        path.write_text(text[:start] + section + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seeds per scenario (smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results (--quick: print only)")
    parser.add_argument("--readme", type=Path, default=Path("bench/README.md"))
    args = parser.parse_args(argv)
    seeds = QUICK_SEEDS if args.quick else SEEDS
    began = time.monotonic()
    ablation = QUICK_ABLATION_SEEDS if args.quick else ABLATION_SEEDS
    todo = jobs(seeds, ablation)
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = []
        for run in pool.map(run_one, todo, chunksize=4):
            done.append(run)
            if len(done) % 1000 == 0:
                print(f"{len(done)} of {len(todo)} runs, {time.monotonic() - began:.0f} s", file=sys.stderr)
    elapsed = time.monotonic() - began
    runs = [r for r in done if not r.noise]
    cpu = sum(r.seconds for r in done)
    body = report(runs, seeds, elapsed, len(done), cpu) + "\n" + ablation_report(done, ablation)
    out = args.out or (None if args.quick else Path("bench/results"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "detection.md").write_text("# Detection benchmark\n\n" + body)
        chart(runs, out / "detection.png")
    if not args.quick:
        update_readme(args.readme, body)
    print(re.sub(r"\n{3,}", "\n\n", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
