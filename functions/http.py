"""HTTP helpers shared by the HTTP functions: JSON bodies, RFC 9457 problem details, and the
mapping of failures the caller cannot fix (Azure or storage unavailable, a bug) to answers that
say so without a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

log = logging.getLogger("safe_rollout.functions")
RETRY_AFTER_SECONDS = 5
# Every answer is data, never something a browser should guess the type of.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str), status_code=status, mimetype="application/json", headers=dict(NOSNIFF)
    )


def problem(status: int, title: str, detail: str) -> func.HttpResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype="application/problem+json", headers=dict(NOSNIFF)
    )


def retry_later(title: str, detail: str) -> func.HttpResponse:
    """503 with Retry-After: the caller (a person, or an action group, which retries 503) should
    try again shortly."""
    response = problem(503, title, detail)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def answer(what: str, handle: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """Run a person's request. Azure or the state store unavailable (ProviderError) is a 503 with
    Retry-After; a missing or malformed setting is a 503 too; anything else is a bug: a 500
    problem, with the traceback in the log only."""
    from shared.ports import ProviderError
    from shared.settings import SettingsError

    try:
        return handle()
    except ProviderError as exc:
        log.warning("%s: Azure or the state store is unavailable: %s", what, exc)
        return retry_later("Unavailable", "Azure or the rollout state store could not be reached; try again shortly")
    except SettingsError as exc:
        log.error("%s: the app is not configured: %s", what, exc)
        return retry_later("Not configured", "the app's settings are incomplete or malformed; see its log")
    except Exception:
        log.exception("%s failed unexpectedly", what)
        return problem(500, "Internal error", "the request failed unexpectedly; the error has been logged")
