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


def test_per_look_alpha_spends_the_budget_over_every_look():
    policy = RolloutPolicy()
    looks = policy.looks_per_stage()
    stages = len(policy.steps) + 1
    assert policy.comparisons() == 3  # errors, latency, tail
    assert policy.per_look_alpha() == pytest.approx(0.01 / (stages * looks * 3))
