"""The metric catalogue says what the supported-metrics reference pages say, and the adapter asks
for nothing else; settings for the regional metrics endpoint and the Log Analytics audience."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator.transport import StaticCredential
from shared.adapters import metric_catalogue as cat
from shared.adapters.monitor import MonitorMetrics
from shared.settings import SETTINGS, Settings, SettingsError
from tests.emulated import make_world

E, D = cat.ENDPOINT_NAMESPACE, cat.DEPLOYMENT_NAMESPACE


@pytest.mark.parametrize(
    ("namespace", "name", "unit", "aggregations", "dimensions"),
    [
        # learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
        #   microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
        (
            E,
            "RequestsPerMinute",
            "Count",
            ("Average",),
            ("deployment", "statusCode", "statusCodeClass", "modelStatusCode"),
        ),
        (E, "RequestLatency_P90", "Milliseconds", ("Average",), ("deployment",)),
        (E, "RequestLatency", "Milliseconds", ("Average",), ("deployment",)),
        (E, "ConnectionsActive", "Count", ("Average",), ()),
        (E, "NetworkBytes", "BytesPerSecond", ("Average",), ()),
        # ...-onlineendpoints-deployments-metrics
        (D, "CpuUtilizationPercentage", "Percent", ("Minimum", "Maximum", "Average"), ("instanceId",)),
        (D, "CpuMemoryUtilizationPercentage", "Percent", ("Minimum", "Maximum", "Average"), ("instanceId",)),
        (D, "RequestLatency_P99", "Milliseconds", ("Average",), ()),
        (D, "RequestsPerMinute", "Count", ("Average",), ("envoy_response_code",)),
        (D, "DeploymentCapacity", "Count", ("Minimum", "Maximum", "Average"), ("instanceId", "State")),
    ],
)
def test_the_catalogue_matches_the_reference_pages(namespace, name, unit, aggregations, dimensions):
    spec = cat.lookup(namespace, name.lower())
    assert spec is not None
    assert (spec.unit, spec.aggregations, spec.dimensions, spec.time_grains) == (
        unit,
        aggregations,
        dimensions,
        ("PT1M",),
    )
    assert spec.source.startswith("https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/")


def test_what_does_not_exist_is_not_in_the_catalogue():
    assert cat.lookup(D, "MemoryUtilizationPercentage") is None  # it is CpuMemoryUtilizationPercentage
    assert cat.lookup(D, "RequestLatency") is None  # deployment scope has only the percentiles
    assert cat.lookup(E, "RequestLatency_P75") is None
    assert [cat.latency_metric(p) for p in (50, 90, 95, 99)] == [f"RequestLatency_P{p}" for p in (50, 90, 95, 99)]
    for odd in (75, 90.5, float("nan")):
        with pytest.raises(cat.MetricRequestError):
            cat.latency_metric(odd)


def test_problems_names_every_thing_not_allowed():
    found = cat.problems(E, ["RequestsPerMinute", "Nope"], ["Total"], ["instanceId"], "PT5M")
    assert found == [
        "RequestsPerMinute has no Total aggregation",
        "RequestsPerMinute has no dimension instanceid",
        "RequestsPerMinute is not published at PT5M",
        f"Nope is not a metric of {E}",
    ]
    assert cat.problems(E, ["RequestsPerMinute"], ["Average"], ["Deployment", "statuscode"], "PT1M") == []


def test_the_adapter_refuses_to_send_what_the_catalogue_does_not_allow():
    world = make_world()
    world.advance(3)
    source = world.metrics()
    with pytest.raises(cat.MetricRequestError, match="no dimension instanceid"):
        source._series(
            "https://eastus.metrics.monitor.azure.com",
            [world.endpoint.arm_id],
            E,
            ["RequestsPerMinute"],
            {"instanceId": None},
            world.clock.now() - timedelta(minutes=3),
            world.clock.now(),
        )
    assert source.calls["metrics"] == 0
    assert not [r for r in world.emu.requests if "metrics" in r[1]]


BASE = {"SAFE_ROLLOUT_STORAGE_CONNECTION": "UseDevelopmentStorage=true"}


def test_the_metrics_endpoint_setting_takes_a_region_placeholder():
    templ = Settings.from_env(BASE | {"SAFE_ROLLOUT_METRICS_ENDPOINT": "https://{region}.metrics.monitor.azure.com"})
    assert templ.metrics_endpoint == "https://{region}.metrics.monitor.azure.com"
    literal = Settings.from_env(BASE | {"SAFE_ROLLOUT_METRICS_ENDPOINT": "https://127.0.0.1:8443"})
    assert literal.metrics_endpoint == "https://127.0.0.1:8443"
    for bad in ("https://{regoin}.metrics.monitor.azure.com", "https://{region}.{x}.azure.com", "https://{region"):
        with pytest.raises(SettingsError, match="SAFE_ROLLOUT_METRICS_ENDPOINT"):
            Settings.from_env(BASE | {"SAFE_ROLLOUT_METRICS_ENDPOINT": bad})
    assert "{region}" in SETTINGS["SAFE_ROLLOUT_METRICS_ENDPOINT"]
    assert "audience" in SETTINGS["SAFE_ROLLOUT_LOGS_ENDPOINT"]


def test_the_service_built_from_settings_derives_the_logs_audience_from_the_logs_endpoint(monkeypatch):
    from shared.adapters import monitor

    seen = {}
    real = monitor.MonitorMetrics.__init__

    def spy(self, credential, **kw):
        seen.update(kw)
        real(self, credential, **kw)

    monkeypatch.setattr(monitor.MonitorMetrics, "__init__", spy)
    from shared.bootstrap import build_service

    settings = Settings.from_env(
        BASE
        | {
            "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://{region}.metrics.monitor.azure.us",
            "SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID": "law",
            "SAFE_ROLLOUT_LOGS_ENDPOINT": "https://api.loganalytics.us",
            "SAFE_ROLLOUT_CREDENTIAL": "emulator",
        }
    )
    service = build_service(settings)
    assert seen["metrics_endpoint"] == "https://{region}.metrics.monitor.azure.us"
    assert service.metrics._logs._config.credential_scopes == ["https://api.loganalytics.us/.default"]
    public = MonitorMetrics(StaticCredential(), logs_workspace_id="x")
    assert public._logs._config.credential_scopes == ["https://api.loganalytics.io/.default"]
