"""A WSGI front for the HTTP functions, routing as the Functions host does (tests only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/openapi\.json$"), "openapi"),
    ("GET", re.compile(r"^/api/rollouts$"), "list_rollouts"),
    ("POST", re.compile(r"^/api/rollouts$"), "start_rollout"),
    ("GET", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)/report$"), "rollout_report"),
    ("GET", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)$"), "get_rollout"),
    ("POST", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)/(?P<action>[^/]+)$"), "override_rollout"),
    ("POST", re.compile(r"^/api/alerts$"), "alert_webhook"),
]
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


FUNCTION_KEY = "test-function-key"


def wsgi_app(fns: dict[str, Callable[..., Any]]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        # authLevel FUNCTION: the host refuses a missing or wrong key before any function runs
        if environ.get("HTTP_X_FUNCTIONS_KEY") != FUNCTION_KEY and query.get("code") != FUNCTION_KEY:
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"a function key is required"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        for verb, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and verb == method:
                req = func.HttpRequest(
                    method,
                    f"https://app{path}",
                    params={k: v for k, v in query.items() if k != "code"},
                    route_params=match.groupdict(),
                    headers={"content-type": environ.get("CONTENT_TYPE", "")},
                    body=body,
                )
                try:
                    resp = fns[name](req)
                except Exception:  # what the host turns into a 500
                    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                    return [b"unhandled exception"]
                headers = [
                    ("Content-Type", resp.mimetype or "application/octet-stream"),
                    *[(k, v) for k, v in resp.headers.items() if k.lower() != "content-type"],
                ]
                start_response(f"{resp.status_code} {REASONS.get(resp.status_code, 'Status')}", headers)
                return [resp.get_body()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route"]

    return app
