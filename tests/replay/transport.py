"""Serve a recorded Azure session (the Azure SDK test proxy's JSON) to the real SDKs.

`ReplayTransport(recording)` is an azure-core transport: each request the SDK sends is answered
with the next unused recorded entry of the same method and path (the host is ignored, since the
test proxy sanitizes it; the path compares case-insensitively, as ARM does; `api-version` is
ignored and the other query parameters compare in any order). The recorded status, headers and
body come back unchanged, so the SDK's own deserialization, error mapping and LRO polling run on
what Azure really said. Waits (`Retry-After`, LRO polling) are instant. A request the recording
does not have fails loudly: an AssertionError that names it, also kept in `misses` (an LRO
poller thread's failure would otherwise be swallowed).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter

from emulator.transport import requests_response

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
# The body of a recorded response is stored decoded; these headers described the encoded bytes.
_DROPPED_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


def body_bytes(body: Any) -> bytes:
    """The bytes of a recorded body: JSON values as JSON, text as is, and multipart bodies (a list
    of lines, binary ones prefixed `b64:`) joined."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    lines = body if isinstance(body, list) and body and all(isinstance(line, str) for line in body) else []
    if any(line.startswith("b64:") or line.endswith("\r\n") for line in lines):
        return b"".join(base64.b64decode(line[4:]) if line.startswith("b64:") else line.encode() for line in lines)
    return json.dumps(body).encode()


def load(relative: str | Path) -> list[dict[str, Any]]:
    path = Path(relative)
    if not path.is_absolute():
        path = RECORDINGS / path
    return list(json.loads(path.read_text())["Entries"])


def request_key(method: str, url: str, substitutions: Mapping[str, str] | None = None) -> tuple[str, str, tuple]:
    """(METHOD, lower-cased path, sorted query without api-version), after the recording's
    sanitized values are replaced by the ones the test uses."""
    for recorded, used in (substitutions or {}).items():
        url = url.replace(recorded, used)
    parts = urlsplit(url)
    query = tuple(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "api-version"))
    return method.upper(), unquote(parts.path).rstrip("/").lower(), query


@dataclass
class Served:
    index: int
    method: str
    url: str
    status: int


@dataclass
class _State:
    entries: list[dict[str, Any]]
    substitutions: dict[str, str]
    # Data-plane recordings answer other queries than ours: match on method and path only, and
    # serve the same entry again (a recorded answer of Azure's shape, to every call of that path).
    loose: bool = False
    used: set[int] = field(default_factory=set)
    served: list[Served] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, url: str) -> tuple[int, dict[str, Any]]:
        wanted = request_key(method, url)
        size = 2 if self.loose else 3
        with self.lock:
            for i, entry in enumerate(self.entries):
                if i in self.used and not self.loose:
                    continue
                if request_key(entry["RequestMethod"], entry["RequestUri"], self.substitutions)[:size] == wanted[:size]:
                    self.used.add(i)
                    self.served.append(Served(i, method.upper(), url, int(entry["StatusCode"])))
                    return i, entry
            same_path = [
                i
                for i, e in enumerate(self.entries)
                if request_key(e["RequestMethod"], e["RequestUri"], self.substitutions)[:2] == wanted[:2]
            ]
            message = (
                f"the recording has no unused entry for {method.upper()} {url}"
                f" (entries with that method and path: {same_path or 'none'}, all used or other query)"
            )
            self.misses.append(message)
        raise AssertionError(message)


class _ReplayAdapter(BaseAdapter):
    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        _, entry = self.state.take(str(request.method), str(request.url))
        status = int(entry["StatusCode"])
        headers: dict[str, str] = {}
        for name, value in (entry.get("ResponseHeaders") or {}).items():
            if name.lower() in _DROPPED_HEADERS:
                continue
            headers[name] = ", ".join(value) if isinstance(value, list) else str(value)
        payload = body_bytes(entry.get("ResponseBody"))
        return requests_response(request, status, headers, payload, reason="recorded")

    def close(self) -> None:
        pass


class ReplayTransport(RequestsTransport):
    """An azure-core transport answering from a recording (see the module docstring).

    `substitutions` maps a sanitized value of the recording to the value the test uses
    (a subscription id, a host), applied to recorded URIs before they are compared."""

    def __init__(
        self,
        recording: str | Path | list[dict[str, Any]],
        substitutions: Mapping[str, str] | None = None,
        *,
        loose: bool = False,
    ):
        entries = recording if isinstance(recording, list) else load(recording)
        self.state = _State(entries, dict(substitutions or {}), loose)
        session = requests.Session()
        adapter = _ReplayAdapter(self.state)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        super().__init__(session=session, session_owner=False)

    def sleep(self, duration: float) -> None:  # LRO polling and Retry-After: instant
        return None

    @property
    def misses(self) -> list[str]:
        return list(self.state.misses)

    @property
    def served(self) -> list[Served]:
        return list(self.state.served)

    def served_for(self, method: str, fragment: str) -> list[Served]:
        return [s for s in self.served if s.method == method.upper() and fragment.lower() in s.url.lower()]

    def assert_no_misses(self) -> None:
        assert not self.state.misses, "\n".join(self.state.misses)
