"""RowBackend over Azure Table storage (azure-data-tables), for RolloutStoreImpl."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.ports import AlreadyExistsError, ConflictError, ProviderError
from shared.store import Entity, Op, RolloutStoreImpl

if TYPE_CHECKING:
    from azure.data.tables import TableClient


def _plain(entity: Any) -> tuple[Entity, str]:
    return dict(entity), str(entity.metadata["etag"])


class TableRows:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, partition: str, row: str) -> tuple[Entity, str] | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return _plain(self._table.get_entity(partition_key=partition, row_key=row))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise ProviderError(f"table read failed: {exc.__class__.__name__}") from exc

    def query(self, equals: dict[str, Any], partition: str | None = None) -> list[tuple[Entity, str]]:
        from azure.core.exceptions import AzureError

        conditions = dict(equals)
        if partition is not None:
            conditions["PartitionKey"] = partition
        # Values travel as parameters, never formatted into the filter text.
        names = {key: f"p{i}" for i, key in enumerate(conditions)}
        query = " and ".join(f"{key} eq @{names[key]}" for key in conditions)
        parameters = {names[key]: value for key, value in conditions.items()}
        try:
            return [_plain(e) for e in self._table.query_entities(query, parameters=parameters)]
        except AzureError as exc:
            raise ProviderError(f"table query failed: {exc.__class__.__name__}") from exc

    def transact(self, partition: str, ops: Sequence[Op]) -> dict[str, str]:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.data.tables import UpdateMode

        batch: list[Any] = []
        for op in ops:
            entity = {**op.entity, "PartitionKey": partition, "RowKey": op.row_key}
            guard: dict[str, Any] = (
                {"etag": op.etag, "match_condition": MatchConditions.IfNotModified} if op.etag else {}
            )
            if op.kind == "create":
                batch.append(("create", entity))
            elif op.kind == "update":
                batch.append(("update", entity, {"mode": UpdateMode.MERGE, **guard}))
            else:
                batch.append(("delete", entity, guard))
        try:
            results = self._table.submit_transaction(batch)
        except HttpResponseError as exc:
            status = exc.status_code
            if status == 409:
                raise AlreadyExistsError(f"a row already exists ({_reason(exc)})") from exc
            if status in (404, 412):
                raise ConflictError(f"changed by someone else ({_reason(exc)})") from exc
            raise ProviderError(f"table transaction failed with HTTP {status}") from exc
        except AzureError as exc:
            raise ProviderError(f"table transaction failed: {exc.__class__.__name__}") from exc
        return {
            op.row_key: str(result.get("etag", ""))
            for op, result in zip(ops, results, strict=True)
            if op.kind != "delete"
        }


def _reason(exc: Any) -> str:
    return str(getattr(exc, "reason", "") or exc.__class__.__name__)


def table_store(connection_string: str, table_name: str, *, create: bool = True) -> RolloutStoreImpl:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    if create:
        service.create_table_if_not_exists(table_name)
    return RolloutStoreImpl(TableRows(service.get_table_client(table_name)))


def table_store_with_credential(account_url: str, credential: Any, table_name: str) -> RolloutStoreImpl:
    """Production: managed identity (Storage Table Data Contributor), no keys."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient(endpoint=account_url, credential=credential)
    service.create_table_if_not_exists(table_name)
    return RolloutStoreImpl(TableRows(service.get_table_client(table_name)))
