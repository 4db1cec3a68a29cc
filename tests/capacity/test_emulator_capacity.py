"""The emulator's scaling and per-instance capacity, through the real adapter (azure-core over the
emulator's transport): a scale takes time, shows Scaling, can fail or be refused; the old count
serves until it is done; above an instance's throughput latency and 429s grow."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator.traffic import Scenario
from shared.ports import OperationInProgressError, ProviderError
from tests.capacity.world import BLUE_INSTANCES, GREEN, sized_world

EP = "fraud-scorer"


def _env():
    env = sized_world(green=None)
    env.world.emu.add_deployment(EP, GREEN, ("fraud-model", "2"), instance_count=2)
    return env, env.world.gateway(), env.world.endpoint


def test_a_scale_takes_time_and_the_old_count_serves_until_it_is_done():
    env, gateway, endpoint = _env()
    emu = env.world.emu
    gateway.scale_deployment(endpoint, GREEN, 5)
    seen = gateway.read_endpoint(endpoint).deployment(GREEN)
    assert (seen.provisioning_state, seen.instance_count, seen.instance_type) == ("Scaling", 5, "Standard_DS3_v2")
    assert emu.instances_serving(EP, GREEN) == 2
    with pytest.raises(OperationInProgressError):  # one operation at a time on a deployment
        gateway.scale_deployment(endpoint, GREEN, 6)
    env.world.clock.advance(emu.capacity.scale_out - timedelta(seconds=1))
    assert gateway.read_endpoint(endpoint).deployment(GREEN).provisioning_state == "Scaling"
    env.world.clock.advance(timedelta(seconds=2))
    seen = gateway.read_endpoint(endpoint).deployment(GREEN)
    assert (seen.provisioning_state, seen.instance_count) == ("Succeeded", 5)
    assert emu.instances_serving(EP, GREEN) == 5


def test_a_failed_scale_leaves_the_old_count_and_a_refused_one_says_why():
    env, gateway, endpoint = _env()
    emu = env.world.emu
    emu.capacity.scale_failures[GREEN] = 1
    gateway.scale_deployment(endpoint, GREEN, 5)
    env.world.clock.advance(emu.capacity.scale_out + timedelta(seconds=1))
    seen = gateway.read_endpoint(endpoint).deployment(GREEN)
    assert (seen.provisioning_state, seen.instance_count) == ("Failed", 2)
    emu.capacity.max_instances = 4
    with pytest.raises(ProviderError, match="OutOfQuota"):
        gateway.scale_deployment(endpoint, GREEN, 5)


def test_throughput_is_capped_per_instance():
    env, _, _ = _env()
    emu, sim = env.world.emu, env.world.emu.sim
    # 100 requests a minute per instance: at 600 rpm, 10 instances are enough and 2 are not.
    emu.set_scenario(EP, "blue", Scenario(capacity_rpm_per_instance=100.0))
    env.world.clock.advance(timedelta(minutes=5))
    emu._settle()
    ok = sim.minutes(EP, "blue", env.world.clock.now() - timedelta(minutes=5), env.world.clock.now())
    assert BLUE_INSTANCES == 10
    assert sum(s.by_status.get((429, 429), 0) for s in ok.values()) < 10
    emu.deployments[(EP, "blue")].body["sku"]["capacity"] = 2
    start = env.world.clock.now()
    env.world.clock.advance(timedelta(minutes=5))
    emu._settle()
    over = sim.minutes(EP, "blue", start, env.world.clock.now())
    throttled = sum(s.by_status.get((429, 429), 0) for s in over.values())
    assert throttled > 0.3 * sum(s.requests for s in over.values())
    slow = sorted(v for s in over.values() for v in s.latencies)
    fast = sorted(v for s in ok.values() for v in s.latencies)
    assert slow[len(slow) // 2] > 4 * fast[len(fast) // 2]
