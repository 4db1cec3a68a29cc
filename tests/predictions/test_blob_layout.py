"""Inputs from Blob storage (real Azurite, azure-storage-blob): the data collector's layout and a
JSON Lines sample file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from emulator.data_collector import blob_name, write_collected_inputs
from emulator.predictor import sample_inputs
from shared.adapters.blob_inputs import BlobInputs, collected_prefix, parse_collected_lines
from shared.ports import ProviderError
from shared.rollout.prediction_policy import DataCollectorSource

NOW = datetime(2026, 11, 2, 9, 40, tzinfo=UTC)
SOURCE = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    "/workspaces/ws/onlineEndpoints/ep/deployments/blue"
)


def rows(n: int, seed: int = 0) -> list[dict]:
    return [body["data"][0] for body in sample_inputs(n, seed=seed)]


def test_the_layout_is_azures(blob_account, container_name):
    # Microsoft Learn: modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl
    assert (
        blob_name("ep", "blue", "model_inputs", NOW, "i-1")
        == "modelDataCollector/ep/blue/model_inputs/2026/11/02/09/i-1.jsonl"
    )
    assert (
        collected_prefix("ep", "blue", "model_inputs", NOW) == "modelDataCollector/ep/blue/model_inputs/2026/11/02/09/"
    )


def test_collected_inputs_are_read_newest_hour_first_and_wrapped_as_request_bodies(blob_account, container_name):
    conn, account = blob_account
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    write_collected_inputs(
        container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(6, 1), at=NOW - timedelta(hours=2)
    )
    write_collected_inputs(container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(4, 2), at=NOW)
    # Another deployment's and another collection's files are not blue's inputs.
    write_collected_inputs(container, source=SOURCE, endpoint="ep", deployment="green", inputs=rows(3, 3), at=NOW)
    write_collected_inputs(
        container,
        source=SOURCE,
        endpoint="ep",
        deployment="blue",
        inputs=rows(3, 4),
        at=NOW,
        collection="model_outputs",
    )
    # Too old for hours=2 (three hours back).
    write_collected_inputs(
        container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(5, 5), at=NOW - timedelta(hours=3)
    )
    source = DataCollectorSource(account_url=account, container=container_name, hours=3)
    found = BlobInputs(None, connection_string=conn).read_collected(source, "ep", "blue", NOW)
    assert [s.body for s in found] == [{"data": [r]} for r in rows(4, 2) + rows(6, 1)]
    capped = source.model_copy(update={"max_rows": 5})
    assert len(BlobInputs(None, connection_string=conn).read_collected(capped, "ep", "blue", NOW)) == 5


def test_each_line_is_one_documented_event_batching_rows(blob_account, container_name):
    conn, _ = blob_account
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    name = write_collected_inputs(
        container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(5), at=NOW, batch=2
    )
    lines = container.download_blob(name).readall().decode().splitlines()
    assert len(lines) == 3
    event = json.loads(lines[0])
    assert {"specversion", "id", "source", "type", "datacontenttype", "time", "data", "correlationid"} <= set(event)
    assert event["type"] == "azureml.inference.model_inputs"
    assert len(event["data"]) == 2


def test_payload_logging_and_raw_files_and_garbage():
    request = json.dumps({"type": "azureml.inference.request", "data": {"data": [[1, 2]]}})
    in_blob = json.dumps({"type": "azureml.inference.request", "data": "https://x/raw", "datainblob": "true"})
    got = parse_collected_lines("\n".join([request, in_blob, "{not json"]), "request", "data")
    assert [s.body for s in got] == [{"data": [[1, 2]]}]


def test_a_missing_container_is_a_provider_error_naming_the_path(blob_account):
    conn, account = blob_account
    source = DataCollectorSource(account_url=account, container="nosuchcontainer")
    with pytest.raises(ProviderError, match="modelDataCollector/ep/blue/model_inputs"):
        BlobInputs(None, connection_string=conn).read_collected(source, "ep", "blue", NOW)


def test_a_json_lines_sample_with_labels(blob_account, container_name):
    conn, account = blob_account
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    lines = [json.dumps({"input": {"x": i}, "label": "fraud" if i % 2 else 0}) for i in range(4)]
    container.upload_blob("samples/golden.jsonl", "\n".join(lines).encode())
    found = BlobInputs(None, connection_string=conn).read_sample(f"{account}/{container_name}/samples/golden.jsonl")
    assert [(s.body, s.label) for s in found] == [
        ({"x": 0}, "0"),
        ({"x": 1}, "fraud"),
        ({"x": 2}, "0"),
        ({"x": 3}, "fraud"),
    ]
    container.upload_blob("samples/bad.jsonl", b'{"input": 1}\n{"nope": 2}\n')
    with pytest.raises(ProviderError, match="line 2"):
        BlobInputs(None, connection_string=conn).read_sample(f"{account}/{container_name}/samples/bad.jsonl")
