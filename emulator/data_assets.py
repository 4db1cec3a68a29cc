"""Azure ML data assets and datastores on the emulated control plane (GET only), whose files live
in Azurite's blob service. A part of emulator.azure.Emulator's state (`data_assets`), served from
its ARM routes (emulator/ml_control.py).

Sources (docs/AZURE-FACTS-USED.md, "Azure ML data assets as inputs"):
- the resources and their bodies: REST spec Microsoft.MachineLearningServices stable/2025-12-01,
  examples `Workspace/DataContainer/get.json` (`{workspace}/data/{name}`), `Workspace/DataVersionBase/get.json`
  (`{workspace}/data/{name}/versions/{version}`: `properties.dataType` uri_file | uri_folder | mltable,
  `properties.dataUri`), `Datastore/get.json` (`{workspace}/datastores/{name}`: `datastoreType`,
  `accountName`, `containerName`, `endpoint` "core.windows.net", `protocol` "https", `credentials`
  with `credentialsType` and `secrets` holding only `secretsType`: a GET never returns the key);
  AzureDataLakeGen2 datastores carry `filesystem` instead of `containerName` (azure-ai-ml's generated
  models, `_restclient/arm_ml_service/models/_models.py`, AzureDataLakeGen2Datastore);
- a data container's `latestVersion` (read-only) is its most recently created version (azure-ai-ml
  `_data_operations.py` `_get_latest_version`: "Latest is defined as the most recently created");
- an unknown data asset or datastore answers 404 (azure-ai-ml maps it to ResourceNotFoundError,
  microsoft/hi-ml#753); the error body's code and message are UNVERIFIED (the shape the emulator
  uses for an unknown model version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.responses import ML_PROVIDER, Response, _error, _iso, _json


@dataclass
class DataAssets:
    datastores: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower name -> body
    # lower asset name -> versions in creation order: version -> body
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    # -- world set-up (tests and the demo) --------------------------------------------------------

    def add_datastore(
        self,
        workspace_id: str,
        name: str,
        *,
        account: str,
        container: str,
        kind: str = "AzureBlob",
        credentials: str = "AccountKey",
        at: datetime,
    ) -> None:
        """A datastore (`kind` AzureBlob, AzureDataLakeGen2, AzureFile, ...) on `account`."""
        props: dict[str, Any] = {
            "description": None,
            "tags": {},
            "isDefault": name == "workspaceblobstore",
            "properties": None,
            "credentials": {"credentialsType": credentials, "secrets": {"secretsType": credentials}}
            if credentials in ("AccountKey", "Sas")
            else {"credentialsType": credentials},
            "datastoreType": kind,
            "accountName": account,
            "endpoint": "core.windows.net",
            "protocol": "https",
        }
        if kind == "AzureDataLakeGen2":
            props["filesystem"] = container
        elif kind == "AzureFile":
            props["fileShareName"] = container
        else:
            props["containerName"] = container
        self.datastores[name.lower()] = {
            "id": f"{workspace_id}/datastores/{name}",
            "name": name,
            "type": f"{ML_PROVIDER}/workspaces/datastores",
            "properties": props,
            "systemData": _system(at),
        }

    def add_data(
        self, workspace_id: str, name: str, version: str, data_uri: str, *, data_type: str = "uri_file", at: datetime
    ) -> None:
        """A data asset version pointing at `data_uri` (e.g. azureml://datastores/<ds>/paths/<path>)."""
        self.data.setdefault(name.lower(), {})[str(version)] = {
            "id": f"{workspace_id}/data/{name}/versions/{version}",
            "name": str(version),
            "type": f"{ML_PROVIDER}/workspaces/data/versions",
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "isAnonymous": False,
                "dataType": data_type,
                "dataUri": data_uri,
            },
            "systemData": _system(at),
        }

    # -- ARM GETs -----------------------------------------------------------------------------------

    def serve(self, method: str, rest: str, workspace_id: str) -> Response | None:
        """The answer to `rest` (the path after the workspace), or None if it is not ours."""
        if method != "GET":
            return None
        if m := re.fullmatch(r"/datastores/([^/]+)", rest, re.IGNORECASE):
            body = self.datastores.get(m[1].lower())
            return _json(200, body) if body else _error(404, "UserError", f"Datastore {m[1]} not found")
        if m := re.fullmatch(r"/data/([^/]+)/versions/([^/]+)", rest, re.IGNORECASE):
            version = self.data.get(m[1].lower(), {}).get(m[2])
            if version is None:
                return _error(404, "UserError", f"Data {m[1]}:{m[2]} not found")
            return _json(200, version)
        if m := re.fullmatch(r"/data/([^/]+)", rest, re.IGNORECASE):
            versions = self.data.get(m[1].lower())
            if not versions:
                return _error(404, "UserError", f"Data container {m[1]} not found")
            return _json(200, self._container(workspace_id, m[1], versions))
        return None

    @staticmethod
    def _container(workspace_id: str, name: str, versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        latest_name, latest = list(versions.items())[-1]  # the most recently created
        numeric = [int(v) for v in versions if v.isdigit()]
        return {
            "id": f"{workspace_id}/data/{name}",
            "name": name,
            "type": f"{ML_PROVIDER}/workspaces/data",
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "dataType": latest["properties"]["dataType"],
                "latestVersion": latest_name,
                "nextVersion": str(max(numeric) + 1) if numeric else "1",
            },
            "systemData": latest["systemData"],
        }


def _system(at: datetime) -> dict[str, Any]:
    when = _iso(at)
    return {
        "createdAt": when,
        "createdBy": "emulator",
        "createdByType": "User",
        "lastModifiedAt": when,
        "lastModifiedBy": "emulator",
        "lastModifiedByType": "User",
    }
