"""Inputs for the prediction comparison from Blob storage, read with azure-storage-blob.

- A sample file: JSON Lines, one `{"input": <request body>, "label": <expected label, optional>}`
  per line, at a blob URL; or a folder of such files (an Azure ML uri_folder data asset, resolved by
  shared/adapters/data_asset_inputs.py).
- Blue's data collector output (Azure ML data collection for online endpoints, Microsoft Learn
  "Collect production data from models deployed for real-time inferencing", section "Store
  collected data in blob storage"): in the workspace's blob store under
  `modelDataCollector/{endpoint_name}/{deployment_name}/{collection_name}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl`,
  one JSON object per line whose `data` holds what was logged: for custom logging (`model_inputs`)
  the DataFrame's rows as a list of objects (requests close together are batched into one line),
  for payload logging (`request`) the request body. The newest hours are read first.

Authentication: the app's identity (Storage Blob Data Reader on the account), or, for an account
whose name and key are in the app's storage connection string (Azurite, local development), that
key. Every failure is a ProviderError naming what could not be read.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from shared.adapters.paired_scoring import Sample
from shared.ports import ProviderError
from shared.rollout.prediction_policy import DataCollectorSource

MAX_BLOB_BYTES = 20_000_000  # a sample or collected file larger than this is not read whole
MAX_FOLDER_FILES = 1000  # a sample folder (an Azure ML uri_folder data asset) with more files is refused
MAX_FOLDER_ENTRIES = 10 * MAX_FOLDER_FILES  # blobs of any kind listed before a folder is refused
ROOT = "modelDataCollector"


def collected_prefix(endpoint: str, deployment: str, collection: str, hour: datetime) -> str:
    """The folder of one hour of collected data (the documented layout, hourly rolling)."""
    return f"{ROOT}/{endpoint}/{deployment}/{collection}/{hour:%Y/%m/%d/%H}/"


def collected_key(hour: datetime, blob: str, line: int) -> str:
    """A collected input's key: the hour folder, the file's name (its last 120 characters) and the
    input's place in the file. Keys sort the way the data grows (hour by hour), and the key of an
    input stays the same while older hours age out of the window and new ones arrive."""
    return f"{hour:%Y%m%d%H}|{blob.rsplit('/', 1)[-1][-120:]}#{line:06d}"


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_sample_lines(text: str, where: str) -> list[Sample]:
    """A JSON Lines sample. A line that is not `{"input": ...}` is refused with its number."""
    out: list[Sample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ProviderError(f"{where}: line {number} is not JSON") from None
        if not isinstance(row, dict) or "input" not in row:
            raise ProviderError(f'{where}: line {number} is not {{"input": ..., "label": ...}}')
        out.append(Sample(row["input"], _label(row.get("label"))))
    return out


def parse_collected_lines(text: str, collection: str, wrap: str | None) -> list[Sample]:
    """Inputs from a data collector file. Custom logging's `data` is a list of rows, each sent as
    `{wrap: [row]}` (or as it is when `wrap` is None); payload logging's `data` is the body.
    Lines that cannot be read (a payload moved to a raw file, `datainblob`) are skipped."""
    out: list[Sample] = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "data" not in event or str(event.get("datainblob", "")).lower() == "true":
            continue
        data = event["data"]
        if collection == "request":
            out.append(Sample(data))
        elif isinstance(data, list):
            out += [Sample({wrap: [row]} if wrap else row) for row in data if isinstance(row, dict)]
    return out


class BlobInputs:
    def __init__(self, credential: Any, *, connection_string: str | None = None, transport: Any = None) -> None:
        self._credential = credential
        self._shared_key: dict[str, str] | None = None
        self._blob_endpoint: tuple[str, str] | None = None  # (account, its Blob endpoint) from the connection string
        if connection_string:
            parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
            if parts.get("AccountName") and parts.get("AccountKey"):
                self._shared_key = {"account_name": parts["AccountName"], "account_key": parts["AccountKey"]}
            if parts.get("AccountName") and parts.get("BlobEndpoint"):
                self._blob_endpoint = (parts["AccountName"], parts["BlobEndpoint"].rstrip("/"))
        self._kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}

    def _credential_for(self, url: str) -> Any:
        parts = urlsplit(url)
        host = parts.hostname or ""
        account = host.split(".")[0] if host.endswith(".core.windows.net") else parts.path.strip("/").split("/")[0]
        if self._shared_key is not None and account == self._shared_key["account_name"]:
            return self._shared_key
        return self._credential

    def account_url(self, account: str, default: str) -> str:
        """The Blob endpoint of `account`: the connection string's, if it names that account (Azurite,
        local development), else `default` (https://{account}.blob.{suffix})."""
        if self._blob_endpoint is not None and self._blob_endpoint[0] == account:
            return self._blob_endpoint[1]
        return default

    def read_sample_folder(self, account_url: str, container: str, prefix: str) -> tuple[list[Sample], int]:
        """The `*.jsonl` files under a folder (and its subfolders) in name order, as one JSON Lines
        sample; (samples, files read). A folder without such files, or more than MAX_FOLDER_FILES of
        them or MAX_BLOB_BYTES in all, is a ProviderError (never a quietly shortened sample)."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContainerClient

        account_url = account_url.rstrip("/")
        folder = prefix.strip("/") + "/" if prefix.strip("/") else ""
        where = f"{account_url}/{container}/{folder}"
        out: list[Sample] = []
        try:
            client = ContainerClient(
                account_url, container, credential=self._credential_for(account_url), **self._kwargs
            )
            # The listing comes in name order (Blob service "List Blobs": "returned in lexicographical
            # order"): stop as soon as the folder is known to be too large, never list it all.
            files: list[tuple[str, int]] = []
            for scanned, b in enumerate(client.list_blobs(name_starts_with=folder), start=1):
                if scanned > MAX_FOLDER_ENTRIES:
                    raise ProviderError(f"{where}: more than {MAX_FOLDER_ENTRIES} blobs in the folder; not read")
                if b.name.lower().endswith(".jsonl"):
                    files.append((b.name, b.size or 0))
                    if len(files) > MAX_FOLDER_FILES:
                        raise ProviderError(f"{where}: more than the {MAX_FOLDER_FILES} .jsonl files read")
            if not files:
                raise ProviderError(f"{where}: no .jsonl files in the folder")
            total = sum(size for _, size in files)
            if total > MAX_BLOB_BYTES:
                raise ProviderError(f"{where}: {total} bytes of .jsonl files, more than the {MAX_BLOB_BYTES} read")
            for name, size in files:
                # at most the listed size: a file that grew since is read as it was listed
                text = client.download_blob(name, offset=0, length=size).readall().decode("utf-8") if size else ""
                out += parse_sample_lines(text, f"{account_url}/{container}/{name}")
        except AzureError as exc:
            raise ProviderError(
                f"reading the sample folder {where}: {exc.__class__.__name__}: {str(exc)[:200]}"
            ) from exc
        except UnicodeDecodeError:
            raise ProviderError(f"{where}: a file is not UTF-8 text") from None
        return out, len(files)

    def read_sample(self, url: str) -> list[Sample]:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobClient

        where = url.split("?", maxsplit=1)[0]
        try:
            blob = BlobClient.from_blob_url(url, credential=self._credential_for(url), **self._kwargs)
            size = blob.get_blob_properties().size
            if size > MAX_BLOB_BYTES:
                raise ProviderError(f"{where}: {size} bytes, more than the {MAX_BLOB_BYTES} read")
            text = blob.download_blob(offset=0, length=size).readall().decode("utf-8") if size else ""
        except AzureError as exc:
            raise ProviderError(f"reading the sample {where}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
        except UnicodeDecodeError:
            raise ProviderError(f"{where}: not UTF-8 text") from None
        return parse_sample_lines(text, where)

    def read_collected(
        self, source: DataCollectorSource, endpoint: str, deployment: str, now: datetime, *, wrap: str | None = "data"
    ) -> list[Sample]:
        """Blue's collected inputs, newest hour first, at most `source.max_rows`."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError
        from azure.storage.blob import ContainerClient

        account = source.account_url.rstrip("/")
        where = f"{account}/{source.container}/{ROOT}/{endpoint}/{deployment}/{source.collection}"
        out: list[Sample] = []
        try:
            container = ContainerClient(
                account, source.container, credential=self._credential_for(account), **self._kwargs
            )
            hour = now.replace(minute=0, second=0, microsecond=0)
            for back in range(source.hours):
                at = hour - timedelta(hours=back)
                prefix = collected_prefix(endpoint, deployment, source.collection, at)
                names = sorted((b.name for b in container.list_blobs(name_starts_with=prefix)), reverse=True)
                for name in names:
                    data = container.download_blob(name).readall()
                    found = parse_collected_lines(
                        data[:MAX_BLOB_BYTES].decode("utf-8", "replace"), source.collection, wrap
                    )
                    # each input's key: its hour, its file and its place in the file (collected_key)
                    out += [Sample(s.body, s.label, collected_key(at, name, i)) for i, s in enumerate(found)]
                    if len(out) >= source.max_rows:
                        return out[: source.max_rows]
        except ResourceNotFoundError as exc:
            raise ProviderError(f"reading blue's collected inputs at {where}: not found ({str(exc)[:120]})") from exc
        except AzureError as exc:
            raise ProviderError(
                f"reading blue's collected inputs at {where}: {exc.__class__.__name__}: {str(exc)[:200]}"
            ) from exc
        return out
