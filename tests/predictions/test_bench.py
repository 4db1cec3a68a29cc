"""bench/predictions.py on single runs (keeps it from rotting; the numbers come from `make bench`)."""

from __future__ import annotations

from bench.predictions import CASES, policy, run_once
from shared.rollout.analysis import Budget


def test_single_runs_decide_as_the_cases_say():
    pol = policy()
    check = pol.predictions
    budget = Budget(alpha=pol.check_alpha(), beta=pol.analysis.missed_regression_rate)
    by_name = {c.name: c for c in CASES}
    swap = run_once(by_name["label swap (review <-> fraud)"], 0, check, budget)
    assert swap.verdict == "rolled back"
    assert swap.inputs <= 120
    harmless = run_once(by_name["harmless retrain (1% of labels)"], 0, check, budget)
    assert harmless.verdict == "passed"
    assert harmless.inputs <= check.max_requests_per_stage
