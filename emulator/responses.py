"""Azure-shaped HTTP answers shared by every emulated service: JSON bodies, ARM error bodies
(`{"error": {"code", "message"}}`) and the timestamps Azure writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

REGION = "eastus"
ML_PROVIDER = "Microsoft.MachineLearningServices"
MAX_DEPLOYMENTS = 20
Response = tuple[int, dict[str, str], bytes]


REGION = "eastus"
ML_PROVIDER = "Microsoft.MachineLearningServices"
MAX_DEPLOYMENTS = 20
Response = tuple[int, dict[str, str], bytes]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
