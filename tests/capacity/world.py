"""A world for capacity tests: blue on 10 instances whose throughput and CPU are sized per instance
(emulator/capacity.py), the real SDK adapters on the in-process emulator, short stages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import emulator_transport
from shared.rollout.model import EndpointRef, WorkspaceRef
from shared.store import memory_store
from shared.targets import PolicyFile
from tests.emulated import ENDPOINT_NAME, World
from tests.functions.harness import RecordingPublisher
from tests.reliability.world import FAST, GREEN, Fast

BLUE_INSTANCES = 10
# 60 requests a minute per instance at 600 rpm on 10 instances: CPU 10% + 40% * 0.6 = 34%.
SIZED = Scenario(capacity_rpm_per_instance=100.0, cpu_percent=10.0, cpu_per_100rpm=40.0)
PRICES = {"Standard_DS3_v2": 0.229, "Standard_DS4_v2": 0.458}
CAPACITY = {
    "capacity": {"sizing": "proportional", "old_blue_instances": 1, "scale_timeout": "10m"},
    "cost": {"max_increase": None},  # priced (the table in PRICES), no gate
}

__all__ = ["BLUE_INSTANCES", "CAPACITY", "GREEN", "PRICES", "SIZED", "sized_world"]


def sized_world(*, green: Scenario | None = SIZED, rpm: float = 600.0, seed: int = 0, **policy: Any) -> Fast:
    clock = SimClock()
    emu = Emulator(clock, seed=seed)
    emu.add_endpoint(ENDPOINT_NAME, rpm=rpm)
    emu.add_deployment(
        ENDPOINT_NAME, "blue", ("fraud-model", "1"), scenario=SIZED, traffic=100, instance_count=BLUE_INSTANCES
    )
    emu.register_model("fraud-model", "2")
    if green is not None:
        emu.set_scenario(ENDPOINT_NAME, GREEN, green)
    emu.deployment_provisioning = timedelta(minutes=2)
    emu.deployment_deletion = timedelta(minutes=1)
    emu.capacity.scale_out = timedelta(minutes=3)
    emu.capacity.scale_in = timedelta(minutes=1)
    endpoint = EndpointRef(workspace=WorkspaceRef.parse(emu.workspace_id), name=ENDPOINT_NAME)
    world = World(clock, emu, emulator_transport(emu), endpoint)
    files = PolicyFile.model_validate(
        {
            "defaults": FAST | {"keep_old_blue_for": "30m"} | policy,
            "targets": [{"model": "fraud-model", "endpoint": ENDPOINT_NAME}],
            "prices": PRICES,
        }
    )
    return Fast(world, memory_store(), RecordingPublisher(), files)
