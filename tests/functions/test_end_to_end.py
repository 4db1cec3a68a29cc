"""From a model registration to a promoted or rolled-back model, through the real function
handlers, the real SDKs against the emulator, and real Azurite."""

from __future__ import annotations

import json

import pytest

from emulator.traffic import Scenario
from shared.rollout.model import RolloutPhase, TrafficSplit
from tests.functions.harness import make_harness

P = RolloutPhase
GREEN = "fraud-model-v2"


def alert_payload(
    harness,
    condition: str = "Fired",
    alert_id: str = "alert-1",
    deployment: str | None = GREEN,
    target: str | None = None,
) -> dict:
    endpoint_id = harness.world.emu.endpoint_id("fraud-scorer").lower()
    dims = [{"name": "deployment", "value": deployment}] if deployment else []
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/{alert_id}",
                "alertRule": "green-p99-latency",
                "severity": "Sev2",
                "signalType": "Metric",
                "monitorCondition": condition,
                "alertTargetIDs": [target or endpoint_id],
                "firedDateTime": "2026-11-01T09:30:00Z",
            },
            "alertContext": {
                "condition": {
                    "allOf": [
                        {
                            "metricName": "RequestLatency_P99",
                            "threshold": "500",
                            "dimensions": dims,
                            "metricValue": 900.0,
                        }
                    ]
                }
            },
        },
    }


def test_healthy_version_goes_mirror_steps_bake_succeeded(harness):
    harness.register("2")
    assert harness.phase() == P.PENDING
    harness.tick_until(lambda: harness.phase() == P.SUCCEEDED)
    assert harness.splits() == [
        "live: blue 100%",
        f"live: blue 100%; mirror: {GREEN} 20%",
        f"live: blue 90%, {GREEN} 10%",
        f"live: blue 50%, {GREEN} 50%",
        f"live: {GREEN} 100%",
    ]
    deployments = harness.world.emu.deployments
    assert deployments[("fraud-scorer", GREEN)].body["tags"]["rollout-role"] == "PROD_DEPLOYMENT"
    assert deployments[("fraud-scorer", "blue")].body["tags"]["rollout-role"] == "OLD_PROD"
    # blue is kept for the retention time (1h), then deleted
    harness.tick(55)
    assert ("fraud-scorer", "blue") in deployments
    harness.tick(10)
    assert ("fraud-scorer", "blue") not in deployments
    assert not harness.rollout().due
    phases = [h[1] for h in harness.history()]
    assert phases.index("Mirroring") < phases.index("Canary") < phases.index("Baking") < phases.index("Succeeded")
    assert [e.type for e in harness.events.events if e.type in ("Started", "Succeeded")] == ["Started", "Succeeded"]


def test_slower_model_is_rolled_back_while_mirrored_and_users_never_see_it(harness):
    harness.register("2", scenario=Scenario(latency_ms=160))
    harness.tick_until(lambda: harness.phase() == P.ROLLED_BACK)
    assert all(GREEN not in s.split(";")[0] for s in harness.splits())  # never live
    assert harness.world.emu.sim.user_answers[("fraud-scorer", GREEN)] == 0
    rolled = [h for h in harness.history() if h[1] == "RollingBack"]
    assert "mirror 20% failed: latency" in rolled[0][2]
    # green kept 2h for its logs, then deleted
    harness.tick(115)
    assert ("fraud-scorer", GREEN) in harness.world.emu.deployments
    harness.tick(10)
    assert ("fraud-scorer", GREEN) not in harness.world.emu.deployments


def test_errors_only_under_live_traffic_roll_back_at_the_first_live_step(harness):
    harness.register("2", scenario=Scenario(live_error_rate=0.08))
    harness.tick_until(lambda: harness.phase() == P.ROLLED_BACK)
    stages = [h[2] for h in harness.history() if h[1] == "RollingBack"]
    assert stages
    assert stages[0].startswith("canary 10% failed: errors")
    assert f"live: blue 50%, {GREEN} 50%" not in harness.splits()
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})


def test_smoke_test_failure_never_mirrors_and_deletes_green(fns, azurite, table_name, tmp_path):
    from tests.functions.harness import DEFAULT_POLICY

    policy = DEFAULT_POLICY.replace("defaults:\n", "defaults:\n  smoke_test: {requests: [{data: [[1, 2, 3]]}]}\n")
    harness = make_harness(fns, azurite, table_name, tmp_path, policy=policy)
    harness.register("2", scenario=Scenario(smoke_fails=True))
    harness.tick_until(lambda: harness.phase() == P.FAILED)
    assert harness.splits() == ["live: blue 100%"]
    assert "smoke test failed" in harness.rollout().last_reason
    harness.tick(125)
    assert ("fraud-scorer", GREEN) not in harness.world.emu.deployments


def test_alert_during_canary_orders_the_rollback_in_the_same_request(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)
    # The alert arrives while Azure is still applying the canary split: it refuses a second PUT
    # (409), so the request waits for that update to end and then orders the rollback.
    assert harness.world.emu.endpoints["fraud-scorer"].body["properties"]["provisioningState"] == "Updating"
    response = harness.alert(alert_payload(harness))
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["rollouts"][0]["outcome"] == "rolled back (RollingBack)"
    assert harness.rollout().last_action_error == ""  # ordered, not left for the next tick
    assert harness.until_traffic_lands() == 0  # Azure applies it in tens of seconds; no tick needed
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    harness.tick()  # seen holding blue 100%: the rollback is complete
    assert harness.phase() == P.ROLLED_BACK
    # the same alert again, and its resolution: recorded once each
    again = json.loads(harness.alert(alert_payload(harness)).get_body())
    assert again["rollouts"] == []  # the rollout has finished: nothing active matches any more


def test_alert_is_idempotent_and_resolved_is_recorded(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)
    harness.command("pause")
    resolved = json.loads(harness.alert(alert_payload(harness, "Resolved")).get_body())
    assert resolved["rollouts"][0]["outcome"] == "recorded"
    dup = json.loads(harness.alert(alert_payload(harness, "Resolved")).get_body())
    assert dup["rollouts"][0]["outcome"] == "duplicate"
    assert harness.phase() == P.PAUSED
    assert sum("resolved" in h[2] for h in harness.history()) == 1


def test_alerts_about_other_resources_are_ignored(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)
    other = alert_payload(
        harness, target="/subscriptions/x/resourcegroups/y/providers/microsoft.compute/virtualmachines/vm"
    )
    body = json.loads(harness.alert(other).get_body())
    assert body["rollouts"] == []
    blue_only = alert_payload(harness, deployment="blue")
    assert json.loads(harness.alert(blue_only).get_body())["rollouts"] == []
    assert harness.phase() == P.CANARY


@pytest.mark.parametrize(("secret", "status"), [("wrong-secret-0123456789", 401), ("", 401)])
def test_alert_webhook_needs_the_shared_secret(harness, secret, status):
    response = harness.alert(alert_payload(harness), secret=secret)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_other_alert_schemas_get_a_clear_4xx(harness):
    response = harness.alert({"schemaId": "AzureMonitorMetricAlert", "data": {"status": "Activated"}})
    assert response.status_code == 400
    assert "common alert schema" in json.loads(response.get_body())["detail"]


def test_low_traffic_holds_without_passing_then_pauses_at_the_deadline(fns, azurite, table_name, tmp_path):
    harness = make_harness(fns, azurite, table_name, tmp_path, rpm=5)
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)
    harness.tick(30)
    assert harness.phase() == P.MIRRORING
    assert "NoData" in harness.rollout().last_reason
    harness.tick_until(lambda: harness.phase() == P.PAUSED, limit=20)
    assert "reached no verdict within 40m" in harness.rollout().last_reason
    assert f"live: blue 90%, {GREEN} 10%" not in harness.splits()


def test_people_pause_resume_promote_and_roll_back_over_http(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)
    paused = harness.command("pause", reason="investigating a ticket")
    assert paused.status_code == 200
    assert json.loads(paused.get_body())["phase"] == "Paused"
    harness.tick(30)
    assert harness.phase() == P.PAUSED
    assert harness.command("resume").status_code == 200
    assert harness.phase() == P.MIRRORING
    promoted = json.loads(harness.command("promote").get_body())
    assert promoted["stage"] == "canary 10%"
    full = json.loads(harness.command("promote-full").get_body())
    assert full["phase"] == "Baking"
    harness.tick(2)
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={GREEN: 100})
    back = json.loads(harness.command("rollback", reason="customer complaint").get_body())
    assert back["phase"] == "RollingBack"
    harness.until_traffic_lands()
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    harness.tick()
    assert harness.phase() == P.ROLLED_BACK
    detail = json.loads(harness.http("get_rollout", route={"rollout_id": harness.rollout().id}).get_body())
    actors = {d["actor"] for d in detail["decisions"]}
    assert "ana" in actors
    assert any("customer complaint" in d["reason"] for d in detail["decisions"])
    refused = harness.command("resume")
    assert refused.status_code == 409


def test_approval_gate_abort_and_retry(fns, azurite, table_name, tmp_path):
    from tests.functions.harness import DEFAULT_POLICY

    policy = DEFAULT_POLICY.replace("{percent: 50, min_duration", "{percent: 50, approval: true, min_duration")
    harness = make_harness(fns, azurite, table_name, tmp_path, policy=policy)
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    assert harness.world.emu.current_split("fraud-scorer").live_of(GREEN) == 10
    assert json.loads(harness.command("approve").get_body())["stage"] == "canary 50%"
    assert json.loads(harness.command("abort").get_body())["phase"] == "RollingBack"
    harness.until_traffic_lands()
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    harness.tick()
    assert harness.phase() == P.ABORTED
    assert json.loads(harness.command("retry").get_body())["phase"] == "Pending"
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)


def test_duplicate_and_out_of_order_events_never_start_twice(harness):
    harness.register("3", cloud=True)  # v3 arrives first, as a CloudEvent
    harness.register("3", pascal=True, event_id="evt-redelivered")  # same version again, other casing
    harness.register("2")  # an older version, delivered late
    assert [s.rollout.model.version for s in harness.rollouts()] == ["3"]
    harness.tick(3)
    assert len(harness.rollouts()) == 1


def test_newer_version_mid_rollout_supersedes_with_traffic_back_to_blue_first(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase("2") == P.CANARY)
    harness.register("3")
    harness.tick(2)
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})
    assert harness.phase("2") == P.SUPERSEDED
    assert harness.rollout("3").blue == "blue"
    harness.tick_until(lambda: harness.phase("3") == P.SUCCEEDED)


def test_bad_events_are_rejected_with_a_log_and_nothing_written(harness, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="safe_rollout")
    harness.deliver({"modelName": "fraud-model"}, subject="not-a-model-subject")
    harness.deliver(
        {"modelName": "fraud-model", "modelVersion": "2"},
        subject="models/fraud-model:2",
        topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
    )
    harness.deliver({}, subject="models/fraud-model:2", event_type="Microsoft.Storage.BlobCreated")
    harness.deliver({"modelName": "unknown-model", "modelVersion": "1"}, subject="models/unknown-model:1")
    assert harness.rollouts() == []
    assert "names no model" in caplog.text
    assert "expected an Azure ML workspace id" in caplog.text
    assert "no target in the policy file matches model unknown-model" in caplog.text


def test_api_lists_filters_and_explains(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)
    listed = json.loads(harness.http("list_rollouts", params={"endpoint": "fraud-scorer"}).get_body())
    assert listed["count"] == 1
    assert json.loads(harness.http("list_rollouts", params={"phase": "Succeeded"}).get_body())["count"] == 0
    assert harness.http("list_rollouts", params={"phase": "Nope"}).status_code == 422
    assert harness.http("get_rollout", route={"rollout_id": "r-00000000000000000000"}).status_code == 404
    detail = json.loads(harness.http("get_rollout", route={"rollout_id": harness.rollout().id}).get_body())
    passed = [d for d in detail["decisions"] if "mirror 20% passed" in d["reason"]]
    evidence = {e["check"]: e for e in passed[0]["evidence"]}
    # With the traffic log: the P90 paired by minute (green's traffic allows it), the P99 per request.
    assert evidence["latency"]["evidence"]["blue_source"] == "paired by minute"
    assert evidence["tail"]["evidence"]["sample_kind"] == "request"
    # and the current checks are in the status, bounds in words
    assert {c["check"] for c in detail["checks"]} >= {"errors", "latency", "tail"}
    assert evidence["errors"]["verdict"] == "Pass"
    bad = harness.http(
        "override_rollout", "POST", route={"rollout_id": harness.rollout().id, "action": "pause"}, body={"actor": ""}
    )
    assert bad.status_code == 422
    assert harness.http("openapi").status_code == 200
    report = harness.http("rollout_report", route={"rollout_id": harness.rollout().id})
    assert report.status_code == 200
    assert report.mimetype == "text/html"
    page = report.get_body().decode()
    assert page.count("<svg") == 3  # traffic, latency, errors: from the stored history and Monitor's minutes
    assert "mirror 20% passed" in page
    assert harness.http("rollout_report", route={"rollout_id": "r-00000000000000000000"}).status_code == 404


def test_when_azure_cannot_be_reached_the_event_fails_for_a_retry_and_nothing_is_written(harness):
    from emulator.azure import Fault
    from shared.ports import ProviderError

    harness.world.emu.faults.append(Fault("endpoint.get", status=503, times=100))
    with pytest.raises(ProviderError, match="HTTP 503"):
        harness.register("2")
    assert harness.rollouts() == []
    assert ("fraud-scorer", GREEN) not in harness.world.emu.deployments
    harness.world.emu.faults.clear()
    harness.register("2")  # Event Grid's retry
    assert harness.phase() == P.PENDING


def test_an_alert_that_cannot_land_yet_asks_the_action_group_to_retry(harness, monkeypatch):
    from shared.ports import ConflictError

    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)
    real_save = harness.service.store.save

    def always_conflicts(*args, **kwargs):
        raise ConflictError("someone else saved first")

    monkeypatch.setattr(harness.service.store, "save", always_conflicts)
    response = harness.alert(alert_payload(harness))
    assert response.status_code == 503  # action groups retry 503
    assert response.headers["Retry-After"] == "5"
    monkeypatch.setattr(harness.service.store, "save", real_save)
    assert json.loads(harness.alert(alert_payload(harness)).get_body())["rollouts"][0]["outcome"].startswith(
        "rolled back"
    )
