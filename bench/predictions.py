"""Prediction bugs in the shadow: how fast the comparison catches them, what it costs, and whether
it leaves a harmless retrain alone.

Each run is one mirror stage: every simulated minute the shell's budget of inputs (60 a minute by
default, each scored by blue AND green) is drawn from a fresh stream of inputs, both deployments
answer with the emulator's model versions (emulator/predictor.py: a hash of the input decides the
base label and score, so answers are paired exactly as on a real endpoint), and the real core
(`predictions.fold` / `judge`, with the default policy's false-rollback budget split as
`RolloutPolicy.check_alpha` splits it) decides. A run ends at the first Fail (rolled back), at a
Pass of every check once `min_pairs` are in (the mirror may pass), or when the stage's budget of
inputs is spent (held: never passed).

Baseline, at the same margins and level: a repeated fixed-sample one-sided z-test of the
disagreement rate against `leave_alone`, looked at every minute (what a dashboard threshold with a
"significant" flag does). Looking every minute spends its level again at every look (Armitage,
McPherson, Rowe 1969, "Repeated significance tests on accumulating data", JRSS A 132(2)); the
confidence sequences do not.

`python -m bench.predictions [--seeds N] [--quick]`: prints the table and writes
bench/results/predictions.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scipy import stats

from emulator.predictor import Predictor, sample_inputs
from shared.rollout.analysis import Budget, Verdict, overall
from shared.rollout.policy import RolloutPolicy
from shared.rollout.prediction_policy import PredictionCheck
from shared.rollout.predictions import PredictionBatch, fold, judge, pair_from_answers

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RESULTS = Path(__file__).resolve().parent / "results" / "predictions.md"


@dataclass(frozen=True)
class Case:
    name: str
    green: Predictor
    harmful: bool


CASES = (
    Case("label swap (review <-> fraud)", Predictor(swap=("review", "fraud")), True),
    Case("score shift +0.1", Predictor(score_shift=0.1), True),
    Case("15% disagreement", Predictor(disagree=0.15), True),
    Case("5% disagreement", Predictor(disagree=0.05), True),
    Case("harmless retrain (1% of labels)", Predictor(disagree=0.01), False),
    Case("identical model", Predictor(), False),
)


def policy() -> RolloutPolicy:
    return RolloutPolicy.model_validate(
        {
            "predictions": {
                "inputs": {"rows": [{"input": {}}]},
                "prediction": "/label",
                "score": "/score",
                "score_shift": {"max_increase": 0.05},
            }
        }
    )


@dataclass
class Outcome:
    verdict: str  # rolled back | passed | held
    minutes: int
    inputs: int
    failing: str = ""
    baseline_minute: int | None = None  # when the peeking z-test would have rolled back


def _z_rollback(disagree: int, n: int, leave: float, alpha: float) -> bool:
    if n == 0:
        return False
    rate = disagree / n
    z = (rate - leave) / math.sqrt(leave * (1 - leave) / n)
    return bool(z > stats.norm.ppf(1 - alpha))


def run_once(case: Case, seed: int, check: PredictionCheck, budget: Budget) -> Outcome:
    blue = Predictor()
    green = Predictor(
        disagree=case.green.disagree, score_shift=case.green.score_shift, swap=case.green.swap, salt=f"seed{seed}"
    )
    per_minute = check.max_requests_per_minute
    stream = sample_inputs(check.max_requests_per_stage, seed=1000 + seed)
    tally = None
    baseline_minute: int | None = None
    minute = 0
    for minute, start in enumerate(range(0, len(stream), per_minute), start=1):
        bodies = stream[start : start + per_minute]
        pairs = tuple(pair_from_answers(check, blue.predict(b), green.predict(b)) for b in bodies)
        tally = fold(
            tally,
            check,
            PredictionBatch(at=T0 + timedelta(minutes=minute), pairs=pairs, next_cursor=start + len(bodies)),
        )
        if baseline_minute is None and _z_rollback(
            tally.disagree, tally.pairs, check.disagreement.leave_alone_margin, budget.alpha
        ):
            baseline_minute = minute
        results = judge(check, tally, budget)
        verdict = overall(results)
        if verdict == Verdict.FAIL:
            failing = ", ".join(r.check for r in results if r.verdict == Verdict.FAIL)
            return Outcome("rolled back", minute, tally.scored, failing, baseline_minute)
        if verdict == Verdict.PASS:
            return Outcome("passed", minute, tally.scored, "", baseline_minute)
    return Outcome("held", minute, tally.scored if tally else 0, "", baseline_minute)


def _upper95(k: int, n: int) -> float:
    """Clopper-Pearson 95% upper bound of a proportion."""
    return 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10 seeds, printed only")
    args = parser.parse_args(argv)
    seeds = 10 if args.quick else args.seeds
    pol = policy()
    check = pol.predictions
    assert check is not None
    budget = Budget(alpha=pol.check_alpha(), beta=pol.analysis.missed_regression_rate)
    began = time.monotonic()
    lines = [
        f"Prediction comparison in the shadow: {seeds} seeds per harmful case, at least 500 per harmless one; "
        f"budget {check.max_requests_per_minute} inputs/min (x2 requests), "
        f"at most {check.max_requests_per_stage} per stage; default margins "
        f"(disagreement {check.disagreement.max_increase:g}/{check.disagreement.leave_alone_margin:g}, class shift "
        f"{check.class_shift.max_increase:g}, score shift 0.05, KS {check.ks.max_increase:g}); rollback level per "
        f"check {budget.alpha:.2g}.",
        "",
        "| case | rolled back | passed | held | median minutes to decide | median inputs scored (requests = 2x) "
        "| checks that failed | peeking z-test rolled back (median minute) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        # Harmless cases: at least 500 runs, so that no false rollback bounds the rate below 1%.
        n = seeds if case.harmful or args.quick else max(seeds, 500)
        outcomes = [run_once(case, seed, check, budget) for seed in range(n)]
        back = [o for o in outcomes if o.verdict == "rolled back"]
        passed = [o for o in outcomes if o.verdict == "passed"]
        held = [o for o in outcomes if o.verdict == "held"]
        decided = back if case.harmful else passed
        minutes = statistics.median(o.minutes for o in decided) if decided else float("nan")
        inputs = statistics.median(o.inputs for o in decided) if decided else float("nan")
        failing = sorted({c for o in back for c in o.failing.split(", ") if c})
        z = [o.baseline_minute for o in outcomes if o.baseline_minute is not None]
        z_text = f"{len(z)}/{n}" + (f" ({statistics.median(z):g})" if z else "")
        back_text = f"{len(back)}/{n}"
        if not case.harmful:
            back_text += f" (95% upper bound {_upper95(len(back), n):.1%})"
        lines.append(
            f"| {case.name} | {back_text} | {len(passed)}/{n} | {len(held)}/{n} | {minutes:g} | {inputs:g} "
            f"| {', '.join(failing) or '-'} | {z_text} |"
        )
    lines += ["", f"{time.monotonic() - began:.0f} s wall time."]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        RESULTS.write_text("# Prediction comparison benchmark (`python -m bench.predictions`)\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
