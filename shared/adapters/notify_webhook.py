"""Posting notifications to Teams and Slack incoming webhooks: bounded retries with backoff, short
timeouts, URLs never logged.

Runs in its own Event Grid-triggered function (functions/notify.py), subscribed to the lifecycle
topic: a slow or failing webhook never delays or fails a rollout, which published its events after
saving its state and moved on. The whole delivery of one event stays within DEADLINE_SECONDS
(channels are posted in parallel), well inside the 30 s Event Grid waits for an answer before it
would deliver the event again (docs/OPERATIONS.md, "Notifications"); the function never fails, so
Event Grid never re-delivers and nobody gets a message twice. What could not be delivered is
logged (`notification ... NOT delivered`), without the URL.

Retried: no answer, a timeout, 408, 429 (honouring a Retry-After of up to MAX_BACKOFF_SECONDS),
5xx, and a legacy Teams connector's 200 whose body reports an HTTP 429. Not retried: other 4xx
(a wrong or revoked URL, an invalid payload): a retry would not help. Redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from shared.notifications import (
    PAYLOADS,
    LifecycleEvent,
    config_for,
    message_for,
    redact,
    wanted,
)
from shared.targets import PolicyFile

log = logging.getLogger("safe_rollout.notify")

TIMEOUT_SECONDS = 5.0  # one attempt: connect and answer
ATTEMPTS = 4
BACKOFF_SECONDS = 1.0  # then 2, 4 (doubling), at most MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 8.0
DEADLINE_SECONDS = 20.0  # everything for one event; Event Grid waits 30 s
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("


@dataclass(frozen=True)
class Delivery:
    channel: str  # teams | slack
    setting: str  # the app setting naming the URL (never the URL)
    ok: bool
    attempts: int
    detail: str  # redacted


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as an error: a webhook URL does not move


def check_url(setting: str, value: str | None) -> str | None:
    """Why the setting's value cannot be used as a webhook URL, or None. Never repeats the value."""
    if value is None or not value.strip():
        return f"app setting {setting} is not set"
    if value.strip().lower().startswith(_KEY_VAULT_REFERENCE):
        return (
            f"app setting {setting} is a Key Vault reference the platform could not resolve (check the app's "
            "identity may read the secret: Key Vault Secrets User)"
        )
    try:
        split = urlsplit(value.strip())
        host = split.hostname
    except ValueError:
        return f"app setting {setting} does not hold a URL (value not shown)"
    if split.scheme == "https" and host:
        return None
    if split.scheme == "http" and host in _LOOPBACK:
        return None  # a local receiver (tests, a local Functions host)
    return f"app setting {setting} must hold an https:// webhook URL (value not shown)"


class WebhookSender:
    def __init__(
        self,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Defaults read at construction, so tests may shorten them.
        self.timeout = TIMEOUT_SECONDS if timeout is None else timeout
        self.attempts = ATTEMPTS if attempts is None else attempts
        self.backoff = BACKOFF_SECONDS if backoff is None else backoff
        self.max_backoff = MAX_BACKOFF_SECONDS if max_backoff is None else max_backoff
        self.deadline = DEADLINE_SECONDS if deadline is None else deadline
        self._sleep = sleep
        self._monotonic = monotonic
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, url: str, payload: Mapping[str, Any]) -> tuple[bool, int, str]:
        """(delivered, attempts made, what happened last). The text may hold what the server said:
        the caller redacts it."""
        body = json.dumps(payload).encode()
        started = self._monotonic()
        last = "not attempted"
        attempt = 0
        while attempt < self.attempts:
            remaining = self.deadline - (self._monotonic() - started)
            if remaining <= 0:
                last += "; gave up: out of time"
                break
            attempt += 1
            status, text, retry_after = self._once(url, body, min(self.timeout, remaining))
            if status is not None and 200 <= status < 300 and not _teams_throttled(text):
                return True, attempt, f"HTTP {status}"
            last = f"HTTP {status}: {text}" if status is not None else text
            retryable = status is None or status in (408, 429) or status >= 500 or _teams_throttled(text)
            if not retryable:
                last += " (not retried: the URL or the payload was refused)"
                break
            if attempt >= self.attempts:
                break
            wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
            if retry_after is not None:
                wait = min(self.max_backoff, max(wait, retry_after))
            if self._monotonic() - started + wait >= self.deadline:
                last += "; gave up: out of time"
                break
            self._sleep(wait)
        return False, attempt, last

    def _once(self, url: str, body: bytes, timeout: float) -> tuple[int | None, str, float | None]:
        request = urllib.request.Request(  # noqa: S310 - check_url allows https (and http to loopback) only
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "safe-rollout"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return int(response.status), _snippet(response.read(1024)), None
        except urllib.error.HTTPError as exc:
            try:
                text = _snippet(exc.read(1024))
            except (OSError, HTTPException):
                text = ""
            return exc.code, text or str(exc.reason), _retry_after(exc.headers.get("Retry-After"))
        except urllib.error.URLError as exc:
            reason = exc.reason
            return None, f"cannot connect: {type(reason).__name__}: {reason}", None
        except TimeoutError:
            return None, f"no answer within {timeout:.1f}s", None
        except (OSError, HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}", None


def _snippet(raw: bytes) -> str:
    return " ".join(raw.decode("utf-8", "replace").split())[:300]


def _teams_throttled(text: str) -> bool:
    """A legacy Teams connector answers 200 with this text when it throttles (Microsoft Learn,
    "Create and send messages", rate limiting for connectors)."""
    return "HTTP error 429" in text


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return seconds if seconds >= 0 else None


class Notifier:
    """One lifecycle event -> the messages its target's `notify` asks for, posted in parallel."""

    def __init__(
        self,
        policies: Callable[[], PolicyFile],
        env: Mapping[str, str],
        sender: WebhookSender | None = None,
        api_base: str | None = None,
    ) -> None:
        self._policies = policies
        self._env = env
        self._sender = sender or WebhookSender()
        self._api_base = api_base

    def notify(self, event: LifecycleEvent) -> list[Delivery]:
        what = f"{event.type} of rollout {event.rollout_id} ({event.model} on {event.endpoint})"
        try:
            policies = self._policies()
        except Exception:  # logged by the policy file's reader, with the file's name
            log.warning("notification for %s not sent: the policy file cannot be read", what)
            return []
        config = config_for(policies, event)
        if config is None:
            log.debug("no notification for %s: its target has no `notify`", what)
            return []
        if not wanted(config, event):
            log.debug("no notification for %s: not in the target's notify.on", what)
            return []
        message = message_for(event, self._api_base)
        urls = {kind: self._env.get(ch.url_setting) for kind, ch in config.channels()}
        secrets = [u for u in urls.values() if u]

        def deliver(kind: str, setting: str) -> Delivery:
            url = urls[kind]
            problem = check_url(setting, url)
            if problem is not None or url is None:
                return Delivery(kind, setting, False, 0, problem or f"app setting {setting} is not set")
            try:
                ok, attempts, detail = self._sender.post(url, PAYLOADS[kind](message))
            except Exception as exc:  # a bug here must not escape (the function never fails)
                ok, attempts, detail = False, 0, f"{type(exc).__name__}: {exc}"
            return Delivery(kind, setting, ok, attempts, redact(detail, secrets))

        channels = config.channels()
        with ThreadPoolExecutor(max_workers=len(channels), thread_name_prefix="notify") as pool:
            deliveries = list(pool.map(lambda pair: deliver(pair[0], pair[1].url_setting), channels))
        for d in deliveries:
            line = f"notification {d.channel} ({d.setting}) for {what}: " + (
                f"delivered after {d.attempts} attempt(s)"
                if d.ok
                else f"NOT delivered after {d.attempts} attempt(s): {d.detail}; the rollout is not affected"
            )
            line = redact(line, secrets)
            if d.ok:
                log.info("%s", line)
            else:
                log.warning("%s", line)
        return deliveries
