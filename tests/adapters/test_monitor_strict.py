"""The Monitor adapter against an emulator that refuses what Azure refuses (the "Azure fidelity"
findings): truncated series, the aggregation RequestsPerMinute has, the metric catalogue, latency
percentiles, regional batch calls, mirrored traffic, the traffic-log KQL, fetch() never raising,
and the Log Analytics audience. Real SDKs (azure-monitor-querymetrics, azure-monitor-query)
against the emulator throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import EmulatorTransport, StaticCredential
from shared.adapters import metric_catalogue
from shared.adapters.monitor import MonitorMetrics, is_error, metrics_url, traffic_log_query
from shared.ports import MetricsQuery, ProviderError
from shared.rollout.analysis import Verdict, WindowMetrics, analyse, overall
from shared.rollout.model import EndpointRef, WorkspaceRef
from shared.rollout.policy import RolloutPolicy
from tests.emulated import make_world

CODES = ("5xx", "408", "424")
TEMPLATE = "https://{region}.metrics.monitor.azure.com"


def q_for(world, start, *, endpoint=None, green="green", blue="blue", percentile=90.0, region="", end=None):
    return MetricsQuery(
        endpoint=endpoint or world.endpoint,
        blue=blue,
        green=green,
        start=start,
        end=end or world.clock.now() - timedelta(minutes=1),
        error_codes=CODES,
        percentile=percentile,
        region=region,
    )


def truth(emu: Emulator, endpoint: str, deployment: str, q: MetricsQuery, *, live_only=False) -> tuple[int, int]:
    """Requests and errors the simulator served in the query's settled minutes."""
    visible = emu.clock.now() - emu.metrics_lag
    lo = q.start.replace(second=0, microsecond=0)
    requests = errors = 0
    for minute, s in emu.sim.stats.get((endpoint, deployment), {}).items():
        if not (lo <= minute < q.end and minute < visible):
            continue
        by_status = s.live_by_status if live_only else s.by_status
        for (code, model_code), n in by_status.items():
            requests += n
            if is_error(str(code), str(model_code), CODES):
                errors += n
    return requests, errors


def sent(emu: Emulator, metric: str, namespace: str = metric_catalogue.ENDPOINT_NAMESPACE) -> list[dict[str, str]]:
    """Query parameters of every metrics:getBatch call that asked for `metric` of `namespace`."""
    out = []
    for _, url, _ in emu.requests:
        if "metrics:getbatch" in url.lower():
            params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            if metric in params.get("metricnames", "").split(",") and params.get("metricnamespace") == namespace:
                out.append(params)
    return out


# -- 1. series silently truncated -------------------------------------------------------------------


def busy_endpoint(rpm=6000):
    """Three deployments with every kind of answer: 14 (deployment, status) series at the endpoint,
    green's error series among the smallest (a 10% canary beside an old deployment still serving)."""
    world = make_world(rpm=rpm, blue=Scenario(error_rate=0.01, model_error_rate=0.01, timeout_rate=0.01))
    bad = Scenario(error_rate=0.03, model_error_rate=0.02, timeout_rate=0.01, throttle_rate=0.01)
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"), scenario=bad)
    world.emu.add_deployment("fraud-scorer", "legacy", ("fraud-model", "1"), scenario=bad)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 50, "legacy": 40, "green": 10})
    world.advance(11)
    return world, start


def test_error_series_are_not_cut_by_the_default_top_of_ten():
    world, start = busy_endpoint()
    q = q_for(world, start)
    (m,) = world.metrics().fetch([q])
    assert isinstance(m, WindowMetrics), m
    assert (m.green.requests, m.green.errors) == truth(world.emu, "fraud-scorer", "green", q)
    assert (m.blue.requests, m.blue.errors) == truth(world.emu, "fraud-scorer", "blue", q)
    (params,) = sent(world.emu, "RequestsPerMinute")
    assert int(params["top"]) >= 100  # asks for what it needs
    assert params["orderby"] == "average desc"
    assert "deployment eq 'blue' or deployment eq 'green'" in params["filter"]  # only the two compared


def test_a_metric_returned_with_as_many_series_as_asked_is_partial_and_never_judged():
    world, start = busy_endpoint()
    source = MonitorMetrics(
        StaticCredential(), metrics_endpoint=TEMPLATE, transport=world.transport, max_series=4
    )  # 10 series exist for blue and green; Azure returns the top 4
    (result,) = source.fetch([q_for(world, start, region="eastus")])
    assert isinstance(result, ProviderError)
    assert "series" in str(result)
    assert "partial" in str(result)


# -- 2. RequestsPerMinute has only the Average aggregation -------------------------------------------


def test_requests_are_counted_from_the_average_at_one_minute_grain():
    world, start = busy_endpoint(rpm=1500)
    q = q_for(world, start)
    (m,) = world.metrics().fetch([q])
    assert isinstance(m, WindowMetrics), m
    assert m.green.requests == truth(world.emu, "fraud-scorer", "green", q)[0]
    asked = sent(world.emu, "RequestsPerMinute") + sent(
        world.emu, "RequestsPerMinute", metric_catalogue.DEPLOYMENT_NAMESPACE
    )
    assert len(asked) == 2
    for params in asked:
        assert params["aggregation"] == "Average"
        assert params["interval"] == "PT1M"


def test_every_metric_the_adapter_asks_for_is_in_the_catalogue_with_that_aggregation_grain_and_dimensions():
    world, _ = busy_endpoint(rpm=1500)
    world.emu.mirrored_in_endpoint_metrics = False  # also exercises the deployment-scope reads
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(6)
    (m,) = world.metrics().fetch([q_for(world, world.clock.now() - timedelta(minutes=6))])
    assert isinstance(m, WindowMetrics), m
    asked = [(url, body) for _, url, body in world.emu.requests if "metrics:getbatch" in url.lower()]
    assert asked
    for url, body in asked:
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        namespace = params["metricnamespace"]
        assert all(rid.lower().count("/deployments/") == ("deployments" in namespace) for rid in body["resourceids"])
        dims = [c.split(" eq ")[0].strip() for c in params.get("filter", "").replace(" or ", " and ").split(" and ")]
        problems = metric_catalogue.problems(
            namespace,
            params["metricnames"].split(","),
            params["aggregation"].split(","),
            [d for d in dims if d],
            params["interval"],
        )
        assert problems == [], (url, problems)


# -- 4. latency percentiles, isolated -----------------------------------------------------------------


def two_endpoints(world):
    world.emu.add_endpoint("second", rpm=600)
    world.emu.add_deployment("second", "blue", ("fraud-model", "1"), traffic=100)
    for name in ("fraud-scorer", "second"):
        world.emu.add_deployment(name, "green", ("fraud-model", "2"))
        world.emu.set_traffic_by_hand(name, {"blue": 90, "green": 10})
    return world.endpoint.model_copy(update={"name": "second"})


def test_a_refused_percentile_fails_only_the_rollouts_that_use_it(monkeypatch):
    import emulator.monitor_metrics as emulated

    world = make_world()
    second = two_endpoints(world)
    start = world.clock.now()
    world.advance(8)
    real = emulated.lookup
    monkeypatch.setattr(emulated, "lookup", lambda ns, name: None if name == "RequestLatency_P95" else real(ns, name))
    p90, p95 = world.metrics().fetch([q_for(world, start), q_for(world, start, endpoint=second, percentile=95)])
    assert isinstance(p90, WindowMetrics), p90
    assert len(p90.green.latency_ms) >= 5
    assert isinstance(p95, ProviderError)
    assert "Failed to find metric configuration" in str(p95)


def test_a_percentile_azure_does_not_publish_is_a_provider_error_for_that_rollout_only():
    world = make_world()
    second = two_endpoints(world)
    start = world.clock.now()
    world.advance(8)
    ok, odd = world.metrics().fetch([q_for(world, start), q_for(world, start, endpoint=second, percentile=75)])
    assert isinstance(ok, WindowMetrics), ok
    assert isinstance(odd, ProviderError)
    assert "P50, P90, P95, P99" in str(odd)


# -- 5. batch calls grouped by subscription and region -----------------------------------------------


class Regions:
    """Two subscriptions, each its own emulator, behind one transport (each knows only its own)."""

    def __init__(self, *emus: Emulator) -> None:
        self.emus = {e.subscription.lower(): e for e in emus}
        self.clock = emus[0].clock

    def handle(self, method, url, headers, body):
        path = urlsplit(url).path.lower()
        for sub, emu in self.emus.items():
            if path.startswith(f"/subscriptions/{sub}/"):
                return emu.handle(method, url, headers, body)
        return next(iter(self.emus.values())).handle(method, url, headers, body)


def test_batch_calls_are_split_by_subscription_and_region_and_each_reads_its_own_resources():
    clock = SimClock()
    emus = [Emulator(clock, seed=i, subscription=f"0000000{i}-0000-0000-0000-000000000000") for i in (1, 2)]
    queries, expected = [], []
    start = clock.now()
    for emu in emus:
        for region, rpm in (("eastus", 600), ("westus2", 1800)):
            name = f"ep-{region}"
            emu.add_endpoint(name, rpm=rpm)
            emu.add_deployment(name, "blue", ("fraud-model", "1"), traffic=100)
            emu.add_deployment(name, "green", ("fraud-model", "2"))
            emu.endpoints[name].body["location"] = region
            for d in ("blue", "green"):
                emu.deployments[(name, d)].body["location"] = region
            emu.set_traffic_by_hand(name, {"blue": 80, "green": 20})
            ref = EndpointRef(workspace=WorkspaceRef.parse(emu.workspace_id), name=name)
            queries.append((emu, name, ref, region))
    clock.advance(timedelta(minutes=9))
    source = MonitorMetrics(StaticCredential(), metrics_endpoint=TEMPLATE, transport=EmulatorTransport(Regions(*emus)))
    qs = [
        MetricsQuery(
            endpoint=ref,
            blue="blue",
            green="green",
            start=start,
            end=clock.now() - timedelta(minutes=1),
            error_codes=CODES,
            percentile=90,
            region=region,
        )
        for _, _, ref, region in queries
    ]
    results = source.fetch(qs)
    for (emu, name, _, _), q, m in zip(queries, qs, results, strict=True):
        assert isinstance(m, WindowMetrics), m
        expected.append(truth(emu, name, "green", q))
        assert (m.green.requests, m.green.errors) == expected[-1]
    assert expected[1][0] > 2 * expected[0][0]  # westus2 endpoints are busier: results were not mixed up
    calls = {(urlsplit(url).hostname, urlsplit(url).path.split("/")[2]) for e in emus for _, url, _ in e.requests}
    assert calls == {(f"{r}.metrics.monitor.azure.com", e.subscription) for e in emus for r in ("eastus", "westus2")}


def test_the_emulator_refuses_a_batch_that_mixes_regions():
    world = make_world()
    world.emu.add_endpoint("west", rpm=60)
    world.emu.endpoints["west"].body["location"] = "westus2"
    url = (
        f"https://eastus.metrics.monitor.azure.com/subscriptions/{world.emu.subscription}/metrics:getBatch"
        "?metricnames=RequestLatency_P90&aggregation=Average&metricnamespace=x"
        f"&starttime=2026-11-01T09:00:00Z&endtime=2026-11-01T09:05:00Z"
    )
    ids = [world.emu.endpoint_id("fraud-scorer"), world.emu.endpoint_id("west")]
    import json

    status, _, body = world.emu.handle("POST", url, {}, json.dumps({"resourceids": ids}).encode())
    assert status == 400
    assert json.loads(body)["error"]["code"] == "BadRequest"
    assert "westus2" in json.loads(body)["error"]["message"]


def test_a_region_placeholder_needs_the_endpoints_region():
    world = make_world()
    add = world.emu.add_deployment
    add("fraud-scorer", "green", ("fraud-model", "2"))
    start = world.clock.now()
    world.advance(3)
    source = MonitorMetrics(StaticCredential(), metrics_endpoint=TEMPLATE, transport=world.transport)
    unknown, known = source.fetch([q_for(world, start, region=""), q_for(world, start, region="eastus")])
    assert isinstance(unknown, ProviderError)
    assert "region" in str(unknown)
    assert isinstance(known, WindowMetrics), known
    assert metrics_url("https://127.0.0.1:8443", "") == "https://127.0.0.1:8443"  # a literal URL serves every region
    assert metrics_url(TEMPLATE, "East US") == "https://eastus.metrics.monitor.azure.com"
    with pytest.raises(ValueError, match="region"):
        metrics_url(TEMPLATE, "eastus/../x")


# -- 6. mirrored requests -------------------------------------------------------------------------------


def mirrored_world(*, in_endpoint_metrics: bool, green: Scenario | None = None):
    world = make_world(rpm=2000)
    world.emu.mirrored_in_endpoint_metrics = in_endpoint_metrics
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"), scenario=green)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(11)
    return world, start


@pytest.mark.parametrize("in_endpoint_metrics", [True, False])
def test_mirrored_requests_are_counted_where_they_exist(in_endpoint_metrics):
    slow = Scenario(latency_ms=300, model_error_rate=0.05)
    world, start = mirrored_world(in_endpoint_metrics=in_endpoint_metrics, green=slow)
    q = q_for(world, start)
    (m,) = world.metrics().fetch([q])
    assert isinstance(m, WindowMetrics), m
    green_requests, green_errors = truth(world.emu, "fraud-scorer", "green", q)  # every copy green served
    assert m.green.requests == green_requests
    assert m.green.errors == green_errors
    assert m.green.requests / m.blue.requests == pytest.approx(0.20, abs=0.02)
    assert np.median(m.green.latency_ms) > 2 * np.median(m.blue.latency_ms)


def test_when_green_cannot_be_seen_anywhere_the_stage_holds_and_never_passes():
    world, start = mirrored_world(in_endpoint_metrics=False)
    source = world.metrics()
    original = source._series
    # The endpoint's metrics lack the mirrored copies and the deployment-scope counts cannot be read.

    def no_deployment_scope(url, ids, namespace, names, split, start, end):
        if namespace == metric_catalogue.DEPLOYMENT_NAMESPACE and "RequestsPerMinute" in names:
            out = original(url, [], namespace, names, split, start, end)
            out.errors.update({i.lower(): "refused" for i in ids})
            return out
        return original(url, ids, namespace, names, split, start, end)

    source._series = no_deployment_scope
    (m,) = source.fetch([q_for(world, start)])
    assert isinstance(m, WindowMetrics), m
    assert m.green.requests == 0  # the endpoint's metrics show no mirrored copy here
    policy = RolloutPolicy()
    assert overall(analyse(policy, m, min_requests=100, compare=True)) == Verdict.NO_DATA


def test_mirrored_copies_missing_from_the_traffic_log_are_a_provider_error_not_a_pass():
    world, start = mirrored_world(in_endpoint_metrics=True)
    world.emu.mirrored_in_traffic_log = False
    (result,) = world.metrics(logs=True).fetch([q_for(world, start)])
    assert isinstance(result, ProviderError)
    assert "no rows for green" in str(result)


# -- 7. the traffic-log KQL ---------------------------------------------------------------------------

OLD_FORM = (
    "AmlOnlineEndpointTrafficLog | where TimeGenerated >= datetime(2026-11-01T09:00:00+00:00)"
    " and TimeGenerated < datetime(2026-11-01T09:10:00+00:00)"
    ' | where EndpointName == "fraud-scorer" and DeploymentName in ("blue", "green") | sample 5000'
    " | project DeploymentName, TotalDurationMs = todouble(TotalDurationMs),"
    " ResponseCode = toint(ResponseCode), ModelStatusCode = toint(ModelStatusCode)"
)


def test_the_kql_uses_documented_forms():
    world = make_world()
    kql = traffic_log_query(
        "fraud-scorer",
        ["blue", "green"],
        datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 12, 30, 15, 250000, tzinfo=UTC),
        5000,
        resource_id=world.endpoint.arm_id,
    )
    assert "TimeGenerated >= datetime(2026-11-22T12:00:00Z)" in kql
    assert "TimeGenerated < datetime(2026-11-22T12:30:15.250000Z)" in kql
    assert f"_ResourceId =~ '{world.endpoint.arm_id}'" in kql
    assert "EndpointName =~ 'fraud-scorer' and DeploymentName in~ ('blue', 'green')" in kql
    assert "partition hint.strategy=native by DeploymentName (sample 5000)" in kql
    assert "==" not in kql
    assert "+00:00" not in kql
    with pytest.raises(ValueError, match="naive"):
        traffic_log_query("fraud-scorer", ["blue"], datetime(2026, 1, 1), datetime(2026, 1, 2), 10)
    with pytest.raises(ValueError, match="resource id"):
        traffic_log_query(
            "fraud-scorer",
            ["blue"],
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 2, tzinfo=UTC),
            10,
            resource_id="/subscriptions/x'/resourceGroups/rg",
        )


@pytest.mark.parametrize(
    "query",
    [
        OLD_FORM,
        OLD_FORM.replace("+00:00", "Z"),  # still == and double quotes
        OLD_FORM.replace('== "fraud-scorer"', "=~ 'fraud-scorer'"),  # still an offset and in (...)
    ],
)
def test_the_emulator_refuses_the_old_undocumented_forms(query):
    import json

    world = make_world()
    status, _, body = world.emu.handle(
        "POST", "https://api.loganalytics.io/v1/workspaces/law/query", {}, json.dumps({"query": query}).encode()
    )
    assert status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "BadArgumentError"
    assert error["innererror"]["code"] == "SyntaxError"


def test_the_emulator_runs_the_form_the_adapter_sends():
    import json

    world = make_world()
    world.advance(6)
    kql = traffic_log_query(
        "FRAUD-SCORER",  # names match case-insensitively
        ["Blue"],
        world.clock.now() - timedelta(minutes=6),
        world.clock.now(),
        7,
        resource_id=world.endpoint.arm_id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"),
    )
    status, _, body = world.emu.handle(
        "POST", "https://api.loganalytics.io/v1/workspaces/law/query", {}, json.dumps({"query": kql}).encode()
    )
    assert status == 200, body
    assert len(json.loads(body)["tables"][0]["rows"]) == 7


# -- 8. fetch() never raises --------------------------------------------------------------------------


def test_fetch_never_raises_and_says_why(monkeypatch):
    from azure.monitor.querymetrics import MetricsClient

    world = make_world()
    second = two_endpoints(world)
    start = world.clock.now()
    world.advance(5)
    # a percentile that is not a number: int() raised ValueError out of fetch() before
    odd = q_for(world, start, endpoint=second, percentile=float("nan"))
    ok, bad = world.metrics().fetch([q_for(world, start), odd])
    assert isinstance(ok, WindowMetrics), ok
    assert isinstance(bad, ProviderError)

    def refuse(self, **kwargs):
        raise ValueError("'resource_ids' must be provided and must not be empty.")

    monkeypatch.setattr(MetricsClient, "query_resources", refuse)
    results = world.metrics().fetch([q_for(world, start), q_for(world, start, endpoint=second)])
    assert all(isinstance(r, ProviderError) for r in results)
    assert all("ValueError" in str(r) and "resource_ids" in str(r) for r in results)
    timeline = world.metrics().timeline(q_for(world, start))
    assert isinstance(timeline, ProviderError)


def test_a_logs_client_that_raises_is_a_provider_error(monkeypatch):
    from azure.monitor.query import LogsQueryClient

    world = make_world()
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 90, "green": 10})
    world.advance(5)

    def refuse(self, *args, **kwargs):
        raise ValueError("bad timespan")

    monkeypatch.setattr(LogsQueryClient, "query_workspace", refuse)
    (result,) = world.metrics(logs=True).fetch([q_for(world, start)])
    assert isinstance(result, ProviderError)
    assert "bad timespan" in str(result)


# -- 9. the Log Analytics audience ---------------------------------------------------------------------


class Scopes(StaticCredential):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_token(self, *scopes, **kwargs):
        self.asked += scopes
        return super().get_token(*scopes, **kwargs)

    def get_token_info(self, *scopes, options=None):
        self.asked += scopes
        return super().get_token_info(*scopes, options=options)


@pytest.mark.parametrize(
    ("endpoint", "audience", "expected"),
    [
        ("https://api.loganalytics.io", None, "https://api.loganalytics.io/.default"),
        ("https://api.loganalytics.us", None, "https://api.loganalytics.us/.default"),
        ("https://api.loganalytics.azure.cn/", None, "https://api.loganalytics.azure.cn/.default"),
        ("https://127.0.0.1:8443", "https://api.loganalytics.io", "https://api.loganalytics.io/.default"),
    ],
)
def test_the_logs_token_audience_follows_the_configured_endpoint(endpoint, audience, expected):
    world = make_world()
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    start = world.clock.now()
    world.advance(3)
    credential = Scopes()
    source = MonitorMetrics(
        credential,
        metrics_endpoint="https://eastus.metrics.monitor.azure.com",
        logs_workspace_id="law-1",
        logs_endpoint=endpoint,
        transport=world.transport,
        **({"logs_audience": audience} if audience else {}),
    )
    source.fetch([q_for(world, start)])
    assert expected in credential.asked
    assert not [s for s in credential.asked if "loganalytics" in s and s != expected]
