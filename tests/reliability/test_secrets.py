"""Tokens, keys and connection strings never reach logs or HTTP responses."""

from __future__ import annotations

import json
import logging

from emulator.azurite import DEV_KEY
from tests.functions.harness import ALERT_SECRET


def test_no_secret_reaches_logs_or_responses(harness, caplog):
    caplog.set_level(logging.DEBUG)  # everything, the Azure SDKs' HTTP logging included
    for name in ("azure", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    responses = []
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == "Canary")
    responses.append(harness.alert({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}))
    responses.append(harness.alert({"schemaId": "x"}, secret="wrong-secret-that-is-long"))
    responses.append(harness.http("list_rollouts"))
    responses.append(harness.http("get_rollout", route={"rollout_id": harness.rollout().id}))
    responses.append(harness.command("rollback"))
    secrets = {
        "alert secret": ALERT_SECRET,
        "storage account key": DEV_KEY,
        "storage key (url-encoded)": DEV_KEY.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D"),
        "ARM bearer token": "emulator-token",
        "endpoint scoring key": "emulator-key-1",
    }
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    bodies = "\n".join(r.get_body().decode(errors="replace") + json.dumps(dict(r.headers)) for r in responses)
    assert len(caplog.records) > 50  # the SDKs did log their requests
    for what, value in secrets.items():
        assert value not in logs, f"{what} found in the logs"
        assert value not in bodies, f"{what} found in an HTTP response"
