from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.azurite import running_azurite
from shared.bootstrap import set_service
from shared.queue_wiring import set_work_queue


@pytest.fixture(scope="session")
def azurite_queue() -> Iterator[str]:
    """A real Azurite queue service for the session, stopped by PID at the end."""
    with running_azurite(service="queue") as conn:
        yield conn


_queues = itertools.count()


@pytest.fixture
def queue_name() -> str:
    return f"work-{next(_queues)}"


@pytest.fixture(scope="session")
def fns() -> dict[str, Any]:
    import function_app
    from emulator.host import user_functions

    return user_functions(function_app.app)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    set_service(None)
    set_work_queue(None)
