"""Composition root: builds the service from settings, lazily, once. Tests and the demo replace it
with set_service(). Nothing here runs at import time."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.service import RolloutService
from shared.settings import Settings
from shared.targets import PolicyFile, load_policy_file

log = logging.getLogger("safe_rollout")
_holder: dict[str, RolloutService | None] = {"service": None}
_lock = threading.Lock()


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _unexpected(exc: Exception) -> bool:
    """Worth a traceback: not one of the file's own errors (PolicyFileError, a ValueError)."""
    return not isinstance(exc, ValueError)


class CachedPolicyFile:
    """Re-read the policy file when it changes. A broken edit, whatever it raises, keeps the last
    good file in use (logged once per edit, with the file's name); with no good file yet, the
    error is logged and raised, so only what needs the file (a model registration) fails."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._current: PolicyFile | None = None

    def __call__(self) -> PolicyFile:
        mtime: float | None = None
        try:
            mtime = self._path.stat().st_mtime if self._path.exists() else None
            if self._current is None or mtime != self._mtime:
                self._current = load_policy_file(self._path)
                self._mtime = mtime
        except Exception as exc:
            if self._current is None:
                log.error("policy file %s cannot be used: %s", self._path, exc, exc_info=_unexpected(exc))
                raise
            log.error(
                "policy file %s is invalid; still using the last valid one: %s",
                self._path,
                exc,
                exc_info=_unexpected(exc),
            )
            self._mtime = mtime  # read again only after the next edit
        return self._current

    def template_for(self, endpoint: str) -> dict[str, Any] | None:
        """The policy file's deployment template for an empty endpoint, read when it is needed."""
        for target in self().targets:
            if target.template and endpoint in (target.endpoint, *target.allowed_endpoints):
                return dict(target.template)
        return None


def build_service(settings: Settings, *, transport: Any = None, clock: Any = None) -> RolloutService:
    from shared.adapters.azureml import AzureMLGateway
    from shared.adapters.credentials import make_credential
    from shared.adapters.eventgrid import EventGridPublisher, NoopPublisher
    from shared.adapters.monitor import MonitorMetrics
    from shared.adapters.table_store import table_store, table_store_with_credential
    from shared.store import RolloutStoreImpl

    # The policy file is read when first needed (a model registration, a first deployment), never
    # here: a broken file must not stop alerts, people's commands or the timer.
    policies = CachedPolicyFile(settings.policy_file)
    credential = make_credential(settings.credential)
    store: RolloutStoreImpl
    if settings.storage_connection:
        store = table_store(settings.storage_connection, settings.table_name)
    else:
        assert settings.storage_account_url is not None
        store = table_store_with_credential(settings.storage_account_url, credential, settings.table_name)
    events: Any = NoopPublisher()
    if settings.eventgrid_endpoint:
        if settings.eventgrid_key:
            from azure.core.credentials import AzureKeyCredential

            events = EventGridPublisher(settings.eventgrid_endpoint, AzureKeyCredential(settings.eventgrid_key))
        else:
            events = EventGridPublisher(settings.eventgrid_endpoint, credential)
    gateway = AzureMLGateway(
        credential,
        transport=transport,
        polling_interval=settings.polling_interval,
        first_deployment_template=policies.template_for,
    )
    # Paced per subscription within ARM's limits; a lasting 429 defers the rollout (issue 15).
    from shared.adapters.throttle import ArmLimits, ThrottledGateway

    rates = ArmLimits(
        reads_per_second=settings.arm_reads_per_second,
        writes_per_second=settings.arm_writes_per_second,
        read_burst=10.0 * settings.arm_reads_per_second,
        write_burst=10.0 * settings.arm_writes_per_second,
    )
    metrics = MonitorMetrics(
        credential,
        metrics_endpoint=settings.metrics_endpoint,
        logs_workspace_id=settings.log_analytics_workspace_id,
        logs_endpoint=settings.logs_endpoint,
        transport=transport,
    )
    the_clock = clock or SystemClock()
    paced: Any = (
        ThrottledGateway(gateway, rates, now=lambda: the_clock.now().timestamp(), sleep=the_clock.sleep)
        if hasattr(the_clock, "sleep")  # a simulated clock (the demo): waits pass on its time
        else ThrottledGateway(gateway, rates)
    )
    return RolloutService(
        store=store,
        gateway=paced,
        metrics=metrics,
        events=events,
        clock=the_clock,
        policies=policies,
        max_concurrency=settings.max_concurrency,
        tick_budget_seconds=settings.tick_budget_seconds,
        # the paced gateway: the scoring URI and keys are ARM requests like any other
        model_checks=build_model_checks(settings, credential, paced, transport, the_clock),
    )


def build_model_checks(settings: Settings, credential: Any, gateway: Any, transport: Any, clock: Any) -> Any:
    """Prediction comparison and KPI queries (issue 14): scoring through the gateway's endpoint
    keys, inputs from Blob storage, KPIs over Log Analytics / Application Insights."""
    from shared.adapters.blob_inputs import BlobInputs
    from shared.adapters.data_asset_inputs import DataAssetInputs
    from shared.adapters.kpi_queries import KpiQueries
    from shared.adapters.paired_scoring import PairedScorer
    from shared.model_checks import ModelChecks

    blobs = BlobInputs(credential, connection_string=settings.storage_connection, transport=transport)
    return ModelChecks(
        scorer=PairedScorer(gateway, clock=clock),
        inputs=blobs,
        data_assets=DataAssetInputs(gateway, blobs),  # data assets resolved on ARM, read from Blob storage
        kpis=KpiQueries(
            credential,
            workspace_id=settings.log_analytics_workspace_id,
            logs_endpoint=settings.logs_endpoint,
            transport=transport,
        ),
        clock=clock,
    )


def get_service() -> RolloutService:
    with _lock:
        service = _holder["service"]
        if service is None:
            service = _holder["service"] = build_service(Settings.from_env())
        return service


def set_service(service: RolloutService | None) -> None:
    """Replace the service (tests, the demo); None rebuilds from settings on next use."""
    with _lock:
        _holder["service"] = service


def alert_secret() -> str | None:
    """Read on its own, so a webhook call never depends on the rest of the settings."""
    import os

    secret = os.environ.get("SAFE_ROLLOUT_ALERT_SECRET", "").strip()
    return secret if len(secret) >= 16 else None
