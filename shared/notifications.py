"""Notifications to people, pure: a lifecycle event (as published to the lifecycle topic) becomes a
Microsoft Teams or Slack incoming-webhook message saying what happened, why (one line), and the
command or API call to act, with the rollout id, endpoint and model:version.

Which target wants which events on which channel is the policy file's per-target `notify`:

```yaml
targets:
  - model: fraud-model
    endpoint: fraud-scorer
    notify:
      teams: {url_setting: TEAMS_WEBHOOK_URL}    # the NAME of an app setting holding the URL
      slack: {url_setting: SLACK_WEBHOOK_URL}
      on: [ApprovalRequested, Paused, RollbackStarted, RolledBack, Failed, Succeeded]
```

A webhook URL is a credential (whoever has it may post to the channel): the file names the app
setting that holds it (a Key Vault reference in Azure), never the URL, and `redact` keeps it out
of every log line and error. Payload formats (docs/OPERATIONS.md, "Notifications", has the sources):
Teams: a `message` whose attachment is an Adaptive Card (what Workflows' "When a Teams webhook
request is received" and the older incoming webhooks both accept); Slack: `text` (the notification
fallback) plus Block Kit `blocks`.

No I/O here: the HTTP POST, retries and timeouts are in shared/adapters/notify_webhook.py.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from shared.rollout.model import Frozen

if TYPE_CHECKING:
    from shared.targets import PolicyFile

EVENT_TYPE_PREFIX = "SafeRollout."
# Every lifecycle event the decision core publishes (shared/rollout/transitions.py, commands.py,
# machine.py); `Aborted` and `Superseded` are the landing of a rollback started for those reasons.
EventType = Literal[
    "Started",
    "StageStarted",
    "ApprovalRequested",
    "Paused",
    "DriftDetected",
    "Resumed",
    "Retried",
    "RollbackStarted",
    "RolledBack",
    "Aborted",
    "Superseded",
    "Failed",
    "Succeeded",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# Where a person is needed, or a rollout ended: waiting for approval, paused (by a person, drift,
# missing data, provider errors), rolling back, rolled back, failed, succeeded.
DEFAULT_ON: tuple[EventType, ...] = (
    "ApprovalRequested",
    "Paused",
    "DriftDetected",
    "RollbackStarted",
    "RolledBack",
    "Failed",
    "Succeeded",
)
# App setting names: letters, digits, underscores and periods (App Service on Linux).
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_ID = re.compile(r"r-[0-9a-f]{20}")
MAX_REASON = 400


class NotificationInputError(ValueError):
    """A delivered event that is not one of ours, or is malformed: logged and dropped."""


class Channel(Frozen):
    """One incoming webhook: the app setting holding its URL."""

    url_setting: str

    @field_validator("url_setting")
    @classmethod
    def _a_setting_name_not_a_url(cls, value: str) -> str:
        # A ValueError's message is reported without the value: a URL pasted here stays out of logs.
        if "://" in value or value.lower().startswith(("http", "www.")):
            raise ValueError(
                "give the NAME of the app setting that holds the webhook URL (e.g. TEAMS_WEBHOOK_URL), not the "
                "URL itself: the URL is a credential and must not be in the policy file (value not shown)"
            )
        if not _SETTING_NAME.fullmatch(value):
            raise ValueError(
                "must be an app setting name: letters, digits, underscores and periods, starting with a letter "
                "or an underscore, at most 128 characters (value not shown)"
            )
        return value


class NotifyConfig(Frozen):
    """A target's notifications: Teams and/or Slack, on which lifecycle events."""

    teams: Channel | None = None
    slack: Channel | None = None
    on: tuple[EventType, ...] = DEFAULT_ON

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, value: Any) -> Any:
        """YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true: take it as `on`."""
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if k is True else k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _somewhere_to_send(self) -> NotifyConfig:
        if self.teams is None and self.slack is None:
            raise ValueError("`notify` needs `teams` or `slack` (each with `url_setting`)")
        if not self.on:
            raise ValueError("`notify.on` lists no events; leave it out for the default " + ", ".join(DEFAULT_ON))
        return self

    def channels(self) -> list[tuple[str, Channel]]:
        return [(kind, ch) for kind, ch in (("teams", self.teams), ("slack", self.slack)) if ch is not None]


@dataclass(frozen=True)
class LifecycleEvent:
    """The fields of a published lifecycle event that a notification needs."""

    type: str
    event_id: str
    rollout_id: str
    endpoint: str
    endpoint_arm_id: str
    model: str  # name:version
    phase: str
    reason: str
    green: str | None
    blue: str | None
    live: Mapping[str, int]
    mirror: Mapping[str, int]
    finish_as: str | None
    stage: str | None

    @property
    def model_name(self) -> str:
        return self.model.rpartition(":")[0] or self.model

    @property
    def workspace_arm_id(self) -> str:
        return self.endpoint_arm_id.rpartition("/onlineEndpoints/")[0]


def read_lifecycle_event(event_type: str, event_id: str, subject: str | None, data: Any) -> LifecycleEvent:
    """A CloudEvent from the lifecycle topic (shared/adapters/eventgrid.py publishes them:
    type `SafeRollout.<type>`, subject the endpoint's ARM id, data `{"rolloutId", "endpoint",
    "model", "phase", "reason", ...}`). NotificationInputError names what is wrong."""
    kind = event_type.removeprefix(EVENT_TYPE_PREFIX)
    if not event_type.startswith(EVENT_TYPE_PREFIX) or kind not in EVENT_TYPES:
        raise NotificationInputError(f"event type {event_type[:80]!r} is not a Safe Rollout lifecycle event")
    if not isinstance(data, dict):
        raise NotificationInputError(f"{kind} event {event_id[:80]}: data is not a JSON object")
    missing = [k for k in ("rolloutId", "endpoint", "model", "reason") if not isinstance(data.get(k), str)]
    if missing:
        raise NotificationInputError(f"{kind} event {event_id[:80]}: data lacks {', '.join(missing)}")
    if not _ID.fullmatch(data["rolloutId"]):
        raise NotificationInputError(f"{kind} event {event_id[:80]}: rolloutId is not a rollout id")
    traffic = data.get("traffic") if isinstance(data.get("traffic"), dict) else {}
    assert isinstance(traffic, dict)

    def split(key: str) -> dict[str, int]:
        raw = traffic.get(key)
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    return LifecycleEvent(
        type=kind,
        event_id=event_id,
        rollout_id=data["rolloutId"],
        endpoint=data["endpoint"],
        endpoint_arm_id=subject or "",
        model=data["model"],
        phase=text("phase") or "",
        reason=data["reason"],
        green=text("green"),
        blue=text("blue"),
        live=split("live"),
        mirror=split("mirror"),
        finish_as=text("finish_as"),
        stage=text("stage"),
    )


def config_for(policies: PolicyFile, event: LifecycleEvent) -> NotifyConfig | None:
    """The `notify` of the target that sends this model to this endpoint (the first such target,
    as when the rollout started), or None."""
    for target in policies.targets:
        if not fnmatch.fnmatchcase(event.model_name, target.model):
            continue
        if target.workspace and target.workspace.lower() != event.workspace_arm_id.lower():
            continue
        if event.endpoint.lower() not in {e.lower() for e in (target.endpoint, *target.allowed_endpoints) if e}:
            continue
        return target.notify
    return None


def wanted(config: NotifyConfig, event: LifecycleEvent) -> bool:
    return event.type in config.on


# -- what the message says ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    title: str
    what: str
    why: str
    act: tuple[str, ...]  # one line each: a CLI command or an API call
    facts: tuple[tuple[str, str], ...]
    tone: Literal["good", "attention", "warning", "neutral"]


def one_line(text: str, limit: int = MAX_REASON) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _traffic(event: LifecycleEvent) -> str:
    green = (event.green or "").lower()
    live = event.live.get(green, 0)
    mirror = event.mirror.get(green, 0)
    return f"{live}% live, {mirror}% mirrored" if green else "none"


def _api(api_base: str | None, rollout_id: str, action: str) -> str:
    root = (api_base or "/api").rstrip("/")
    return f'POST {root}/rollouts/{rollout_id}/{action} {{"actor": "...", "reason": "..."}}'


def message_for(event: LifecycleEvent, api_base: str | None = None) -> Message:
    """What happened, why (one line), how to act. `api_base` is the API's URL (…/api) if known."""
    rid, model, endpoint = event.rollout_id, event.model, event.endpoint
    on = f"{model} on {endpoint}"
    watch = f"watch it: safe-rollout get {rid} --watch"
    report = f"read the evidence: safe-rollout report {rid} -o {rid}.html (or GET /api/rollouts/{rid}/report)"
    title: str
    what: str
    act: list[str]
    tone: Literal["good", "attention", "warning", "neutral"] = "neutral"
    kind = event.type
    if kind == "ApprovalRequested":
        title, tone = f"Approval needed: {on}", "attention"
        what = f"Rollout {rid} waits for a person's approval before its next stage."
        act = [
            f"approve: safe-rollout approve {rid} --reason '...'",
            f"or roll back: safe-rollout rollback {rid} --reason '...'",
            f"API: {_api(api_base, rid, 'approve')}",
        ]
    elif kind in ("Paused", "DriftDetected"):
        title, tone = f"Paused: {on}", "attention"
        what = (
            f"Rollout {rid} is paused: someone changed the endpoint's traffic by hand."
            if kind == "DriftDetected"
            else f"Rollout {rid} is paused; green keeps its share until a person decides."
        )
        act = [
            f"resume: safe-rollout resume {rid} --reason '...'",
            f"or roll back: safe-rollout rollback {rid} --reason '...'",
            f"API: {_api(api_base, rid, 'resume')}",
        ]
    elif kind == "RollbackStarted":
        ending = event.finish_as or "RolledBack"
        verb = {"Aborted": "Aborting", "Superseded": "Superseded"}.get(ending, "Rolling back")
        title, tone = f"{verb}: {on}", "warning"
        what = f"Rollout {rid}: traffic is being sent back to blue" + (f" ({event.blue})." if event.blue else ".")
        act = [watch, report]
    elif kind == "RolledBack":
        title, tone = f"Rolled back: {on}", "warning"
        what = f"Rollout {rid} is rolled back: blue serves all traffic; green is kept for a while, then deleted."
        act = [report, f"try again with a fixed version: register it, or safe-rollout start {endpoint} MODEL:VERSION"]
    elif kind == "Failed":
        title, tone = f"Failed: {on}", "warning"
        what = f"Rollout {rid} failed before green served users."
        act = [f"see why: safe-rollout get {rid}", report]
    elif kind == "Succeeded":
        title, tone = f"Succeeded: {on}", "good"
        what = f"Rollout {rid} succeeded: {model} serves all traffic on {endpoint}."
        act = [f"undo while the old blue is kept: safe-rollout rollback {rid} --reason '...'", report]
    elif kind == "Aborted":
        title, tone = f"Aborted: {on}", "attention"
        what = f"Rollout {rid} is aborted: blue serves all traffic, green is kept."
        act = [f"start the analysis again: safe-rollout retry {rid}", f"or end it: safe-rollout rollback {rid}"]
    elif kind == "Superseded":
        title = f"Superseded: {on}"
        what = f"Rollout {rid} was replaced by a newer version's rollout."
        act = [f"list the endpoint's rollouts: safe-rollout list --endpoint {endpoint}"]
    else:  # Started, StageStarted, Resumed, Retried
        label = {"StageStarted": f"Stage {event.stage}" if event.stage else "Next stage"}.get(kind, kind)
        title = f"{label}: {on}"
        what = f"Rollout {rid}: {kind}."
        act = [watch]
    facts = (
        ("Rollout", rid),
        ("Endpoint", endpoint),
        ("Model", model),
        ("Phase", event.phase or kind),
        ("Green traffic", _traffic(event)),
    )
    return Message(title=title, what=what, why=one_line(event.reason), act=tuple(act), facts=facts, tone=tone)


# -- the channels' payloads ----------------------------------------------------------------------

_TEAMS_COLOR = {"good": "Good", "attention": "Attention", "warning": "Warning", "neutral": "Default"}


def teams_payload(message: Message) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card (TextBlocks and a FactSet, schema 1.2)."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.title,
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOR[message.tone],
            "wrap": True,
        },
        {"type": "TextBlock", "text": message.what, "wrap": True},
        {"type": "TextBlock", "text": f"Why: {message.why}", "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in message.facts]},
        {"type": "TextBlock", "text": "To act:", "weight": "Bolder", "wrap": True},
        *({"type": "TextBlock", "text": line, "wrap": True, "fontType": "Monospace"} for line in message.act),
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn: &, < and > are control characters and must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict[str, Any]:
    """`text` (shown in notifications, and where blocks cannot be) plus Block Kit blocks."""
    esc = _slack_escape
    fields = [{"type": "mrkdwn", "text": f"*{esc(k)}*\n{esc(v)}"} for k, v in message.facts]
    act = "\n".join(f"`{esc(line)}`" for line in message.act)
    return {
        "text": f"{message.title}: {message.why}"[:3000],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": esc(message.what)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why:* {esc(message.why)}"[:3000]}},
            {"type": "section", "fields": fields[:10]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*To act:*\n{act}"[:3000]}},
        ],
    }


PAYLOADS = {"teams": teams_payload, "slack": slack_payload}


# -- keeping webhook URLs out of logs ------------------------------------------------------------


def secret_parts(url: str) -> list[str]:
    """What of a webhook URL must never be shown: the URL itself, and its path and query (where the
    webhook's secret token lives), longest first."""
    parts = {url, url.rstrip("/")}
    try:
        split = urlsplit(url)
    except ValueError:
        return sorted(parts, key=len, reverse=True)
    if len(split.path) > 1:
        parts.add(split.path)
    if split.query:
        parts.add(split.query)
        parts.add(f"{split.path}?{split.query}")
    return sorted((p for p in parts if len(p) >= 4), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and its parts) replaced by `<redacted>`."""
    out = text
    for secret in secrets:
        for part in secret_parts(secret):
            out = out.replace(part, "<redacted>")
    return out


def describe_url(url: str) -> str:
    """A webhook's host only, for logs: `https://hooks.slack.com/…`."""
    try:
        split = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    return f"{split.scheme}://{split.hostname or '?'}/…"
