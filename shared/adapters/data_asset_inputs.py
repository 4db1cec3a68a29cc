"""Inputs for the prediction comparison from an Azure ML data asset or datastore path.

The policy's `predictions.inputs.data_asset` (parsed by shared/rollout/data_asset_uri.py) is
resolved on ARM (api-version 2025-12-01, docs/AZURE-FACTS-USED.md "Azure ML data assets as inputs"):
- `azureml:<name>@latest`: GET `{workspace}/data/{name}` -> `properties.latestVersion`;
- `azureml:<name>:<version>`: GET `{workspace}/data/{name}/versions/{version}` ->
  `properties.dataType` (uri_file, uri_folder; mltable is refused) and `properties.dataUri`;
- a datastore path (the asset's `dataUri` or the policy's own): GET `{workspace}/datastores/{name}`
  -> `properties.datastoreType` (AzureBlob: `accountName`, `containerName`; AzureDataLakeGen2:
  `accountName`, `filesystem`, read through the account's Blob endpoint, which serves the same
  data), `endpoint` (the storage suffix, core.windows.net) and `protocol`.
The files are then read with azure-storage-blob by shared/adapters/blob_inputs.py (the same
JSON Lines parsing as a `url` sample: one `{"input": ..., "label": ...}` per line): a uri_file is
one file, a uri_folder its `*.jsonl` files in name order. The datastore's own credentials are
not used: the app reads with its identity (Storage Blob Data Reader on the account), or with the
key of the account in its storage connection string (Azurite).

The ARM GETs go through the gateway's ARM pipeline (its credential, retries and transport) and,
when the gateway paces reads (shared/adapters/throttle.py), are paced like its own. Every failure
(asset or datastore not found, an mltable, a datastore that is not blob storage, unreadable or empty
files) is a ProviderError naming what could not be read: the check holds, it never passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from shared.adapters.azureml import ARM_API_VERSION, _describe, _http_error
from shared.adapters.blob_inputs import BlobInputs
from shared.adapters.paired_scoring import Sample
from shared.ports import ProviderError
from shared.rollout.data_asset_uri import (
    BlobLocation,
    DataAssetRef,
    DatastorePath,
    WorkspaceName,
    parse_data_uri,
    parse_storage_uri,
)
from shared.rollout.model import EndpointRef

ML_PROVIDER = "Microsoft.MachineLearningServices"
BLOB_DATASTORES = frozenset({"azureblob", "azuredatalakegen2"})
MAX_VERSION_CHARS = 100  # a version name goes into each input's key (model_checks._key)
T = TypeVar("T")


class DataAssetInputs:
    def __init__(self, gateway: Any, blobs: BlobInputs) -> None:
        self._gateway = gateway  # the paced gateway (throttle.ThrottledGateway) in production
        self._blobs = blobs
        self.arm_reads = 0

    # -- ARM ----------------------------------------------------------------------------------------

    def _paced(self, endpoint: EndpointRef, fn: Callable[[], T]) -> T:
        pace = getattr(self._gateway, "paced_reads", None)
        if pace is None:
            return fn()
        result: T = pace(endpoint, 1, fn)
        return result

    def _get(self, endpoint: EndpointRef, path: str, what: str) -> dict[str, Any]:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        def send() -> dict[str, Any]:
            # Everything that can fail is raised in here, so the pacing sees a 429 (HTTP 429 in the message).
            self.arm_reads += 1
            url = f"{self._gateway._arm_base(endpoint)}{path}?api-version={ARM_API_VERSION}"
            try:
                response = self._gateway._arm().send_request(HttpRequest("GET", url))
            except AzureError as exc:
                raise ProviderError(f"reading {what}: {_describe(exc)}") from exc
            if response.status_code == 404:
                raise ProviderError(f"{what} not found (HTTP 404)")
            if response.status_code >= 400:
                raise ProviderError(f"reading {what}: {_http_error(response)}")
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
                raise ProviderError(f"reading {what}: Azure answered without properties")
            return body

        return self._paced(endpoint, send)

    @staticmethod
    def _workspace_path(endpoint: EndpointRef, named: WorkspaceName | None) -> tuple[str, str]:
        if named is None:
            ws = endpoint.workspace
            return ws.arm_id, ws.workspace
        arm_id = (
            f"/subscriptions/{named.subscription}/resourceGroups/{named.resource_group}"
            f"/providers/{ML_PROVIDER}/workspaces/{named.workspace}"
        )
        return arm_id, named.workspace

    # -- resolving --------------------------------------------------------------------------------

    def _asset(
        self, endpoint: EndpointRef, ref: DataAssetRef, pinned: str | None = None
    ) -> tuple[str, str, WorkspaceName | None, str]:
        """(dataType, dataUri, the asset's workspace, the version read) of a data asset version;
        `@latest` reads `pinned` if given (the version a rollout began comparing on)."""
        base, ws = self._workspace_path(endpoint, ref.workspace)
        version = ref.version or pinned
        if version is None:
            container = self._get(
                endpoint, f"{base}/data/{quote(ref.name)}", f"data asset {ref.name} in workspace {ws}"
            )
            version = str(container["properties"].get("latestVersion") or "")
            if not version:
                raise ProviderError(f"data asset {ref.name} in workspace {ws} has no versions (no latestVersion)")
        label = f"data asset azureml:{ref.name}:{version} in workspace {ws}"
        body = self._get(endpoint, f"{base}/data/{quote(ref.name)}/versions/{quote(version)}", label)
        props = body["properties"]
        data_type, data_uri = str(props.get("dataType") or ""), str(props.get("dataUri") or "")
        # uri_file as the spec's enum writes it; UriFile as its data container example does
        kind = {"urifile": "uri_file", "urifolder": "uri_folder", "mltable": "mltable"}.get(
            data_type.lower().replace("_", "")
        )
        if kind == "mltable":
            raise ProviderError(
                f"{label} is an mltable: register the JSON Lines sample as a uri_file or uri_folder data asset"
            )
        if kind is None:
            raise ProviderError(f"{label} has dataType {data_type or 'none'!r}, not uri_file or uri_folder")
        if not data_uri:
            raise ProviderError(f"{label} has no dataUri")
        if len(version) > MAX_VERSION_CHARS or "|" in version:
            raise ProviderError(f"{label}: a version name over {MAX_VERSION_CHARS} characters or with '|' is not read")
        return kind, data_uri, ref.workspace, version

    def _datastore(self, endpoint: EndpointRef, path: DatastorePath) -> BlobLocation:
        base, ws = self._workspace_path(endpoint, path.workspace)
        what = f"datastore {path.datastore} in workspace {ws}"
        props = self._get(endpoint, f"{base}/datastores/{quote(path.datastore)}", what)["properties"]
        kind = str(props.get("datastoreType") or "")
        if kind.lower() not in BLOB_DATASTORES:
            raise ProviderError(
                f"{what} is {kind or 'of no type'}: only AzureBlob and AzureDataLakeGen2 datastores are read"
            )
        account = str(props.get("accountName") or "")
        container = str(props.get("containerName") or props.get("filesystem") or "")
        if not account or not container:
            raise ProviderError(f"{what} names no storage account or container")
        suffix = str(props.get("endpoint") or "core.windows.net")
        protocol = str(props.get("protocol") or "https")
        url = self._blobs.account_url(account, f"{protocol}://{account}.blob.{suffix}")
        return BlobLocation(url, account, container, path.path)

    def locate(
        self, uri: str, endpoint: EndpointRef, pinned: str | None = None
    ) -> tuple[BlobLocation, bool, str]:
        """Where the sample lives: (blob location, whether it is one file, the asset version read,
        "" for a datastore path)."""
        try:
            ref = parse_data_uri(uri)
        except ValueError as exc:
            raise ProviderError(f"data_asset: {exc}") from None
        if isinstance(ref, DatastorePath):
            return self._datastore(endpoint, ref), ref.is_file, ""
        data_type, data_uri, workspace, version = self._asset(endpoint, ref, pinned)
        try:
            target = parse_storage_uri(data_uri)
        except ValueError as exc:
            raise ProviderError(f"data asset {ref}: {exc}") from None
        if isinstance(target, DatastorePath):
            if target.workspace is None and workspace is not None:  # relative to the asset's own workspace
                target = DatastorePath(target.datastore, target.path, workspace)
            location = self._datastore(endpoint, target)
        else:
            location = BlobLocation(
                self._blobs.account_url(target.account, target.account_url),
                target.account,
                target.container,
                target.path,
            )
        return location, data_type == "uri_file", version

    # -- reading ----------------------------------------------------------------------------------

    def read(self, uri: str, endpoint: EndpointRef) -> list[Sample]:
        return self.read_pinned(uri, endpoint, None)[0]

    def read_pinned(self, uri: str, endpoint: EndpointRef, pinned: str | None) -> tuple[list[Sample], str]:
        """The sample and the asset version it came from. `@latest` is resolved once by the caller
        and then read `pinned` to that version, so a version registered mid-rollout does not change
        the inputs under the comparison."""
        location, is_file, version = self.locate(uri, endpoint, pinned)
        if is_file:
            url = f"{location.account_url.rstrip('/')}/{location.container}/{quote(location.path)}"
            return self._blobs.read_sample(url), version
        samples, _ = self._blobs.read_sample_folder(location.account_url, location.container, location.path)
        return samples, version
