"""The dispatcher's work queue on Azure Queue storage (azure-storage-queue).

- Encoding. The Functions queue trigger expects base64-encoded messages and decodes them before
  calling the function, unless host.json sets `extensions.queues.messageEncoding` to `none`
  (Microsoft.Azure.WebJobs.Extensions.Storage.Queues 5.x, `QueueTriggerAttribute` remarks: "By
  default messages received from the queue are expected to be Base64-encoded"; release notes
  5.0.0-beta.2). host.json keeps the default and this client encodes with
  `TextBase64EncodePolicy`, so what the worker receives is the JSON the dispatcher wrote.
- Poison. After `maxDequeueCount` failed deliveries (default 5) the host moves a message to the
  queue `{name}-poison` (the webjobs QueueProcessor; Azure/azure-webjobs-sdk#2624). `poisoned()`
  peeks that queue so the dispatcher can report what sits there.
- Connections. Locally a connection string (Azurite); in Azure the Function App's identity with
  'Storage Queue Data Contributor' on the account (infra/main.bicep).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.dispatch import BadMessageError, WorkItem, parse_message
from shared.ports import ProviderError

log = logging.getLogger("safe_rollout")
PEEK_MAX = 32  # the most messages one peek returns (Queue service "Peek Messages": numofmessages <= 32)


@dataclass(frozen=True)
class Poisoned:
    """A message the host gave up on: what it held (or why it could not be read) and how often it ran."""

    message_id: str
    dequeue_count: int
    rollouts: tuple[str, ...]
    problem: str | None = None


def _client(
    connection: str | None, account_url: str | None, credential: Any, name: str, *, decode: bool, **options: Any
) -> Any:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    codec: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy()}
    if decode:  # the poison queue is read raw: what lands there may not be base64 at all
        codec["message_decode_policy"] = TextBase64DecodePolicy()
    if connection:
        return QueueClient.from_connection_string(connection, name, **codec, **options)
    if not account_url:
        raise ValueError("a queue needs a connection string or an account URL")
    return QueueClient(account_url, name, credential=credential, **codec, **options)


class WorkQueue:
    def __init__(
        self,
        name: str,
        *,
        connection: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        **options: Any,
    ) -> None:
        self.name = name
        self._queue = _client(connection, account_url, credential, name, decode=True, **options)
        self._poison = _client(connection, account_url, credential, f"{name}-poison", decode=False, **options)
        self.client = self._queue

    def ensure(self) -> None:
        """Create the queue and its poison queue if missing (local runs; Bicep creates them in Azure)."""
        from azure.core.exceptions import ResourceExistsError

        for client in (self._queue, self._poison):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def send(self, items: Sequence[WorkItem]) -> int:
        """Enqueue every work item; ProviderError on the first that cannot be sent (the ones sent are
        judged; the next tick dispatches the rest again)."""
        from azure.core.exceptions import AzureError

        sent = 0
        for item in items:
            try:
                self._queue.send_message(item.to_message())
            except AzureError as exc:
                raise ProviderError(f"work queue {self.name}: {sent} of {len(items)} sent: {exc}"[:400]) from exc
            sent += 1
        return sent

    def poisoned(self) -> list[Poisoned]:
        """The messages in the poison queue (peeked, left in place for a person to inspect)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            peeked = self._poison.peek_messages(max_messages=PEEK_MAX)
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise ProviderError(f"poison queue {self.name}-poison not read: {exc}"[:400]) from exc
        out: list[Poisoned] = []
        for m in peeked:
            out.append(_describe_poisoned(str(m.id), int(m.dequeue_count or 0), m.content))
        return out

    def depth(self) -> int:
        """Approximate number of messages waiting (Get Queue Metadata)."""
        return int(self._queue.get_queue_properties().approximate_message_count or 0)


def _describe_poisoned(message_id: str, count: int, content: Any) -> Poisoned:
    text = content
    if isinstance(content, str):
        try:  # the host writes the poison copy as it read it: base64 of our JSON
            text = base64.b64decode(content, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            text = content
    try:
        item = parse_message(text if isinstance(text, (str, bytes)) else str(text))
    except BadMessageError as exc:
        return Poisoned(message_id, count, (), str(exc))
    return Poisoned(message_id, count, item.rollouts)
