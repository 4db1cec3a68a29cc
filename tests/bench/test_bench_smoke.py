"""The benchmark's three policies behave as documented on one seed (keeps bench/ from rotting;
the numbers themselves come from `make bench`, not from tests)."""

from __future__ import annotations

import pytest

from bench.detection import CASES, POLICIES, healthy_p99, run_one

THRESHOLD = 1.5 * healthy_p99()


def case(name: str) -> int:
    return next(i for i, c in enumerate(CASES) if c.name == name)


@pytest.mark.parametrize(
    ("policy", "scenario", "outcome"),
    [
        ("Safe Rollout", "healthy, high traffic", "promoted"),
        ("Safe Rollout", "latency 2x", "rolled back"),
        ("Safe Rollout", "tail only (P99 3x)", "rolled back"),
        ("Flagger-style", "healthy, high traffic", "promoted"),
        ("Flagger-style", "latency 2x", "rolled back"),
        ("Azure ML pipeline-style", "errors +2 points", "stopped"),
        ("Azure ML pipeline-style", "provisioning fails", "failed"),
    ],
)
def test_each_policy_does_what_its_documentation_says(policy, scenario, outcome):
    run = run_one((policy, case(scenario), 0, THRESHOLD))
    assert run.outcome == outcome, run


def test_mirroring_keeps_users_away_from_a_slow_green():
    ours = run_one(("Safe Rollout", case("latency 2x"), 0, THRESHOLD))
    flagger = run_one(("Flagger-style", case("latency 2x"), 0, THRESHOLD))
    assert ours.bad_user_requests == 0
    assert flagger.bad_user_requests > 0
    assert set(POLICIES) == {"Safe Rollout", "Flagger-style", "Azure ML pipeline-style"}
