"""The Azure ML data URIs a policy may name for the prediction comparison's inputs, parsed
without Azure (the adapter, shared/adapters/data_asset_inputs.py, resolves them).

What users write (docs/AZURE-FACTS-USED.md, "Azure ML data assets as inputs"):
- a data asset version: `azureml:<name>:<version>`, or its newest version `azureml:<name>@latest`
  (azure-ai-ml resolves the label `latest` from the data container's `latestVersion`), or its
  workspace-qualified id `azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/data/<name>/versions/<version>`;
- a path on a datastore: `azureml://datastores/<datastore>/paths/<path>` (the endpoint's workspace)
  or `azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/<datastore>/paths/<path>`.
  A path ending in `.jsonl` or `.json` is one file (uri_file); any other path is a folder
  (uri_folder) whose `*.jsonl` files are read in name order.

A data version's `dataUri` is one of the datastore forms above or a storage URL
(`https://<account>.blob.<suffix>/<container>/<path>`, `wasbs://<container>@<account>.blob.<suffix>/<path>`,
`abfss://<filesystem>@<account>.dfs.<suffix>/<path>`): `parse_storage_uri` reads those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_URI = 2000
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}"  # asset names: letters, digits, '_', '-', '.'
_VERSION = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_DATASTORE = r"[A-Za-z0-9_]{1,255}"  # datastore names: letters, digits and underscores
_WORKSPACE = r"subscriptions/(?P<sub>[^/\s]+)/resource[gG]roups/(?P<rg>[^/\s]+)/workspaces/(?P<ws>[^/\s]+)"
FILE_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class WorkspaceName:
    subscription: str
    resource_group: str
    workspace: str


@dataclass(frozen=True)
class DataAssetRef:
    """A registered data asset; version None: its latest version."""

    name: str
    version: str | None
    workspace: WorkspaceName | None = None  # None: the endpoint's workspace

    def __str__(self) -> str:
        return f"azureml:{self.name}@latest" if self.version is None else f"azureml:{self.name}:{self.version}"


@dataclass(frozen=True)
class DatastorePath:
    """A file or folder on a workspace datastore."""

    datastore: str
    path: str
    workspace: WorkspaceName | None = None

    @property
    def is_file(self) -> bool:
        return self.path.lower().endswith(FILE_SUFFIXES)

    def __str__(self) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{self.path}"


@dataclass(frozen=True)
class BlobLocation:
    """A path in a blob container (a Data Lake Storage Gen2 file system is read through its Blob endpoint)."""

    account_url: str  # https://<account>.blob.<suffix>
    account: str
    container: str
    path: str

    @property
    def is_file(self) -> bool:
        return self.path.lower().endswith(FILE_SUFFIXES)


def _workspace(m: re.Match[str]) -> WorkspaceName:
    return WorkspaceName(m["sub"], m["rg"], m["ws"])


def _unquote(text: str) -> str:
    """Percent-decoding (UTF-8), as a URI path is written."""
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), text.encode())
    return raw.decode("utf-8", "replace")


def _path(raw: str, what: str) -> str:
    path = _unquote(raw).lstrip("/")
    if not path or path in (".", "./"):
        raise ValueError(f"{what} names no path after /paths/")
    if any(part == ".." for part in path.split("/")):
        raise ValueError(f"{what}: '..' is not allowed in the path")
    return path


def _root_or_path(raw: str | None, what: str) -> str:
    """A storage URI's path, or "" for the container's root (a uri_folder may be a whole container)."""
    return "" if not (raw or "").strip("/") else _path(raw or "", what)


def parse_data_uri(text: str) -> DataAssetRef | DatastorePath:
    """A data asset or datastore URI as a policy names it; ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("a data asset URI is a non-empty string")
    if len(text) > MAX_URI or any(c.isspace() for c in text):
        raise ValueError(f"a data asset URI has no spaces and at most {MAX_URI} characters")
    if text.startswith("azureml://"):
        rest = text[len("azureml://") :]
        if m := re.fullmatch(rf"(?:{_WORKSPACE}/)?datastores/(?P<ds>{_DATASTORE})/paths/(?P<path>.*)", rest):
            return DatastorePath(m["ds"], _path(m["path"], text), _workspace(m) if m["sub"] else None)
        if m := re.fullmatch(rf"{_WORKSPACE}/data/(?P<name>{_NAME})/versions/(?P<version>{_VERSION})", rest):
            return DataAssetRef(m["name"], m["version"], _workspace(m))
        if rest.startswith("registries/"):
            raise ValueError(f"{text!r}: data assets in registries are not supported; name a workspace data asset")
        raise ValueError(
            f"{text!r} is not azureml://datastores/<datastore>/paths/<path> or "
            "azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/<datastore>/paths/<path>"
        )
    if text.startswith("azureml:"):
        rest = text[len("azureml:") :]
        if m := re.fullmatch(rf"(?P<name>{_NAME}):(?P<version>{_VERSION})", rest):
            return DataAssetRef(m["name"], m["version"])
        if m := re.fullmatch(rf"(?P<name>{_NAME})@(?P<label>[^@:/]+)", rest):
            if m["label"] != "latest":
                raise ValueError(f"{text!r}: the only label is @latest (or give a version, azureml:<name>:<version>)")
            return DataAssetRef(m["name"], None)
        raise ValueError(f"{text!r} is not azureml:<name>:<version> or azureml:<name>@latest")
    raise ValueError(
        f"{text!r} is not an Azure ML data URI (azureml:<name>:<version>, azureml:<name>@latest, "
        "azureml://datastores/<datastore>/paths/<path>); a plain blob URL goes in `url`"
    )


def parse_storage_uri(text: str) -> DatastorePath | BlobLocation:
    """A data version's `dataUri`; ValueError for anything that is not a datastore path or blob storage."""
    if text.startswith("azureml://"):
        parsed = parse_data_uri(text)
        if isinstance(parsed, DatastorePath):
            return parsed
        raise ValueError(f"the data URI {text!r} is not a storage path")
    if m := re.fullmatch(
        r"https://(?P<account>[a-z0-9]{3,24})\.blob\.(?P<suffix>[^/]+)/(?P<container>[^/]+)(?:/(?P<path>.*))?", text
    ):
        return BlobLocation(
            f"https://{m['account']}.blob.{m['suffix']}", m["account"], m["container"], _root_or_path(m["path"], text)
        )
    if m := re.fullmatch(
        r"(?:wasbs|abfss)://(?P<container>[^@/]+)@(?P<account>[a-z0-9]{3,24})\.(?:blob|dfs)\.(?P<suffix>[^/]+)"
        r"(?:/(?P<path>.*))?",
        text,
    ):
        # abfss names the Data Lake (dfs) endpoint; the same data is readable through the Blob endpoint.
        return BlobLocation(
            f"https://{m['account']}.blob.{m['suffix']}", m["account"], m["container"], _root_or_path(m["path"], text)
        )
    raise ValueError(f"the data URI {text[:200]!r} is not on Azure Blob storage or Data Lake Storage Gen2")
