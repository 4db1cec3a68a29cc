"""The emulated metrics:getBatch refuses what Azure refuses and answers in Azure's shapes (sources in
emulator/monitor_metrics.py): the metric catalogue, aggregation keys, `top` and `orderby`, the
error body of the REST spec's example."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from emulator.traffic import Scenario
from tests.emulated import make_world

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "azure-samples"
ENDPOINTS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENTS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"


@pytest.fixture(scope="module")
def world():
    w = make_world(rpm=3000, blue=Scenario(error_rate=0.01, model_error_rate=0.01, timeout_rate=0.01))
    bad = Scenario(error_rate=0.03, model_error_rate=0.02, timeout_rate=0.01, throttle_rate=0.01)
    w.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"), scenario=bad)
    w.emu.add_deployment("fraud-scorer", "legacy", ("fraud-model", "1"), scenario=bad)
    w.emu.set_traffic_by_hand("fraud-scorer", {"blue": 45, "green": 45, "legacy": 10})
    w.advance(8)
    return w


def ask(world, resource: str, **params: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    now = world.clock.now()
    query = {
        "starttime": (now - timedelta(minutes=8)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "endtime": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "interval": "PT1M",
        "metricnamespace": DEPLOYMENTS if "/deployments/" in resource else ENDPOINTS,
        **params,
    }
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch?"
        + "&".join(f"{k}={quote(v)}" for k, v in query.items())
    )
    status, headers, body = world.emu.handle("POST", url, {}, json.dumps({"resourceids": [resource]}).encode())
    return status, json.loads(body), headers


def endpoint(world) -> str:
    return world.emu.endpoint_id("fraud-scorer")


def deployment(world, name="green") -> str:
    return world.emu.deployment_id("fraud-scorer", name)


def error_shape_matches_the_spec_example(body: dict[str, Any], headers: dict[str, str]) -> None:
    real = json.loads((SAMPLES / "monitor/metrics.batch-dataplane.MetricBatchExample.2024-02-01.json").read_text())
    default = real["responses"]["default"]
    assert set(body) == set(default["body"])
    assert set(body["error"]) == set(default["body"]["error"])
    assert body["error"]["code"] == "BadRequest"
    assert headers["x-ms-error-code"] == default["headers"]["x-ms-error-code"]


@pytest.mark.parametrize(
    ("resource", "params", "words"),
    [
        ("endpoint", {"metricnames": "RequestCount", "aggregation": "Average"}, "Failed to find metric configuration"),
        ("endpoint", {"metricnames": "MemoryUtilizationPercentage"}, "Failed to find metric configuration"),
        ("deployment", {"metricnames": "RequestLatency"}, "Failed to find metric configuration"),
        ("endpoint", {"metricnames": "RequestsPerMinute", "aggregation": "Total"}, "aggregation"),
        ("endpoint", {"metricnames": "RequestLatency_P90", "aggregation": "Maximum"}, "aggregation"),
        ("deployment", {"metricnames": "CpuUtilizationPercentage", "aggregation": "Total"}, "aggregation"),
        (
            "endpoint",
            {"metricnames": "RequestsPerMinute", "aggregation": "Average", "filter": "instanceId eq '*'"},
            "dimension",
        ),
        ("deployment", {"metricnames": "RequestLatency_P90", "filter": "deployment eq '*'"}, "dimension"),
        (
            "deployment",
            {"metricnames": "CpuUtilizationPercentage,RequestsPerMinute", "filter": "envoy_response_code eq '*'"},
            "dimension",
        ),
        ("endpoint", {"metricnames": "RequestsPerMinute", "aggregation": "Average", "interval": "PT5M"}, "time grain"),
        (
            "endpoint",
            {
                "metricnames": "RequestsPerMinute",
                "filter": "deployment eq 'blue' and statusCode eq '*' or deployment eq 'x'",
            },
            "or",
        ),
        (
            "endpoint",
            {"metricnames": "RequestsPerMinute", "orderby": "total desc", "filter": "deployment eq '*'"},
            "orderby",
        ),
    ],
)
def test_what_the_catalogue_does_not_allow_is_a_bad_request_in_azures_shape(world, resource, params, words):
    rid = endpoint(world) if resource == "endpoint" else deployment(world)
    status, body, headers = ask(world, rid, **params)
    assert status == 400, body
    error_shape_matches_the_spec_example(body, headers)
    assert words.lower() in body["error"]["message"].lower()


def test_only_the_asked_aggregations_come_back(world):
    status, body, _ = ask(
        world, deployment(world), metricnames="CpuUtilizationPercentage", aggregation="Minimum,Maximum"
    )
    assert status == 200, body
    points = [p for s in body["values"][0]["value"][0]["timeseries"] for p in s["data"]]
    with_values = [p for p in points if len(p) > 1]
    assert with_values
    assert all(set(p) == {"timeStamp", "minimum", "maximum"} for p in with_values)
    status, body, _ = ask(world, endpoint(world), metricnames="RequestsPerMinute", aggregation="Average")
    assert status == 200, body
    points = [p for s in body["values"][0]["value"][0]["timeseries"] for p in s["data"]]
    assert {frozenset(p) for p in points} == {frozenset({"timeStamp", "average"}), frozenset({"timeStamp"})}


def test_with_a_filter_at_most_top_series_come_back_default_ten_largest_first(world):
    every = "deployment eq '*' and statusCode eq '*' and modelStatusCode eq '*'"
    status, body, _ = ask(world, endpoint(world), metricnames="RequestsPerMinute", aggregation="Average", filter=every)
    assert status == 200, body
    series = body["values"][0]["value"][0]["timeseries"]
    assert len(series) == 10  # 14 exist: blue answers 4 ways (no 429s), green and legacy 5

    def mean(s):
        values = [p["average"] for p in s["data"] if "average" in p]
        return sum(values) / len(values)

    assert [mean(s) for s in series] == sorted((mean(s) for s in series), reverse=True)
    status, body, _ = ask(
        world, endpoint(world), metricnames="RequestsPerMinute", aggregation="Average", filter=every, top="100"
    )
    assert len(body["values"][0]["value"][0]["timeseries"]) == 14
    status, body, _ = ask(
        world,
        endpoint(world),
        metricnames="RequestsPerMinute",
        aggregation="Average",
        filter=every,
        top="3",
        orderby="average asc",
    )
    smallest = body["values"][0]["value"][0]["timeseries"]
    assert len(smallest) == 3
    assert all(s["metadatavalues"][1]["value"] != "200" for s in smallest)  # the small ones are the errors


def test_every_dimension_named_in_the_filter_is_split_and_values_select(world):
    status, body, _ = ask(
        world,
        endpoint(world),
        metricnames="RequestsPerMinute",
        aggregation="Average",
        filter="deployment eq 'blue' or deployment eq 'green' and statusCode eq '*' and modelStatusCode eq '*'",
        top="100",
    )
    assert status == 200, body
    series = body["values"][0]["value"][0]["timeseries"]
    names = [[m["name"]["value"] for m in s["metadatavalues"]] for s in series]
    assert all(n == ["deployment", "statuscode", "modelstatuscode"] for n in names)
    assert {s["metadatavalues"][0]["value"] for s in series} == {"blue", "green"}


def test_an_unsplit_requests_per_minute_average_is_a_mean_over_series_not_a_count(world):
    """Average is Sum/Count over the collapsed dimension values: only a full split reads counts."""
    _, body, _ = ask(world, endpoint(world), metricnames="RequestsPerMinute", aggregation="Average")
    (series,) = body["values"][0]["value"][0]["timeseries"]
    minute = next(p for p in series["data"] if "average" in p)
    _, split, _ = ask(
        world,
        endpoint(world),
        metricnames="RequestsPerMinute",
        aggregation="Average",
        filter="deployment eq '*' and statusCode eq '*' and modelStatusCode eq '*'",
        top="100",
    )
    same = [
        p["average"]
        for s in split["values"][0]["value"][0]["timeseries"]
        for p in s["data"]
        if p["timeStamp"] == minute["timeStamp"] and "average" in p
    ]
    assert sum(same) > 5 * minute["average"]
    assert minute["average"] == pytest.approx(sum(same) / len(same))


def test_top_without_a_filter_is_ignored_and_times_follow_the_spec(world):
    status, body, _ = ask(world, endpoint(world), metricnames="RequestLatency_P90", top="1")
    assert status == 200
    (series,) = body["values"][0]["value"][0]["timeseries"]
    assert series["metadatavalues"] == []
    now = world.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch"
        f"?endtime={now}&metricnames=RequestLatency_P90&metricnamespace={ENDPOINTS}"
    )
    status, _, _ = world.emu.handle("POST", url, {}, json.dumps({"resourceids": [endpoint(world)]}).encode())
    assert status == 400  # endtime needs starttime


def test_a_resource_of_another_subscription_is_refused(world):
    other = endpoint(world).replace(world.emu.subscription, "99999999-0000-0000-0000-000000000000")
    now = world.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch"
        f"?starttime=2026-11-01T09:00:00Z&endtime={now}&metricnames=RequestLatency_P90&metricnamespace={ENDPOINTS}"
    )
    status, _, body = world.emu.handle("POST", url, {}, json.dumps({"resourceids": [other]}).encode())
    assert status == 400
    assert "subscription" in json.loads(body)["error"]["message"]


def test_deployment_scope_requests_count_mirrored_copies_and_endpoint_scope_can_leave_them_out():
    w = make_world(rpm=1200)
    w.emu.mirrored_in_endpoint_metrics = False
    w.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    w.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 25})
    w.advance(6)
    status, body, _ = ask(
        w,
        endpoint(w),
        metricnames="RequestsPerMinute",
        aggregation="Average",
        filter="deployment eq 'green' and statusCode eq '*' and modelStatusCode eq '*'",
    )
    assert status == 200
    assert body["values"][0]["value"][0]["timeseries"] == []
    status, body, _ = ask(
        w, deployment(w), metricnames="RequestsPerMinute", aggregation="Average", filter="envoy_response_code eq '*'"
    )
    served = sum(p.get("average", 0) for s in body["values"][0]["value"][0]["timeseries"] for p in s["data"])
    assert served > 0.2 * 1200 * 4


@pytest.mark.parametrize("scope", ["endpoint", "deployment"])
def test_the_tail_percentile_is_served_per_deployment_and_minute_beside_the_latency_percentile(world, scope):
    """`RequestLatency_P99` (a tail check's percentile) and `RequestLatency_P90` in one call: one
    metric entry each, per deployment (split at the endpoint; the deployment's own at deployment
    scope) and minute, each the percentile of that minute's request durations."""
    params = {"metricnames": "RequestLatency_P90,RequestLatency_P99", "aggregation": "Average"}
    if scope == "endpoint":
        params |= {"filter": "deployment eq 'blue' or deployment eq 'green'", "top": "100", "orderby": "average desc"}
        rid = endpoint(world)
    else:
        rid = deployment(world, "green")
    status, body, _ = ask(world, rid, **params)
    assert status == 200, body
    metrics = body["values"][0]["value"]
    assert [m["name"]["value"] for m in metrics] == ["RequestLatency_P90", "RequestLatency_P99"]
    stats = {d: world.emu.sim.stats[("fraud-scorer", d)] for d in ("blue", "green")}
    seen = 0
    for m in metrics:
        p = float(m["name"]["value"].split("_P")[1])
        for series in m["timeseries"]:
            d = series["metadatavalues"][0]["value"] if scope == "endpoint" else "green"
            for point in series["data"]:
                if "average" not in point:
                    continue
                minute = datetime.fromisoformat(point["timeStamp"].replace("Z", "+00:00"))
                assert point["average"] == pytest.approx(stats[d][minute].percentile(p))
                seen += 1
    assert seen >= (2 * 2 * 5 if scope == "endpoint" else 2 * 5)
