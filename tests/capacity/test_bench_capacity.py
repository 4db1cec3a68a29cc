"""bench/capacity.py's report (the runs themselves are the e2e tests' machinery, too slow here)."""

from __future__ import annotations

from bench.capacity import SCENARIOS, Run, report
from shared.rollout.model import RolloutPhase


def test_the_report_compares_the_same_scenarios_with_and_without_sizing():
    scenario = next(iter(SCENARIOS))
    runs = [
        Run(scenario, False, 0, RolloutPhase.SUCCEEDED, 80, 20.0, 61.2),
        Run(scenario, True, 0, RolloutPhase.SUCCEEDED, 100, 8.0, 24.48),
    ]
    text = report(runs, 1.0)
    assert f"| {scenario} | copy of blue | Succeeded | 1 | 20.0 | 61.20 | 80 |" in text
    assert f"| {scenario} | sized to its share | Succeeded | 1 | 8.0 | 24.48 | 100 |" in text
    assert "8.0 extra instance-hours sized vs 20.0 as a copy of blue (60% fewer)" in text
