"""The smoke test in the pure core: it runs once, before the comparison at 0%, and its pass is
kept; a test that cannot run holds with the reason and fails before traffic after its own time."""

from __future__ import annotations

from shared.rollout.machine import decide
from shared.rollout.model import RolloutPhase as P
from shared.rollout.observation import SmokeResult
from shared.rollout.policy import RolloutPolicy
from tests.builders import T0, minutes, observe, started

POLICY = RolloutPolicy.model_validate(
    {
        "provisioning_timeout": "30m",
        "mirror": {"min_duration": "5m", "max_duration": "60m"},
        "smoke_test": {"requests": [{"data": [1]}]},
        "predictions": {
            "inputs": {"rows": [{"input": 1}]},
            "prediction": "/label",
            "before_mirror": True,
            "max_requests_per_minute": 3,
        },
    }
)


def test_a_smoke_pass_is_kept_while_the_comparison_at_0_percent_runs():
    rollout = started(POLICY)
    passed = decide(rollout, POLICY, observe(rollout, smoke=SmokeResult(sent=1, failed=0)), T0 + minutes(11))
    assert passed.rollout.phase == P.PENDING  # the comparison at 0% has not run yet
    assert passed.rollout.smoke_passed is True
    # 40 minutes on, the smoke test has an error (a 429 reading the key): it is not asked again
    later = decide(
        passed.rollout, POLICY, observe(passed.rollout, smoke_error="HTTP 429 (throttled)"), T0 + minutes(51)
    )
    assert later.rollout.phase == P.PENDING
    assert "smoke" not in later.reason


def test_a_smoke_test_that_cannot_run_holds_then_fails_after_its_own_time():
    rollout = started(POLICY)
    reason = "cannot reach the scoring URI https://ep.eastus.inference.ml.azure.com/score: refused"
    first = decide(rollout, POLICY, observe(rollout, smoke_error=reason), T0 + minutes(25))  # green took 25 min
    assert first.rollout.phase == P.PENDING
    assert first.reason.startswith("the smoke test of green fraud-model-v2 cannot run yet: cannot reach")
    assert first.rollout.smoke_since == T0 + minutes(25)
    held = decide(first.rollout, POLICY, observe(first.rollout, smoke_error=reason), T0 + minutes(50))
    assert held.rollout.phase == P.PENDING  # 25 minutes of trying: still within its 30
    failed = decide(held.rollout, POLICY, observe(held.rollout, smoke_error=reason), T0 + minutes(56))
    assert failed.rollout.phase in (P.FAILED, P.ROLLING_BACK)
    assert "the smoke test of green fraud-model-v2 could not run for 30m: cannot reach" in failed.reason
    assert failed.rollout.desired.live == {"blue": 100}  # no traffic ever moved
