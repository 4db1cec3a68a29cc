"""What the dispatcher enqueues (pure): batches of one subscription and region, alternating between
subscriptions, in messages the worker validates with clear reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.dispatch import MAX_BATCH_SIZE, BadMessageError, Due, WorkItem, parse_message, plan_batches
from shared.settings import Settings, SettingsError

TICK = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _due(n: int, sub: str, region: str = "eastus") -> list[Due]:
    return [Due(f"r-{sub}-{i:03d}", sub, region) for i in range(n)]


def test_batches_hold_one_subscription_and_region_and_at_most_the_batch_size():
    due = _due(60, "sub-a") + _due(10, "SUB-A", "East US") + _due(5, "sub-b") + _due(3, "sub-a", "westeurope")
    items = plan_batches(due, TICK, batch_size=25)
    assert sum(len(i.rollouts) for i in items) == 78
    assert all(len(i.rollouts) <= 25 for i in items)
    groups = {(i.subscription, i.region) for i in items}
    assert groups == {("sub-a", "eastus"), ("sub-b", "eastus"), ("sub-a", "westeurope")}
    eastus_a = [r for i in items if (i.subscription, i.region) == ("sub-a", "eastus") for r in i.rollouts]
    assert len(eastus_a) == 70  # 'SUB-A' / 'East US' are the same subscription and region
    assert [i.batch for i in items] == list(range(len(items)))


def test_consecutive_messages_alternate_between_subscriptions():
    items = plan_batches(_due(75, "sub-a") + _due(75, "sub-b") + _due(75, "sub-c"), TICK, batch_size=25)
    # each round starts one subscription later: instances taking every third message still get all three
    assert [i.subscription for i in items[:9]] == [
        "sub-a",
        "sub-b",
        "sub-c",
        "sub-b",
        "sub-c",
        "sub-a",
        "sub-c",
        "sub-a",
        "sub-b",
    ]


def test_a_work_item_survives_the_queue_as_json_and_stale_ones_are_recognised():
    (item,) = plan_batches(_due(3, "sub-a"), TICK)
    assert parse_message(item.to_message()) == item
    assert parse_message(item.to_message().encode()) == item
    assert not item.stale(TICK)
    assert item.stale(datetime(2026, 11, 1, 9, 11, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v": 1}', "tick: Field required"),
        (
            json.dumps(
                {"v": 2, "tick": TICK.isoformat(), "subscription": "s", "region": "", "batch": 0, "rollouts": ["r"]}
            ),
            "v:",
        ),
        (
            json.dumps(
                {
                    "v": 1,
                    "tick": "2026-11-01T09:00:00",
                    "subscription": "s",
                    "region": "",
                    "batch": 0,
                    "rollouts": ["r"],
                }
            ),
            "time zone",
        ),
        (
            json.dumps(
                {
                    "v": 1,
                    "tick": TICK.isoformat(),
                    "subscription": "s",
                    "region": "",
                    "batch": 0,
                    "rollouts": ["r", "r"],
                }
            ),
            "appears twice",
        ),
        (
            json.dumps(
                {"v": 1, "tick": TICK.isoformat(), "subscription": "s", "region": "", "batch": 0, "rollouts": ["a b"]}
            ),
            "not a rollout id",
        ),
    ],
)
def test_a_message_that_is_not_a_work_item_is_refused_with_what_is_wrong(text, says):
    with pytest.raises(BadMessageError) as refused:
        parse_message(text)
    assert says in str(refused.value)


def test_batch_size_and_queue_settings_are_checked_with_the_setting_named():
    with pytest.raises(ValueError, match="batch size"):
        plan_batches(_due(1, "s"), TICK, batch_size=MAX_BATCH_SIZE + 1)
    base = {
        "SAFE_ROLLOUT_STORAGE_CONNECTION": "UseDevelopmentStorage=true",
        "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://x",
    }
    for name, value in (
        ("SAFE_ROLLOUT_WORK_QUEUE", "Work_Queue"),
        ("SAFE_ROLLOUT_WORK_QUEUE", "a--b"),
        ("SAFE_ROLLOUT_BATCH_SIZE", "51"),
        ("SAFE_ROLLOUT_ARM_WRITES_PER_SECOND", "11"),
        ("SAFE_ROLLOUT_QUEUE__queueServiceUri", "http://acct.queue.core.windows.net?sig=XYZZY"),
    ):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env(base | {name: value})
        assert name in str(refused.value)
        assert "XYZZY" not in str(refused.value)
    settings = Settings.from_env(base)
    assert (settings.work_queue, settings.batch_size) == ("saferollout-work", 25)


def test_an_item_is_never_built_with_no_rollout():
    with pytest.raises(ValueError, match="at least 1 item"):
        WorkItem(tick=TICK, subscription="s", region="", batch=0, rollouts=())
    assert plan_batches([], TICK) == []
