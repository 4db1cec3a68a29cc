from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from emulator.azurite import running_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A real Azurite table service for the whole run, stopped by PID at the end."""
    with running_azurite() as conn:
        yield conn


_tables = itertools.count()


@pytest.fixture
def table_name() -> str:
    return f"rollouts{next(_tables)}"


@pytest.fixture(autouse=True, scope="session")
def _no_sdk_progress_dots() -> Iterator[None]:
    """azure-ai-ml's LRO poller (`AzureMLPolling.update_status`) prints a progress dot to stdout on
    every poll, from a daemon thread that outlives the test that started it (the app never waits on
    it). Those dots would land in whatever another test captures (a CLI's JSON output, a dry-run's
    stdout). Silence that one print for the test session; nothing else of the SDK changes."""
    import azure.ai.ml._utils._azureml_polling as polling

    polling.print = lambda *args, **kwargs: None
    yield
    del polling.print
