"""The work queue the dispatcher fills and the worker drains, built from settings once (lazily);
tests and the demo replace it with set_work_queue(). Nothing here runs at import time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from shared.adapters.work_queue import WorkQueue

_holder: dict[str, WorkQueue | None] = {"queue": None}
_batch: dict[str, int | None] = {"size": None}
_lock = threading.Lock()


def build_work_queue(settings: Settings) -> WorkQueue:
    from shared.adapters.work_queue import WorkQueue

    if settings.queue_connection:
        return WorkQueue(settings.work_queue, connection=settings.queue_connection)
    if settings.queue_service_uri:
        from shared.adapters.credentials import make_credential

        return WorkQueue(
            settings.work_queue,
            account_url=settings.queue_service_uri,
            credential=make_credential(settings.credential),
        )
    raise SettingsError(
        "set SAFE_ROLLOUT_QUEUE__queueServiceUri (managed identity) or SAFE_ROLLOUT_QUEUE (connection string): "
        "the timer enqueues work items there"
    )


def get_work_queue() -> WorkQueue:
    with _lock:
        queue = _holder["queue"]
        if queue is None:
            queue = _holder["queue"] = build_work_queue(Settings.from_env())
        return queue


def set_work_queue(queue: WorkQueue | None, *, batch_size: int | None = None) -> None:
    """Replace the queue (tests, the demo); None rebuilds from settings on next use."""
    with _lock:
        _holder["queue"] = queue
        _batch["size"] = batch_size


def batch_size() -> int:
    with _lock:
        size = _batch["size"]
    return size if size is not None else Settings.from_env().batch_size
