"""Teams and Slack notifications, end to end: a real rollout's lifecycle events, delivered as Event
Grid would deliver them to the `notify` function, reach real HTTP receivers on 127.0.0.1. Retries,
timeouts and refusals are the receivers' doing; the webhook URLs never reach the log."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import azure.functions as func
import pytest

from shared.adapters import notify_webhook
from shared.bootstrap import set_service
from shared.rollout.actions import DomainEvent
from shared.rollout.model import RolloutPhase as P
from tests.functions.harness import DEFAULT_POLICY, make_harness

NOTIFY = """
    notify:
      teams: {url_setting: TEAMS_WEBHOOK_URL}
      slack: {url_setting: SLACK_WEBHOOK_URL}
"""
POLICY = DEFAULT_POLICY.replace("{percent: 50, min_duration", "{percent: 50, approval: true, min_duration") + NOTIFY
# The secret part of a webhook URL lives in its path (Slack) or query (Teams Workflows' `sig`).
TEAMS_SECRET = "workflows/0f3c9a/triggers/manual/paths/invoke?api-version=2016-06-01&sig=TeamsSig-s3cr3t-0123"
SLACK_SECRET = "services/T0001/B0002/SlackToken-s3cr3t-4567"


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that records every request. `script` answers the first requests in
    order ("ok", a status code, "429-retry-after", "hang", "echo-404"); then "ok"."""

    script: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def url(self, secret: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{secret}"

    def bodies(self) -> list[Any]:
        return [r["json"] for r in self.requests]


@pytest.fixture
def receivers() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(*script: Any) -> Receiver:
        receiver = Receiver(list(script))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {
                        "at": time.monotonic(),
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "json": json.loads(raw),
                    }
                )
                step = receiver.script.pop(0) if receiver.script else "ok"
                if step == "hang":  # never answers (until the test ends)
                    receiver.release.wait(30)
                    return
                status, body, headers = 200, b"ok", {}
                if step == "429-retry-after":
                    status, headers = 429, {"Retry-After": "0"}
                elif step == "echo-404":  # an error body that repeats the URL it was sent to
                    status, body = 404, f"no_service for {self.path}".encode()
                elif isinstance(step, int):
                    status, body = step, b"server error"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        receiver.server.daemon_threads = True
        threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.release.set()
        assert receiver.server is not None
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def quick(monkeypatch):
    """Short timeouts and backoff, so the tests take a second, not the production 20."""
    monkeypatch.setattr(notify_webhook, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(notify_webhook, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(notify_webhook, "MAX_BACKOFF_SECONDS", 0.4)
    monkeypatch.setattr(notify_webhook, "DEADLINE_SECONDS", 3.0)


def as_delivered(event: DomainEvent) -> func.CloudEvent:
    """What the Functions host hands the trigger for one CloudEvent from the lifecycle topic
    (shared/adapters/eventgrid.py builds them: type SafeRollout.<type>, data rolloutId + data)."""
    data = json.loads(json.dumps({"rolloutId": event.rollout_id, **event.data}, default=str))
    return func.CloudEvent(
        id=str(uuid.uuid4()),
        source="/safe-rollout",
        type=f"SafeRollout.{event.type}",
        specversion="1.0",
        data=data,
        subject=event.subject,
    )


@pytest.fixture
def wired(fns, azurite, table_name, tmp_path, monkeypatch, receivers, quick, caplog):
    """A harness whose policy notifies Teams and Slack (local receivers); returns a helper that
    delivers the events published so far, as Event Grid would, to the `notify` function."""
    caplog.set_level(logging.DEBUG)  # every logger, every level: the URLs must not appear anywhere
    teams, slack = receivers(), receivers()
    harness = make_harness(fns, azurite, table_name, tmp_path, policy=POLICY)
    monkeypatch.setenv("SAFE_ROLLOUT_POLICY_FILE", str(harness.policy_path))
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", teams.url(TEAMS_SECRET))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url(SLACK_SECRET))
    delivered = {"count": 0}

    def deliver_new() -> list[str]:
        new = harness.events.events[delivered["count"] :]
        delivered["count"] = len(harness.events.events)
        for event in new:
            fns["notify"](as_delivered(event))
        return [e.type for e in new]

    yield harness, teams, slack, deliver_new
    set_service(None)


def assert_no_secret_in(text: str) -> None:
    for secret in ("TeamsSig-s3cr3t-0123", "SlackToken-s3cr3t-4567", TEAMS_SECRET, SLACK_SECRET):
        assert secret not in text


def card_text(teams_body: dict[str, Any]) -> str:
    (attachment,) = teams_body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    lines = []
    for block in card["body"]:
        if block["type"] == "TextBlock":
            lines.append(block["text"])
        elif block["type"] == "FactSet":
            lines.extend(f"{f['title']}: {f['value']}" for f in block["facts"])
    return "\n".join(lines)


def slack_text(slack_body: dict[str, Any]) -> str:
    parts = [slack_body["text"]]
    for block in slack_body["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(f["text"] for f in block.get("fields", []))
    return "\n".join(parts)


def test_people_are_told_when_a_rollout_waits_for_approval_and_when_it_succeeds(wired, caplog):
    harness, teams, slack, deliver_new = wired
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    published = deliver_new()
    assert "StageStarted" in published
    assert "ApprovalRequested" in published
    rollout = harness.rollout()
    # Only what needs a person (or ends the rollout) is sent: not the stages that started on their own.
    assert len(teams.requests) == len(slack.requests) == 1
    assert teams.requests[0]["content_type"].startswith("application/json")
    teams_said, slack_said = card_text(teams.bodies()[0]), slack_text(slack.bodies()[0])
    for said in (teams_said, slack_said):
        assert "Approval needed: fraud-model:2 on fraud-scorer" in said
        assert f"safe-rollout approve {rollout.id}" in said
        assert f"/rollouts/{rollout.id}/approve" in said
        assert rollout.id in said
        assert "fraud-scorer" in said
        assert "fraud-model:2" in said
        assert "waiting for approval before canary 50%" in said  # the reason, in one line
        assert "10% live" in said  # green's share now
    assert slack.bodies()[0]["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Approval needed: fraud-model:2 on fraud-scorer"},
    }

    assert harness.command("approve").status_code == 200
    harness.tick_until(lambda: harness.phase() == P.SUCCEEDED)
    assert "Succeeded" in deliver_new()
    assert len(teams.requests) == len(slack.requests) == 2
    for said in (card_text(teams.bodies()[1]), slack_text(slack.bodies()[1])):
        assert "Succeeded: fraud-model:2 on fraud-scorer" in said
        assert f"safe-rollout rollback {rollout.id}" in said  # the undo, while the old blue is kept
    assert "notification teams (TEAMS_WEBHOOK_URL) for Succeeded" in caplog.text
    assert_no_secret_in(caplog.text)


def test_a_webhook_that_fails_at_first_is_retried_with_growing_waits(wired, caplog):
    harness, teams, slack, deliver_new = wired
    teams.script[:] = [503, "429-retry-after", 502]
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    deliver_new()
    assert len(teams.requests) == 4  # three failures, then delivered
    assert len({json.dumps(b, sort_keys=True) for b in teams.bodies()}) == 1  # the same message each time
    gaps = [b["at"] - a["at"] for a, b in zip(teams.requests, teams.requests[1:], strict=False)]
    assert [gap >= wait for gap, wait in zip(gaps, (0.05, 0.1, 0.2), strict=True)] == [True] * 3, gaps  # doubling
    assert len(slack.requests) == 1  # the other channel is not held up or repeated
    assert "notification teams (TEAMS_WEBHOOK_URL) for ApprovalRequested" in caplog.text
    assert "delivered after 4 attempt(s)" in caplog.text
    assert_no_secret_in(caplog.text)


def test_retries_are_bounded_and_the_failure_is_logged_without_the_url(wired, caplog):
    harness, teams, slack, deliver_new = wired
    teams.script[:] = [500] * 10
    slack.script[:] = ["echo-404"]  # Slack: a revoked hook; its answer repeats the URL's path
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    deliver_new()
    assert len(teams.requests) == notify_webhook.ATTEMPTS
    assert len(slack.requests) == 1  # a 404 will not get better: not retried
    assert f"NOT delivered after {notify_webhook.ATTEMPTS} attempt(s): HTTP 500" in caplog.text
    assert "NOT delivered after 1 attempt(s): HTTP 404: no_service for <redacted>" in caplog.text
    assert "the rollout is not affected" in caplog.text
    assert_no_secret_in(caplog.text)


class DeliveredLater:
    """The lifecycle topic: publishing returns at once; Event Grid delivers to `notify` later."""

    def __init__(self, notify: Any) -> None:
        self.notify = notify
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.took: list[float] = []

    def publish(self, events: Any) -> None:
        for event in events:
            thread = threading.Thread(target=self._deliver, args=(as_delivered(event),), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _deliver(self, event: func.CloudEvent) -> None:
        started = time.monotonic()
        try:
            self.notify(event)
        except BaseException as exc:  # the function must never fail
            self.errors.append(exc)
        self.took.append(time.monotonic() - started)


def test_a_webhook_that_never_answers_times_out_and_the_rollout_goes_on(wired, fns, caplog):
    harness, teams, slack, _ = wired
    teams.script[:] = ["hang"] * 10
    lifecycle = DeliveredLater(fns["notify"])
    harness.service.events = lifecycle
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    assert harness.command("approve").status_code == 200
    harness.tick_until(lambda: harness.phase() == P.SUCCEEDED)  # the same rollout as without notifications
    for thread in lifecycle.threads:
        thread.join(10)
    assert not lifecycle.errors
    assert max(lifecycle.took) < notify_webhook.DEADLINE_SECONDS + 1.0  # bounded, whatever the webhook does
    assert len(slack.requests) == 2  # Slack got both messages while Teams hung
    assert "no answer within" in caplog.text
    assert "NOT delivered" in caplog.text
    assert_no_secret_in(caplog.text)


def test_a_missing_or_unresolved_setting_is_named_and_the_other_channel_still_gets_its_message(
    wired, monkeypatch, caplog
):
    harness, teams, slack, deliver_new = wired
    monkeypatch.delenv("TEAMS_WEBHOOK_URL")
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.AWAITING_APPROVAL)
    deliver_new()
    assert "app setting TEAMS_WEBHOOK_URL is not set" in caplog.text
    assert len(slack.requests) == 1
    assert not teams.requests
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/teams)")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://hooks.example.com/" + SLACK_SECRET)  # plain http, not local
    assert harness.command("pause").status_code == 200
    assert deliver_new() == ["Paused"]
    assert "TEAMS_WEBHOOK_URL is a Key Vault reference the platform could not resolve" in caplog.text
    assert "app setting SLACK_WEBHOOK_URL must hold an https:// webhook URL (value not shown)" in caplog.text
    assert len(slack.requests) == 1
    assert not teams.requests
    assert_no_secret_in(caplog.text)


def test_events_that_are_not_ours_or_not_wanted_send_nothing(wired, fns, caplog):
    harness, teams, slack, _ = wired
    foreign = func.CloudEvent(
        id="x", source="/elsewhere", type="Contoso.Deployed", specversion="1.0", data={"a": 1}, subject="s"
    )
    fns["notify"](foreign)
    assert "notification: event dropped: event type 'Contoso.Deployed' is not a Safe Rollout lifecycle event" in (
        caplog.text
    )
    broken = func.CloudEvent(
        id="y", source="/safe-rollout", type="SafeRollout.Paused", specversion="1.0", data={"x": 1}, subject="s"
    )
    fns["notify"](broken)
    assert "data lacks rolloutId, endpoint, model, reason" in caplog.text
    # A model whose target has no `notify`: nothing sent.
    other = DomainEvent(
        type="Paused",
        rollout_id="r-" + "0" * 20,
        subject=harness.world.emu.workspace_id + "/onlineEndpoints/other-scorer",
        data={"endpoint": "other-scorer", "model": "other-model:3", "reason": "a person paused it"},
    )
    fns["notify"](as_delivered(other))
    assert not teams.requests
    assert not slack.requests
