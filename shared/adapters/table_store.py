"""RowBackend over Azure Table storage (azure-data-tables), for RolloutStoreImpl."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.ports import AlreadyExistsError, ConflictError, ProviderError
from shared.store import Entity, Op, RolloutStoreImpl

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger("safe_rollout.table_store")


def _plain(entity: Any) -> tuple[Entity, str]:
    return dict(entity), str(entity.metadata["etag"])


class TableRows:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, partition: str, row: str) -> tuple[Entity, str] | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return _plain(self._table.get_entity(partition_key=partition, row_key=row))
        except ResourceNotFoundError as exc:
            if _table_missing(exc):
                raise ProviderError(f"table {self._table.table_name} does not exist") from exc
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
            if _table_missing(exc):
                raise ProviderError(f"table {self._table.table_name} does not exist") from exc
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
            if _table_missing(exc):
                raise ProviderError(f"table {self._table.table_name} does not exist") from exc
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
    """Local development and tests (Azurite, a connection string): the table is created if missing."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    if create:
        _ensure_table(service, table_name)
    return RolloutStoreImpl(TableRows(service.get_table_client(table_name)))


def table_store_with_credential(
    account_url: str, credential: Any, table_name: str, **client_options: Any
) -> RolloutStoreImpl:
    """Production: managed identity (Storage Table Data Contributor), no keys. The table is created by
    infra/ (Bicep), and the identity's role is scoped to that table, which may not allow creating
    tables: the app reads first and creates only a missing table, and a refusal is logged, never raised."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient(endpoint=account_url, credential=credential, **client_options)
    _ensure_table(service, table_name)
    return RolloutStoreImpl(TableRows(service.get_table_client(table_name)))


def _ensure_table(service: Any, table_name: str) -> None:
    """One cheap read (a query on a partition no row uses, one page) tells whether the table exists;
    only a missing table is created. Nothing here raises: a table that cannot be read or created now
    surfaces as ProviderError on the first real operation, which every caller already handles."""
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

    table = service.get_table_client(table_name)
    try:
        pages = table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "~probe"}, results_per_page=1, select=["PartitionKey"]
        ).by_page()
        next(pages, None)
        return
    except ResourceNotFoundError:
        pass  # the table does not exist (TableNotFound)
    except AzureError as exc:
        log.warning("table %s could not be read at start-up (%s); not creating it", table_name, _describe(exc))
        return
    try:
        service.create_table(table_name)
        log.info("created table %s", table_name)
    except ResourceExistsError:
        return  # created meanwhile by someone else
    except HttpResponseError as exc:
        log.error(
            "table %s does not exist and this identity may not create it (%s): deploy infra/ (Bicep "
            "creates the table) or create it, then grant Storage Table Data Contributor on it",
            table_name,
            _describe(exc),
        )
    except AzureError as exc:
        log.error("table %s does not exist and could not be created (%s)", table_name, _describe(exc))


def _describe(exc: Any) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    parts = [exc.__class__.__name__, f"HTTP {status}" if status else "", str(code) if code else ""]
    return " ".join(p for p in parts if p)


def _table_missing(exc: Any) -> bool:
    code = str(getattr(exc, "error_code", "") or "")
    return code == "TableNotFound" or "TableNotFound" in str(getattr(exc, "message", "") or "")
