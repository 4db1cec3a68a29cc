"""Inputs from an Azure ML data asset: the URI forms users write, resolution on ARM (the emulator's
data versions and datastores, through the gateway's ARM pipeline and the ARM pacing), the files
read from Azurite's blob service with azure-storage-blob, and a rollout that compares blue and
green on them. Every failure holds the comparison with a reason."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient
from pydantic import ValidationError

from emulator.predictor import Predictor, sample_inputs, true_label
from emulator.traffic import Scenario
from shared.adapters.blob_inputs import BlobInputs
from shared.adapters.data_asset_inputs import DataAssetInputs
from shared.adapters.paired_scoring import PairedScorer
from shared.adapters.throttle import ArmLimits, ThrottledGateway
from shared.model_checks import ModelChecks
from shared.ports import ProviderError
from shared.rollout.data_asset_uri import (
    BlobLocation,
    DataAssetRef,
    DatastorePath,
    WorkspaceName,
    parse_data_uri,
    parse_storage_uri,
)
from shared.rollout.model import RolloutPhase
from shared.rollout.prediction_policy import PredictionCheck
from shared.service import RolloutService
from tests.emulated import checked_service, make_world

P = RolloutPhase
GREEN = "fraud-model-v2"
WS = WorkspaceName("sub-1", "rg-ml", "ws1")

# -- the URI forms (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("azureml:golden:3", DataAssetRef("golden", "3")),
        ("azureml:golden-set_v2.1:2024.11.02", DataAssetRef("golden-set_v2.1", "2024.11.02")),
        ("azureml:golden@latest", DataAssetRef("golden", None)),
        (
            "azureml://subscriptions/sub-1/resourcegroups/rg-ml/workspaces/ws1/data/golden/versions/3",
            DataAssetRef("golden", "3", WS),
        ),
        (
            "azureml://datastores/workspaceblobstore/paths/samples/golden.jsonl",
            DatastorePath("workspaceblobstore", "samples/golden.jsonl"),
        ),
        ("azureml://datastores/my_store/paths/samples/week-46/", DatastorePath("my_store", "samples/week-46/")),
        (
            "azureml://subscriptions/sub-1/resourceGroups/rg-ml/workspaces/ws1/datastores/my_store/paths/a/b.jsonl",
            DatastorePath("my_store", "a/b.jsonl", WS),
        ),
    ],
)
def test_each_uri_form_users_write_is_understood(uri, expected):
    assert parse_data_uri(uri) == expected
    PredictionCheck.model_validate({"inputs": {"data_asset": uri}, "prediction": "/label"})


def test_a_datastore_path_is_a_file_if_it_names_a_jsonl_file_else_a_folder():
    assert parse_data_uri("azureml://datastores/s/paths/x/golden.jsonl").is_file
    assert not parse_data_uri("azureml://datastores/s/paths/x/golden").is_file


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("golden:3", "not an Azure ML data URI"),
        ("azureml:golden", "azureml:<name>:<version>"),
        ("azureml:golden:", "azureml:<name>:<version>"),
        ("azureml:golden@production", "the only label is @latest"),
        ("azureml://datastores/workspaceblobstore/paths/", "names no path"),
        ("azureml://datastores/workspaceblobstore/samples/golden.jsonl", "azureml://datastores/<datastore>/paths"),
        ("azureml://datastores/my-store/paths/a.jsonl", "azureml://datastores/<datastore>/paths"),
        ("azureml://datastores/s/paths/../secrets/a.jsonl", "'..' is not allowed"),
        ("azureml://registries/shared/data/golden/versions/1", "registries are not supported"),
        ("azureml:golden 3", "no spaces"),
        ("https://acct.blob.core.windows.net/c/golden.jsonl", "a plain blob URL goes in `url`"),
    ],
)
def test_a_malformed_uri_is_refused_naming_the_field(uri, says):
    with pytest.raises(ValidationError) as refused:
        PredictionCheck.model_validate({"inputs": {"data_asset": uri}, "prediction": "/label"})
    text = str(refused.value)
    assert "inputs.data_asset" in text
    assert says in text


def test_the_storage_uris_a_data_version_points_at():
    assert parse_storage_uri("azureml://datastores/workspaceblobstore/paths/LocalUpload/ab12/golden.jsonl") == (
        DatastorePath("workspaceblobstore", "LocalUpload/ab12/golden.jsonl")
    )
    assert parse_storage_uri("https://acct.blob.core.windows.net/samples/week/golden.jsonl") == BlobLocation(
        "https://acct.blob.core.windows.net", "acct", "samples", "week/golden.jsonl"
    )
    assert parse_storage_uri("wasbs://samples@acct.blob.core.windows.net/week/") == BlobLocation(
        "https://acct.blob.core.windows.net", "acct", "samples", "week/"
    )
    # A Data Lake Storage Gen2 path is read through the same account's Blob endpoint.
    assert parse_storage_uri("abfss://lake@acct.dfs.core.windows.net/golden.jsonl") == BlobLocation(
        "https://acct.blob.core.windows.net", "acct", "lake", "golden.jsonl"
    )
    # a uri_folder may be a whole container
    assert parse_storage_uri("wasbs://samples@acct.blob.core.windows.net/") == BlobLocation(
        "https://acct.blob.core.windows.net", "acct", "samples", ""
    )
    assert parse_storage_uri("https://acct.blob.core.windows.net/samples").path == ""
    with pytest.raises(ValueError, match="not on Azure Blob storage"):
        parse_storage_uri("https://example.com/golden.jsonl")


# -- resolving and reading (real SDKs against the emulator and Azurite) ------------------------------


def _lines(bodies, labels=True) -> bytes:
    rows = [{"input": b, "label": true_label(b)} if labels else {"input": b} for b in bodies]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


@pytest.fixture
def assets(blob_account, container_name):
    """A world whose workspace has the default blob datastore on an Azurite container, and an
    adapter reading through the paced gateway."""
    conn, _ = blob_account
    world = make_world(rpm=300, blue=Scenario(predictor=Predictor()))
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    account = container.account_name
    da, ws, now = world.emu.data_assets, world.emu.workspace_id, world.clock.now()
    da.add_datastore(ws, "workspaceblobstore", account=account, container=container_name, at=now)
    paced = ThrottledGateway(world.gateway(), ArmLimits(), now=lambda: world.clock.now().timestamp())
    reader = DataAssetInputs(paced, BlobInputs(None, connection_string=conn))
    return world, container, reader, paced, conn


def _arm_gets(world) -> list[str]:
    return [url.split("?")[0].split("/workspaces/ws1")[1] for m, url, _ in world.emu.requests if "/data" in url]


def test_a_uri_file_data_asset_is_read_with_its_labels(assets):
    world, container, reader, paced, _ = assets
    bodies = sample_inputs(5, seed=3)
    container.upload_blob("LocalUpload/ab12/golden.jsonl", _lines(bodies))
    world.emu.data_assets.add_data(
        world.emu.workspace_id,
        "golden",
        "1",
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/ab12/golden.jsonl",
        at=world.clock.now(),
    )
    found = reader.read("azureml:golden:1", world.endpoint)
    assert [(s.body, s.label) for s in found] == [(b, true_label(b)) for b in bodies]
    # One GET of the version, one of its datastore, both paced as ARM reads of the subscription.
    assert _arm_gets(world) == ["/data/golden/versions/1", "/datastores/workspaceblobstore"]
    bucket = paced._bucket(world.endpoint.workspace.subscription_id, "read")
    assert bucket.tokens <= bucket.capacity - 2 + 1e-6


def test_latest_is_the_most_recently_created_version(assets):
    world, container, reader, _, _ = assets
    container.upload_blob("v1.jsonl", _lines(sample_inputs(2, seed=1)))
    container.upload_blob("v2.jsonl", _lines(sample_inputs(3, seed=2)))
    for version, path in (("1", "v1.jsonl"), ("2", "v2.jsonl")):
        world.emu.data_assets.add_data(
            world.emu.workspace_id,
            "golden",
            version,
            f"azureml://datastores/workspaceblobstore/paths/{path}",
            at=world.clock.now(),
        )
    found = reader.read("azureml:golden@latest", world.endpoint)
    assert [s.body for s in found] == sample_inputs(3, seed=2)
    assert _arm_gets(world)[:2] == ["/data/golden", "/data/golden/versions/2"]


def test_a_uri_folder_reads_its_jsonl_files_in_name_order(assets):
    world, container, reader, _, _ = assets
    container.upload_blob("week46/part-002.jsonl", _lines(sample_inputs(2, seed=2)))
    container.upload_blob("week46/part-001.jsonl", _lines(sample_inputs(3, seed=1)))
    container.upload_blob("week46/late/part-003.jsonl", _lines(sample_inputs(1, seed=4), labels=False))
    container.upload_blob("week46/_SUCCESS", b"")
    container.upload_blob("week46/README.md", b"# not a sample\n")
    container.upload_blob("week47/part-001.jsonl", _lines(sample_inputs(4, seed=9)))  # not in the folder
    world.emu.data_assets.add_data(
        world.emu.workspace_id,
        "weekly",
        "46",
        "azureml://datastores/workspaceblobstore/paths/week46/",
        data_type="uri_folder",
        at=world.clock.now(),
    )
    found = reader.read("azureml:weekly:46", world.endpoint)
    expected = sample_inputs(1, seed=4) + sample_inputs(3, seed=1) + sample_inputs(2, seed=2)
    assert [s.body for s in found] == expected  # late/part-003, part-001, part-002: names in order
    assert found[0].label is None  # a row without a label has none
    assert found[1].label is not None
    # A datastore path without an asset: the same folder, named directly.
    again = reader.read("azureml://datastores/workspaceblobstore/paths/week46", world.endpoint)
    assert [s.body for s in again] == expected


def _add(world, name, uri, data_type="uri_file"):
    world.emu.data_assets.add_data(world.emu.workspace_id, name, "1", uri, data_type=data_type, at=world.clock.now())


@pytest.mark.parametrize(
    ("setup", "uri", "says"),
    [
        (lambda w: None, "azureml:golden:9", "data asset azureml:golden:9 in workspace ws1 not found"),
        (lambda w: None, "azureml:golden@latest", "data asset golden in workspace ws1 not found"),
        (
            lambda w: _add(w, "golden", "azureml://datastores/nostore/paths/golden.jsonl"),
            "azureml:golden:1",
            "datastore nostore in workspace ws1 not found",
        ),
        (
            lambda w: (
                w.emu.data_assets.add_datastore(
                    w.emu.workspace_id, "shares", account="acct", container="share", kind="AzureFile", at=w.clock.now()
                ),
                _add(w, "golden", "azureml://datastores/shares/paths/golden.jsonl"),
            ),
            "azureml:golden:1",
            "is AzureFile: only AzureBlob and AzureDataLakeGen2 datastores are read",
        ),
        (
            lambda w: _add(w, "table", "azureml://datastores/workspaceblobstore/paths/table/", "mltable"),
            "azureml:table:1",
            "is an mltable: register the JSON Lines sample as a uri_file or uri_folder",
        ),
        (
            lambda w: _add(w, "empty", "azureml://datastores/workspaceblobstore/paths/nothing-here/", "uri_folder"),
            "azureml:empty:1",
            "no .jsonl files in the folder",
        ),
        (
            lambda w: _add(w, "gone", "azureml://datastores/workspaceblobstore/paths/deleted.jsonl"),
            "azureml:gone:1",
            "BlobNotFound",
        ),
    ],
)
def test_what_cannot_be_read_is_a_provider_error_naming_it(assets, setup, uri, says):
    world, _, reader, _, _ = assets
    setup(world)
    with pytest.raises(ProviderError) as failed:
        reader.read(uri, world.endpoint)
    assert says in str(failed.value)


# -- the rollout (the service, the core, the emulator, Azurite) --------------------------------------


def _service(world, conn, data_asset: str, green: Predictor) -> RolloutService:
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(predictor=green))
    policy = {
        "mirror": {"min_duration": "5m", "max_duration": "60m"},
        "predictions": {
            "inputs": {"data_asset": data_asset},
            "prediction": "/label",
            "score": "/score",
            "max_requests_per_minute": 60,
        },
    }
    blobs = BlobInputs(None, connection_string=conn)
    checks = ModelChecks(
        scorer=PairedScorer(world.gateway()),
        inputs=blobs,
        data_assets=DataAssetInputs(world.gateway(), blobs),
        clock=world.clock,
    )
    return checked_service(world, policy, checks)


def _run(world, service, done, ticks):
    for _ in range(ticks):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        if done(stored.rollout):
            break
    return stored


@pytest.mark.parametrize("data_type", ["uri_file", "uri_folder"])
def test_a_green_that_disagrees_on_the_data_assets_inputs_is_rolled_back_in_the_shadow(assets, data_type):
    world, container, _, _, conn = assets
    bodies = sample_inputs(1200, seed=21)
    if data_type == "uri_file":
        container.upload_blob("golden/golden.jsonl", _lines(bodies))
        path = "golden/golden.jsonl"
    else:
        for i in range(0, len(bodies), 400):
            container.upload_blob(f"golden/part-{i // 400:03d}.jsonl", _lines(bodies[i : i + 400]))
        path = "golden/"
    _add(world, "golden", f"azureml://datastores/workspaceblobstore/paths/{path}", data_type)
    service = _service(world, conn, "azureml:golden@latest", Predictor(disagree=0.15, salt="v2"))
    stored = _run(world, service, lambda r: r.phase.terminal, ticks=90)
    assert stored.rollout.phase == P.ROLLED_BACK, stored.rollout.last_reason
    rollback = next(d for d in service.store.decisions(stored.rollout.id) if d.to_phase == P.ROLLING_BACK)
    assert rollback.from_phase == P.MIRRORING
    assert "disagrees with blue" in rollback.reason
    assert world.emu.sim.user_answers[("fraud-scorer", GREEN)] == 0  # no user saw green's answers
    tally = stored.rollout.predictions
    assert tally is not None
    assert "1200 from azureml:golden@latest" in tally.source
    assert tally.labeled > 0  # the asset's expected labels reached the comparison


@pytest.mark.parametrize(
    ("setup", "uri", "says"),
    [
        (lambda w, c: None, "azureml:golden:1", "data asset azureml:golden:1 in workspace ws1 not found"),
        (
            lambda w, c: (
                w.emu.data_assets.add_datastore(
                    w.emu.workspace_id, "shares", account="acct", container="s", kind="AzureFile", at=w.clock.now()
                ),
                _add(w, "golden", "azureml://datastores/shares/paths/golden.jsonl"),
            ),
            "azureml:golden:1",
            "only AzureBlob and AzureDataLakeGen2 datastores are read",
        ),
        (
            lambda w, c: (
                c.upload_blob("empty/notes.txt", b"nothing"),
                _add(w, "golden", "azureml://datastores/workspaceblobstore/paths/empty/", "uri_folder"),
            ),
            "azureml:golden:1",
            "no .jsonl files in the folder",
        ),
        (
            lambda w, c: (
                c.upload_blob("golden.jsonl", b""),
                _add(w, "golden", "azureml://datastores/workspaceblobstore/paths/golden.jsonl"),
            ),
            "azureml:golden:1",
            "the sample is empty",
        ),
    ],
)
def test_a_data_asset_that_cannot_be_read_holds_the_mirror_with_the_reason(assets, setup, uri, says):
    world, container, _, _, conn = assets
    setup(world, container)
    service = _service(world, conn, uri, Predictor())
    stored = _run(world, service, lambda r: r.phase not in (P.PENDING, P.MIRRORING), ticks=25)
    assert stored.rollout.phase == P.MIRRORING  # held: never passed on without a comparison
    assert "predictions" in stored.rollout.last_reason
    assert any(says in c[2] for c in stored.rollout.checks), stored.rollout.checks


def test_a_percent_encoded_path_is_decoded():
    assert parse_data_uri("azureml://datastores/s/paths/week%2046/gold%C3%A9n.jsonl") == DatastorePath(
        "s", "week 46/goldén.jsonl"
    )


def test_latest_stays_on_the_version_the_comparison_began_on(assets):
    """A new version registered mid-rollout does not change the inputs under the comparison: every
    input of the version it began on is compared, none of the new one's, and the evidence names it."""
    world, container, _, _, conn = assets
    container.upload_blob("v1.jsonl", _lines(sample_inputs(300, seed=1)))
    world.emu.data_assets.add_data(
        world.emu.workspace_id, "golden", "1", "azureml://datastores/workspaceblobstore/paths/v1.jsonl",
        at=world.clock.now(),
    )
    service = _service(world, conn, "azureml:golden@latest", Predictor())
    tallies = []
    for minute in range(40):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        if stored.rollout.predictions is not None:
            tallies.append(stored.rollout.predictions)
        if minute == 12:  # someone registers a new, smaller version of the golden set
            container.upload_blob("v2.jsonl", _lines(sample_inputs(100, seed=2)))
            world.emu.data_assets.add_data(
                world.emu.workspace_id, "golden", "2", "azureml://datastores/workspaceblobstore/paths/v2.jsonl",
                at=world.clock.now(),
            )
    assert tallies, "the comparison never ran"
    last = tallies[-1]
    assert "300 from azureml:golden@latest (version 1)" in last.source
    assert last.last_key.startswith("2|1|")
    assert [t.scored for t in tallies] == sorted(t.scored for t in tallies)  # never back to the start
    assert last.scored == 300  # every input of version 1, none twice, none of version 2
    assert last.exhausted


def test_a_folder_too_large_is_refused_while_listing_it(assets, monkeypatch):
    from shared.adapters import blob_inputs

    world, container, reader, _, _ = assets
    monkeypatch.setattr(blob_inputs, "MAX_FOLDER_FILES", 3)
    monkeypatch.setattr(blob_inputs, "MAX_FOLDER_ENTRIES", 6)
    for i in range(4):
        container.upload_blob(f"many/part-{i}.jsonl", _lines(sample_inputs(1, seed=i)))
    for i in range(7):
        container.upload_blob(f"noise/file-{i}.parquet", b"x")
    with pytest.raises(ProviderError, match=r"more than the 3 \.jsonl files read"):
        reader.read("azureml://datastores/workspaceblobstore/paths/many", world.endpoint)
    with pytest.raises(ProviderError, match="more than 6 blobs in the folder"):
        reader.read("azureml://datastores/workspaceblobstore/paths/noise", world.endpoint)
