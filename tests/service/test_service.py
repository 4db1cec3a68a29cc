"""The service shell over the emulator (real SDK adapters) and the in-memory store."""

from __future__ import annotations

import itertools
from datetime import timedelta

from shared.bootstrap import build_service
from shared.payloads import ModelRegistration
from shared.rollout.machine import CommandKind
from shared.rollout.model import ModelRef, RolloutPhase, TrafficSplit
from shared.service import RolloutService
from shared.settings import Settings
from shared.store import memory_store
from shared.targets import PolicyFile
from tests.emulated import make_world
from tests.functions.harness import RecordingPublisher

P = RolloutPhase
POLICIES = PolicyFile.model_validate(
    {"targets": [{"model": "*", "endpoint": "fraud-scorer"}], "defaults": {"mirror": {"min_duration": "5m"}}}
)


def service_for(world, **kw) -> RolloutService:
    return RolloutService(
        store=memory_store(),
        gateway=world.gateway(),
        metrics=world.metrics(),
        events=RecordingPublisher(),
        clock=world.clock,
        policies=POLICIES,
        **kw,
    )


def register(world, service, version="2", endpoint_name="fraud-scorer"):
    world.emu.register_model("fraud-model", version)
    return service.start(
        ModelRegistration(
            event_id=f"e{version}",
            workspace=world.endpoint.workspace,
            model=ModelRef(name="fraud-model", version=version),
        )
    )


def test_one_failing_rollout_never_blocks_the_others():
    world = make_world()
    world.emu.add_endpoint("other-scorer")
    world.emu.add_deployment("other-scorer", "blue", ("fraud-model", "1"), traffic=100)
    policies = PolicyFile.model_validate(
        {
            "targets": [
                {"model": "fraud-model", "endpoint": "fraud-scorer"},
                {"model": "other-model", "endpoint": "other-scorer"},
            ]
        }
    )
    service = service_for(world)
    service._policies = policies
    register(world, service)
    world.emu.register_model("other-model", "1")
    service.start(
        ModelRegistration(
            event_id="x", workspace=world.endpoint.workspace, model=ModelRef(name="other-model", version="1")
        )
    )
    real = service.gateway.read_endpoint

    def flaky(endpoint):
        if endpoint.name == "other-scorer":
            raise RuntimeError("a bug in one rollout's path")
        return real(endpoint)

    service.gateway.read_endpoint = flaky  # type: ignore[method-assign]
    for _ in range(10):
        world.advance(1)
        report = service.reconcile_all()
    assert report.failed == 1
    assert "a bug in one rollout's path" in report.errors[0]
    phases = {s.rollout.endpoint.name: s.rollout.phase for s in service.store.find()}
    assert phases == {"fraud-scorer": P.MIRRORING, "other-scorer": P.PENDING}


def test_tick_stops_starting_work_when_its_budget_is_spent():
    world = make_world()
    clock_ticks = itertools.count(step=100)  # every look at the clock costs 100 s
    service = service_for(world, tick_budget_seconds=150, monotonic=lambda: float(next(clock_ticks)))
    register(world, service)
    report = service.reconcile_all()
    assert report.due == 1
    assert report.deferred == 1
    assert report.reconciled == 0


def test_rollback_wins_a_race_with_a_promotion():
    """A timer tick orders 10% live while an alert rolls back: whatever the order the two traffic
    PUTs land in, the endpoint ends with all traffic on blue."""
    world = make_world()
    service = service_for(world)
    register(world, service)
    rollout_id = service.store.find()[0].rollout.id
    real_set = service.gateway.set_traffic
    raced = []

    def slow_put(endpoint, split):
        if split.live_of("fraud-model-v2") and not raced:
            raced.append(True)
            # the alert arrives while the promotion's PUT is on its way, and finishes first
            service.command(rollout_id, CommandKind.ROLLBACK, actor="alert:p99")
        return real_set(endpoint, split)

    service.gateway.set_traffic = slow_put  # type: ignore[method-assign]
    for _ in range(60):
        world.advance(1)
        service.reconcile_all()
        if raced:
            break
    assert raced, "the promotion never happened; the race was not exercised"
    # Within the tick and the command, without another tick: once Azure's updates end, blue has it all.
    world.clock.advance(world.emu.endpoint_update * 3)
    world.emu.settle()
    assert world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    for _ in range(3):
        world.advance(1)
        service.reconcile_all()
    assert world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    assert service.store.find()[0].rollout.phase == P.ROLLED_BACK


def test_build_service_from_settings_alone(azurite, table_name, tmp_path):
    (tmp_path / "policy.yaml").write_text("targets: [{model: m, endpoint: fraud-scorer}]\n")
    settings = Settings.from_env(
        {
            "SAFE_ROLLOUT_STORAGE_CONNECTION": azurite,
            "SAFE_ROLLOUT_TABLE_NAME": table_name,
            "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://eastus.metrics.monitor.azure.com",
            "SAFE_ROLLOUT_CREDENTIAL": "emulator",
        },
        root=tmp_path,
    )
    world = make_world()
    service = build_service(settings, transport=world.transport, clock=world.clock)
    assert service.store.find() == []
    assert service.policies.targets[0].endpoint == "fraud-scorer"
    world.emu.register_model("m", "1")
    outcome = service.start(
        ModelRegistration(event_id="1", workspace=world.endpoint.workspace, model=ModelRef(name="m", version="1"))
    )
    assert outcome.status == "started"
    assert world.emu.deployments[("fraud-scorer", "m-v1")].body["properties"]["provisioningState"] in (
        "Creating",
        "Updating",  # what Azure shows for a new deployment in the recorded sessions
    )
    world.clock.advance(timedelta(minutes=1))
