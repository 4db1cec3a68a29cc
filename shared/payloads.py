"""Edge models: what arrives from Event Grid, Azure Monitor alerts and people, parsed once and
turned into small commands, with a clear error (PayloadError) for anything else."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.rollout.model import ModelRef, WorkspaceRef

MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"
MAX_ALERT_BYTES = 256 * 1024  # Azure Monitor caps alert payloads at 256 KB
_SUBJECT = re.compile(r"^models/(?P<name>[^:/]+):(?P<version>[^:/]+)$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PayloadError(ValueError):
    """Input that cannot be understood; the message says what is wrong (HTTP 4xx / logged rejection)."""


class ModelRegistration(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    workspace: WorkspaceRef
    model: ModelRef
    tags: dict[str, str] = {}


def _first(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) not in (None, ""):
            return data[key]
    return None


def parse_model_registered(
    *, event_id: str, event_type: str, subject: str | None, source: str | None, data: Any
) -> ModelRegistration:
    """Event Grid schema or CloudEvents; PascalCase or camelCase data; integer or string version;
    the subject (`models/{name}:{version}`) as fallback; the workspace from the topic/source."""
    if event_type != MODEL_REGISTERED:
        raise PayloadError(f"event type {event_type!r} is not {MODEL_REGISTERED}")
    if not source:
        raise PayloadError("the event has no topic/source naming the workspace")
    try:
        workspace = WorkspaceRef.parse(source)
    except ValueError as exc:
        raise PayloadError(str(exc)) from None
    body = data if isinstance(data, dict) else {}
    name = _first(body, "modelName", "ModelName")
    version = _first(body, "modelVersion", "ModelVersion")
    match = _SUBJECT.match(subject or "")
    if (name is None or version is None) and match:
        name = name if name is not None else match["name"]
        version = version if version is not None else match["version"]
    if name is None or version is None:
        raise PayloadError(
            "the event names no model: data has no modelName/modelVersion and the subject "
            f"{(subject or '')[:100]!r} is not models/{{name}}:{{version}}"
        )
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise PayloadError(f"model version must be a number or a string, got {type(version).__name__}")
    name, version = str(name), str(version)
    if not _MODEL_NAME.match(name):
        raise PayloadError(f"not a valid model name: {name[:100]!r}")
    if not _VERSION.match(version):
        raise PayloadError(f"not a valid model version: {version[:64]!r}")
    raw_tags = _first(body, "modelTags", "ModelTags") or {}
    tags = {str(k)[:256]: str(v)[:256] for k, v in raw_tags.items()} if isinstance(raw_tags, dict) else {}
    return ModelRegistration(
        event_id=str(event_id)[:200],
        workspace=workspace,
        model=ModelRef(name=name, version=version),
        tags=tags,
    )


# --- Azure Monitor alerts (common alert schema) -------------------------------------------------


class _Essentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    alertId: str = Field(min_length=1, max_length=1000)  # noqa: N815 - Azure's field names
    alertRule: str = Field(default="", max_length=1000)  # noqa: N815
    severity: str = ""
    signalType: str = ""  # noqa: N815
    monitorCondition: Literal["Fired", "Resolved"]  # noqa: N815
    alertTargetIDs: list[str] = Field(default_factory=list, max_length=100)  # noqa: N815
    firedDateTime: datetime | None = None  # noqa: N815


class _AlertData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    essentials: _Essentials
    alertContext: dict[str, Any] | None = None  # noqa: N815


class _CommonAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schemaId: Literal["azureMonitorCommonAlertSchema"]  # noqa: N815
    data: _AlertData


class AlertNotice(BaseModel):
    model_config = ConfigDict(frozen=True)

    alert_id: str
    rule: str
    condition: Literal["Fired", "Resolved"]
    severity: str
    target_ids: tuple[str, ...]  # lower-cased ARM ids
    deployments: tuple[str, ...]  # values of a `deployment` dimension, lower-cased
    fired_at: datetime | None

    @property
    def idempotency_key(self) -> str:
        return f"alert|{self.alert_id}|{self.condition}"


def parse_alert(body: bytes) -> AlertNotice:
    if len(body) > MAX_ALERT_BYTES:
        raise PayloadError(f"alert payload is {len(body)} bytes; Azure Monitor sends at most {MAX_ALERT_BYTES}")
    try:
        parsed = _CommonAlert.model_validate_json(body)
    except ValidationError as exc:
        schema = _schema_id(body)
        if schema and schema != "azureMonitorCommonAlertSchema":
            raise PayloadError(
                f"schema {schema!r} is not supported: enable the common alert schema on the action group"
            ) from None
        raise PayloadError(f"not a common-schema alert: {_first_error(exc)}") from None
    essentials = parsed.data.essentials
    return AlertNotice(
        alert_id=essentials.alertId,
        rule=essentials.alertRule,
        condition=essentials.monitorCondition,
        severity=essentials.severity,
        target_ids=tuple(t.lower().rstrip("/") for t in essentials.alertTargetIDs),
        deployments=_deployments(parsed.data.alertContext),
        fired_at=essentials.firedDateTime,
    )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _deployments(context: dict[str, Any] | None) -> tuple[str, ...]:
    """Values of the `deployment` dimension in a metric alert's condition (lower-cased). Other
    alert kinds have no `condition.allOf`; where it is present it must have Azure's shape."""
    condition = (context or {}).get("condition")
    criteria = condition.get("allOf") if isinstance(condition, dict) else None
    if criteria is None:
        return ()
    where = "data.alertContext.condition.allOf"
    if not isinstance(criteria, list):
        raise PayloadError(f"{where} must be a list, got {_kind(criteria)}")
    found: list[str] = []
    for i, criterion in enumerate(criteria):
        if not isinstance(criterion, dict):
            raise PayloadError(f"{where}[{i}] must be an object, got {_kind(criterion)}")
        dims = criterion.get("dimensions")
        if dims is None:
            continue
        if not isinstance(dims, list):
            raise PayloadError(f"{where}[{i}].dimensions must be a list, got {_kind(dims)}")
        for j, dim in enumerate(dims):
            if not isinstance(dim, dict):
                raise PayloadError(f"{where}[{i}].dimensions[{j}] must be an object, got {_kind(dim)}")
            name, value = dim.get("name"), dim.get("value")
            if not isinstance(name, str) or name.lower() != "deployment":
                continue
            if not isinstance(value, str):
                raise PayloadError(f"{where}[{i}].dimensions[{j}].value must be a string, got {_kind(value)}")
            found.append(value.lower())
    return tuple(found)


class _SchemaOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schemaId: Any = None  # noqa: N815


def _schema_id(body: bytes) -> str | None:
    """The body's schemaId, if it has one; pydantic's parser bounds nesting, json's would recurse."""
    try:
        value = _SchemaOnly.model_validate_json(body).schemaId
    except ValidationError:
        return None
    return str(value)[:100] if value else None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


# --- the override API --------------------------------------------------------------------------

SYSTEM_ACTOR = "safe-rollout"  # the actor of every decision the system takes itself
RESERVED_ACTOR_PREFIXES = ("alert:", "event:")  # alerts and events, as recorded in the audit trail
# Unicode categories a person's name or reason never needs: controls (Cc), format characters such
# as zero-width and bidi overrides (Cf), line/paragraph separators (Zl, Zp), surrogates, private use.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    actor: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=1000)

    @field_validator("actor", "reason")
    @classmethod
    def _visible(cls, value: str) -> str:
        for i, c in enumerate(value):
            if unicodedata.category(c) in _HIDDEN:
                raise ValueError(
                    f"control, invisible or direction-changing characters are not allowed (U+{ord(c):04X} at {i})"
                )
        return value

    @field_validator("actor")
    @classmethod
    def _not_the_system(cls, value: str) -> str:
        folded = unicodedata.normalize("NFKC", value).casefold()
        if folded == SYSTEM_ACTOR or folded.startswith(RESERVED_ACTOR_PREFIXES):
            raise ValueError(
                f"{value[:40]!r} is reserved for the system's own decisions and alerts; give your own name"
            )
        return value


def parse_override(body: bytes) -> OverrideBody:
    if len(body) > 16 * 1024:
        raise PayloadError("request body is larger than 16 KiB")
    try:
        return OverrideBody.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise PayloadError(_first_error(exc)) from None
