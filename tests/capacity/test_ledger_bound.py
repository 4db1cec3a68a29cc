"""The cost ledger stays bounded for a rollout's whole life (an autoscaler changing counts every few
minutes through a retention period), and the cost it reports does not change by the bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.rollout import capacity, cost
from shared.rollout.ledger import MAX_SPANS
from shared.rollout.model import EndpointRef, ModelRef, Rollout, RolloutPhase, TrafficSplit, WorkspaceRef
from shared.rollout.observation import DeploymentState, EndpointState
from shared.store import MAX_STRING_CHARS

P = RolloutPhase
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _endpoint(green: int, blue: int) -> EndpointState:
    def dep(name: str, n: int, kind: str) -> DeploymentState:
        return DeploymentState(name=name, provisioning_state="Succeeded", instance_type=kind, instance_count=n)

    return EndpointState(
        name="ep1",
        deployments={"green": dep("green", green, "Standard_DS4_v2"), "blue": dep("blue", blue, "Standard_DS3_v2")},
    )


def test_thousands_of_count_changes_keep_the_status_document_small_and_the_cost_exact():
    rollout = Rollout(
        id="r1",
        endpoint=EndpointRef(
            workspace=WorkspaceRef(subscription_id="s", resource_group="g", workspace="w"), name="ep1"
        ),
        model=ModelRef(name="m", version="2"),
        blue="blue",
        green="green",
        phase=P.CANARY,
        created_at=T0,
        updated_at=T0,
        stage_started_at=T0,
        desired=TrafficSplit(live={"blue": 50, "green": 50}),
    )
    every_span = []  # what an unbounded ledger would hold
    now = T0
    for i in range(3000):
        if i == 1500:  # success half-way: green is production, blue (OLD_PROD) the extra now
            rollout = rollout.model_copy(update={"phase": P.SUCCEEDED, "finished_at": now})
        now += timedelta(minutes=3)
        before = rollout.ledger
        rollout = capacity.observe(rollout, _endpoint(green=3 + i % 5, blue=2 + i % 7), now)
        every_span += [s for s in rollout.ledger[-2:] if s not in before]  # appended this tick
        assert len(rollout.ledger) <= 2 * MAX_SPANS
    assert len(every_span) > 2500
    size = len(rollout.model_dump_json())
    assert size < MAX_STRING_CHARS / 4, size
    unbounded = rollout.model_copy(update={"ledger": tuple(every_span), "ledger_folded": ()})
    later = now + timedelta(minutes=1)
    assert cost.extra_usage(rollout, later) == pytest.approx(cost.extra_usage(unbounded, later), rel=1e-9)
    assert set(cost.extra_usage(rollout, later)) == {"Standard_DS3_v2", "Standard_DS4_v2"}
