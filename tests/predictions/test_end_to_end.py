"""The whole path: the service scores blue's collected inputs on blue and green through the real
SDKs against the emulator (scoring with the endpoint key and the `azureml-model-deployment`
header), reads them from Azurite's blob service with azure-storage-blob, and the core judges."""

from __future__ import annotations

from azure.storage.blob import BlobServiceClient

from emulator.data_collector import write_collected_inputs
from emulator.predictor import Predictor, sample_inputs
from emulator.traffic import Scenario
from shared.adapters.blob_inputs import BlobInputs
from shared.adapters.paired_scoring import PairedScorer
from shared.model_checks import ModelChecks
from shared.rollout.model import RolloutPhase
from tests.emulated import checked_service, make_world

P = RolloutPhase
GREEN = "fraud-model-v2"


def setup(conn: str, account: str, container_name: str, green: Predictor, collected: int = 1500, **predictions):
    world = make_world(rpm=300, blue=Scenario(predictor=Predictor()))
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(predictor=green))
    container = BlobServiceClient.from_connection_string(conn).create_container(container_name)
    inputs = [b["data"][0] for b in sample_inputs(collected, seed=11)]
    write_collected_inputs(
        container,
        source=world.emu.deployment_id("fraud-scorer", "blue"),
        endpoint="fraud-scorer",
        deployment="blue",
        inputs=inputs,
        at=world.clock.now(),
    )
    policy = {
        "mirror": {"min_duration": "5m", "max_duration": "60m"},
        "predictions": {
            "inputs": {"data_collector": {"account_url": account, "container": container_name}},
            "prediction": "/label",
            "score": "/score",
            "max_requests_per_minute": 60,
        }
        | predictions,
    }
    checks = ModelChecks(
        scorer=PairedScorer(world.gateway()), inputs=BlobInputs(None, connection_string=conn), clock=world.clock
    )
    return world, checked_service(world, policy, checks)


def run_until(world, service, done, ticks=90):
    for _ in range(ticks):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        if done(stored.rollout):
            return stored
    return stored


def test_a_fast_error_free_green_that_disagrees_on_15_percent_is_rolled_back_in_the_shadow(
    blob_account, container_name
):
    conn, account = blob_account
    world, service = setup(conn, account, container_name, Predictor(disagree=0.15, salt="v2"))
    stored = run_until(world, service, lambda r: r.phase.terminal)
    assert stored.rollout.phase == P.ROLLED_BACK
    decisions = service.store.decisions(stored.rollout.id)
    rollback = next(d for d in decisions if d.to_phase == P.ROLLING_BACK)
    assert rollback.from_phase == P.MIRRORING
    assert "predictions" in rollback.reason
    assert "disagrees with blue" in rollback.reason
    evidence = {r.check: r for r in rollback.evidence}
    assert "→" in str(evidence["predictions"].evidence["confusion"])
    assert evidence["errors"].verdict != "Fail"  # the service itself was fine
    assert world.emu.sim.user_answers[("fraud-scorer", GREEN)] == 0  # no user saw green's answers
    # Both deployments were addressed by name with the endpoint's key, and within the budget.
    scored = [r for r in world.emu.requests if ".inference.ml.azure.com" in r[1]]
    assert scored
    assert len(scored) <= 2 * 60 * 60
    assert stored.rollout.predictions is not None
    assert "collected from blue" in stored.rollout.predictions.source


def test_a_green_that_agrees_passes_the_mirror(blob_account, container_name):
    conn, account = blob_account
    world, service = setup(conn, account, container_name, Predictor())
    stored = run_until(world, service, lambda r: r.phase == P.CANARY or r.phase.terminal)
    assert stored.rollout.phase == P.CANARY, stored.rollout.last_reason
    tally = stored.rollout.predictions
    assert tally is not None
    assert tally.disagree == 0
    assert tally.pairs >= 100
    # Scoring stopped with the mirror: no more requests once green serves users.
    sent = tally.scored
    run_until(world, service, lambda r: False, ticks=3)
    (after,) = service.store.find()
    assert after.rollout.predictions is not None
    assert after.rollout.predictions.scored == sent


def test_without_inputs_the_mirror_holds_and_never_passes(blob_account, container_name):
    conn, account = blob_account
    world, service = setup(conn, account, container_name, Predictor(), collected=0)
    stored = run_until(world, service, lambda r: r.phase not in (P.PENDING, P.MIRRORING), ticks=25)
    assert stored.rollout.phase == P.MIRRORING
    assert "predictions" in stored.rollout.last_reason
    assert any("the sample is empty" in c[2] for c in stored.rollout.checks), stored.rollout.checks
