"""An Event Grid topic that records what is published. A mixin of emulator.azure.Emulator."""

from __future__ import annotations

from typing import Any

from emulator.records import Published
from emulator.responses import Response


class EventGridTopic:
    # -- Event Grid -------------------------------------------------------------------------------

    def _eventgrid(self, host: str, body: Any) -> Response:
        if (fault := self._fault("eventgrid")) is not None:
            return self._fault_response(fault)
        events = body if isinstance(body, list) else [body]
        self.published.append(Published(host, [e for e in events if isinstance(e, dict)]))
        return 200, {}, b""
