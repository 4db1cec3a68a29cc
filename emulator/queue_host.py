"""What the Functions host does with a queue trigger, in-process, so tests and the demo drive the
registered worker (functions/judge_queue.py) the way Azure would.

The host's queue loop (Microsoft.Azure.WebJobs.Extensions.Storage.Queues, `QueueProcessor`;
QueuesOptions docs; Azure/azure-webjobs-sdk#1040, #2624):
- it receives up to `batchSize` messages (default 16) with a lease (visibility timeout) of 10
  minutes, decodes each from base64 (messageEncoding default) and calls the function;
- success: the message is deleted;
- failure: if its dequeue count has reached `maxDequeueCount` (default 5) it is copied to
  `{queue}-poison` and deleted, else released, visible again after host.json `visibilityTimeout`
  (default 0);
- the instance dies: nothing is deleted or released; the message comes back when its lease runs
  out and its dequeue count goes up on the next receive.

`QueueHost` runs that loop over a real queue (Azurite, through azure-storage-queue) or over
`MemoryQueue`, a stand-in with the same calls for tests that are not about the queue (the
functions harness, the demo). A lease running out is `expire_leases()`: Azure's 10 minutes pass
at once (the message is made visible with its pop receipt), so no test waits on wall time.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as HostQueueMessage  # the host's, with dequeue_count

MAX_DEQUEUE_COUNT = 5
BATCH_SIZE = 16


class WorkerDied(BaseException):
    """Crash injection: the instance running the function dies here (not an exception the
    function can handle: it derives from BaseException, like a process being killed)."""


@dataclass
class _Held:
    id: str
    content: str
    dequeue_count: int
    pop_receipt: str
    visible: bool = True


@dataclass
class _Peeked:
    id: str
    content: str
    dequeue_count: int


class MemoryQueue:
    """A queue with the calls QueueHost and WorkQueue use (send, receive, update, delete, peek),
    holding raw message text as Azure does (the client base64-encodes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[_Held] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def create_queue(self) -> None:
        pass

    def send_message(self, content: str) -> None:
        with self._lock:
            self.messages.append(_Held(f"m{next(self._ids)}", content, 0, ""))

    def receive_messages(self, max_messages: int = 1, visibility_timeout: int | None = None) -> list[_Held]:
        with self._lock:
            out = []
            for m in self.messages:
                if m.visible and len(out) < max_messages:
                    m.visible = False
                    m.dequeue_count += 1
                    m.pop_receipt = f"r{next(self._ids)}"
                    out.append(_Held(m.id, m.content, m.dequeue_count, m.pop_receipt, False))
            return out

    def delete_message(self, message: Any, pop_receipt: str | None = None) -> None:
        with self._lock:
            self.messages = [m for m in self.messages if m.id != message.id]

    def update_message(self, message: Any, pop_receipt: str | None = None, visibility_timeout: int = 0) -> None:
        with self._lock:
            for m in self.messages:
                if m.id == message.id:
                    m.visible = True

    def peek_messages(self, max_messages: int = 32) -> list[_Peeked]:
        with self._lock:
            return [_Peeked(m.id, m.content, m.dequeue_count) for m in self.messages if m.visible][:max_messages]

    def get_queue_properties(self) -> Any:
        with self._lock:
            return type("Props", (), {"approximate_message_count": len(self.messages)})()


def memory_work_queue(name: str = "saferollout-work") -> Any:
    """A WorkQueue (shared/adapters/work_queue.py) over MemoryQueue: the app's own encoding and
    poison reporting, only the storage service replaced."""
    from shared.adapters.work_queue import WorkQueue

    queue = WorkQueue.__new__(WorkQueue)
    queue.name = name
    queue._queue = _Base64Sender(MemoryQueue(name))  # type: ignore[attr-defined]
    queue._poison = MemoryQueue(f"{name}-poison")  # type: ignore[attr-defined]
    queue.client = queue._queue  # type: ignore[attr-defined]
    return queue


class _Base64Sender:
    """TextBase64EncodePolicy's job for MemoryQueue: the stored text is base64, as on Azure."""

    def __init__(self, raw: MemoryQueue) -> None:
        self.raw = raw
        self.name = raw.name

    def send_message(self, content: str) -> None:
        self.raw.send_message(base64.b64encode(content.encode()).decode())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@dataclass
class HostReport:
    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    died: int = 0
    errors: list[str] = field(default_factory=list)


class QueueHost:
    """The host's loop over one queue: `raw` and `poison` are queue clients that hand back the stored
    text untouched (no decode policy), as the host reads it."""

    def __init__(
        self,
        function: Callable[[func.QueueMessage], None],
        raw: Any,
        poison: Any,
        *,
        max_dequeue_count: int = MAX_DEQUEUE_COUNT,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.function = function
        self.raw = raw
        self.poison = poison
        self.max_dequeue_count = max_dequeue_count
        self.batch_size = batch_size
        self.leased: list[Any] = []  # messages held by an instance that died

    @classmethod
    def over(cls, function: Callable[[func.QueueMessage], None], queue: Any, **kwargs: Any) -> QueueHost:
        """Over a WorkQueue (real or memory_work_queue): its raw storage, not its encoding clients."""
        raw = getattr(queue._queue, "raw", None)
        if raw is not None:
            return cls(function, raw, queue._poison, **kwargs)
        from azure.storage.queue import QueueClient

        def plain(client: Any) -> Any:  # the same queue with no encode or decode policy
            account = client.primary_endpoint.rsplit("/", 1)[0]
            return QueueClient(account, client.queue_name, credential=client.credential)

        return cls(function, plain(queue._queue), plain(queue._poison), **kwargs)

    def run_once(self) -> HostReport:
        report = HostReport()
        messages = list(self.raw.receive_messages(max_messages=self.batch_size, visibility_timeout=600))
        for i, message in enumerate(messages):
            report.delivered += 1
            body = base64.b64decode(message.content)  # messageEncoding: base64 (the default)
            call = HostQueueMessage(
                id=message.id, body=body, dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt
            )
            try:
                self.function(call)
            except WorkerDied:
                report.died += 1
                self.leased.extend(messages[i:])  # this one and every one not yet run: still leased
                return report
            except Exception as exc:
                report.failed += 1
                report.errors.append(f"{type(exc).__name__}: {exc}")
                if message.dequeue_count >= self.max_dequeue_count:
                    self.poison.send_message(message.content)
                    self.raw.delete_message(message, message.pop_receipt)
                    report.poisoned += 1
                else:
                    self.raw.update_message(message, message.pop_receipt, visibility_timeout=0)
                continue
            self.raw.delete_message(message, message.pop_receipt)
            report.succeeded += 1
        return report

    def drain(self, rounds: int = 50) -> HostReport:
        """Run until the queue is empty (or `rounds` receives), summing the reports."""
        total = HostReport()
        for _ in range(rounds):
            report = self.run_once()
            for name in ("delivered", "succeeded", "failed", "poisoned", "died"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.errors += report.errors
            if report.delivered == 0 or report.died:
                break
        return total

    def expire_leases(self) -> int:
        """The leases of a dead instance run out: its messages are visible again."""
        count = len(self.leased)
        for message in self.leased:
            self.raw.update_message(message, message.pop_receipt, visibility_timeout=0)
        self.leased = []
        return count


def use_memory_work_queue(batch_size: int = 25) -> Any:
    """Install a memory_work_queue as the app's work queue (the demo; tests not about the queue)."""
    from shared.queue_wiring import set_work_queue

    queue = memory_work_queue()
    set_work_queue(queue, batch_size=batch_size)
    return queue


def drain_work_queue(function: Callable[[func.QueueMessage], None]) -> HostReport:
    """Run the installed work queue's messages through the worker, as the host would."""
    from shared.queue_wiring import get_work_queue

    return QueueHost.over(function, get_work_queue()).drain()
