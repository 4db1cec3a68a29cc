"""Domain events reach an Event Grid topic as CloudEvents, through the real publisher client."""

from __future__ import annotations

import logging

from azure.core.credentials import AzureKeyCredential

from emulator.azure import Emulator
from emulator.azurite import free_port
from emulator.clock import SimClock
from emulator.server import serve
from shared.adapters.eventgrid import EventGridPublisher, NoopPublisher
from shared.rollout.actions import DomainEvent

EVENT = DomainEvent(type="RolledBack", rollout_id="r-1", subject="/subscriptions/s/x", data={"reason": "slow"})


def test_events_are_published_as_cloudevents(tmp_path):
    emu = Emulator(SimClock())
    port = free_port()
    server = serve(emu, port, tmp_path, tls=False)
    try:
        publisher = EventGridPublisher(f"http://127.0.0.1:{port}/api/events", AzureKeyCredential("sink-key"))
        publisher.publish([EVENT])
    finally:
        server.shutdown()
    (event,) = emu.events_of_type("RolledBack")
    assert event["type"] == "SafeRollout.RolledBack"
    assert event["specversion"] == "1.0"
    assert event["data"] == {"rolloutId": "r-1", "reason": "slow"}
    assert event["subject"] == "/subscriptions/s/x"


def test_an_unreachable_topic_is_logged_not_raised(caplog):
    port = free_port()  # nothing listens there
    publisher = EventGridPublisher(f"http://127.0.0.1:{port}/api/events", AzureKeyCredential("k"))
    with caplog.at_level(logging.WARNING, logger="safe_rollout.events"):
        publisher.publish([EVENT])
    assert publisher.failures == 1
    assert "RolledBack/r-1" in caplog.text


def test_noop_publisher_logs_what_it_would_have_sent(caplog):
    with caplog.at_level(logging.INFO, logger="safe_rollout.events"):
        NoopPublisher().publish([EVENT])
    assert "SafeRollout.RolledBack" in caplog.text
