"""Azure ML data collection's output, written into Azurite's blob service in Azure's layout.

Microsoft Learn, "Collect production data from models deployed for real-time inferencing" (section
"Store collected data in blob storage"): collected data lands in the workspace's blob store under
`modelDataCollector/{endpoint_name}/{deployment_name}/{collection_name}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl`;
each line is one JSON object (no line breaks within it) with `specversion`, `id`, `source` (the
deployment's ARM id), `type` (`azureml.inference.{collection_name}`), `datacontenttype`, `time`,
`data` (for custom logging, the logged DataFrame's rows as a list of objects; requests close
together are batched into one line), `correlationid`, `xrequestid`, `modelversion`,
`collectdatatype`, `agent` and `contentrange`. The emulator writes what blue received as
`model_inputs` (custom logging of the input DataFrame), `batch` rows per line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

ROOT = "modelDataCollector"


def blob_name(endpoint: str, deployment: str, collection: str, at: datetime, instance_id: str) -> str:
    return f"{ROOT}/{endpoint}/{deployment}/{collection}/{at:%Y/%m/%d/%H}/{instance_id}.jsonl"


def collected_line(source: str, collection: str, at: datetime, rows: Sequence[dict[str, Any]]) -> str:
    data = json.dumps(list(rows), separators=(",", ":"))
    request = str(uuid.uuid4())
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": f"azureml.inference.{collection}",
        "datacontenttype": "application/json",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": list(rows),
        "correlationid": request,
        "xrequestid": request,
        "modelversion": "default",
        "collectdatatype": "pandas.core.frame.DataFrame",
        "agent": "azureml-ai-monitoring/0.1.0b4",
        "contentrange": f"bytes 0-{len(data) - 1}/{len(data)}",
    }
    return json.dumps(event, separators=(",", ":"))


def write_collected_inputs(
    container: Any,
    *,
    source: str,
    endpoint: str,
    deployment: str,
    inputs: Sequence[dict[str, Any]],
    at: datetime,
    collection: str = "model_inputs",
    batch: int = 2,
    instance_id: str | None = None,
) -> str:
    """Write `inputs` (DataFrame rows) as one instance's file for the hour of `at`; returns its name.
    `container`: an azure.storage.blob ContainerClient (Azurite)."""
    lines = [collected_line(source, collection, at, inputs[i : i + batch]) for i in range(0, len(inputs), batch)]
    name = blob_name(endpoint, deployment, collection, at, instance_id or str(uuid.uuid4()))
    container.upload_blob(name, ("\n".join(lines) + "\n").encode(), overwrite=True)
    return name
