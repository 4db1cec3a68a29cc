"""`safe-rollout validate`, `dryrun` and `report`: what a person sees, and the exit codes pipelines rely on."""

from __future__ import annotations

import logging
from pathlib import Path

from click.testing import CliRunner

from cli.main import app
from shared.rollout.model import RolloutPhase as P
from tests.cli.test_cli import in_canary, run

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


# -- validate --------------------------------------------------------------------------------------


def test_the_shipped_policy_file_is_valid():
    result = cli("validate", str(ROOT / "policy.yaml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{ROOT / 'policy.yaml'}: valid (1 target)")
    assert "fraud-model -> fraud-scorer" in result.stdout


def test_a_policy_with_notifications_is_described(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "targets:\n"
        "  - model: fraud-*\n"
        "    endpoint: fraud-scorer\n"
        "    notify:\n"
        "      teams: {url_setting: TEAMS_WEBHOOK_URL}\n"
        "      on: [ApprovalRequested, RolledBack]\n"
    )
    result = cli("validate", str(policy))
    assert result.exit_code == 0, result.output
    assert "notifies teams via app setting TEAMS_WEBHOOK_URL on ApprovalRequested, RolledBack" in result.stdout


def test_each_problem_is_one_line_naming_the_file_and_the_field(tmp_path):
    policy = tmp_path / "bad.yaml"
    policy.write_text(
        "defaults:\n"
        "  steps: [{percent: 150}]\n"
        "targets:\n"
        "  - model: fraud-model\n"
        "    endpoint: fraud-scorer\n"
        "    policy: {on_stage_timeout: explode}\n"
    )
    result = cli("validate", str(policy))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"{policy}: ") for line in lines), lines
    fields = [line.split(": ")[1] for line in lines]
    assert "defaults.steps[0].percent" in fields
    assert "targets[0].policy.on_stage_timeout" in fields
    assert "Traceback" not in result.output


def test_a_webhook_url_pasted_into_the_policy_file_is_refused_and_not_repeated(tmp_path):
    policy = tmp_path / "leaky.yaml"
    policy.write_text(
        "targets:\n"
        "  - model: fraud-model\n"
        "    endpoint: fraud-scorer\n"
        "    notify:\n"
        "      slack: {url_setting: 'https://hooks.slack.com/services/T0/B0/SECRET-TOKEN'}\n"
        "      on: [Paused, Exploded]\n"
    )
    result = cli("validate", str(policy))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{policy}: targets[0].notify.slack.url_setting: give the NAME of the app setting")
    assert lines[1].startswith(f"{policy}: targets[0].notify.on[1]: Input should be 'Started'")
    assert "SECRET-TOKEN" not in result.output


def test_unreadable_or_missing_files_exit_2_without_a_traceback(tmp_path):
    missing = cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert "not found" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("targets: [\n")
    result = cli("validate", str(broken))
    assert result.exit_code == 2
    assert "is not valid YAML at line" in result.stderr
    directory = cli("validate", str(tmp_path))
    assert directory.exit_code == 2
    assert "Traceback" not in directory.output


# -- dryrun ----------------------------------------------------------------------------------------


def test_dryrun_exit_codes_follow_the_expected_outcome(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("model: someone-elses-model\nminutes: 5\n")
    policy = str(ROOT / "policy.yaml")
    as_expected = cli("dryrun", policy, str(scenario), "--expect", "none")
    assert as_expected.exit_code == 0, as_expected.output
    assert as_expected.stdout.startswith("no rollout: no target in the policy file matches model someone-elses-model")
    other = cli("dryrun", policy, str(scenario), "--expect", "Succeeded")
    assert other.exit_code == 1
    assert "expected the rollout to end Succeeded, it ended none" in other.stderr
    assert cli("dryrun", policy, str(scenario), "--expect", "Sideways").exit_code == 2


def test_dryrun_runs_the_rollout_and_leaves_logging_as_it_was(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("minutes: 3\n")  # green is still being created after 3 minutes
    result = cli("dryrun", str(ROOT / "policy.yaml"), str(scenario), "--expect", "Pending")
    assert result.exit_code == 0, result.output
    assert "ended Pending after 3 simulated minutes" in result.stdout
    assert logging.root.manager.disable == logging.NOTSET


def test_dryrun_reports_bad_files_one_line_each(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("rpm: lots\nblue: {latency_ms: -1}\n")
    result = cli("dryrun", str(ROOT / "policy.yaml"), str(scenario))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{scenario}: ") for line in lines)


# -- report ----------------------------------------------------------------------------------------


def test_report_saves_the_apis_page_for_a_rollout(harness, tmp_path):
    rollout_id = in_canary(harness)
    out = tmp_path / "r.html"
    result = run(harness, "report", rollout_id, "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lstrip().lower().startswith("<!doctype html")
    assert rollout_id in page
    assert f"wrote {out}" in result.stdout
    by_model = run(harness, "report", "fraud-model:2", "-o", str(tmp_path))  # a directory: report.html in it
    assert by_model.exit_code == 0, by_model.output
    assert rollout_id in (tmp_path / "report.html").read_text()


def test_report_of_several_rollouts_writes_one_file_each(harness, tmp_path):
    first = in_canary(harness)
    assert run(harness, "rollback", first).exit_code == 0
    harness.until_traffic_lands()
    harness.tick_until(lambda: harness.phase().terminal)
    harness.register("3")
    harness.tick()
    second = harness.rollout("3").id
    result = run(harness, "report", first, "fraud-model:3", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert first in (tmp_path / f"{first}.html").read_text()
    assert second in (tmp_path / f"{second}.html").read_text()
    not_a_dir = run(harness, "report", first, second, "-o", str(tmp_path / "one.html"))
    assert not_a_dir.exit_code == 2
    assert "must be an existing directory" in not_a_dir.stderr
    assert harness.phase("3") != P.ROLLED_BACK


def test_report_exit_codes(harness, tmp_path):
    assert run(harness, "report", "r-00000000000000000000", "-o", str(tmp_path / "x.html")).exit_code == 1
    assert not (tmp_path / "x.html").exists()
    assert run(harness, "report", "nonsense", "-o", str(tmp_path / "x.html")).exit_code == 2
    assert run(harness, "report", "r-00000000000000000000").exit_code == 2  # -o is required
    nowhere = run(harness, "report", "r-00000000000000000000", "-o", str(tmp_path / "no" / "x.html"))
    assert nowhere.exit_code == 2
    assert "does not exist" in nowhere.stderr


def test_an_api_without_a_report_route_is_explained_with_exit_2(tmp_path):
    def old_api(method, path, params, body):
        return 404, {"detail": ""}  # the Functions host's answer for a route it does not have

    result = CliRunner().invoke(
        app, ["report", "r-00000000000000000000", "-o", str(tmp_path / "x.html")], obj={"transport": old_api}
    )
    assert result.exit_code == 2
    assert "this API serves no report" in result.stderr
