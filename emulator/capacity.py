"""Emulated capacity: how many instances of a deployment serve, how long a scale takes and whether
it fails, and the throughput each instance caps (latency and 429s above it). A part of
emulator.azure.Emulator's state (`capacity`), read by the traffic simulator through a hook.

Sources:
- a scale is ARM's "Online Deployments - Update" (PATCH of `sku.capacity`): a long-running operation
  answered 200 or 202, the 202 with `Location` and `Retry-After` (azure-ai-ml's generated client,
  `_restclient/arm_ml_service/operations/_operations.py`, OnlineDeploymentsOperations._update_initial:
  `if response.status_code not in [200, 202]`; REST spec 2025-12-01 marks it
  `x-ms-long-running-operation`); the deployment shows `provisioningState: Scaling` meanwhile
  (DeploymentProvisioningState in the same spec lists Scaling; that a capacity-only PATCH shows it,
  rather than Updating, is UNVERIFIED);
- a scale-out provisions new instances like a create: no session records a scale, so it takes as
  long as the recorded creations (551.0 s and 582.2 s, tests/recordings/README.md; UNVERIFIED for a
  scale); a scale-in only stops instances: 60 s, UNVERIFIED;
- until a scale-out succeeds, the instances that served before still serve (new ones take traffic
  once ready: Learn, "Autoscale online endpoints" describes instances added as they become ready);
  a failed scale leaves the old count serving and the deployment `Failed` with the ARM error
  `{code, message}` in the operation status (Azure/azure-resource-manager-rpc, async-api-reference.md);
- a managed online deployment serves at most `max_concurrent_requests_per_instance` at once per
  instance and answers 429 above it (Learn, "Troubleshoot online endpoints": "429 Too many pending
  requests ... exceed max_concurrent_requests_per_instance"); the emulator turns that into a
  throughput in requests per minute per instance (Scenario.capacity_rpm_per_instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

SCALE_OUT = timedelta(seconds=570)  # as a recorded creation (551.0 s and 582.2 s); UNVERIFIED for a scale
SCALE_IN = timedelta(seconds=60)  # UNVERIFIED


@dataclass
class CapacityState:
    scale_out: timedelta = SCALE_OUT
    scale_in: timedelta = SCALE_IN
    # deployment name -> how many of its next scale operations end Failed
    scale_failures: dict[str, int] = field(default_factory=dict)
    # deployment name -> how many of its next scale operations never finish
    hung_scales: set[str] = field(default_factory=set)
    # Most instances one deployment may have (a quota): above it the PATCH is refused at once with
    # 400 OutOfQuota, as Azure refuses a deployment beyond the subscription's core quota (Learn,
    # "Troubleshoot online endpoint deployment and scoring", "ERROR: OutOfQuota"). None: no limit.
    max_instances: int | None = None
    # (endpoint, deployment) -> instances serving now, while a scale of it runs
    serving_during_scale: dict[tuple[str, str], int] = field(default_factory=dict)

    def take_failure(self, deployment: str) -> bool:
        left = self.scale_failures.get(deployment.lower(), 0)
        if left <= 0:
            return False
        self.scale_failures[deployment.lower()] = left - 1
        return True


def throughput(capacity_rpm_per_instance: float | None, capacity_rpm: float | None, instances: int) -> float | None:
    """The requests a minute a deployment serves before latency and 429s grow."""
    if capacity_rpm_per_instance is not None:
        return capacity_rpm_per_instance * max(1, instances)
    return capacity_rpm


def load_per_instance(requests: float, instances: int, per_instance: bool) -> float:
    """The load behind one instance's CPU: the deployment's requests split over its instances when
    the scenario is sized per instance, else the whole deployment's (as before)."""
    return requests / max(1, instances) if per_instance else requests
