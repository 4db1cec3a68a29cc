"""Edge models: what arrives from Event Grid, Azure Monitor alerts and people, parsed once and
turned into small commands, with a clear error (PayloadError) for anything else."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.rollout.model import ModelRef, WorkspaceRef, is_valid_resource_name

MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"
MODEL_DEPLOYED = "Microsoft.MachineLearningServices.ModelDeployed"
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
    # Who started it by hand (POST /api/rollouts); None when Event Grid delivered the registration.
    actor: str | None = None
    reason: str = ""

    @property
    def trigger(self) -> str:
        """What started the rollout, as the rollout records it."""
        return f"manual:{self.actor}" if self.actor is not None else f"event:{self.event_id}"


class EventSeen(BaseModel):
    """An Event Grid delivery as the function received it, whatever its schema."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    event_id: str
    event_type: str  # "" when the delivery carries none
    source: str | None  # Event Grid schema `topic`, CloudEvents `source`: the workspace's ARM id
    subject: str | None
    data: Any
    schema_name: Literal["EventGridSchema", "CloudEventSchemaV1_0"]
    likely_type: str | None = None  # with no event type: what the subject and data say it is
    note: str = ""  # with no event type: why

    def describe(self) -> str:
        if self.event_type:
            return self.event_type
        likely = f"by its subject and data a {self.likely_type}" if self.likely_type else "of unknown kind"
        return f"no event type ({likely}; {self.note})"


_NO_TYPE = (
    "the delivery has no eventType, and no lower-case `specversion` that would make it a CloudEvent: "
    "the Functions Event Grid binding then keeps only its id, subject and data, so its type and source "
    "(the workspace) are lost; CloudEvents names its attributes in lower case, so the sender must write "
    "`specversion`, `type`, `source`"
)


def read_event(event: Any) -> EventSeen:
    """The fields of an Event Grid delivery: a `func.EventGridEvent` or `func.CloudEvent` from the
    Functions binding (azure-functions 1.26 `EventGridEventInConverter.decode` builds a CloudEvent
    only when the body has a lower-case `specversion`; anything else becomes an EventGridEvent from
    `eventType`/`topic`/`subject`/`data`), or a raw JSON body of either schema, whose attribute names
    are compared case-insensitively (`specversion` or `specVersion`, `eventType` or `eventtype`)."""
    if isinstance(event, Mapping):
        body = {k.lower(): v for k, v in event.items() if isinstance(k, str)}
        cloud = "specversion" in body
        event_type = body.get("type" if cloud else "eventtype")
        source = body.get("source" if cloud else "topic")
        event_id, subject, data = body.get("id"), body.get("subject"), body.get("data")
    else:
        cloud = hasattr(event, "specversion")
        event_type = getattr(event, "type" if cloud else "event_type", None)
        source = getattr(event, "source" if cloud else "topic", None)
        event_id, subject = getattr(event, "id", None), getattr(event, "subject", None)
        try:
            data = event.get_json()
        except (AttributeError, ValueError):
            data = None
    seen = EventSeen(
        event_id=str(event_id or "")[:200],
        event_type=str(event_type or "")[:200],
        source=str(source)[:1000] if source else None,
        subject=str(subject)[:1000] if subject is not None else None,
        data=data,
        schema_name="CloudEventSchemaV1_0" if cloud else "EventGridSchema",
    )
    if seen.event_type:
        return seen
    return seen.model_copy(update={"likely_type": _likely_type(seen.subject, data), "note": _NO_TYPE})


def _likely_type(subject: str | None, data: Any) -> str | None:
    """Azure ML's events by their documented subjects (`models/{name}:{version}`, `endpoints/{name}`)
    and data keys (`ModelName`, `ServiceName`, in either casing)."""
    keys = {k.lower() for k in data} if isinstance(data, dict) else set()
    if _SUBJECT.match(subject or "") or ("modelname" in keys and "modelversion" in keys):
        return MODEL_REGISTERED
    if (subject or "").startswith("endpoints/") or "servicename" in keys:
        return MODEL_DEPLOYED
    return None


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
    """What an alert is about. Dimension names are read case-insensitively: metric alerts split by
    `deployment`; log search alerts carry their query's columns (`DeploymentName`, `EndpointName`,
    `_ResourceId` of the traffic log)."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    rule: str
    condition: Literal["Fired", "Resolved"]
    severity: str
    target_ids: tuple[str, ...]  # lower-cased ARM ids
    deployments: tuple[str, ...]  # values of a `deployment` / `DeploymentName` dimension, lower-cased
    fired_at: datetime | None
    endpoint_names: tuple[str, ...] = ()  # values of an `EndpointName` dimension, lower-cased
    resource_ids: tuple[str, ...] = ()  # online endpoint / deployment ids in `_ResourceId` / `ResourceId`

    @property
    def needs_endpoint_lookup(self) -> bool:
        """Only an endpoint's name ties this alert to it: the active rollouts must be read to know
        which endpoint (and workspace) that is."""
        by_id = any(_ONLINE_RESOURCE.match(t) for t in (*self.target_ids, *self.resource_ids))
        return bool(self.endpoint_names) and not by_id

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
    dims = _dimensions(parsed.data.alertContext)
    resource_ids: list[str] = []
    deployments = list(dims.get("deployment", ()))
    for value in dims.get("resourceid", ()):
        match = _ONLINE_RESOURCE.match(value)
        if match is None:
            continue  # another kind of resource (or a metric's `ResourceId` GUID): not ours to read
        resource_ids.append(value.rstrip("/"))
        if match["deployment"]:
            deployments.append(match["deployment"])
    return AlertNotice(
        alert_id=essentials.alertId,
        rule=essentials.alertRule,
        condition=essentials.monitorCondition,
        severity=essentials.severity,
        target_ids=tuple(t.lower().rstrip("/") for t in essentials.alertTargetIDs),
        deployments=tuple(dict.fromkeys(deployments)),
        fired_at=essentials.firedDateTime,
        endpoint_names=tuple(dict.fromkeys(dims.get("endpoint", ()))),
        resource_ids=tuple(dict.fromkeys(resource_ids)),
    )


# An online endpoint's or deployment's ARM id, compared lower-cased (alerts and Log Analytics send
# ARM ids lower-cased, `_ResourceId` often upper-cased).
_ONLINE_RESOURCE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.machinelearningservices/"
    r"workspaces/(?P<workspace>[^/]+)/onlineendpoints/(?P<endpoint>[^/]+)(?:/deployments/(?P<deployment>[^/]+))?/?$"
)
_ML_WORKSPACE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.machinelearningservices/workspaces/[^/]+$"
)


def tie_to_endpoints(notice: AlertNotice, known_endpoints: Iterable[str]) -> tuple[AlertNotice, str | None]:
    """The notice with the online endpoints and deployments its dimensions name added to its targets,
    and, when it names none at all, why (the alert is then acknowledged and nothing is rolled back).

    - `_ResourceId` / `ResourceId` holding an endpoint's or deployment's ARM id names it exactly (a log
      alert scoped to a Log Analytics workspace has that workspace as its target, not the endpoint).
    - `EndpointName` names the endpoint among `known_endpoints` (the endpoints of active rollouts,
      lower-cased ARM ids) of that name, within the Azure ML workspaces the alert targets if it targets
      any; a name two workspaces use is not guessed at.
    The service then rolls back green only when a deployment dimension names green (or the target is
    green itself), or when no deployment is named and the policy lets endpoint alerts roll back."""
    targets = list(notice.target_ids)
    targets += [r for r in notice.resource_ids if r not in targets]
    why_not: list[str] = []
    if notice.endpoint_names:
        workspaces = {t for t in targets if _ML_WORKSPACE.match(t)}
        known = [e.lower().rstrip("/") for e in known_endpoints]
        for name in notice.endpoint_names:
            found = sorted(
                {
                    e
                    for e in known
                    if (m := _ONLINE_RESOURCE.match(e))
                    and m["endpoint"] == name
                    and not m["deployment"]
                    and (not workspaces or e.rsplit("/onlineendpoints/", 1)[0] in workspaces)
                }
            )
            if len(found) == 1:
                if found[0] not in targets:
                    targets.append(found[0])
            elif len(found) > 1:
                why_not.append(f"endpoint name {name!r} is used in more than one workspace ({', '.join(found)})")
            else:
                why_not.append(f"no active rollout is on an endpoint named {name!r}")
    tied = notice.model_copy(update={"target_ids": tuple(targets)})
    if any(_ONLINE_RESOURCE.match(t) for t in targets):
        return tied, None
    dims = ", ".join(
        [*(f"DeploymentName={d}" for d in notice.deployments), *(f"EndpointName={e}" for e in notice.endpoint_names)]
    )
    why = (
        f"the alert names no online endpoint: targets {', '.join(notice.target_ids) or 'none'}"
        f"; dimensions {dims or 'none naming an endpoint'}"
    )
    if why_not:
        why += f" ({'; '.join(why_not)})"
    return tied, why


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# Dimension names we read (compared case-insensitively) -> what they name. Metric alerts on an
# endpoint split by `deployment`; log search alerts on the traffic log carry the query's columns.
_DIMENSIONS = {
    "deployment": "deployment",
    "deploymentname": "deployment",
    "endpointname": "endpoint",
    "_resourceid": "resourceid",
    "resourceid": "resourceid",
}


def _dimensions(context: dict[str, Any] | None) -> dict[str, list[str]]:
    """Values of the dimensions we read, lower-cased, by what they name: from `condition.allOf[]
    .dimensions` (metric alerts, Log Alerts V2) and the older log alerts' top-level `Dimensions`.
    Where these are present they must have Azure's shape; other dimensions are not read."""
    found: dict[str, list[str]] = {}
    condition = (context or {}).get("condition")
    criteria = condition.get("allOf") if isinstance(condition, dict) else None
    if criteria is not None:
        where = "data.alertContext.condition.allOf"
        if not isinstance(criteria, list):
            raise PayloadError(f"{where} must be a list, got {_kind(criteria)}")
        for i, criterion in enumerate(criteria):
            if not isinstance(criterion, dict):
                raise PayloadError(f"{where}[{i}] must be an object, got {_kind(criterion)}")
            _read_dimensions(criterion.get("dimensions"), f"{where}[{i}].dimensions", found)
    legacy = (context or {}).get("Dimensions")
    _read_dimensions(legacy, "data.alertContext.Dimensions", found)
    return found


def _read_dimensions(dims: Any, where: str, found: dict[str, list[str]]) -> None:
    if dims is None:
        return
    if not isinstance(dims, list):
        raise PayloadError(f"{where} must be a list, got {_kind(dims)}")
    for j, dim in enumerate(dims):
        if not isinstance(dim, dict):
            raise PayloadError(f"{where}[{j}] must be an object, got {_kind(dim)}")
        name, value = dim.get("name"), dim.get("value")
        kind = _DIMENSIONS.get(name.lower()) if isinstance(name, str) else None
        if kind is None:
            continue
        if not isinstance(value, str):
            raise PayloadError(f"{where}[{j}].value must be a string, got {_kind(value)}")
        found.setdefault(kind, []).append(value.strip().lower())


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


# --- a rollout started by hand (POST /api/rollouts) ----------------------------------------------

# Learn, "Share models, components, and environments across workspaces with registries": a
# deployment names a registry model as azureml://registries/{registry}/models/{name}/versions/{version}.
_REGISTRY_MODEL = re.compile(
    r"^azureml://registries/(?P<registry>[A-Za-z0-9][A-Za-z0-9_-]{1,62})"
    r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"
)
_SHORT_MODEL = re.compile(r"^(?P<name>[^:/]+):(?P<version>[^:/]+)$")


class StartBody(OverrideBody):
    endpoint: str = Field(min_length=1, max_length=64)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        if not is_valid_resource_name(value):
            raise ValueError("not an online endpoint name (3-32 letters, digits or hyphens, a letter first)")
        return value

    workspace: str | None = Field(default=None, max_length=400)
    model: str = Field(min_length=1, max_length=600)


def parse_model_text(text: str) -> ModelRef:
    """`name:version`, or a registry model's id `azureml://registries/{r}/models/{n}/versions/{v}`."""
    text = text.strip()
    found = _REGISTRY_MODEL.match(text) or _SHORT_MODEL.match(text)
    if not found:
        raise PayloadError(
            f"model must be name:version or azureml://registries/{{registry}}/models/{{name}}/versions/{{version}}, "
            f"got {text[:100]!r}"
        )
    name, version = found["name"], found["version"]
    if not _MODEL_NAME.match(name):
        raise PayloadError(f"not a valid model name: {name[:100]!r}")
    if not _VERSION.match(version):
        raise PayloadError(f"not a valid model version: {version[:64]!r}")
    registry = found.groupdict().get("registry")
    return ModelRef(name=name, version=version, registry=registry)


def parse_start(body: bytes) -> tuple[StartBody, ModelRef, WorkspaceRef | None]:
    """The body of POST /api/rollouts: who asks, which endpoint, which model, maybe which workspace."""
    if len(body) > 16 * 1024:
        raise PayloadError("request body is larger than 16 KiB")
    try:
        parsed = StartBody.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise PayloadError(_first_error(exc)) from None
    model = parse_model_text(parsed.model)
    workspace = None
    if parsed.workspace:
        try:
            workspace = WorkspaceRef.parse(parsed.workspace)
        except ValueError as exc:
            raise PayloadError(f"workspace: {exc}") from None
    return parsed, model, workspace
