"""The Bicep creates the dispatcher's work queue and its poison queue, points the worker's
identity-based connection at them and grants the app's identity the queue role it needs."""

from __future__ import annotations

import json

from tests.infra.bicep import ROOT, body, mentions, resolve, resources

QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"  # Storage Queue Data Contributor


def test_the_work_queue_and_its_poison_queue_exist():
    queues = resources("main.bicep", "Microsoft.Storage/storageAccounts/queueServices/queues")
    names = {str(resolve("main.bicep", body(q)["name"])) for q in queues.values()}
    work = str(resolve("main.bicep", "workQueueName"))
    assert work == "saferollout-work"
    assert work in names or "workQueueName" in names
    assert any("-poison" in n for n in names), names


def test_the_app_reads_the_queue_with_its_identity_and_holds_the_queue_role():
    text = (ROOT / "infra" / "main.bicep").read_text()
    assert "{ name: 'SAFE_ROLLOUT_QUEUE__queueServiceUri', value: storage.properties.primaryEndpoints.queue }" in text
    assert "{ name: 'SAFE_ROLLOUT_WORK_QUEUE', value: workQueue.name }" in text
    assert "'SAFE_ROLLOUT_QUEUE'" not in text  # no connection string (shared keys are disabled)
    grants = resources("main.bicep", "Microsoft.Authorization/roleAssignments")
    queue_grants = [g for g in grants.values() if mentions(body(g), "storageQueueDataContributor")]
    assert queue_grants, "the app's identity needs Storage Queue Data Contributor on the account"
    assert str(resolve("main.bicep", "roles")).find(QUEUE_CONTRIBUTOR) >= 0


def test_host_json_keeps_base64_and_sends_failures_to_the_poison_queue_after_five_tries():
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # shared/adapters/work_queue.py encodes base64
    assert queues["maxDequeueCount"] == 5
    assert queues["batchSize"] + queues["newBatchThreshold"] <= 8
