"""Our adapters, through the real SDKs, on what Azure really answered: recorded sessions replayed
by tests/replay/transport.py (recordings listed in tests/recordings/README.md)."""

from __future__ import annotations

import pytest

from emulator.transport import StaticCredential
from shared.adapters.azureml import AzureMLGateway
from shared.ports import ConflictError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import EndpointRef, ModelRef, WorkspaceRef
from shared.store import Op
from tests.replay.transport import ReplayTransport

# test_online_deployment (2022-10-28, eastus2): the recorder named the deployment after its endpoint
# (one variable, "name"), so "blue" and "green" below share the recorded name.
ONLINE = "azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.json"
SKIP_VALIDATION = (
    "azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_skip_script_validation.json"
)
WORKSPACE = WorkspaceRef.parse(
    "/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000"
    "/providers/Microsoft.MachineLearningServices/workspaces/00000"
)
NAME = "online-ept-10cd4ed17147449"
ENDPOINT = EndpointRef(workspace=WORKSPACE, name=NAME)


def gateway(recording: str) -> tuple[AzureMLGateway, ReplayTransport]:
    transport = ReplayTransport(recording)
    return AzureMLGateway(StaticCredential(), transport=transport, polling_interval=0), transport


def test_read_endpoint_understands_the_recorded_endpoint_and_deployment():
    gw, transport = gateway(ONLINE)
    state = gw.read_endpoint(ENDPOINT)
    transport.assert_no_misses()
    assert state is not None
    assert state.provisioning_state == "Succeeded"
    assert state.location == "eastus2"
    assert (state.traffic.live, state.traffic.mirror) == ({}, {})  # read before the traffic update
    (deployment,) = state.deployments.values()
    assert deployment.provisioning_state == "Succeeded"
    assert deployment.compute_type == "Managed"
    assert deployment.model.endswith("/models/mir_test_model/versions/1")


@pytest.mark.parametrize(
    ("recording", "endpoint", "deployment", "model"),
    [
        (ONLINE, NAME, NAME, ModelRef(name="mir_test_model", version="1")),
        # an MLflow model on a key-auth endpoint (its deployment read after provisioning)
        (
            SKIP_VALIDATION,
            "online-endp4e07306aec3d482",
            "online-dpma4941dc794114e4",
            ModelRef(name="test-model", version="4"),
        ),
    ],
)
def test_create_deployment_copies_blue_and_is_accepted_with_201(recording, endpoint, deployment, model):
    gw, transport = gateway(recording)
    gw.create_deployment(
        EndpointRef(workspace=WORKSPACE, name=endpoint),
        CreateDeployment(name=deployment, model=model, copy_from=deployment, tags={}),
    )
    transport.assert_no_misses()
    (put,) = transport.served_for("PUT", f"/deployments/{deployment}")
    assert put.status == 201  # Azure accepted it; provisioning went on for ~10 minutes (never waited for)


def test_smoke_test_reads_the_token_and_scores_through_the_recorded_scoring_uri():
    gw, transport = gateway(ONLINE)
    result = gw.smoke_test(ENDPOINT, NAME, [{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}])
    transport.assert_no_misses()
    assert (result.sent, result.failed) == (1, 0)
    assert transport.served_for("POST", "/token")  # AMLToken auth: get_keys asks for a token
    assert transport.served_for("POST", "inference.ml.azure.com/score")


def test_a_request_the_recording_lacks_fails_loudly_naming_it():
    """No public recording holds a deployment DELETE (tests/recordings/README.md): the replay
    refuses to invent one."""
    gw, transport = gateway(ONLINE)
    with pytest.raises(AssertionError, match=rf"DELETE .*/deployments/{NAME}"):
        gw.delete_deployment(ENDPOINT, NAME)
    assert transport.misses


# -- Table storage -------------------------------------------------------------------------------

BATCH_412 = "azure-data-tables/test_table_batch.pyTestTableBatchtest_batch_update_if_doesnt_match.json"
SINGLE_412 = "azure-data-tables/test_table_entity.pyTestTableEntitytest_update_entity_with_if_doesnt_match.json"
FAKE_KEY = "ZmFrZS1rZXktZm9yLXJlcGxheS1vbmx5"


def table(endpoint: str, name: str, transport: ReplayTransport):
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.data.tables import TableClient

    return TableClient(
        endpoint=endpoint,
        table_name=name,
        credential=AzureNamedKeyCredential("fakeaccount", FAKE_KEY),
        transport=transport,
    )


def test_store_save_with_a_stale_etag_is_a_conflict():
    """Our transaction with a stale ETag, answered by the recorded $batch 412
    (UpdateConditionNotSatisfied inside the changeset): ConflictError, so the caller re-reads."""
    from shared.adapters.table_store import TableRows

    transport = ReplayTransport(BATCH_412)
    rows = TableRows(table("https://sanitized.table.core.windows.net", "uttable7b0a2aca", transport))
    stale = "W/\"datetime'2012-06-15T22%3A51%3A44.9662825Z'\""
    with pytest.raises(ConflictError, match="changed by someone else"):
        rows.transact("pk7b0a2aca", [Op("update", "rk7b0a2aca", {"sex": "female"}, etag=stale)])
    transport.assert_no_misses()
    assert [s.status for s in transport.served_for("POST", "/$batch")] == [202]


def test_update_with_a_stale_etag_is_resource_modified():
    """AZURE-FACTS: a stale `If-Match` is a 412 the SDK raises as ResourceModifiedError."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError
    from azure.data.tables import UpdateMode

    transport = ReplayTransport(SINGLE_412)
    client = table("https://yalltbtestsprim.table.core.windows.net", "uttable8632eb6", transport)
    with pytest.raises(ResourceModifiedError):
        client.update_entity(
            {"PartitionKey": "pk8632eb6", "RowKey": "rk8632eb6", "age": "abc"},
            mode=UpdateMode.REPLACE,  # the recorded request is a PUT
            etag="W/\"datetime'2012-06-15T22%3A51%3A44.9662825Z'\"",
            match_condition=MatchConditions.IfNotModified,
        )
    transport.assert_no_misses()
