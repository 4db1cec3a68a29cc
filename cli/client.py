"""The HTTP API as the CLI sees it: one injectable transport, and errors sorted by who can fix them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

# (method, path under /api such as "/rollouts", query params, JSON body) -> (status, JSON body, or the
# text of an HTML page such as the report).
# Tests route it to the function handlers; `http_transport` sends it over HTTPS.
Transport = Callable[[str, str, Mapping[str, str] | None, Any], tuple[int, Any]]
TIMEOUT_SECONDS = 30


class ApiRefusedError(Exception):
    """The API answered 4xx: the request was understood and refused (exit code 1)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class UnavailableError(Exception):
    """The API answered 5xx or could not be reached: try again later (exit code 3)."""


class NoReportRouteError(Exception):
    """The API has no report route (a 404 that is not the API's own problem answer): an older
    deployment, or a URL that is not Safe Rollout's API."""


def http_transport(base_url: str, key: str | None) -> Transport:
    """Requests to `{base_url}/api{path}` with the function key in `x-functions-key`."""
    root = base_url.rstrip("/")
    if not root.endswith("/api"):
        root += "/api"
    headers = {"Accept": "application/json"}
    if key:
        headers["x-functions-key"] = key

    def send(method: str, path: str, params: Mapping[str, str] | None, body: Any) -> tuple[int, Any]:
        try:
            response = requests.request(
                method, root + path, params=dict(params or {}), json=body, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except requests.RequestException as exc:
            raise UnavailableError(f"cannot reach {root}: {exc}") from None
        if response.headers.get("Content-Type", "").startswith("text/html") and response.status_code < 300:
            return response.status_code, response.text  # the report: a page, not JSON
        try:
            payload = response.json()
        except ValueError:
            payload = {"detail": response.text[:500]}
        return response.status_code, payload

    return send


class Client:
    def __init__(self, transport: Transport) -> None:
        self._send = transport

    def call(self, method: str, path: str, params: Mapping[str, str] | None = None, body: Any = None) -> Any:
        try:
            status, payload = self._send(method, path, params, body)
        except UnavailableError:
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise UnavailableError(f"cannot reach the API: {exc}") from None
        return self.call_result(status, payload)

    def list(self, **filters: str | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v}
        return list(self.call("GET", "/rollouts", params)["rollouts"])

    def get(self, rollout_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/rollouts/{rollout_id}"))

    def command(self, rollout_id: str, action: str, actor: str, reason: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/rollouts/{rollout_id}/{action}", None, {"actor": actor, "reason": reason}))

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/rollouts", None, body))

    def report(self, rollout_id: str) -> str:
        """The self-contained HTML report of one rollout (GET /rollouts/{id}/report)."""
        try:
            status, payload = self._send("GET", f"/rollouts/{rollout_id}/report", None, None)
        except UnavailableError:
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise UnavailableError(f"cannot reach the API: {exc}") from None
        if status == 404 and not (isinstance(payload, dict) and payload.get("title")):
            raise NoReportRouteError(f"GET /api/rollouts/{rollout_id}/report answered 404 without a problem body")
        if isinstance(payload, str) and status < 300:
            return payload
        self.call_result(status, payload)
        raise UnavailableError(f"the API answered {status} without a report page")

    @staticmethod
    def call_result(status: int, payload: Any) -> Any:
        """The API's answer sorted as `call` sorts it: 5xx unavailable, 4xx refused."""
        if status >= 500:
            detail = payload.get("detail", "") if isinstance(payload, dict) else ""
            raise UnavailableError(f"the service is unavailable ({status}): {detail or 'try again shortly'}")
        if status >= 400:
            detail = payload.get("detail") or payload.get("title") if isinstance(payload, dict) else None
            raise ApiRefusedError(status, str(detail or payload))
        return payload
