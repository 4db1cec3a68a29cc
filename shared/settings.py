"""App settings (environment variables), validated at first use with messages naming the setting.

Every setting the app reads is declared here once (`SETTINGS`), so the docs, the example file and
the infrastructure can be checked against one list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# name -> what it is (shown in errors and checked against local.settings.json.example)
SETTINGS: dict[str, str] = {
    "SAFE_ROLLOUT_POLICY_FILE": "path of the policy file (YAML); default: policy.yaml beside function_app.py",
    "SAFE_ROLLOUT_STORAGE_CONNECTION": "Table storage connection string (local/dev); or use STORAGE_ACCOUNT_URL",
    "SAFE_ROLLOUT_STORAGE_ACCOUNT_URL": "Table endpoint, e.g. https://acct.table.core.windows.net (managed identity)",
    "SAFE_ROLLOUT_TABLE_NAME": "table holding rollout state; default saferollouts",
    "SAFE_ROLLOUT_METRICS_ENDPOINT": (
        "Azure Monitor metrics endpoint; {region} is replaced by each endpoint's region, so "
        "https://{region}.metrics.monitor.azure.com serves endpoints in any region (metrics:getBatch is regional); "
        "a URL without {region} (e.g. a local emulator) is used for every region"
    ),
    "SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID": "optional: workspace (GUID) holding AmlOnlineEndpointTrafficLog",
    "SAFE_ROLLOUT_LOGS_ENDPOINT": (
        "optional: Log Analytics endpoint; default https://api.loganalytics.io; tokens are asked for this "
        "endpoint as their audience (sovereign clouds: e.g. https://api.loganalytics.us)"
    ),
    "SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT": "optional: custom topic for lifecycle events",
    "SAFE_ROLLOUT_EVENTGRID_TOPIC_KEY": "optional: topic access key; without it, managed identity is used",
    "SAFE_ROLLOUT_ALERT_SECRET": "shared secret the alert webhook expects in its `secret` query parameter",
    "SAFE_ROLLOUT_RECONCILE_SCHEDULE": "NCRONTAB of the reconcile timer (six fields, UTC); e.g. 0 */1 * * * *",
    "SAFE_ROLLOUT_MAX_CONCURRENCY": "rollouts reconciled at once per tick; default 8",
    "SAFE_ROLLOUT_TICK_BUDGET_SECONDS": "stop starting new work after this long in a tick; default 240",
    "SAFE_ROLLOUT_POLLING_INTERVAL": "seconds between Azure LRO polls; default 5",
    "SAFE_ROLLOUT_CREDENTIAL": "'default' (DefaultAzureCredential, production) or 'emulator' (local emulator only)",
    "SAFE_ROLLOUT_WORK_QUEUE": (
        "Storage queue the timer fills with work items and the queue worker reads; its poison queue is "
        "<name>-poison; e.g. saferollout-work"
    ),
    "SAFE_ROLLOUT_QUEUE": (
        "local/dev: connection string of the work queue's storage account (Azurite); in Azure set "
        "SAFE_ROLLOUT_QUEUE__queueServiceUri instead (managed identity, Storage Queue Data Contributor)"
    ),
    "SAFE_ROLLOUT_BATCH_SIZE": "rollouts per work item (one subscription and region); default 25, at most 50",
    "SAFE_ROLLOUT_ARM_READS_PER_SECOND": "ARM reads per second per subscription, per instance; default 6",
    "SAFE_ROLLOUT_ARM_WRITES_PER_SECOND": "ARM writes per second per subscription, per instance; default 2",
}


# For local development and the emulator only: in Azure the app uses its managed identity instead.
DEV_ONLY = frozenset({"SAFE_ROLLOUT_STORAGE_CONNECTION", "SAFE_ROLLOUT_EVENTGRID_TOPIC_KEY", "SAFE_ROLLOUT_QUEUE"})


_EXAMPLES = {
    "SAFE_ROLLOUT_STORAGE_ACCOUNT_URL": "https://<account>.table.core.windows.net",
    "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://{region}.metrics.monitor.azure.com",
    "SAFE_ROLLOUT_LOGS_ENDPOINT": "https://api.loganalytics.io",
    "SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT": "https://<topic>.<region>-1.eventgrid.azure.net/api/events",
}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected, and never
    repeats the value: a connection string, key or SAS token pasted into the wrong setting must not
    reach the logs."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number between {low} and {high}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be a whole number between {low} and {high}")
    return value


def _url(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        if required:
            raise SettingsError(f"{name} is required: {SETTINGS[name]}")
        return None
    host = raw.split("/", 3)[2] if raw.startswith(("https://", "http://")) else ""
    if not host or "@" in host or "?" in raw or "#" in raw or any(c.isspace() for c in raw):
        raise SettingsError(
            f"{name} must be an http(s) endpoint URL such as {_EXAMPLES[name]}, with no query string or credentials "
            "(the value is not shown: it may hold a secret)"
        )
    return raw.rstrip("/")


def _metrics_endpoint(env: Mapping[str, str]) -> str:
    """The metrics endpoint, where `{region}` is the only placeholder allowed (anything else in
    braces is a typo that would send every query to a host that does not exist)."""
    name = "SAFE_ROLLOUT_METRICS_ENDPOINT"
    url = str(_url(env, name, required=True))
    if re.sub(r"\{region\}", "", url).count("{") or re.sub(r"\{region\}", "", url).count("}"):
        raise SettingsError(
            f"{name} may hold only the placeholder {{region}}, as in {_EXAMPLES[name]} "
            "(the value is not shown: it may hold a secret)"
        )
    return url


def _queue_name(env: Mapping[str, str]) -> str:
    """A queue name: 3-63 lower-case letters, digits and single hyphens, starting and ending with a
    letter or digit (Queue service naming rules), leaving room for the host's `-poison` suffix."""
    name = env.get("SAFE_ROLLOUT_WORK_QUEUE", "").strip() or "saferollout-work"
    if not (3 <= len(name) <= 56 and re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*", name)):
        raise SettingsError(
            "SAFE_ROLLOUT_WORK_QUEUE must be 3-56 lower-case letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def _queue_uri(env: Mapping[str, str]) -> str | None:
    raw = env.get("SAFE_ROLLOUT_QUEUE__queueServiceUri", "").strip()
    if not raw:
        return None
    if not raw.startswith("https://") or "?" in raw or any(c.isspace() for c in raw):
        raise SettingsError(
            "SAFE_ROLLOUT_QUEUE__queueServiceUri must be the account's queue endpoint, e.g. "
            "https://<account>.queue.core.windows.net (the value is not shown: it may hold a secret)"
        )
    return raw.rstrip("/")


@dataclass(frozen=True)
class Settings:
    policy_file: Path
    storage_connection: str | None
    storage_account_url: str | None
    table_name: str
    metrics_endpoint: str
    log_analytics_workspace_id: str | None
    logs_endpoint: str
    eventgrid_endpoint: str | None
    eventgrid_key: str | None
    alert_secret: str | None
    max_concurrency: int
    tick_budget_seconds: int
    polling_interval: float
    credential: str
    work_queue: str = "saferollout-work"
    queue_connection: str | None = None
    queue_service_uri: str | None = None
    batch_size: int = 25
    arm_reads_per_second: int = 6
    arm_writes_per_second: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, root: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        root = root or Path(__file__).resolve().parents[1]
        connection = env.get("SAFE_ROLLOUT_STORAGE_CONNECTION", "").strip() or None
        account_url = _url(env, "SAFE_ROLLOUT_STORAGE_ACCOUNT_URL", required=False)
        if not connection and not account_url:
            raise SettingsError(
                "set SAFE_ROLLOUT_STORAGE_ACCOUNT_URL (managed identity) or SAFE_ROLLOUT_STORAGE_CONNECTION"
            )
        table = env.get("SAFE_ROLLOUT_TABLE_NAME", "").strip() or "saferollouts"
        if not (3 <= len(table) <= 63 and table.isalnum() and table[0].isalpha()):
            raise SettingsError("SAFE_ROLLOUT_TABLE_NAME must be 3-63 letters and digits, starting with a letter")
        credential = env.get("SAFE_ROLLOUT_CREDENTIAL", "").strip().lower() or "default"
        if credential not in ("default", "emulator"):
            raise SettingsError("SAFE_ROLLOUT_CREDENTIAL must be 'default' or 'emulator'")
        policy_file = Path(env.get("SAFE_ROLLOUT_POLICY_FILE", "").strip() or root / "policy.yaml")
        if not policy_file.is_absolute():
            policy_file = root / policy_file
        secret = env.get("SAFE_ROLLOUT_ALERT_SECRET", "").strip() or None
        if secret is not None and len(secret) < 16:
            raise SettingsError("SAFE_ROLLOUT_ALERT_SECRET must be at least 16 characters")
        return cls(
            policy_file=policy_file,
            storage_connection=connection,
            storage_account_url=account_url,
            table_name=table,
            metrics_endpoint=_metrics_endpoint(env),
            log_analytics_workspace_id=env.get("SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID", "").strip() or None,
            logs_endpoint=_url(env, "SAFE_ROLLOUT_LOGS_ENDPOINT", required=False) or "https://api.loganalytics.io",
            eventgrid_endpoint=_url(env, "SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT", required=False),
            eventgrid_key=env.get("SAFE_ROLLOUT_EVENTGRID_TOPIC_KEY", "").strip() or None,
            alert_secret=secret,
            max_concurrency=_int(env, "SAFE_ROLLOUT_MAX_CONCURRENCY", 8, 1, 64),
            tick_budget_seconds=_int(env, "SAFE_ROLLOUT_TICK_BUDGET_SECONDS", 240, 5, 1700),
            polling_interval=float(_int(env, "SAFE_ROLLOUT_POLLING_INTERVAL", 5, 0, 60)),
            credential=credential,
            work_queue=_queue_name(env),
            queue_connection=env.get("SAFE_ROLLOUT_QUEUE", "").strip() or None,
            queue_service_uri=_queue_uri(env),
            batch_size=_int(env, "SAFE_ROLLOUT_BATCH_SIZE", 25, 1, 50),
            arm_reads_per_second=_int(env, "SAFE_ROLLOUT_ARM_READS_PER_SECOND", 6, 1, 25),
            arm_writes_per_second=_int(env, "SAFE_ROLLOUT_ARM_WRITES_PER_SECOND", 2, 1, 10),
        )
