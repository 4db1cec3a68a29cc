"""The scale benchmark's model behaves as documented on a small fleet (the numbers themselves come
from `python -m bench.scale`, not from tests)."""

from __future__ import annotations

from bench.scale import BATCH_SIZE, run_case


def test_a_small_fleet_is_judged_in_virtual_time_with_one_log_query_per_work_item():
    result = run_case(60, instances=2, subscriptions=1, scenario="judge")
    items = -(-60 // BATCH_SIZE)
    assert result.judged == 60
    assert result.calls["logs"] == items
    assert result.refused == 0
    assert 0 < result.last_judged < 60  # virtual seconds, not wall time


def test_the_traffic_order_scenario_orders_traffic_for_every_rollout():
    result = run_case(30, instances=1, subscriptions=1, scenario="move")
    assert result.moved == 30
    assert result.calls["put"] == 30  # one PUT each: the traffic order (non-blocking)
