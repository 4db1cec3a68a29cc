"""A fast world for reliability tests: short stages, the real SDK adapters on the in-process
emulator, the in-memory store (same semantics as Table storage, proven by the contract tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emulator.traffic import Scenario
from shared.payloads import ModelRegistration
from shared.ports import StoredRollout
from shared.rollout.model import ModelRef, RolloutPhase
from shared.service import RolloutService
from shared.store import RolloutStoreImpl, memory_store
from shared.targets import PolicyFile
from tests.emulated import World, make_world
from tests.functions.harness import RecordingPublisher

FAST = {
    "mirror": {"percent": 20, "min_duration": "3m", "min_requests": 100, "max_duration": "20m"},
    "steps": [
        {"percent": 10, "min_duration": "3m", "min_requests": 50, "max_duration": "20m"},
        {"percent": 50, "min_duration": "3m", "min_requests": 100, "max_duration": "20m"},
    ],
    "bake": {"duration": "3m", "min_requests": 100, "max_duration": "20m"},
    "analysis": {"ingestion_lag": "1m"},
    # These worlds test what happens around the judge (crashes, races, faults), not its power: an
    # error margin that 60 requests a minute at 10% can prove healthy within a stage (the default
    # +0.5 points needs about 1,300 requests of green's at a 0.2% error rate).
    "errors": {"max_increase": 0.02},
    "provisioning_timeout": "15m",
    "keep_old_blue_for": "10m",
    "keep_failed_green_for": "10m",
}
GREEN = "fraud-model-v2"


def policies(**overrides: Any) -> PolicyFile:
    return PolicyFile.model_validate(
        {"defaults": FAST | overrides, "targets": [{"model": "fraud-model", "endpoint": "fraud-scorer"}]}
    )


@dataclass
class Fast:
    world: World
    store: RolloutStoreImpl
    events: RecordingPublisher
    policy: PolicyFile

    def service(self, **kw: Any) -> RolloutService:
        """One worker (an instance of the app). Several share the store and Azure, as on scale-out."""
        return RolloutService(
            store=self.store,
            gateway=self.world.gateway(),
            metrics=self.world.metrics(),
            events=self.events,
            clock=self.world.clock,
            policies=self.policy,
            **kw,
        )

    def register(self, service: RolloutService, version: str = "2", scenario: Scenario | None = None) -> Any:
        self.world.emu.register_model("fraud-model", version)
        if scenario is not None:
            self.world.emu.set_scenario("fraud-scorer", f"fraud-model-v{version}", scenario)
        return service.start(
            ModelRegistration(
                event_id=f"e{version}",
                workspace=self.world.endpoint.workspace,
                model=ModelRef(name="fraud-model", version=version),
            )
        )

    def only(self) -> StoredRollout:
        (stored,) = self.store.find()
        return stored

    def phase(self) -> RolloutPhase:
        return self.only().rollout.phase

    def split(self) -> Any:
        return self.world.emu.current_split("fraud-scorer")


def fast(*, rpm: float = 600.0, seed: int = 0, **policy: Any) -> Fast:
    world = make_world(rpm=rpm, seed=seed)
    world.emu.deployment_provisioning = timedelta(minutes=2)
    world.emu.deployment_deletion = timedelta(minutes=1)
    return Fast(world, memory_store(), RecordingPublisher(), policies(**policy))
