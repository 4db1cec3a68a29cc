"""Start-up against Table storage with the app's identity, whose role may not allow creating tables.

In Azure the table is created by the Bicep (infra/main.bicep, `stateTable`) and the app's identity
holds Storage Table Data Contributor scoped to that table. Create Table is authorized by
`Microsoft.Storage/storageAccounts/tableServices/tables/write` ("Authorize with Microsoft Entra ID",
Permissions for Table service operations: https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory),
and whether a table-scoped assignment allows it is not documented: the app must not depend on it.
Here the real azure-data-tables client talks to a stand-in that answers like Table storage
(403 AuthorizationPermissionMismatch on create, 404 TableNotFound on a missing table).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from emulator.transport import requests_response
from shared.adapters.table_store import table_store_with_credential
from shared.ports import ProviderError

ACCOUNT = "https://stsaferollout.table.core.windows.net"


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", 4_000_000_000)


class TableStorage(requests.adapters.BaseAdapter):
    """Answers like the Table service for one account: which tables exist, and whether creating is allowed."""

    def __init__(self, tables: set[str], *, may_create: bool) -> None:
        super().__init__()
        self.tables, self.may_create = tables, may_create
        self.calls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = requests.utils.urlparse(request.url).path
        self.calls.append(f"{request.method} {path}")
        if request.method == "POST" and path == "/Tables":
            if not self.may_create:
                return self._answer(request, 403, "AuthorizationPermissionMismatch")
            name = json.loads(request.body)["TableName"]
            if name in self.tables:
                return self._answer(request, 409, "TableAlreadyExists")
            self.tables.add(name)
            return self._answer(request, 201, body={"TableName": name})
        table = path.strip("/").split("(")[0]
        if table not in self.tables:
            return self._answer(request, 404, "TableNotFound")
        if request.method == "GET":
            return self._answer(request, 200, body={"value": []})
        return self._answer(request, 204)

    @staticmethod
    def _answer(request: requests.PreparedRequest, status: int, code: str | None = None, body: Any = None):
        headers = {"Content-Type": "application/json;odata=minimalmetadata"}
        if code:
            headers["x-ms-error-code"] = code
            body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": code}}}
        payload = json.dumps(body).encode() if body is not None else b""
        return requests_response(request, status, headers, payload)

    def close(self) -> None:
        pass


def transport(storage: TableStorage) -> RequestsTransport:
    session = requests.Session()
    session.mount("https://", storage)
    return RequestsTransport(session=session, session_owner=False)


def test_a_table_made_by_the_bicep_is_used_without_asking_to_create_it(caplog):
    storage = TableStorage({"saferollouts"}, may_create=False)
    store = table_store_with_credential(ACCOUNT, FakeCredential(), "saferollouts", transport=transport(storage))
    assert not [c for c in storage.calls if c.startswith("POST /Tables")]
    assert store.find() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_missing_table_the_identity_may_not_create_is_reported_without_a_traceback(caplog):
    storage = TableStorage(set(), may_create=False)
    caplog.set_level(logging.INFO)
    store = table_store_with_credential(ACCOUNT, FakeCredential(), "saferollouts", transport=transport(storage))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the operator is told"
    assert "saferollouts" in errors[0].getMessage()
    assert "infra" in errors[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
    with pytest.raises(ProviderError, match="saferollouts"):
        store.find()


def test_a_missing_table_is_created_where_the_identity_may(caplog):
    storage = TableStorage(set(), may_create=True)
    table_store_with_credential(ACCOUNT, FakeCredential(), "saferollouts", transport=transport(storage))
    assert "saferollouts" in storage.tables
