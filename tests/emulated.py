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
