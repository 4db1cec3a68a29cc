"""Kubernetes online endpoints cannot mirror traffic: a policy with a mirror stage is refused at the
start with the way to fix it, instead of ordering a split Azure refuses until the rollout times out."""

from __future__ import annotations

import pytest

from shared.rollout.machine import StartRejectedError, plan_start
from shared.rollout.observation import DeploymentState, EndpointState
from shared.rollout.policy import RolloutPolicy
from tests.builders import ENDPOINT, MODEL, T0


def _endpoint(compute_type: str) -> EndpointState:
    blue = DeploymentState(name="blue", provisioning_state="Succeeded", compute_type=compute_type)
    return EndpointState.model_validate(
        {"name": ENDPOINT.name, "traffic": {"live": {"blue": 100}}, "deployments": {"blue": blue}}
    )


def test_a_kubernetes_endpoint_is_refused_a_mirror_stage_with_the_fix():
    with pytest.raises(StartRejectedError, match=r"Kubernetes online endpoint.*`mirror: null`"):
        plan_start(ENDPOINT, MODEL, _endpoint("Kubernetes"), RolloutPolicy(), T0, trigger="test")


def test_a_kubernetes_endpoint_rolls_out_through_canary_steps_without_a_mirror():
    decision = plan_start(ENDPOINT, MODEL, _endpoint("Kubernetes"), RolloutPolicy(mirror=None), T0, trigger="test")
    assert decision.rollout.blue == "blue"


def test_a_managed_endpoint_keeps_its_mirror():
    decision = plan_start(ENDPOINT, MODEL, _endpoint("Managed"), RolloutPolicy(), T0, trigger="test")
    assert decision.rollout.green
