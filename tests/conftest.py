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
