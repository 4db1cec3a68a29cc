"""Serve the emulator in-process to the real Azure SDKs through their azure-core transport.

`RequestsTransport` with a `requests` session whose adapter answers from the emulator: the SDKs'
own retry, authentication, serialization and LRO polling all run unchanged.
"""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from typing import Any

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse

from emulator.azure import Emulator


def requests_response(
    request: requests.PreparedRequest, status: int, headers: dict[str, str], payload: bytes, reason: str | None = None
) -> requests.Response:
    """A `requests` response, as an HTTP server would have sent it, for an in-process adapter."""
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response.raw = HTTPResponse(body=io.BytesIO(payload), headers=headers, status=status, preload_content=False)
    response._content = payload
    response.url = str(request.url)
    response.request = request
    response.reason = reason or ("OK" if status < 400 else "Error")
    response.encoding = "utf-8"
    return response


class EmulatorAdapter(BaseAdapter):
    def __init__(self, emulator: Emulator) -> None:
        super().__init__()
        self.emulator = emulator

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        host = requests.utils.urlparse(str(request.url)).hostname or ""
        resolves = getattr(self.emulator, "resolves", None)  # a front for several emulators has no DNS of its own
        if resolves is not None and not resolves(host):  # what requests raises for a name DNS does not know
            raise requests.exceptions.ConnectionError(
                f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded "
                f"(Caused by NameResolutionError: Failed to resolve '{host}' ([Errno -2] Name or service not known))"
            )
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes):
            body = b"".join(body)  # generators (chunked uploads)
        status, headers, payload = self.emulator.handle(
            str(request.method), str(request.url), dict(request.headers), body or None
        )
        return requests_response(request, status, headers, payload)

    def close(self) -> None:
        pass


class EmulatorTransport(RequestsTransport):
    """The SDKs wait (Retry-After, back-off, LRO polling) through `transport.sleep`: here those waits
    pass on the simulated clock instead of the wall clock, and are recorded for tests to assert.
    azure-core's LRO pollers also poll from background threads; those must not move the shared
    clock, so they wait a little real time (bounded) instead."""

    def __init__(self, emulator: Emulator) -> None:
        session = requests.Session()
        adapter = EmulatorAdapter(emulator)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        super().__init__(session=session, session_owner=False)
        self.emulator = emulator
        self.sleeps: list[float] = []

    # Azure ML's polls carry no Retry-After (tests/recordings): a client polling at interval 0
    # would poll forever at one simulated instant. Each wait moves the clock at least this much
    # (a real poll takes time too: the recorded `x-request-time` is 0.03-0.5 s per request).
    MIN_WAIT = timedelta(seconds=1)

    def sleep(self, duration: float) -> None:
        if threading.current_thread() is threading.main_thread() or not threading.current_thread().daemon:
            self.sleeps.append(float(duration))
            self.emulator.clock.advance(max(self.MIN_WAIT, timedelta(seconds=max(0.0, float(duration)))))
        else:
            time.sleep(min(max(float(duration), 0.01), 0.05))  # never a busy loop


def emulator_transport(emulator: Emulator) -> EmulatorTransport:
    return EmulatorTransport(emulator)


class StaticCredential:
    """A TokenCredential for the emulator: any object whose get_token returns an AccessToken."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("emulator-token", int(time.time()) + 3600)
