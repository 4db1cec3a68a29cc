from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.bootstrap import set_service
from shared.queue_wiring import set_work_queue
from tests.functions.harness import ALERT_SECRET, Harness, make_harness


@pytest.fixture(scope="session")
def fns() -> dict[str, Any]:
    """The registered functions, from the real app. get_functions() may be called once per app."""
    import function_app
    from emulator.host import user_functions

    return user_functions(function_app.app)


@pytest.fixture
def harness(fns, azurite, table_name, tmp_path, monkeypatch) -> Iterator[Harness]:
    monkeypatch.setenv("SAFE_ROLLOUT_ALERT_SECRET", ALERT_SECRET)
    yield make_harness(fns, azurite, table_name, tmp_path)
    set_service(None)
    set_work_queue(None)
