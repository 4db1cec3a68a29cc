"""The policy section's errors name the field; the state machine holds, passes and rolls back on
the comparison (pure core, decide())."""

from __future__ import annotations

import pytest

from emulator.predictor import Predictor
from shared.rollout.machine import decide
from shared.rollout.model import RolloutPhase
from shared.rollout.policy import RolloutPolicy
from shared.rollout.predictions import PredictionBatch
from shared.targets import PolicyFileError, load_policy_file
from tests.builders import T0, minutes, observe, started
from tests.predictions.helpers import pairs

P = RolloutPhase


@pytest.mark.parametrize(
    ("predictions", "field", "words"),
    [
        ({"inputs": {}, "prediction": "/label"}, "predictions.inputs", "give inputs"),
        ({"inputs": {"rows": [{"x": 1}]}, "prediction": "/label"}, "predictions.inputs.rows", "needs an `input`"),
        ({"inputs": {"rows": [{"input": 1}]}, "prediction": "label"}, "predictions.prediction", "JSON pointer"),
        ({"inputs": {"rows": [{"input": 1}]}, "prediction": "/l", "kind": "class"}, "predictions.kind", "label"),
        (
            {
                "inputs": {"rows": [{"input": 1}]},
                "prediction": "/l",
                "disagreement": {"max_increase": 0.02, "leave_alone": 0.05},
            },
            "predictions.disagreement",
            "leave_alone",
        ),
        (
            {"inputs": {"url": "ftp://x/y.csv"}, "prediction": "/l"},
            "predictions.inputs.url",
            "",
        ),
        (
            {"inputs": {"rows": [{"input": 1}]}, "prediction": "/l", "max_requests_per_stage": 10},
            "predictions",
            "min_pairs",
        ),
    ],
)
def test_a_bad_predictions_section_is_refused_naming_the_field(tmp_path, predictions, field, words):
    path = tmp_path / "policy.yaml"
    import yaml

    path.write_text(
        yaml.safe_dump({"defaults": {"predictions": predictions}, "targets": [{"model": "m", "endpoint": "ep-one"}]})
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(path)
    text = "\n".join(caught.value.problems)
    assert field in text, text
    assert words in text, text


def test_kpi_names_must_be_unique(tmp_path):
    kpi = {"name": "conv", "query": "T | take 1", "max_decrease": 0.01}
    with pytest.raises(ValueError, match="each name once"):
        RolloutPolicy.model_validate({"kpis": [kpi, kpi]})


def test_the_comparison_spends_the_false_rollback_budget():
    plain = RolloutPolicy()
    compared = RolloutPolicy.model_validate({"predictions": {"inputs": {"rows": [{"input": 1}]}, "prediction": "/l"}})
    assert compared.statistical_checks() == plain.statistical_checks() + 3  # disagreement, class shift, accuracy
    assert compared.check_alpha() < plain.check_alpha()


POLICY = RolloutPolicy.model_validate(
    {"predictions": {"inputs": {"rows": [{"input": 1}]}, "prediction": "/label", "before_mirror": True}}
)


def _batch(green: Predictor, n: int, at, start: int = 0) -> PredictionBatch:
    return PredictionBatch(at=at, pairs=tuple(pairs(green, n, seed=start)), next_cursor=start + n)


def test_before_the_mirror_green_gets_no_traffic_until_the_comparison_passes():
    rollout = started(POLICY)
    now = T0 + minutes(1)
    held = decide(rollout, POLICY, observe(rollout), now)
    assert held.rollout.phase == P.PENDING
    assert "comparing green's predictions" in held.reason
    assert not held.changes_traffic
    rollout = held.rollout
    for i in range(6):  # a minute's budget at a time
        now += minutes(1)
        d = decide(rollout, POLICY, observe(rollout, predictions=_batch(Predictor(), 60, now, start=60 * i)), now)
        rollout = d.rollout
        if rollout.phase != P.PENDING:
            break
    assert rollout.phase == P.MIRRORING, d.reason
    assert rollout.predictions is not None
    assert rollout.predictions.pairs >= 100  # never passed below min_pairs


def test_before_the_mirror_a_proven_disagreement_fails_the_rollout_with_no_traffic():
    rollout = started(POLICY)
    now = T0 + minutes(2)
    d = decide(rollout, POLICY, observe(rollout, predictions=_batch(Predictor(disagree=0.3), 60, now)), now)
    assert d.rollout.phase in (P.FAILED, P.ROLLING_BACK)
    assert "prediction comparison at 0% failed" in d.reason
    assert any(e.check == "predictions" and e.verdict == "Fail" for e in d.evidence)


def test_before_the_mirror_scoring_that_keeps_failing_fails_before_traffic_after_the_mirror_max_duration():
    rollout = started(POLICY)
    now = T0 + minutes(1)
    limit = POLICY.mirror.max_duration
    start = now
    while now - start <= limit:  # every tick: the inputs cannot be scored
        d = decide(rollout, POLICY, observe(rollout, predictions_error="HTTP 503 from the scoring URI"), now)
        assert d.rollout.phase == P.PENDING, d.reason
        assert not d.changes_traffic
        rollout = d.rollout
        now += minutes(5)
    d = decide(rollout, POLICY, observe(rollout, predictions_error="HTTP 503 from the scoring URI"), now)
    assert d.rollout.phase in (P.FAILED, P.ROLLING_BACK), d.reason
    assert P.FAILED in (d.rollout.finish_as, d.rollout.phase)
    assert "cannot pass" in d.reason, d.reason
    assert "no pass within 1h" in d.reason, d.reason
    assert "green served no user" in d.reason
    assert d.rollout.desired.live_of(rollout.green) == 0
    assert not d.rollout.desired.mirror_of(rollout.green)


def test_before_the_mirror_an_exhausted_sample_without_a_pass_fails_before_traffic():
    rollout = started(POLICY)
    now = T0 + minutes(1)
    batch = PredictionBatch(at=now, pairs=tuple(pairs(Predictor(), 1)), next_cursor=1, exhausted=True)
    d = decide(rollout, POLICY, observe(rollout, predictions=batch), now)
    assert d.rollout.phase in (P.FAILED, P.ROLLING_BACK), d.reason
    assert "the sample is exhausted after 1 inputs without a pass" in d.reason
    assert not d.changes_traffic or d.rollout.desired.live_of(rollout.green) == 0


def test_before_the_mirror_a_spent_budget_without_a_pass_fails_before_traffic():
    policy = RolloutPolicy.model_validate(
        {
            "predictions": {
                "inputs": {"rows": [{"input": 1}]},
                "prediction": "/label",
                "before_mirror": True,
                "min_pairs": 100,
                "max_requests_per_stage": 100,
            }
        }
    )
    rollout = started(policy)
    now = T0 + minutes(1)
    batch = PredictionBatch(at=now, pairs=tuple(pairs(Predictor(disagree=0.02), 100)), next_cursor=100)
    d = decide(rollout, policy, observe(rollout, predictions=batch), now)
    assert d.rollout.phase in (P.FAILED, P.ROLLING_BACK), d.reason
    assert "budget of 100 inputs is spent without a pass" in d.reason, d.reason
