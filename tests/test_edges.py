"""Parsing at the edges: Event Grid events, alerts, override bodies, settings and the policy file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.payloads import PayloadError, parse_alert, parse_model_registered, parse_override
from shared.settings import Settings, SettingsError
from shared.targets import PolicyFileError, load_policy_file
from tests.builders import WORKSPACE

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "azure-samples"
TOPIC = WORKSPACE.arm_id


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.mark.parametrize(
    "name", ["eventgrid/model_registered.eventgrid-schema.json", "eventgrid/model_registered.cloudevents-schema.json"]
)
def test_documented_samples_parse(name):
    event = sample(name)
    source = (
        (event.get("topic") or event.get("source"))
        .replace("{subscription-id}", "sub")
        .replace("{resource-group-name}", "rg")
        .replace("{workspace-name}", "ws")
    )
    reg = parse_model_registered(
        event_id=event["id"],
        event_type=event.get("eventType") or event["type"],
        subject=event["subject"],
        source=source,
        data=event["data"],
    )
    assert reg.model.label == "sklearn_regression_model:20"
    assert reg.model.version == "20"  # an integer version, normalised to a string
    assert reg.tags == {"area": "diabetes", "type": "regression"}
    assert reg.workspace.workspace == "ws"


@pytest.mark.parametrize(
    ("data", "subject", "label"),
    [
        ({"modelName": "m", "modelVersion": "2", "dataVersion": "2"}, "models/m:2", "m:2"),  # camelCase, string
        ({"ModelName": "m", "ModelVersion": 7}, "models/m:7", "m:7"),  # PascalCase, int
        ({}, "models/m:9", "m:9"),  # subject as fallback
        (None, "models/other:3", "other:3"),
    ],
)
def test_casing_version_types_and_subject_fallback(data, subject, label):
    reg = parse_model_registered(
        event_id="1",
        event_type="Microsoft.MachineLearningServices.ModelRegistered",
        subject=subject,
        source=TOPIC,
        data=data,
    )
    assert reg.model.label == label


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_type": "Microsoft.Storage.BlobCreated"}, "is not Microsoft.MachineLearningServices"),
        ({"source": None}, "no topic/source"),
        ({"source": "/subscriptions/x"}, "expected an Azure ML workspace id"),
        ({"subject": "nonsense", "data": {}}, "names no model"),
        ({"data": {"modelName": "m", "modelVersion": [1]}}, "must be a number or a string"),
        ({"data": {"modelName": "m'; drop", "modelVersion": "1"}}, "not a valid model name"),
        ({"data": {"modelName": "m", "modelVersion": "1/../2"}}, "not a valid model version"),
    ],
)
def test_bad_events_say_what_is_wrong(kwargs, message):
    args = {
        "event_id": "1",
        "event_type": "Microsoft.MachineLearningServices.ModelRegistered",
        "subject": "models/m:1",
        "source": TOPIC,
        "data": {"modelName": "m", "modelVersion": "1"},
    } | kwargs
    with pytest.raises(PayloadError, match=message):
        parse_model_registered(**args)


def test_common_schema_sample_parses():
    notice = parse_alert((SAMPLES / "alerts/common-schema.metric-alert.resolved.sample.json").read_bytes())
    assert notice.condition == "Resolved"
    assert notice.target_ids == (
        "/subscriptions/<subscription id>/resourcegroups/pipelinealertrg/providers/microsoft.compute/"
        "virtualmachines/wcus-r2-gen2",
    )
    assert notice.idempotency_key.endswith("|Resolved")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not a common-schema alert"),
        (json.dumps({"schemaId": "AzureMonitorMetricAlert"}).encode(), "enable the common alert schema"),
        (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}).encode(), "essentials"),
        (b"{" + b" " * (256 * 1024) + b"}", "at most"),
    ],
)
def test_bad_alerts_say_what_is_wrong(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_alert(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "actor"),
        (b'{"actor": "a", "extra": 1}', "extra"),
        (b'{"actor": "a\\u0000b"}', "control"),
        (b"[]", "body"),
        (b'{"actor": "' + b"x" * 200 + b'"}', "at most 100"),
    ],
)
def test_override_bodies_are_checked(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_override(body)


BASE_ENV = {
    "SAFE_ROLLOUT_STORAGE_CONNECTION": "UseDevelopmentStorage=true",
    "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://eastus.metrics.monitor.azure.com",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SAFE_ROLLOUT_STORAGE_CONNECTION": ""}, "SAFE_ROLLOUT_STORAGE_ACCOUNT_URL"),
        ({"SAFE_ROLLOUT_METRICS_ENDPOINT": ""}, "SAFE_ROLLOUT_METRICS_ENDPOINT is required"),
        ({"SAFE_ROLLOUT_METRICS_ENDPOINT": "eastus"}, "SAFE_ROLLOUT_METRICS_ENDPOINT must be an http"),
        ({"SAFE_ROLLOUT_MAX_CONCURRENCY": "many"}, "SAFE_ROLLOUT_MAX_CONCURRENCY must be a whole number"),
        ({"SAFE_ROLLOUT_MAX_CONCURRENCY": "0"}, "between 1 and 64"),
        ({"SAFE_ROLLOUT_CREDENTIAL": "key"}, "SAFE_ROLLOUT_CREDENTIAL"),
        ({"SAFE_ROLLOUT_ALERT_SECRET": "short"}, "at least 16"),
        ({"SAFE_ROLLOUT_TABLE_NAME": "bad-name"}, "SAFE_ROLLOUT_TABLE_NAME"),
    ],
)
def test_settings_errors_name_the_setting(change, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(BASE_ENV | change)


def test_settings_defaults(tmp_path):
    settings = Settings.from_env(BASE_ENV, root=tmp_path)
    assert settings.table_name == "saferollouts"
    assert settings.policy_file == tmp_path / "policy.yaml"
    assert settings.credential == "default"


def test_every_setting_is_in_the_example_file():
    from shared.settings import SETTINGS

    example = json.loads((Path(__file__).resolve().parents[1] / "local.settings.json.example").read_text())
    assert set(SETTINGS) <= set(example["Values"])


POLICY = """
defaults: {mirror: {percent: 10}}
targets:
  - model: fraud-*
    endpoint: fraud-scorer
    policy: {mirror: {min_duration: 5m}}
  - model: "*"
    endpoint_tag: deploy-to
    allowed_endpoints: [scorer-a]
"""


def test_policy_file_targets_match_and_merge(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    policies = load_policy_file(path)
    _, endpoint, policy = policies.match(WORKSPACE, "fraud-v2", {})
    assert endpoint == "fraud-scorer"
    assert policy.mirror.percent == 10
    assert policy.mirror.min_duration.total_seconds() == 300
    assert policies.match(WORKSPACE, "other", {"deploy-to": "scorer-a"})[1] == "scorer-a"
    refused = policies.match(WORKSPACE, "other", {"deploy-to": "prod-db"})
    assert isinstance(refused, str)
    assert "does not allow" in refused
    assert "has no tag" in policies.match(WORKSPACE, "other", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: []", "at least 1"),
        ("targets: [{model: m}]", "either `endpoint` or `endpoint_tag`"),
        ("targets: [{model: m, endpoint_tag: t}]", "needs `allowed_endpoints`"),
        ("targets: [{model: m, endpoint: ep1, policy: {steps: [{percent: 150}]}}]", "less than or equal to 99"),
        ("targets: [{model: m, endpoint: x}]", "not a valid endpoint name"),
        (": : :", "not valid YAML"),
    ],
)
def test_policy_file_errors_say_where(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=message):
        load_policy_file(path)
