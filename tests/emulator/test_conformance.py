"""Emulator responses have the keys and nesting of the real Azure samples in ../shared/azure-samples."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.emulated import make_world
from tests.shapes import key_paths as shape_of

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "azure-samples"
# Keys whose value is a map with free-form keys ("string" placeholders, names of deployments...).
FREE_FORM = {
    "properties.properties",
    "properties.traffic",
    "properties.environmentVariables",
    "tags",
    "identity.userAssignedIdentities",
}


def key_paths(value: Any) -> set[str]:
    return shape_of(value, FREE_FORM)


def sample(name: str, status: str = "200") -> dict[str, Any]:
    path = SAMPLES / name
    if not path.exists():
        pytest.fail(f"sample {path} missing: shared/ must sit beside the project")
    return json.loads(path.read_text())["responses"][status]["body"]


def answer(world, method: str, url: str, body: Any = None) -> Any:
    status, _, payload = world.emu.handle(method, url, {}, json.dumps(body).encode() if body is not None else None)
    assert status < 300, payload
    return json.loads(payload)


def missing(real: dict, ours: dict) -> set[str]:
    # identity.userAssignedIdentities and sku.tier/size/family are optional in ARM and absent
    # for system-assigned identities and default SKUs.
    optional = {"identity.userAssignedIdentities", "sku.tier", "sku.size", "sku.family"}
    return {p for p in key_paths(real) - key_paths(ours) if p.split("[].")[-1] not in optional}


def test_endpoint_get_matches_the_arm_sample():
    world = make_world()
    ours = answer(world, "GET", f"https://management.azure.com{world.emu.endpoint_id('fraud-scorer')}")
    assert not missing(sample("arm/online_endpoint.get.2025-12-01.json"), ours)


@pytest.mark.parametrize(
    "name",
    [
        "online_deployment.managed.get.2025-12-01.json",
        "online_deployment.managed.createOrUpdate.2025-12-01.json",
    ],
)
def test_deployment_matches_the_arm_samples(name):
    world = make_world()
    ours = answer(world, "GET", f"https://management.azure.com{world.emu.deployment_id('fraud-scorer', 'blue')}")
    real = sample(f"arm/{name}")
    assert not missing(real, ours)


def test_endpoint_list_matches_the_arm_sample():
    world = make_world()
    ours = answer(world, "GET", f"https://management.azure.com{world.emu.workspace_id}/onlineEndpoints")
    assert not missing(sample("arm/online_endpoint.list.2025-12-01.json"), ours) - {"nextLink"}


def test_metrics_batch_matches_the_dataplane_sample():
    world = make_world()
    world.advance(5)
    start = (world.clock.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch"
        f"?starttime={start}&endtime={end}&interval=PT1M&metricnamespace=x&metricnames=RequestLatency_P90"
        "&aggregation=average&filter=deployment eq '*'"
    )
    ours = answer(world, "POST", url, {"resourceids": [world.emu.endpoint_id("fraud-scorer")]})
    real = sample("monitor/metrics.batch-dataplane.MetricBatchExample.2024-02-01.json")
    gap = missing(real, ours)
    # the sample's data points carry minimum/maximum because it asked for them; we asked for average
    assert gap <= {
        "values[].value[].timeseries[].data[].minimum",
        "values[].value[].timeseries[].data[].maximum",
    }


def test_empty_minutes_have_no_value_keys():
    world = make_world()
    world.emu.add_deployment("fraud-scorer", "idle", ("fraud-model", "2"))
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"idle": 10})
    world.advance(3)
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100})
    world.advance(4)
    start = (world.clock.now() - timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch"
        f"?starttime={start}&endtime={end}&metricnames=RequestLatency_P90&filter=deployment eq 'idle'"
    )
    ours = answer(world, "POST", url, {"resourceids": [world.emu.endpoint_id("fraud-scorer")]})
    (series,) = ours["values"][0]["value"][0]["timeseries"]
    points = series["data"]
    assert all("average" in p for p in points[:3])
    assert all(set(p) == {"timeStamp"} for p in points[3:])


def test_log_query_matches_the_sample():
    from shared.adapters.monitor import traffic_log_query

    world = make_world()
    world.advance(5)
    kql = traffic_log_query("fraud-scorer", ["blue"], world.clock.now() - timedelta(minutes=5), world.clock.now(), 10)
    ours = answer(world, "POST", "https://api.loganalytics.io/v1/workspaces/law/query", {"query": kql})
    real = json.loads((SAMPLES / "monitor/loganalytics.query-post.oms-post-example.v1.json").read_text())
    assert not key_paths(real["responses"]["200"]["body"]) - key_paths(ours)
    assert len(ours["tables"][0]["rows"]) == 10
