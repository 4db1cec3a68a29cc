"""Pairs as the shell would hand them to the core, drawn from the emulator's model versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from emulator.predictor import Predictor, sample_inputs, true_label
from shared.rollout.analysis import Budget
from shared.rollout.prediction_policy import PredictionCheck
from shared.rollout.predictions import PredictionBatch, ScoredPair, fold, judge, pair_from_answers
from shared.rollout.tally import PredictionTally

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BUDGET = Budget(alpha=0.01 / 20, beta=0.05)  # the default policy's split: ~5 checks x 4 stages


def check(**kw) -> PredictionCheck:
    base = {"inputs": {"rows": [{"input": {"x": 1}}]}, "prediction": "/label"}
    return PredictionCheck.model_validate(base | kw)


def pairs(
    green: Predictor,
    n: int,
    *,
    seed: int = 0,
    blue: Predictor | None = None,
    labels: bool = False,
    kind_check: PredictionCheck | None = None,
) -> list[ScoredPair]:
    c = kind_check or check()
    blue = blue or Predictor()
    out = []
    for body in sample_inputs(n, seed=seed):
        out.append(
            pair_from_answers(c, blue.predict(body), green.predict(body), expected=true_label(body) if labels else None)
        )
    return out


def run(c: PredictionCheck, all_pairs: list[ScoredPair], per_tick: int = 60):
    """Feed the pairs a minute's budget at a time; returns (tick of the first Fail/Pass or None, results, tally)."""
    tally: PredictionTally | None = None
    results = ()
    for tick, start in enumerate(range(0, len(all_pairs), per_tick), start=1):
        batch = PredictionBatch(
            at=T0 + timedelta(minutes=tick),
            pairs=tuple(all_pairs[start : start + per_tick]),
            next_cursor=start + per_tick,
        )
        tally = fold(tally, c, batch)
        results = judge(c, tally, BUDGET)
        verdicts = {r.verdict for r in results if r.required}
        if "Fail" in verdicts or verdicts == {"Pass"}:
            return tick, results, tally
    return None, results, tally
