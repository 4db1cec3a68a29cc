"""The policy dry-run refuses a bad scenario or policy file before running anything: one line per
problem naming the file and the field, no traceback, exit code 2; `--expect` turns the outcome
into the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo import dryrun
from demo.dryrun import main
from shared.rollout.model import RolloutPhase

ROOT = Path(__file__).resolve().parents[2]
SLOW = ROOT / "demo/scenarios/slow-after-30-minutes.yaml"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("scenario", "field", "problem"),
    [
        ("green: {latency_ms: slow}", "green.latency_ms", "valid number (got 'slow')"),
        ("green: {latency_ms: 80}\nrpn: 600", "rpn", "unknown field 'rpn'; did you mean 'rpm'?"),
        ("blue: {latncy_ms: 80}", "blue.latncy_ms", "did you mean 'latency_ms'?"),
        ("green: {changes: [[30, {latency_ms: 200, eror_rate: 0.1}]]}", "green.changes[0][1].eror_rate", "unknown"),
        ("green: {changes: [30]}", "green.changes[0]", "valid"),
        ("green: {error_rate: 2}", "green.error_rate", "less than or equal to 1"),
        ("green: {smoke_fails: 1}", "green.smoke_fails", "valid boolean"),
        ("minutes: 2.5", "minutes", "valid integer"),
        ("green: [1, 2]", "green", "dictionary"),
        ("- just a list", "(top level)", "dictionary"),
    ],
)
def test_a_bad_scenario_is_refused_naming_file_and_field(capsys, tmp_path, scenario, field, problem):
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario + "\n")
    code, out, err = _run(capsys, "--policy", str(ROOT / "policy.yaml"), "--scenario", str(path))
    assert code == 2
    assert out == ""  # nothing ran: no "ended Mirroring ..."
    line = next(line for line in err.splitlines() if f": {field}: " in line)
    assert line.startswith(f"{path}: {field}: ")
    assert problem in line
    assert "Traceback" not in err


def test_a_scenario_that_is_not_yaml_or_not_there_is_refused(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("green: {latency_ms: [\n")
    code, _, err = _run(capsys, "--scenario", str(bad))
    assert code == 2
    assert err.startswith(f"{bad}: not valid YAML: line ")
    code, _, err = _run(capsys, "--scenario", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml: cannot read the scenario file" in err


POLICY = """
defaults:
  mirror: {percnt: 20}
targets:
  - model: fraud-model
    endpoint: fraud-scorer
  - model: other
    endpoint: other-scorer
    policy: {steps: [{percent: 150}, {percent: "x"}]}
"""


def test_policy_problems_are_one_line_each_naming_file_and_path(capsys, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    code, out, err = _run(capsys, "--policy", str(policy), "--scenario", str(SLOW))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{policy}: defaults.mirror.percnt: unknown field 'percnt'; did you mean 'percent'? "
        "(known: approval, max_duration, min_duration, min_requests, percent)",
        f"{policy}: targets[1].policy.steps[0].percent: Input should be less than or equal to 99 (got 150)",
        f"{policy}: targets[1].policy.steps[1].percent: Input should be a valid integer (got 'x')",
    ]
    assert "validation error" not in err
    assert "errors.pydantic.dev" not in err
    assert "Traceback" not in err


def test_the_expected_outcome_sets_the_exit_code(capsys, monkeypatch):
    code, out, err = _run(capsys, "--scenario", str(SLOW), "--expect", "Succeeded")
    assert code == 1
    assert out.splitlines()[-1].startswith("ended RolledBack")
    assert "expected the rollout to end Succeeded, it ended RolledBack" in err
    # The same run, expected right (without simulating it again).
    monkeypatch.setattr(dryrun, "simulate", lambda *_: dryrun.DryRun(out.splitlines(), RolloutPhase.ROLLED_BACK))
    assert _run(capsys, "--scenario", str(SLOW), "--expect", "RolledBack")[0] == 0


def test_no_rollout_can_be_expected(capsys, tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("model: someone-elses-model\nminutes: 5\n")
    assert _run(capsys, "--scenario", str(scenario), "--expect", "none")[0] == 0
    assert _run(capsys, "--scenario", str(scenario), "--expect", "Succeeded")[0] == 1


def test_an_unknown_expected_phase_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--scenario", str(SLOW), "--expect", "Done"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("path", sorted((ROOT / "demo/scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_scenarios_are_valid(path):
    dryrun.load_scenario(path)
