"""Policy dry-run: a policy file against a scenario file tells what would happen, and when."""

from __future__ import annotations

from pathlib import Path

from demo.dryrun import dry_run

ROOT = Path(__file__).resolve().parents[2]


def test_a_regression_that_starts_later_is_caught_at_the_step_it_shows_in():
    lines = dry_run(ROOT / "policy.yaml", ROOT / "demo/scenarios/slow-after-30-minutes.yaml")
    assert lines[-1].startswith("ended RolledBack")
    rollback = next(line for line in lines if "RollingBack" in line)
    # The slowdown shows first in the P99 or the P90, whichever bound is proven first.
    assert "failed: latency" in rollback or "failed: tail" in rollback


def test_low_traffic_holds_and_then_pauses_as_the_policy_says():
    lines = dry_run(ROOT / "policy.yaml", ROOT / "demo/scenarios/low-traffic.yaml")
    assert any("Paused" in line and "reached no verdict" in line for line in lines), lines
    assert not any("passed" in line for line in lines)


def test_a_model_no_target_matches_is_reported(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("model: someone-elses-model\nminutes: 5\n")
    (line,) = dry_run(ROOT / "policy.yaml", scenario)
    assert line.startswith("no rollout: no target in the policy file matches model someone-elses-model")
