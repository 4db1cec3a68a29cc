"""Event Grid deliveries of every shape reach the real `model_registered` handler through the real
Functions binding code, and the log names the event's type.

The binding (azure-functions 1.26, `azure/functions/eventgrid.py`, `EventGridEventInConverter.decode`)
builds a `func.CloudEvent` only when the body has a lower-case `specversion` key; any other body
becomes a `func.EventGridEvent` built from `eventType`, `topic`, `subject`, `data`... so a CloudEvent
whose body says `specVersion` arrives with no type and no source (CloudEvents' JSON format names its
attributes in lower case; such a body is not a conforming CloudEvent, but senders produce it).

Samples: ../shared/azure-samples/eventgrid/ (Azure/azure-rest-api-specs, Microsoft.MachineLearningServices
data-plane examples).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from shared.payloads import MODEL_DEPLOYED, MODEL_REGISTERED, read_event
from shared.rollout.model import RolloutPhase

# the team's shared/ sits beside the work tree (in CI too: a fresh clone with shared/ beside it)
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "azure-samples" / "eventgrid"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


def as_cloud_event(event_grid: dict[str, Any], *, spec_key: str = "specversion") -> dict[str, Any]:
    """The same event in CloudEvents v1.0 (Event Grid's mapping: topic -> source, eventType -> type)."""
    return {
        "id": event_grid["id"],
        "source": event_grid["topic"],
        "type": event_grid["eventType"],
        "subject": event_grid["subject"],
        "time": event_grid["eventTime"],
        "data": event_grid["data"],
        spec_key: "1.0",
    }


def camel(cloud_event: dict[str, Any]) -> dict[str, Any]:
    body = dict(cloud_event)
    body["specVersion"] = body.pop("specversion")
    return body


def bind(body: dict[str, Any]) -> Any:
    """What the Functions host hands the function for this body: the library's own decoder."""
    return EventGridEventInConverter.decode(Datum(json.dumps(body), "json"), trigger_metadata={})


HANDLED = "sklearn_regression_model:20"  # read as a ModelRegistered: the log names the model it is about
SHAPES = {
    "ModelRegistered, Event Grid schema": (lambda: sample("model_registered.eventgrid-schema.json"), HANDLED),
    "ModelRegistered, CloudEvents": (lambda: sample("model_registered.cloudevents-schema.json"), HANDLED),
    "ModelRegistered, CloudEvents with specVersion": (
        lambda: camel(sample("model_registered.cloudevents-schema.json")),
        MODEL_REGISTERED,
    ),
    "ModelDeployed, Event Grid schema": (lambda: sample("model_deployed.eventgrid-schema.json"), MODEL_DEPLOYED),
    "ModelDeployed, CloudEvents": (
        lambda: as_cloud_event(sample("model_deployed.eventgrid-schema.json")),
        MODEL_DEPLOYED,
    ),
    "ModelDeployed, CloudEvents with specVersion": (
        lambda: camel(as_cloud_event(sample("model_deployed.eventgrid-schema.json"))),
        MODEL_DEPLOYED,
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_handler_logs_the_real_event_type_whatever_the_shape(harness, caplog, shape):
    make, expected = SHAPES[shape]
    caplog.set_level(logging.INFO, logger="safe_rollout")
    harness.fns["model_registered"](bind(make()))  # never raises: Event Grid would retry it
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("safe_rollout")]
    assert messages, "the handler says what it did with the event"
    assert not [m for m in messages if "event type ''" in m or "event type None" in m], messages
    assert any(expected in m for m in messages), messages
    assert harness.rollouts() == []  # sample models are in no target of the harness's policy


@pytest.mark.parametrize(
    "body",
    [
        sample("model_registered.eventgrid-schema.json"),
        sample("model_registered.cloudevents-schema.json"),
        camel(sample("model_registered.cloudevents-schema.json")),
        {**camel(sample("model_registered.cloudevents-schema.json")), "Type": MODEL_REGISTERED},
    ],
    ids=["Event Grid schema", "CloudEvents", "CloudEvents specVersion", "CloudEvents, attribute names not lower"],
)
def test_a_raw_body_of_either_shape_reads_the_same(body):
    """For callers that hold the JSON body itself (attribute names compared case-insensitively)."""
    body = {k: v for k, v in body.items() if k != "type" or "Type" not in body}
    event = read_event(body)
    assert event.event_type == MODEL_REGISTERED
    assert event.source is not None
    assert event.source.endswith("/workspaces/{workspace-name}")
    assert event.subject == "models/sklearn_regression_model:20"
    assert event.data["ModelName"] == "sklearn_regression_model"


def test_a_camel_case_cloud_event_through_the_binding_keeps_only_id_subject_and_data():
    """The fact the handler has to live with (and why it cannot start a rollout from such an event:
    the workspace, in `source`, is gone)."""
    event = bind(camel(sample("model_registered.cloudevents-schema.json")))
    assert type(event).__name__ == "EventGridEvent"
    assert event.event_type is None
    assert event.topic is None
    assert event.subject == "models/sklearn_regression_model:20"
    seen = read_event(event)
    assert seen.event_type == ""
    assert seen.likely_type == MODEL_REGISTERED
    assert "specversion" in seen.note


def test_a_lower_case_cloud_event_for_a_target_model_starts_a_rollout(harness):
    body = sample("model_registered.cloudevents-schema.json")
    body["source"] = harness.world.emu.workspace_id
    body["subject"] = "models/fraud-model:2"
    body["data"] = {"modelName": "fraud-model", "modelVersion": "2"}
    harness.world.emu.register_model("fraud-model", "2")
    harness.fns["model_registered"](bind(body))
    assert harness.phase() == RolloutPhase.PENDING


GLOB_POLICY = """
defaults:
  mirror: {percent: 20, min_duration: 10m, min_requests: 200, max_duration: 40m}
targets:
  - model: "fraud-*"
    endpoint: fraud-scorer
"""


def test_a_glob_target_receives_its_models_registrations(harness):
    """The Event Grid subscription no longer filters on model names (tests/infra/test_event_wiring.py):
    every registration of the workspace arrives and the policy's glob picks the ones to roll out."""
    harness.policy_path.write_text(GLOB_POLICY)
    harness.register("2", model="fraud-model-next")
    assert harness.phase() == RolloutPhase.PENDING
    assert harness.rollout().model.name == "fraud-model-next"
    harness.register("1", model="churn-model")  # no target: ignored, nothing started
    assert [s.rollout.model.name for s in harness.rollouts()] == ["fraud-model-next"]
