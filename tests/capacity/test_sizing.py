"""Green's size per stage (pure): proportional to its share with a floor, rounded up, bounded by
blue's count and the autoscale limits; absolute per stage; policy errors name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.rollout.capacity_policy import CapacityPolicy
from shared.rollout.model import RolloutPhase
from shared.rollout.policy import RolloutPolicy
from shared.rollout.sizing import green_size
from shared.targets import PolicyFile

P = RolloutPhase


def _policy(**capacity: object) -> RolloutPolicy:
    return RolloutPolicy.model_validate(
        {
            "mirror": {"percent": 20},
            "steps": [{"percent": 10}, {"percent": 15}, {"percent": 50}],
            "capacity": capacity,
        }
    )


def _sizes(policy: RolloutPolicy, blue: int, autoscale: tuple[int, int] | None = None) -> list[int]:
    assert policy.capacity is not None
    stages = [(P.MIRRORING, -1), (P.CANARY, 0), (P.CANARY, 1), (P.CANARY, 2), (P.BAKING, -1)]
    return [green_size(policy.capacity, policy, ph, st, blue, autoscale) for ph, st in stages]


def test_proportional_sizes_round_up_to_whole_instances():
    # 10 instances: 20% -> 2, 10% -> exactly 1 (never 1.0000001 rounded to 2), 15% -> 1.5 -> 2, 50% -> 5, 100% -> 10
    assert _sizes(_policy(), 10) == [2, 1, 2, 5, 10]
    # 8 GPU instances (the example): 20% mirror -> 1.6 -> 2 instead of 8
    assert _sizes(_policy(), 8) == [2, 1, 2, 4, 8]
    assert _sizes(_policy(), 3) == [1, 1, 1, 2, 3]


def test_the_floor_and_blues_count_bound_the_size():
    assert _sizes(_policy(min_instances=3), 10) == [3, 3, 3, 5, 10]
    # never more than blue has, even with a floor above it
    assert _sizes(_policy(min_instances=4), 2) == [2, 2, 2, 2, 2]


def test_autoscale_limits_bound_the_size():
    assert _sizes(_policy(), 10, autoscale=(2, 6)) == [2, 2, 2, 5, 6]


def test_absolute_sizes_per_stage():
    policy = _policy(sizing="absolute", sizes={"mirror": 1, "steps": [1, 3, 20], "bake": None})
    assert _sizes(policy, 10) == [1, 1, 3, 10, 10]  # 20 is bounded by blue's 10; bake null: blue's count


def test_sizing_is_off_without_a_capacity_section():
    assert RolloutPolicy().capacity is None
    assert RolloutPolicy().cost is None


@pytest.mark.parametrize(
    ("capacity", "field", "words"),
    [
        ({"sizing": "absolute"}, "capacity", "needs the instance count per stage"),
        ({"sizing": "absolute", "sizes": {"steps": [1]}}, "", "capacity.sizes.steps gives 1 instance counts for 3"),
        ({"min_instances": 0}, "capacity.min_instances", "greater than or equal to 1"),
        ({"check": {"max_increase": 0.2, "leave_alone": 0.3}}, "capacity.check", "leave_alone (0.3) must be smaller"),
        ({"scale_timeout": "0s"}, "capacity.scale_timeout", "positive"),
    ],
)
def test_policy_errors_name_the_field(capacity, field, words):
    with pytest.raises(ValidationError) as info:
        _policy(**capacity)
    text = str(info.value)
    assert words in text
    assert field in text


def test_a_policy_file_names_the_bad_capacity_field():
    with pytest.raises(ValidationError) as info:
        PolicyFile.model_validate(
            {"defaults": {"capacity": {"old_blue_instances": "two"}}, "targets": [{"model": "m", "endpoint": "ep1"}]}
        )
    assert "capacity.old_blue_instances" in str(info.value)


def test_capacity_policy_defaults():
    cap = CapacityPolicy()
    assert (cap.sizing, cap.min_instances, cap.old_blue_instances) == ("proportional", 1, 1)
