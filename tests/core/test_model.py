"""TrafficSplit holds only what Azure accepts; names and policies validate with clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from shared.rollout.machine import green_name_for, rollout_id_for
from shared.rollout.model import EndpointRef, ModelRef, TrafficSplit, WorkspaceRef, is_valid_resource_name
from shared.rollout.policy import CanaryStep, RolloutPolicy
from tests.builders import ENDPOINT, WORKSPACE


@pytest.mark.parametrize(
    ("live", "mirror", "message"),
    [
        ({"blue": 90}, {}, "sum to 0 or 100"),
        ({"blue": 60, "green": 60}, {}, "sum to 0 or 100"),
        ({"blue": 100}, {"green": 51}, "at most 50%"),
        ({"blue": 100}, {"green": 10, "red": 10}, "one deployment"),
        ({"blue": 90, "green": 10}, {"green": 10}, "live or mirrored"),
        ({"blue": 101}, {}, "0..100"),
        ({"blue": -1, "green": 101}, {}, "0..100"),
        ({"blue": 50.5, "green": 49.5}, {}, "whole number"),
        ({"blue": True}, {}, "whole number"),
    ],
)
def test_split_refuses_what_azure_refuses(live, mirror, message):
    with pytest.raises(ValidationError, match=message):
        TrafficSplit(live=live, mirror=mirror)


@pytest.mark.parametrize(
    ("live", "mirror"),
    [
        ({}, {}),
        ({"blue": 100}, {}),
        ({"blue": 100}, {"green": 50}),
        ({"blue": 90, "green": 10}, {}),
        ({"green": 100, "blue": 0}, {}),
    ],
)
def test_split_accepts_what_azure_accepts(live, mirror):
    TrafficSplit(live=live, mirror=mirror)


def test_split_compares_like_azure_holds_it():
    # azure-ai-ml lower-cases names and drops zero entries before the PUT.
    assert TrafficSplit(live={"Blue": 100, "green": 0}) == TrafficSplit(live={"blue": 100})
    assert TrafficSplit(live={"blue": 100}, mirror={"green": 0}) == TrafficSplit(live={"blue": 100})


def test_split_describes_itself_for_people():
    split = TrafficSplit(live={"blue": 100}, mirror={"green": 20})
    assert split.describe() == "live: blue 100%; mirror: green 20%"


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("fraud-model", "2"),
        ("A_very_long_model_name_that_goes_on_and_on", "1234567"),
        ("123model", "1"),
        ("__", "x"),
        ("model", "v1.2.3-rc.1+build"),
    ],
)
def test_green_names_are_valid_azure_names(name, version):
    green = green_name_for(ModelRef(name=name, version=version), existing=[])
    assert is_valid_resource_name(green), green


def test_green_name_avoids_existing_deployments():
    model = ModelRef(name="fraud", version="2")
    first = green_name_for(model, existing=[])
    second = green_name_for(model, existing=[first.upper()])
    assert second != first.lower()
    assert is_valid_resource_name(second)


def test_rollout_id_is_stable_and_case_insensitive_on_endpoint():
    upper = EndpointRef(
        workspace=WorkspaceRef(
            subscription_id=WORKSPACE.subscription_id.upper(), resource_group="RG-ML", workspace="WS1"
        ),
        name=ENDPOINT.name,
    )
    model = ModelRef(name="fraud", version="2")
    assert rollout_id_for(ENDPOINT, model) == rollout_id_for(upper, model)
    assert rollout_id_for(ENDPOINT, model) != rollout_id_for(ENDPOINT, ModelRef(name="fraud", version="3"))


def test_workspace_id_parses_and_rejects_with_a_clear_message():
    ws = WorkspaceRef.parse(WORKSPACE.arm_id.lower())
    assert ws.workspace == "ws1"
    with pytest.raises(ValueError, match="expected an Azure ML workspace id"):
        WorkspaceRef.parse("/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z")


def test_policy_reads_short_durations_and_rejects_bad_steps():
    policy = RolloutPolicy.model_validate({"mirror": {"min_duration": "5m", "max_duration": "1h"}})
    assert policy.mirror is not None
    assert policy.mirror.min_duration == timedelta(minutes=5)
    assert policy.model_dump(mode="json")["mirror"]["max_duration"] == "1h"
    with pytest.raises(ValidationError, match="strictly increase"):
        RolloutPolicy(steps=(CanaryStep(percent=50), CanaryStep(percent=10)))
    with pytest.raises(ValidationError, match="less than or equal to 99"):
        RolloutPolicy.model_validate({"steps": [{"percent": 100}]})
    with pytest.raises(ValidationError, match=r"mirror\.percent"):
        RolloutPolicy.model_validate({"mirror": {"percent": 60}})


def test_policy_round_trips_through_json():
    policy = RolloutPolicy.model_validate({"steps": [{"percent": 5, "approval": True}, {"percent": 25}]})
    assert RolloutPolicy.model_validate_json(policy.model_dump_json()) == policy


def test_the_false_rollback_budget_is_split_over_checks_and_stages_never_looks():
    policy = RolloutPolicy()
    # errors (with its ceiling), latency and the tail; mirror, two steps and the bake.
    assert policy.statistical_checks() == 4
    assert policy.judged_stages() == 4
    assert policy.check_alpha() == pytest.approx(0.01 / 16)
    # Looking more often changes nothing: the old interval setting is accepted and ignored.
    assert RolloutPolicy.model_validate({"analysis": {"interval": "5m"}}).check_alpha() == policy.check_alpha()
    fewer = RolloutPolicy.model_validate({"tail_latency": {"enabled": False}, "errors": {"ceiling": None}})
    assert fewer.check_alpha() == pytest.approx(0.01 / 8)


def test_throttling_counts_as_an_error_by_default():
    # At green's share of traffic, 429s are a regression users feel (and blue's own 429s count too).
    assert "429" in RolloutPolicy().errors.status_codes


def test_leave_alone_must_be_smaller_than_the_harm_to_catch():
    assert RolloutPolicy().errors.leave_alone_margin == pytest.approx(0.0025)
    assert RolloutPolicy().latency.leave_alone_margin == pytest.approx(0.1)
    with pytest.raises(ValidationError, match=r"errors.leave_alone \(0.01\) must be smaller than errors.max_increase"):
        RolloutPolicy.model_validate({"errors": {"max_increase": 0.005, "leave_alone": 0.01}})
    with pytest.raises(ValidationError, match="tail is one of Azure Monitor's latency percentiles"):
        RolloutPolicy.model_validate({"tail_latency": {"percentile": 97}})
