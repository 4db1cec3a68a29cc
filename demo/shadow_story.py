"""The demo's fifth story: judging the model, not just the service.

Blue's data collector has written its recent inputs (Azure ML data collection, `model_inputs`) to
the workspace's blob store, here Azurite's blob service, in Azure's layout (emulator/data_collector.py).
The demo's policy compares blue's and green's answers to those inputs while green is mirrored
(every version's, so the healthy ones pass it too). Version 6 is as fast and error-free as blue
but answers a different label on 15% of the inputs: it is rolled back in the shadow, before any
user saw one of its answers, and the report shows the confusion matrix and the score distributions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from emulator.data_collector import write_collected_inputs
from emulator.predictor import BASE, Predictor, sample_inputs
from emulator.traffic import Scenario

CONTAINER = "azureml-blobstore-demo"
DISAGREEING = Scenario(predictor=Predictor(disagree=0.15, salt="v6"))
# The comparison the demo's policy adds to its defaults (the blob account is known at run time).
PREDICTIONS: dict[str, Any] = {
    "prediction": "/label",
    "score": "/score",
    "disagreement": {"max_increase": 0.05, "leave_alone": 0.02},
    "score_shift": {"max_increase": 0.05},  # the paired difference (the KS bound needs ~1,000 pairs)
    "ks": {"enabled": False, "max_increase": 0.2},
    "max_requests_per_minute": 40,
    "max_requests_per_stage": 2000,
}


def with_model(scenario: Scenario) -> Scenario:
    """Every version answers like blue's model unless its chapter says otherwise."""
    return scenario if scenario.predictor is not None else replace(scenario, predictor=BASE)


def collect_recent_inputs(emu: Any, blob_connection: str, endpoint: str, now: datetime, *, hours: int = 1) -> None:
    """Blue's data collector at work: the inputs the deployment serving users received in the last
    `hours`, written in Azure's layout (a newly promoted blue has collected nothing before)."""
    from azure.storage.blob import BlobServiceClient

    live = emu.routed_split(endpoint).live
    if not live:
        return
    blue = max(live, key=lambda d: live[d])
    container = BlobServiceClient.from_connection_string(blob_connection).get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    for hour in range(hours):
        at = now - timedelta(hours=hours - hour)
        rows = [body["data"][0] for body in sample_inputs(1000, seed=int(at.timestamp() // 3600))]
        write_collected_inputs(
            container,
            source=emu.deployment_id(endpoint, blue),
            endpoint=endpoint,
            deployment=blue,
            inputs=rows,
            at=at,
            batch=4,
        )


def prepare(
    emu: Any, blob_connection: str, workdir: Path, policy_file: Path, endpoint: str, blue: str, now: datetime
) -> Path:
    """Blue's collected inputs for the hours before `now` in Azurite, and the demo's policy with the
    comparison pointed at them; returns the policy file to use."""
    parts = dict(p.split("=", 1) for p in blob_connection.split(";") if "=" in p)
    collect_recent_inputs(emu, blob_connection, endpoint, now, hours=3)
    policy = yaml.safe_load(policy_file.read_text())
    source = {"account_url": parts["BlobEndpoint"], "container": CONTAINER, "hours": 24}
    policy.setdefault("defaults", {})["predictions"] = PREDICTIONS | {"inputs": {"data_collector": source}}
    out = workdir / "policy.yaml"
    out.write_text(yaml.safe_dump(policy, sort_keys=False))
    return out
