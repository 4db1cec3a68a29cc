"""Event Grid trigger on the lifecycle topic: Teams and Slack messages for people.

Subscribed (infra/main.bicep, `notifications`) to the app's own lifecycle events (CloudEvents of
type `SafeRollout.<type>`), decoupled from the rollouts: they published the event after saving
their state and never wait for this. Which targets want which events on which channel is the policy
file's per-target `notify` (shared/notifications.py); URLs come from the app settings it names.

This function never fails: a webhook that refuses or never answers is retried within a bounded
time and then logged as not delivered (a failed function would make Event Grid deliver the event
again and people get the messages twice). An event that is not ours is logged and dropped.
"""

import logging
import os
from pathlib import Path
from typing import Any

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")
ROOT = Path(__file__).resolve().parents[1]
_policy_files: dict[Path, Any] = {}


def policy_path() -> Path:
    """SAFE_ROLLOUT_POLICY_FILE as the rest of the app reads it (shared/settings.py)."""
    path = Path(os.environ.get("SAFE_ROLLOUT_POLICY_FILE", "").strip() or ROOT / "policy.yaml")
    return path if path.is_absolute() else ROOT / path


def api_base() -> str | None:
    """The API's public URL, for the messages' API calls: WEBSITE_HOSTNAME is set by the platform."""
    host = os.environ.get("WEBSITE_HOSTNAME", "").strip()
    return f"https://{host}/api" if host else None


@bp.function_name("notify")
@bp.event_grid_trigger(arg_name="event")
def notify(event: func.EventGridEvent) -> None:
    from shared.adapters.notify_webhook import Notifier
    from shared.bootstrap import CachedPolicyFile
    from shared.notifications import NotificationInputError, read_lifecycle_event
    from shared.payloads import read_event

    try:
        seen = read_event(event)
        lifecycle = read_lifecycle_event(seen.event_type, seen.event_id, seen.subject, seen.data)
    except NotificationInputError as exc:
        log.warning("notification: event dropped: %s", exc)
        return
    except Exception as exc:
        log.warning("notification: unreadable event dropped (%s)", type(exc).__name__)
        return
    try:
        path = policy_path()
        policies = _policy_files.setdefault(path, CachedPolicyFile(path))
        Notifier(policies, os.environ, api_base=api_base()).notify(lifecycle)
    except Exception:  # never fail: Event Grid would deliver again and people get duplicates
        log.exception("notification for %s of %s failed unexpectedly", lifecycle.type, lifecycle.rollout_id)
