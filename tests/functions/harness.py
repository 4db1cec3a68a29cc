"""Drive the real function handlers the way the Functions host would, on the simulated clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from emulator.queue_host import QueueHost, memory_work_queue
from emulator.traffic import Scenario
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.table_store import table_store
from shared.bootstrap import CachedPolicyFile, set_service
from shared.queue_wiring import set_work_queue
from shared.rollout.actions import DomainEvent
from shared.rollout.model import RolloutPhase
from shared.service import RolloutService
from tests.emulated import World, make_world

ALERT_SECRET = "test-alert-secret-0123456789"
DEFAULT_POLICY = """
defaults:
  mirror: {percent: 20, min_duration: 10m, min_requests: 200, max_duration: 40m}
  steps:
    - {percent: 10, min_duration: 10m, min_requests: 200, max_duration: 40m}
    - {percent: 50, min_duration: 10m, min_requests: 200, max_duration: 40m}
  bake: {duration: 10m, min_requests: 200, max_duration: 40m}
  keep_old_blue_for: 1h
  keep_failed_green_for: 2h
targets:
  - model: fraud-model
    endpoint: fraud-scorer
"""


class RecordingPublisher(NoopPublisher):
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, events: Any) -> None:
        self.events.extend(events)
        super().publish(events)


@dataclass
class Harness:
    world: World
    service: RolloutService
    fns: dict[str, Any]
    events: RecordingPublisher
    policy_path: Path
    queue_host: QueueHost
    ticks: int = 0
    log: list[str] = field(default_factory=list)

    # -- inputs ------------------------------------------------------------------------------------

    def register(
        self,
        version: str,
        *,
        scenario: Scenario | None = None,
        model: str = "fraud-model",
        cloud: bool = False,
        pascal: bool = False,
        event_id: str | None = None,
    ) -> None:
        """Register a model version in the emulated workspace and deliver Event Grid's event."""
        self.world.emu.register_model(model, version)
        if scenario is not None:
            self.world.emu.set_scenario("fraud-scorer", f"{model}-v{version}", scenario)
        data = (
            {"ModelName": model, "ModelVersion": int(version) if version.isdigit() else version}
            if pascal
            else {"modelName": model, "modelVersion": version, "modelTags": {}}
        )
        self.deliver(
            data, subject=f"models/{model}:{version}", cloud=cloud, event_id=event_id or f"evt-{model}-{version}"
        )

    def deliver(
        self,
        data: Any,
        *,
        subject: str,
        cloud: bool = False,
        event_id: str = "evt-1",
        event_type: str = "Microsoft.MachineLearningServices.ModelRegistered",
        topic: str | None = None,
    ) -> None:
        topic = topic if topic is not None else self.world.emu.workspace_id
        if cloud:
            event: Any = func.CloudEvent(
                id=event_id, source=topic, type=event_type, specversion="1.0", data=data, subject=subject
            )
        else:
            event = func.EventGridEvent(
                id=event_id,
                data=data,
                topic=topic,
                subject=subject,
                event_type=event_type,
                event_time=self.world.clock.now(),
                data_version="",
            )
        self.fns["model_registered"](event)

    def tick(self, n: int = 1) -> None:
        """A timer tick as Azure runs it: the dispatcher enqueues work items, the queue worker
        (driven as the Functions host drives it) judges them."""
        for _ in range(n):
            self.world.advance(1)
            self.fns["reconcile_timer"](TimerRequest(past_due=False))
            report = self.queue_host.drain()
            assert report.failed == 0, report.errors
            self.ticks += 1

    def azure_applies(self) -> None:
        """Let the traffic update Azure is applying finish (tens of seconds), without a tick."""
        self.world.clock.advance(self.world.emu.endpoint_update + timedelta(seconds=1))
        self.world.emu.settle()

    def until_traffic_lands(self, limit: int = 3) -> int:
        """Ticks until Azure holds the rollout's ordered split (its update finished). A rollback
        ordered while an earlier update was still running is refused (409) and ordered again by the
        next tick: at most a couple of ticks."""
        for i in range(limit):
            self.azure_applies()
            endpoint = self.world.emu.endpoints["fraud-scorer"].body["properties"]
            if endpoint["provisioningState"] == "Succeeded" and (
                self.world.emu.current_split("fraud-scorer") == self.rollout().desired
            ):
                return i
            self.tick()
        raise AssertionError(f"traffic did not land within {limit} ticks: {self.rollout().last_reason}")

    def tick_until(self, done: Callable[[], bool], limit: int = 240) -> int:
        for i in range(limit):
            if done():
                return i
            self.tick()
        raise AssertionError(f"not done after {limit} ticks; phase {self.phase()}: {self.rollout().last_reason}")

    def http(
        self,
        name: str,
        method: str = "GET",
        *,
        route: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> func.HttpResponse:
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        req = func.HttpRequest(
            method,
            f"https://app.example/api/{name}",
            headers={"content-type": "application/json"},
            params=params or {},
            route_params=route or {},
            body=raw,
        )
        response: func.HttpResponse = self.fns[name](req)
        return response

    def command(self, action: str, actor: str = "ana", reason: str = "test") -> func.HttpResponse:
        return self.http(
            "override_rollout",
            "POST",
            route={"rollout_id": self.rollout().id, "action": action},
            body={"actor": actor, "reason": reason},
        )

    def alert(self, payload: dict[str, Any], secret: str = ALERT_SECRET) -> func.HttpResponse:
        return self.http("alert_webhook", "POST", params={"secret": secret}, body=payload)

    # -- reading -----------------------------------------------------------------------------------

    def rollouts(self):
        return self.service.store.find()

    def rollout(self, version: str | None = None):
        found = [s.rollout for s in self.rollouts() if version is None or s.rollout.model.version == version]
        assert found, "no rollout"
        return found[-1]

    def phase(self, version: str | None = None) -> RolloutPhase:
        return self.rollout(version).phase

    def history(self, version: str | None = None) -> list[tuple[str, str, str]]:
        decisions = self.service.store.decisions(self.rollout(version).id)
        return [(d.at.strftime("%H:%M"), str(d.to_phase), d.reason) for d in decisions]

    def splits(self) -> list[str]:
        return [s.describe() for s in self.world.emu.splits("fraud-scorer")]


def make_harness(
    fns: dict[str, Any],
    azurite: str,
    table: str,
    tmp_path: Path,
    *,
    policy: str = DEFAULT_POLICY,
    rpm: float = 600.0,
    logs: bool = True,
) -> Harness:
    world = make_world(rpm=rpm)
    world.emu.deployment_provisioning = timedelta(minutes=6)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(policy)
    events = RecordingPublisher()
    service = RolloutService(
        store=table_store(azurite, table),
        gateway=world.gateway(),
        metrics=world.metrics(logs=logs),
        events=events,
        clock=world.clock,
        policies=CachedPolicyFile(policy_path),
        max_concurrency=4,
    )
    set_service(service)
    queue = memory_work_queue()
    set_work_queue(queue, batch_size=25)
    return Harness(world, service, fns, events, policy_path, QueueHost.over(fns["judge_queue"], queue))
