"""Small builders of core data for tests: rollouts, endpoint states, metric windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from shared.rollout.analysis import DeploymentMetrics, WindowMetrics
from shared.rollout.machine import plan_start
from shared.rollout.model import EndpointRef, ModelRef, Rollout, TrafficSplit, WorkspaceRef
from shared.rollout.observation import DeploymentState, EndpointState, Observation
from shared.rollout.policy import RolloutPolicy

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WORKSPACE = WorkspaceRef(
    subscription_id="00000000-0000-0000-0000-000000000001", resource_group="rg-ml", workspace="ws1"
)
ENDPOINT = EndpointRef(workspace=WORKSPACE, name="fraud-scorer")
MODEL = ModelRef(name="fraud-model", version="2")


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def endpoint_state(
    live: dict[str, int] | None = None,
    mirror: dict[str, int] | None = None,
    deployments: dict[str, str] | None = None,
) -> EndpointState:
    live = {"blue": 100} if live is None else live
    names = deployments if deployments is not None else dict.fromkeys([*live, *(mirror or {})], "Succeeded")
    return EndpointState(
        name=ENDPOINT.name,
        traffic=TrafficSplit(live=live, mirror=mirror or {}),
        deployments={n.lower(): DeploymentState(name=n, provisioning_state=s) for n, s in names.items()},
    )


def started(policy: RolloutPolicy | None = None, *, blue: str | None = "blue", at: datetime = T0) -> Rollout:
    endpoint = endpoint_state(live={blue: 100} if blue else {})
    return plan_start(ENDPOINT, MODEL, endpoint, policy or RolloutPolicy(), at, trigger="test").rollout


def observe(rollout: Rollout, states: dict[str, str] | None = None, **kw: Any) -> Observation:
    """The endpoint holding exactly what the rollout ordered, with every deployment Succeeded."""
    deployments = {rollout.green: "Succeeded"}
    if rollout.blue:
        deployments[rollout.blue] = "Succeeded"
    deployments |= states or {}
    endpoint = EndpointState(
        name=ENDPOINT.name,
        traffic=rollout.desired,
        deployments={n.lower(): DeploymentState(name=n, provisioning_state=s) for n, s in deployments.items()},
    )
    return Observation(endpoint=endpoint, **kw)


def deployment_metrics(
    rng: np.random.Generator,
    requests: int,
    *,
    error_rate: float = 0.01,
    latency_ms: float = 100.0,
    sigma: float = 0.3,
    samples: int | None = None,
    cpu: float = 40.0,
    memory: float = 50.0,
) -> DeploymentMetrics:
    n = requests if samples is None else samples
    return DeploymentMetrics(
        requests=requests,
        errors=int(rng.binomial(requests, error_rate)),
        latency_ms=tuple(float(x) for x in rng.lognormal(np.log(latency_ms), sigma, n)),
        cpu_percent=(cpu,) * 10,
        memory_percent=(memory,) * 10,
    )


def window(green: DeploymentMetrics, blue: DeploymentMetrics | None) -> WindowMetrics:
    return WindowMetrics(start=T0, end=T0 + minutes(10), green=green, blue=blue)
