from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from emulator.azurite import running_azurite

_containers = itertools.count()


@pytest.fixture(scope="session")
def azurite_blob() -> Iterator[str]:
    """A real Azurite blob service, stopped by PID at the end."""
    with running_azurite(service="blob") as conn:
        yield conn


@pytest.fixture
def blob_account(azurite_blob: str) -> tuple[str, str]:
    """(connection string, blob account URL) with a fresh container name per test."""
    parts = dict(p.split("=", 1) for p in azurite_blob.split(";") if "=" in p)
    return azurite_blob, parts["BlobEndpoint"]


@pytest.fixture
def container_name() -> str:
    return f"azureml-blobstore-{next(_containers):04d}"
