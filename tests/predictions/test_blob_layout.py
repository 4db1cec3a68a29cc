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


def test_the_comparison_goes_on_after_the_last_input_scored_while_the_collected_window_moves(
    blob_account, container_name
):
    """Hours age out of the window and new ones arrive between ticks: the next batch starts right
    after the last input scored (by its key), neither repeating nor skipping any. Going on by
    position, as before, would have skipped as many inputs as had aged out."""
    from shared.model_checks import ModelChecks, next_input
    from shared.rollout.prediction_policy import PredictionCheck
    from shared.rollout.tally import PredictionTally

    conn, account = blob_account
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    at = {h: NOW - timedelta(hours=h) for h in (0, 1, 2)}
    for h, seed in ((2, 1), (1, 2)):  # two older hours of blue's traffic, 10 inputs each
        write_collected_inputs(
            container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(10, seed), at=at[h]
        )
    check = PredictionCheck.model_validate(
        {
            "inputs": {"data_collector": {"account_url": account, "container": container_name, "hours": 3}},
            "prediction": "/label",
        }
    )
    checks = ModelChecks(scorer=None, inputs=BlobInputs(None, connection_string=conn), clock=None)
    first, _ = checks.samples(check, "ep", "blue", NOW)
    assert [s.body["data"][0] for s in first] == rows(10, 1) + rows(10, 2)  # oldest hour first
    tally = PredictionTally(cursor=15, last_key=first[14].key)  # 15 scored so far
    # An hour later: the oldest hour has aged out of the 3-hour window and a new hour has arrived.
    write_collected_inputs(container, source=SOURCE, endpoint="ep", deployment="blue", inputs=rows(10, 3), at=NOW)
    later = NOW + timedelta(hours=1)
    checks = ModelChecks(scorer=None, inputs=BlobInputs(None, connection_string=conn), clock=None)  # no cache
    second, _ = checks.samples(check, "ep", "blue", later)
    assert [s.body["data"][0] for s in second] == rows(10, 2) + rows(10, 3)
    start = next_input(second, tally)
    assert [s.body["data"][0] for s in second[start:]] == rows(10, 2)[5:] + rows(10, 3)  # the 16th input on
    assert second[tally.cursor].body["data"][0] == rows(10, 3)[5]  # by position: 10 inputs skipped
    assert next_input(second, PredictionTally(cursor=7)) == 7  # a tally kept before keys: by position
