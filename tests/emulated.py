"""A small emulated Azure world for adapter and service tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import EmulatorTransport, StaticCredential, emulator_transport
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.monitor import MonitorMetrics
from shared.rollout.model import EndpointRef, WorkspaceRef

ENDPOINT_NAME = "fraud-scorer"
METRICS_ENDPOINT = "https://eastus.metrics.monitor.azure.com"


@dataclass
class World:
    clock: SimClock
    emu: Emulator
    transport: EmulatorTransport
    endpoint: EndpointRef

    def gateway(self, **kw: Any) -> AzureMLGateway:
        return AzureMLGateway(StaticCredential(), transport=self.transport, polling_interval=0, **kw)

    def metrics(self, logs: bool = False) -> MonitorMetrics:
        return MonitorMetrics(
            StaticCredential(),
            metrics_endpoint=METRICS_ENDPOINT,
            logs_workspace_id="law-1" if logs else None,
            transport=self.transport,
        )

    def advance(self, minutes: float) -> None:
        self.clock.advance(timedelta(minutes=minutes))


def make_world(*, rpm: float = 600.0, blue: Scenario | None = None, seed: int = 0) -> World:
    clock = SimClock()
    emu = Emulator(clock, seed=seed)
    emu.add_endpoint(ENDPOINT_NAME, rpm=rpm)
    emu.add_deployment(ENDPOINT_NAME, "blue", ("fraud-model", "1"), scenario=blue, traffic=100)
    emu.register_model("fraud-model", "2")
    endpoint = EndpointRef(workspace=WorkspaceRef.parse(emu.workspace_id), name=ENDPOINT_NAME)
    return World(clock, emu, emulator_transport(emu), endpoint)


def checked_service(world: World, policy: dict[str, Any], model_checks: Any) -> Any:
    """A RolloutService over the world, its policy for every model on the endpoint, with the given
    model checks (shared/model_checks.py), and version 2 registered: its rollout started."""
    from shared.service import RolloutService
    from shared.store import memory_store
    from shared.targets import PolicyFile
    from tests.functions.harness import RecordingPublisher
    from tests.service.test_service import register

    service = RolloutService(
        store=memory_store(),
        gateway=world.gateway(),
        metrics=world.metrics(),
        events=RecordingPublisher(),
        clock=world.clock,
        policies=PolicyFile.model_validate({"targets": [{"model": "*", "endpoint": ENDPOINT_NAME, "policy": policy}]}),
        model_checks=model_checks,
    )
    register(world, service)
    return service
