"""The cost of a rollout and of the new model (pure), and the price table the operator provides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.prices import PriceTableError, parse_prices, prices_beside
from shared.rollout.analysis import Verdict
from shared.rollout.cost import HOURS_PER_MONTH, gate, summary
from shared.rollout.model import EndpointRef, InstanceSpan, ModelRef, Rollout, RolloutPhase, WorkspaceRef
from shared.rollout.policy import RolloutPolicy
from shared.targets import PolicyFileError, load_policy_file

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WS = WorkspaceRef(subscription_id="s", resource_group="rg", workspace="ws")
P = RolloutPhase


def _rollout(phase: P, spans: list[tuple[str, int, float]], finished_h: float | None = None) -> Rollout:
    """spans: (deployment, instances, since hours after T0)."""
    return Rollout(
        id="r1",
        endpoint=EndpointRef(workspace=WS, name="fraud-scorer"),
        model=ModelRef(name="m", version="2"),
        blue="blue",
        green="green",
        phase=phase,
        created_at=T0,
        updated_at=T0,
        stage_started_at=T0,
        desired={"live": {"blue": 100}},
        blue_instances=8,
        finished_at=None if finished_h is None else T0 + timedelta(hours=finished_h),
        ledger=tuple(
            InstanceSpan(deployment=d, instance_type="Standard_NC6s_v3", instances=n, since=T0 + timedelta(hours=h))
            for d, n, h in spans
        ),
    )


def _policy(**cost: object) -> RolloutPolicy:
    return RolloutPolicy.model_validate({"capacity": {}, "cost": {"prices": {"Standard_NC6s_v3": 3.06}, **cost}})


def test_extra_instance_hours_count_green_until_success_and_old_blue_until_deleted():
    # green: 2 instances for 1 h, 4 for 1 h, 8 for 1 h, then production; blue: 8 until success,
    # shrunk to 1 for 0.5 h as OLD_PROD, then deleted.
    spans = [("blue", 8, 0), ("green", 2, 0), ("green", 4, 1), ("green", 8, 2), ("blue", 1, 3), ("blue", 0, 3.5)]
    r = _rollout(P.SUCCEEDED, spans, finished_h=3)
    s = summary(r, _policy(), T0 + timedelta(hours=10))
    assert s.extra_instance_hours == pytest.approx(2 + 4 + 8 + 0.5)
    assert s.extra_cost == pytest.approx(14.5 * 3.06)
    # without sizing green would have run at 8 for 3 hours and blue at 8 for the half hour
    assert s.extra_instance_hours < 8 * 3 + 8 * 0.5


def test_a_rolled_back_green_counts_until_it_is_deleted():
    r = _rollout(P.ROLLED_BACK, [("blue", 8, 0), ("green", 2, 0), ("green", 0, 1.25)], finished_h=1)
    assert summary(r, _policy(), T0 + timedelta(hours=5)).extra_instance_hours == pytest.approx(2.5)


def test_a_missing_price_is_said_not_guessed():
    r = _rollout(P.CANARY, [("blue", 8, 0), ("green", 2, 0)])
    s = summary(r, RolloutPolicy.model_validate({"cost": {"prices": {}}}), T0 + timedelta(hours=1))
    assert s.extra_cost is None
    assert s.missing_prices == ("Standard_NC6s_v3",)
    assert "no price for Standard_NC6s_v3" in s.describe()


def test_projected_monthly_cost_at_full_traffic():
    r = _rollout(P.CANARY, [("blue", 8, 0), ("green", 4, 0)])
    s = summary(r, _policy(), T0)
    assert s.blue_monthly == pytest.approx(8 * 3.06 * HOURS_PER_MONTH)
    assert s.green_monthly == s.blue_monthly  # sized like blue at 100%
    # the capacity check measured 1.3x blue's CPU per instance: green needs ceil(8 * 1.3) = 11
    grown = summary(r, _policy(), T0, ratio=1.3)
    assert grown.green_instances_full == 11
    assert grown.green_monthly == pytest.approx(11 * 3.06 * HOURS_PER_MONTH)


def test_the_cost_gate_compares_green_with_blue_and_records_the_figures():
    r = _rollout(P.CANARY, [("blue", 8, 0), ("green", 4, 0)])
    ok = gate(r, _policy(max_increase=0.1), T0, None)
    assert ok is not None
    assert ok.verdict == Verdict.PASS
    over = gate(r, _policy(max_increase=0.1), T0, 1.3)
    assert over is not None
    assert over.verdict == Verdict.FAIL
    assert over.evidence["green_instances"] == 11
    assert over.evidence["blue_instances"] == 8
    assert over.evidence["green_monthly"] == pytest.approx(11 * 3.06 * HOURS_PER_MONTH)
    assert "above the 10% allowed" in over.summary
    assert gate(r, _policy(max_increase=None), T0, 1.3) is None  # no gate
    unpriced = gate(r, RolloutPolicy.model_validate({"cost": {"prices": {}}}), T0, None)
    assert unpriced is not None
    assert unpriced.verdict == Verdict.FAIL
    assert "cannot be projected" in unpriced.summary


def test_price_table_parsing_and_errors():
    text = "# comment\ninstance_type,hourly_price\nStandard_DS3_v2, 0.229\n\nStandard_NC6s_v3,3.06\n"
    assert parse_prices(text) == {"Standard_DS3_v2": 0.229, "Standard_NC6s_v3": 3.06}
    with pytest.raises(PriceTableError, match="line 2: hourly_price 'cheap' is not a number"):
        parse_prices("instance_type,hourly_price\nStandard_DS3_v2,cheap\n")
    with pytest.raises(PriceTableError, match="line 1: hourly_price must be 0 or more"):
        parse_prices("Standard_DS3_v2,-1\n")


def test_the_price_table_beside_the_policy_file_lands_in_the_snapshot(tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(
        "defaults: {cost: {max_increase: 0.2}}\ntargets: [{model: m, endpoint: ep-1}]\n"
    )
    (tmp_path / "prices.csv").write_text("instance_type,hourly_price\nStandard_DS3_v2,0.229\n")
    files = load_policy_file(tmp_path / "policy.yaml")
    policy = files.policy_for(files.targets[0])
    assert policy.cost is not None
    assert policy.cost.prices == {"Standard_DS3_v2": 0.229}
    assert prices_beside(tmp_path / "policy.yaml") == {"Standard_DS3_v2": 0.229}
    (tmp_path / "prices.csv").write_text("Standard_DS3_v2\n")
    with pytest.raises(PolicyFileError, match=r"prices\.csv line 1"):
        load_policy_file(tmp_path / "policy.yaml")


def test_the_sample_price_tables_parse():
    root = Path(__file__).resolve().parents[2]
    for path in (root / "prices.csv", root / "demo" / "prices.csv"):
        prices = parse_prices(path.read_text(), str(path))
        assert prices["Standard_DS3_v2"] > 0
