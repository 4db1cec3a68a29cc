"""A bad policy file is reported one line per problem: the file, the path of the field as people
write it (targets[1].policy.steps[0].percent), the problem; never pydantic's boilerplate, and a
mistake in `defaults` is reported against `defaults`, once."""

from __future__ import annotations

import pytest

from shared.targets import PolicyFileError, load_policy_file


def _problems(tmp_path, text: str) -> tuple[str, list[str]]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as raised:
        load_policy_file(path)
    message = str(raised.value)
    assert "validation error" not in message
    assert "errors.pydantic.dev" not in message
    assert "For further information" not in message
    header, *lines = message.splitlines()
    assert header.startswith(f"policy file {path} is invalid (")
    assert list(raised.value.problems) == lines
    return str(path), lines


TWO_TARGETS = """
targets:
  - {model: a, endpoint: ep-a}
  - {model: b, endpoint: ep-b, policy: {steps: [{percent: 150}]}}
"""


def test_a_policy_problem_names_file_and_path(tmp_path):
    path, lines = _problems(tmp_path, TWO_TARGETS)
    assert lines == [f"{path}: targets[1].policy.steps[0].percent: Input should be less than or equal to 99 (got 150)"]


def test_a_typo_in_defaults_is_reported_against_defaults_once(tmp_path):
    path, lines = _problems(tmp_path, "defaults: {mirror: {percnt: 20}}\n" + TWO_TARGETS.replace("150", "5"))
    assert lines == [
        f"{path}: defaults.mirror.percnt: unknown field 'percnt'; did you mean 'percent'? "
        "(known: approval, max_duration, min_duration, min_requests, percent)"
    ]


def test_a_bad_value_in_defaults_that_a_target_overrides_is_the_targets_when_it_is_its_own(tmp_path):
    text = """
defaults: {analysis: {interval: 0s}}
targets:
  - {model: a, endpoint: ep-a, policy: {on_stage_timeout: stop}}
"""
    path, lines = _problems(tmp_path, text)
    assert lines == [
        f"{path}: defaults.analysis.interval: a duration must be positive, got 0s",
        f"{path}: targets[0].policy.on_stage_timeout: Input should be 'pause' or 'rollback' (got 'stop')",
    ]


def test_whole_policy_problems_name_the_stage(tmp_path):
    text = """
defaults: {steps: [{percent: 50}, {percent: 10}]}
targets:
  - {model: a, endpoint: ep-a}
  - {model: b, endpoint: ep-b, policy: {steps: [{percent: 10, min_duration: 20m, max_duration: 15m}]}}
"""
    path, lines = _problems(tmp_path, text)
    assert lines == [
        f"{path}: defaults: canary steps must strictly increase, got [50, 10]",
        f"{path}: targets[1].policy: steps[0].max_duration (15m) must be at least its min_duration (20m)",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "targets: [{model: m, endpont: ep1}]",
            "targets[0].endpont: unknown field 'endpont'; did you mean 'endpoint'?",
        ),
        ("targets: [{model: m}]", "targets[0]: give either `endpoint` or `endpoint_tag`"),
        (
            "default: {}\ntargets: [{model: m, endpoint: ep1}]",
            "default: unknown field 'default'; did you mean 'defaults'?",
        ),
        ("targets: []", "targets: List should have at least 1 item"),
        ("- a list", "(top level): Input should be a valid dictionary"),
    ],
)
def test_file_and_target_problems(tmp_path, text, line):
    path, lines = _problems(tmp_path, text)
    assert any(entry.startswith(f"{path}: {line}") for entry in lines), lines


def test_yaml_errors_say_where(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("targets: [\n")
    with pytest.raises(PolicyFileError) as raised:
        load_policy_file(path)
    assert str(raised.value) == (
        f"policy file {path} is not valid YAML at line 2, column 1: expected the node content, but found '<stream end>'"
    )
