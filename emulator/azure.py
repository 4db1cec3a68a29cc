"""A local stand-in for the Azure services Safe Rollout calls, as one request handler.

`Emulator.handle(method, url, headers, body)` answers:
- Azure ML control plane (management.azure.com): workspace, online endpoints and deployments with
  provisioning long-running operations, model versions, endpoint keys; Azure's validation rules
  with Azure-shaped errors;
- scoring (https://{endpoint}.{region}.inference.ml.azure.com/score), honouring the
  `azureml-model-deployment` header;
- Azure Monitor `metrics:getBatch` ({region}.metrics.monitor.azure.com), one-minute grain;
- Log Analytics queries (api.loganalytics.io) over AmlOnlineEndpointTrafficLog, for the query
  shapes shared/adapters/monitor.py sends;
- an Event Grid topic that records what is published.
Everything runs on a simulated clock. Served in-process by emulator/transport.py (tests) and over
HTTPS by emulator/server.py (demo).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pydantic import ValidationError

from emulator.clock import SimClock
from emulator.traffic import MinuteStats, Scenario, TrafficSimulator
from shared.rollout.model import InvalidSplitError, TrafficSplit, is_valid_resource_name

REGION = "eastus"
ML_PROVIDER = "Microsoft.MachineLearningServices"
MAX_DEPLOYMENTS = 20
Response = tuple[int, dict[str, str], bytes]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Fault:
    """Answer the next `times` requests matching `operation` with `status` (and Retry-After)."""

    operation: str  # e.g. "endpoint.put", "deployment.put", "deployment.delete", "metrics", "logs"
    status: int = 503
    times: int = 1
    retry_after: int | None = None
    partial: bool = False  # logs: a partial result instead of an error


@dataclass
class Operation:
    id: str
    kind: str  # "create", "update", "delete"
    resource: str  # lower-cased ARM id of the resource
    done_at: datetime
    outcome: str = "Succeeded"  # or Failed / Canceled


@dataclass
class Resource:
    body: dict[str, Any]
    created: datetime


@dataclass
class Published:
    topic: str
    events: list[dict[str, Any]]


@dataclass
class Emulator:
    clock: SimClock
    seed: int = 0
    subscription: str = "00000000-0000-0000-0000-000000000001"
    resource_group: str = "rg-ml"
    workspace: str = "ws1"
    deployment_provisioning: timedelta = timedelta(minutes=8)
    deployment_deletion: timedelta = timedelta(minutes=2)
    endpoint_update: timedelta = timedelta(0)
    metrics_lag: timedelta = timedelta(minutes=1)
    poll_retry_after: int = 1
    faults: list[Fault] = field(default_factory=list)
    provisioning_outcomes: dict[str, str] = field(default_factory=dict)  # deployment name -> Failed/Canceled
    hung_provisioning: set[str] = field(default_factory=set)  # never finishes
    endpoints: dict[str, Resource] = field(default_factory=dict)  # key: lower endpoint name
    deployments: dict[tuple[str, str], Resource] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, url, json body)
    traffic_history: list[tuple[datetime, str, TrafficSplit]] = field(default_factory=list)
    latency_hook: Callable[[str], None] | None = None  # called with the service name per request
    public_base: str | None = None  # served over HTTPS: scoring URIs point back at the server

    def __post_init__(self) -> None:
        self.sim = TrafficSimulator(self.clock.now(), seed=self.seed)
        self._lock = threading.RLock()

    # -- ids --------------------------------------------------------------------------------------

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{ML_PROVIDER}/workspaces/{self.workspace}"
        )

    def endpoint_id(self, endpoint: str) -> str:
        return f"{self.workspace_id}/onlineEndpoints/{endpoint}"

    def deployment_id(self, endpoint: str, deployment: str) -> str:
        return f"{self.endpoint_id(endpoint)}/deployments/{deployment}"

    # -- world set-up (used by tests and the demo, not by the SDKs) -------------------------------

    def register_model(self, name: str, version: str) -> None:
        self.models[(name.lower(), str(version))] = {
            "id": f"{self.workspace_id}/models/{name}/versions/{version}",
            "name": str(version),
            "type": f"{ML_PROVIDER}/workspaces/models/versions",
            "properties": {
                "modelType": "mlflow_model",
                "modelUri": f"azureml://models/{name}/{version}",
                "properties": {},
                "tags": {},
                "description": "",
            },
            "systemData": {"createdAt": _iso(self.clock.now())},
        }

    def add_endpoint(self, name: str, *, rpm: float = 600.0) -> None:
        with self._lock:
            self.endpoints[name.lower()] = Resource(self._endpoint_body(name, {}), self.clock.now())
            self.sim.set_rpm(name, rpm)

    def add_deployment(
        self,
        endpoint: str,
        name: str,
        model: tuple[str, str],
        *,
        scenario: Scenario | None = None,
        traffic: int | None = None,
        instance_type: str = "Standard_DS3_v2",
        instance_count: int = 2,
    ) -> None:
        """A deployment already Succeeded (blue), optionally given all live traffic."""
        with self._lock:
            self.register_model(*model)
            body = self._deployment_body(
                endpoint,
                name,
                {
                    "location": REGION,
                    "sku": {"name": "Default", "capacity": instance_count},
                    "properties": {
                        "endpointComputeType": "Managed",
                        "model": self.models[(model[0].lower(), model[1])]["id"],
                        "instanceType": instance_type,
                        "environmentId": f"{self.workspace_id}/environments/sklearn-env/versions/3",
                        "codeConfiguration": {
                            "codeId": f"{self.workspace_id}/codes/score-code/versions/1",
                            "scoringScript": "score.py",
                        },
                        "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 4},
                        "livenessProbe": {
                            "initialDelay": "PT30S",
                            "period": "PT10S",
                            "timeout": "PT2S",
                            "failureThreshold": 30,
                            "successThreshold": 1,
                        },
                        "appInsightsEnabled": True,
                        "scaleSettings": {"scaleType": "Default"},
                    },
                },
            )
            body["properties"]["provisioningState"] = "Succeeded"
            self.deployments[(endpoint.lower(), name.lower())] = Resource(body, self.clock.now())
            if scenario is not None:
                self.sim.set_scenario(endpoint, name, scenario)
            if traffic is not None:
                ep = self.endpoints[endpoint.lower()].body
                ep["properties"]["traffic"] = {name: traffic}
                self._record_split(endpoint, TrafficSplit(live={name: traffic}))

    def break_deployment(self, endpoint: str, deployment: str, state: str = "Failed") -> None:
        """A deployment whose instances failed (e.g. its node pool was lost)."""
        with self._lock:
            self.deployments[(endpoint.lower(), deployment.lower())].body["properties"]["provisioningState"] = state

    def set_scenario(self, endpoint: str, deployment: str, scenario: Scenario) -> None:
        self.sim.set_scenario(endpoint, deployment, scenario)

    def set_traffic_by_hand(self, endpoint: str, live: dict[str, int], mirror: dict[str, int] | None = None) -> None:
        """A person changing the split in the portal."""
        with self._lock:
            props = self.endpoints[endpoint.lower()].body["properties"]
            props["traffic"] = dict(live)
            props["mirrorTraffic"] = dict(mirror or {})
            self._record_split(endpoint, TrafficSplit(live=live, mirror=mirror or {}))

    def delete_behind_our_back(self, endpoint: str, deployment: str | None = None) -> None:
        with self._lock:
            if deployment is None:
                self.endpoints.pop(endpoint.lower(), None)
                for key in [k for k in self.deployments if k[0] == endpoint.lower()]:
                    del self.deployments[key]
            else:
                self.deployments.pop((endpoint.lower(), deployment.lower()), None)

    def settle(self) -> None:
        """Bring operations and traffic up to the clock (requests do this on their own)."""
        with self._lock:
            self._settle()

    def events_of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [e for p in self.published for e in p.events if str(e.get("type", "")).endswith(suffix)]

    def splits(self, endpoint: str) -> list[TrafficSplit]:
        """The endpoint's traffic history, oldest first, without repeats."""
        out: list[TrafficSplit] = []
        for _, name, split in self.traffic_history:
            if name == endpoint.lower() and (not out or out[-1] != split):
                out.append(split)
        return out

    # -- request entry ----------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        if self.latency_hook is not None:  # simulated network latency, outside the lock like the real thing
            host = (urlsplit(url).hostname or "").lower()
            self.latency_hook("metrics" if "metrics.monitor" in host else "logs" if "loganalytics" in host else "arm")
        with self._lock:
            self._settle()
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            path = parts.path
            query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                return _error(400, "InvalidRequestContent", "The request body is not valid JSON")
            self.requests.append((method, url, payload))
            if host == "management.azure.com" or host.endswith(".management.azure.com"):
                return self._arm(method, path, query, payload)
            if host.endswith(".metrics.monitor.azure.com"):
                return self._metrics(method, path, query, payload)
            if host in ("api.loganalytics.io", "api.loganalytics.azure.com"):
                return self._logs(method, path, payload)
            if host.endswith(".inference.ml.azure.com"):
                return self._score(host, path, headers)
            if host.endswith(".eventgrid.azure.net") or host.startswith("eventgrid"):
                return self._eventgrid(host, payload)
            if host == "login.microsoftonline.com":
                return _json(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "emulator"})
            return _error(404, "NotFound", f"the emulator does not serve {host}")

    def _fault(self, operation: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation == operation and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        # Error codes Azure sends with these statuses:
        # - 404 ResourceNotFound on a resource that exists: ARM reads are eventually consistent and
        #   can miss a resource for a while (Azure/terraform-azurerm-caf-enterprise-scale wiki,
        #   "Troubleshooting": a transient 404 "while the Resource Provider in ARM is yet to complete
        #   replication"; Azure/azure-dev#3881: an online endpoint read right after a traffic update
        #   does not yet show it).
        # - 409 Conflict: "another operation on same entity is already running" (Azure/azure-cli#17075).
        # - 403 RequestDisallowedByPolicy: an Azure Policy `deny` assignment refuses the write, every
        #   time, until the policy changes (learn.microsoft.com/azure/governance/policy/concepts/effect-deny:
        #   "The request is returned as a 403 (Forbidden)"; .../azure-resource-manager/troubleshooting/
        #   error-policy-requestdisallowedbypolicy).
        # - 400 BadArgument: Azure ML's validation errors (the shape used elsewhere in this file).
        code = {
            400: "BadArgument",
            403: "RequestDisallowedByPolicy",
            404: "ResourceNotFound",
            409: "Conflict",
            429: "TooManyRequests",
        }.get(fault.status, "InternalServerError")
        return _error(fault.status, code, f"injected fault ({fault.status})", headers)

    # -- long-running operations on the simulated clock --------------------------------------------

    def _settle(self) -> None:
        """Finish every operation whose time has come, and generate traffic up to now."""
        now = self.clock.now()
        for op in list(self.operations.values()):
            if op.done_at > now or op.outcome in ("Done", "Hung"):
                continue
            self._complete(op)
        self.sim.advance(now)

    def _complete(self, op: Operation) -> None:
        parts = op.resource.split("/")
        if "/deployments/" in op.resource:
            key = (parts[-3], parts[-1])
            res = self.deployments.get(key)
            if op.kind == "delete":
                self.deployments.pop(key, None)
            elif res is not None:
                res.body["properties"]["provisioningState"] = op.outcome
        else:
            res = self.endpoints.get(parts[-1])
            if res is not None:
                res.body["properties"]["provisioningState"] = op.outcome
        op.outcome = "Done" if op.outcome == "Succeeded" else op.outcome

    def _start_operation(self, kind: str, resource: str, duration: timedelta, outcome: str = "Succeeded") -> Operation:
        op = Operation(uuid.uuid4().hex, kind, resource.lower(), self.clock.now() + duration, outcome)
        self.operations[op.id] = op
        if duration <= timedelta(0) and outcome != "Hung":
            self._complete(op)
        return op

    def _operation_urls(self, op: Operation) -> dict[str, str]:
        host = self.public_base or "https://management.azure.com"  # served over HTTPS: poll the server
        base = f"{host}/subscriptions/{self.subscription}/providers/{ML_PROVIDER}/locations/{REGION}"
        return {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}?api-version=2025-12-01",
            "Location": f"{base}/mfeOperationResults/{op.id}?api-version=2025-12-01",
        }

    def _operation_status(self, op_id: str, results: bool) -> Response:
        op = self.operations.get(op_id)
        if op is None:
            return _error(404, "NotFound", f"operation {op_id} not found")
        retry = {"Retry-After": str(self.poll_retry_after)}
        if self.clock.now() < op.done_at or op.outcome == "Hung":
            if results:
                return 202, {**retry, "Location": self._operation_urls(op)["Location"]}, b""
            return _json(200, {"status": "InProgress"}, retry)
        status = "Succeeded" if op.outcome in ("Done", "Succeeded") else op.outcome
        if results:
            return (200, {}, b"") if status == "Succeeded" else _error(400, status, f"operation {status}")
        body: dict[str, Any] = {"status": status}
        if status != "Succeeded":
            body["error"] = {
                "code": "DeploymentFailed" if status == "Failed" else "OperationCanceled",
                "message": f"provisioning {status.lower()} (injected)",
            }
        return _json(200, body)

    # -- ARM --------------------------------------------------------------------------------------

    _WS = (
        r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
        r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
    )

    def _arm(self, method: str, path: str, query: dict[str, str], body: Any) -> Response:
        m = re.match(
            r"^/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+/"
            r"(mfeOperationsStatus|mfeOperationResults)/([^/?]+)$",
            path,
            re.IGNORECASE,
        )
        if m:
            return self._operation_status(m[2], results=m[1].lower() == "mfeoperationresults")
        m = re.match(rf"^{self._WS}(?P<rest>/.*)?$", path, re.IGNORECASE)
        if not m:
            return _error(404, "ResourceNotFound", f"no resource at {path}")
        if (m["sub"].lower(), m["rg"].lower(), m["ws"].lower()) != (
            self.subscription.lower(),
            self.resource_group.lower(),
            self.workspace.lower(),
        ):
            return _error(404, "ResourceNotFound", "workspace not found")
        rest = m["rest"] or ""
        if rest in ("", "/") and method == "GET":
            return _json(200, self._workspace_body())
        m2 = re.match(r"^/models/([^/]+)/versions/([^/]+)$", rest, re.IGNORECASE)
        if m2 and method == "GET":
            model = self.models.get((m2[1].lower(), m2[2]))
            return _json(200, model) if model else _error(404, "UserError", f"Model {m2[1]}:{m2[2]} not found")
        m2 = re.match(r"^/onlineEndpoints(?:/(?P<ep>[^/]+))?(?P<tail>/.*)?$", rest, re.IGNORECASE)
        if not m2:
            return _error(404, "ResourceNotFound", f"no resource at {path}")
        endpoint, tail = m2["ep"], m2["tail"] or ""
        if endpoint is None:
            return _json(200, {"value": [copy.deepcopy(r.body) for r in self.endpoints.values()]})
        if tail.lower() == "/listkeys" and method == "POST":
            if endpoint.lower() not in self.endpoints:
                return _error(404, "ResourceNotFound", f"endpoint {endpoint} not found")
            return _json(200, {"primaryKey": "emulator-key-1", "secondaryKey": "emulator-key-2"})
        m3 = re.match(r"^/deployments(?:/(?P<d>[^/]+))?$", tail, re.IGNORECASE)
        if m3:
            return self._deployments(method, endpoint, m3["d"], body)
        if tail:
            return _error(404, "ResourceNotFound", f"no resource at {path}")
        return self._endpoint(method, endpoint, body)

    def _workspace_body(self) -> dict[str, Any]:
        return {
            "id": self.workspace_id,
            "name": self.workspace,
            "location": REGION,
            "type": f"{ML_PROVIDER}/workspaces",
            "kind": "Default",
            "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "friendlyName": self.workspace,
                "discoveryUrl": f"https://{REGION}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{REGION}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                "workspaceId": "11111111-2222-3333-4444-555555555555",
                "provisioningState": "Succeeded",
                "hbiWorkspace": False,
                "publicNetworkAccess": "Enabled",
            },
            "systemData": {"createdAt": _iso(self.clock.now())},
            "tags": {},
        }

    def _envelope(self, arm_id: str, name: str, kind: str, sent: dict[str, Any], principal: str) -> dict[str, Any]:
        """The ARM tracked-resource fields every online endpoint and deployment carries."""
        return {
            "id": arm_id,
            "name": name,
            "type": f"{ML_PROVIDER}/workspaces/{kind}",
            "location": sent.get("location") or REGION,
            "kind": sent.get("kind") or "Managed",
            "tags": dict(sent.get("tags") or {}),
            "identity": sent.get("identity")
            or {"type": "SystemAssigned", "principalId": principal, "tenantId": "00000000-0000-0000-0000-00000000000b"},
            "systemData": self._system_data(),
        }

    def _endpoint_body(self, name: str, sent: dict[str, Any]) -> dict[str, Any]:
        props = dict(sent.get("properties") or {})
        return {
            **self._envelope(
                self.endpoint_id(name), name, "onlineEndpoints", sent, "00000000-0000-0000-0000-00000000000a"
            ),
            "sku": sent.get("sku") or {"name": "Default", "tier": "Standard", "capacity": 1},
            "properties": {
                "description": props.get("description") or "",
                "properties": dict(props.get("properties") or {}),
                "authMode": props.get("authMode") or "Key",
                "compute": props.get("compute") or "",
                "scoringUri": (
                    f"{self.public_base}/endpoints/{name.lower()}/score"
                    if self.public_base
                    else f"https://{name.lower()}.{REGION}.inference.ml.azure.com/score"
                ),
                "swaggerUri": f"https://{name.lower()}.{REGION}.inference.ml.azure.com/swagger.json",
                "traffic": dict(props.get("traffic") or {}),
                "mirrorTraffic": dict(props.get("mirrorTraffic") or {}),
                "publicNetworkAccess": props.get("publicNetworkAccess") or "Enabled",
                "provisioningState": "Succeeded",
            },
        }

    def _system_data(self) -> dict[str, Any]:
        now = _iso(self.clock.now())
        return {
            "createdAt": now,
            "createdBy": "emulator",
            "createdByType": "User",
            "lastModifiedAt": now,
            "lastModifiedBy": "emulator",
            "lastModifiedByType": "User",
        }

    def _record_split(self, endpoint: str, split: TrafficSplit) -> None:
        now = self.clock.now()
        self.sim.record_split(endpoint, now, split)
        self.traffic_history.append((now, endpoint.lower(), split))

    def _endpoint(self, method: str, name: str, body: Any) -> Response:
        key = name.lower()
        res = self.endpoints.get(key)
        if method == "GET" and (fault := self._fault("endpoint.get")) is not None:
            return self._fault_response(fault)
        if method == "GET":
            return (
                _json(200, copy.deepcopy(res.body))
                if res
                else _error(404, "ResourceNotFound", f"Online endpoint {name} not found")
            )
        if method == "PUT":
            if (fault := self._fault("endpoint.put")) is not None:
                return self._fault_response(fault)
            if not isinstance(body, dict):
                return _error(400, "BadRequest", "request body must be a JSON object")
            props = body.get("properties") or {}
            traffic = dict((props.get("traffic") or {}).items())
            mirror = dict((props.get("mirrorTraffic") or {}).items())
            try:
                split = TrafficSplit(live=traffic, mirror=mirror)
            except ValidationError as exc:
                message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
                return _error(400, "BadArgument", f"Invalid traffic: {message}")
            except InvalidSplitError as exc:
                return _error(400, "BadArgument", f"Invalid traffic: {exc}")
            for deployment in [*split.live, *split.mirror]:
                if (key, deployment) not in self.deployments:
                    return _error(
                        400,
                        "BadArgument",
                        f"Deployment {deployment} does not exist in endpoint {name}; cannot route traffic",
                    )
            created = res is None
            previous = self.current_split(name)
            if not created and not is_valid_resource_name(name):
                return _error(400, "BadArgument", f"invalid endpoint name {name}")
            new_body = self._endpoint_body(name, body)
            new_body["properties"]["provisioningState"] = "Creating" if created else "Updating"
            self.endpoints[key] = Resource(new_body, res.created if res else self.clock.now())
            self.sim.set_rpm(name, self.sim.endpoints.get(key).rpm if key in self.sim.endpoints else 600.0)
            if split != previous:
                self._record_split(name, split)
            op = self._start_operation("create" if created else "update", self.endpoint_id(name), self.endpoint_update)
            urls = self._operation_urls(op)
            return _json(
                201 if created else 200,
                copy.deepcopy(new_body),
                {
                    "Azure-AsyncOperation": urls["Azure-AsyncOperation"],
                    "Retry-After": str(self.poll_retry_after),
                },
            )
        if method == "DELETE":
            if res is None:
                return 204, {}, b""
            self.delete_behind_our_back(name)
            return 200, {}, b""
        return _error(405, "MethodNotAllowed", f"{method} is not supported on online endpoints")

    def current_split(self, endpoint: str) -> TrafficSplit:
        res = self.endpoints.get(endpoint.lower())
        if res is None:
            return TrafficSplit()
        props = res.body["properties"]
        return TrafficSplit(live=props.get("traffic") or {}, mirror=props.get("mirrorTraffic") or {})

    def _deployment_body(self, endpoint: str, name: str, sent: dict[str, Any]) -> dict[str, Any]:
        props = dict(sent.get("properties") or {})
        default_probe = {
            "failureThreshold": 30,
            "successThreshold": 1,
            "timeout": "PT2S",
            "period": "PT10S",
            "initialDelay": "PT10S",
        }
        return {
            **self._envelope(
                self.deployment_id(endpoint, name),
                name,
                "onlineEndpoints/deployments",
                sent,
                "00000000-0000-0000-0000-00000000000c",
            ),
            "sku": sent.get("sku") or {"name": "Default", "capacity": 1},
            "properties": {
                "description": props.get("description") or "",
                "properties": dict(props.get("properties") or {}),
                "codeConfiguration": props.get("codeConfiguration") or {"codeId": "", "scoringScript": ""},
                "environmentId": props.get("environmentId") or "",
                "environmentVariables": dict(props.get("environmentVariables") or {}),
                "scaleSettings": props.get("scaleSettings") or {"scaleType": "Default"},
                "requestSettings": {
                    "maxQueueWait": "PT0.5S",
                    "requestTimeout": "PT5S",
                    "maxConcurrentRequestsPerInstance": 1,
                    **(props.get("requestSettings") or {}),
                },
                "appInsightsEnabled": bool(props.get("appInsightsEnabled", False)),
                "livenessProbe": props.get("livenessProbe") or default_probe,
                "readinessProbe": props.get("readinessProbe") or default_probe,
                "startupProbe": props.get("startupProbe") or default_probe,
                "provisioningState": "Creating",
                "instanceType": props.get("instanceType") or "Standard_DS3_v2",
                "model": props.get("model") or "",
                "endpointComputeType": props.get("endpointComputeType") or "Managed",
                "modelMountPath": props.get("modelMountPath") or "/var/azureml-app",
                "egressPublicNetworkAccess": props.get("egressPublicNetworkAccess") or "Enabled",
            },
        }

    def _deployments(self, method: str, endpoint: str, name: str | None, body: Any) -> Response:
        ep_key = endpoint.lower()
        if ep_key not in self.endpoints:
            return _error(404, "ResourceNotFound", f"Online endpoint {endpoint} not found")
        if name is None:
            if method != "GET":
                return _error(405, "MethodNotAllowed", "only GET lists deployments")
            items = [copy.deepcopy(r.body) for (e, _), r in self.deployments.items() if e == ep_key]
            return _json(200, {"value": items})
        key = (ep_key, name.lower())
        res = self.deployments.get(key)
        if method == "GET":
            return (
                _json(200, copy.deepcopy(res.body))
                if res
                else _error(404, "ResourceNotFound", f"Deployment {name} not found in endpoint {endpoint}")
            )
        if method == "PUT":
            if (fault := self._fault("deployment.put")) is not None:
                return self._fault_response(fault)
            if not is_valid_resource_name(name):
                return _error(
                    400,
                    "BadArgument",
                    f"Deployment name {name!r} is invalid: 3-32 characters, start with a letter, "
                    "letters, digits and hyphens, end with a letter or digit",
                )
            if not isinstance(body, dict):
                return _error(400, "BadRequest", "request body must be a JSON object")
            if res is not None and res.body["properties"]["provisioningState"] in (
                "Creating",
                "Updating",
                "Deleting",
            ):
                return _error(409, "Conflict", f"Deployment {name} has an operation in progress")
            if res is None and sum(1 for (e, _) in self.deployments if e == ep_key) >= MAX_DEPLOYMENTS:
                return _error(400, "BadArgument", f"An endpoint holds at most {MAX_DEPLOYMENTS} deployments")
            model_id = str((body.get("properties") or {}).get("model") or "")
            mm = re.search(r"/models/([^/]+)/versions/([^/]+)$", model_id, re.IGNORECASE)
            if not mm or (mm[1].lower(), mm[2]) not in self.models:
                return _error(400, "UserError", f"Model {model_id or '(none)'} was not found in the workspace")
            new_body = self._deployment_body(endpoint, name, body)
            new_body["properties"]["provisioningState"] = "Creating" if res is None else "Updating"
            self.deployments[key] = Resource(new_body, self.clock.now())
            outcome = self.provisioning_outcomes.get(name.lower(), "Succeeded")
            if name.lower() in self.hung_provisioning:
                outcome = "Hung"
            op = self._start_operation(
                "create",
                self.deployment_id(endpoint, name),
                self.deployment_provisioning if res is None else timedelta(seconds=30),
                outcome,
            )
            urls = self._operation_urls(op)
            return _json(
                201 if res is None else 200,
                copy.deepcopy(new_body),
                {"Azure-AsyncOperation": urls["Azure-AsyncOperation"]},
            )
        if method == "PATCH":
            if res is None:
                return _error(404, "ResourceNotFound", f"Deployment {name} not found")
            if not isinstance(body, dict) or set(body) - {"tags", "sku"}:
                return _error(400, "BadArgument", "a deployment PATCH takes only tags and sku")
            if "tags" in body:
                res.body["tags"] = dict(body["tags"] or {})
            if "sku" in body:
                res.body["sku"] = {**res.body["sku"], **(body["sku"] or {})}
            return _json(200, copy.deepcopy(res.body))
        if method == "DELETE":
            if (fault := self._fault("deployment.delete")) is not None:
                return self._fault_response(fault)
            if res is None:
                return 204, {}, b""
            split = self.current_split(endpoint)
            if split.live_of(name) or split.mirror_of(name):
                return _error(
                    400,
                    "BadArgument",
                    f"Deployment {name} cannot be deleted because it has traffic; set its traffic to 0 first",
                )
            res.body["properties"]["provisioningState"] = "Deleting"
            op = self._start_operation("delete", self.deployment_id(endpoint, name), self.deployment_deletion)
            urls = self._operation_urls(op)
            return 202, {"Location": urls["Location"]}, b""
        return _error(405, "MethodNotAllowed", f"{method} is not supported on deployments")

    # -- scoring ----------------------------------------------------------------------------------

    def _score(self, host: str, path: str, headers: dict[str, str]) -> Response:
        endpoint = host.split(".", maxsplit=1)[0]
        if endpoint not in self.endpoints:
            return _error(404, "NotFound", "no such endpoint")
        lowered = {k.lower(): v for k, v in headers.items()}
        deployment = lowered.get("azureml-model-deployment")
        if deployment is None:
            live = self.current_split(endpoint).live
            if not live:
                return _error(503, "NoTraffic", "the endpoint routes no traffic")
            deployment = max(live, key=lambda d: live[d])
        if (endpoint, deployment.lower()) not in self.deployments:
            return _error(404, "DeploymentNotFound", f"deployment {deployment} not found")
        status, _ = self.sim.answer(endpoint, deployment, self.clock.now())
        if status != 200:
            return _json(status, {"message": "An unexpected error occurred in scoring script."})
        return _json(200, [0.5])

    # -- Azure Monitor metrics --------------------------------------------------------------------

    def _metrics(self, method: str, path: str, query: dict[str, str], body: Any) -> Response:
        if method != "POST" or not path.lower().endswith("/metrics:getbatch"):
            return _error(404, "NotFound", f"the emulator serves only metrics:getBatch, not {path}")
        if (fault := self._fault("metrics")) is not None:
            return self._fault_response(fault)
        ids = list((body or {}).get("resourceids") or [])
        if not ids or len(ids) > 50:
            return _error(400, "BadRequest", "resourceids must hold 1 to 50 resource ids")
        try:
            start, end = _parse_time(query["starttime"]), _parse_time(query["endtime"])
        except (KeyError, ValueError):
            return _error(400, "BadRequest", "starttime and endtime are required (ISO 8601)")
        names = [n.strip() for n in query.get("metricnames", "").split(",") if n.strip()]
        namespace = query.get("metricnamespace", "")
        values = [self._metrics_for(rid, namespace, names, start, end, query.get("filter", "")) for rid in ids]
        return _json(200, {"values": values})

    def _metrics_for(
        self, rid: str, namespace: str, names: list[str], start: datetime, end: datetime, filt: str
    ) -> dict[str, Any]:
        m = re.search(r"/onlineEndpoints/([^/]+)(?:/deployments/([^/]+))?$", rid, re.IGNORECASE)
        visible_until = self.clock.now() - self.metrics_lag
        minutes = []
        t = start.replace(second=0, microsecond=0)
        while t < end:
            minutes.append(t)
            t += timedelta(minutes=1)
        value = []
        for metric in names:
            timeseries: list[dict[str, Any]] = []
            if m:
                endpoint = m[1].lower()
                if m[2]:
                    timeseries = self._deployment_series(endpoint, m[2].lower(), metric, minutes, visible_until)
                else:
                    timeseries = self._endpoint_series(endpoint, metric, minutes, visible_until, filt)
            value.append(
                {
                    "id": f"{rid}/providers/Microsoft.Insights/metrics/{metric}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric, "localizedValue": metric},
                    "displayDescription": f"{metric} (emulated)",
                    "unit": "Milliseconds"
                    if "Latency" in metric
                    else ("Percent" if "Percentage" in metric else "Count"),
                    "timeseries": timeseries,
                    "errorCode": "Success",
                }
            )
        return {
            "starttime": _iso(start),
            "endtime": _iso(end),
            "interval": "PT1M",
            "value": value,
            "namespace": namespace,
            "resourceregion": REGION,
            "resourceid": rid,
        }

    def _deployments_of(self, endpoint: str) -> list[str]:
        return sorted({d for (e, d) in self.sim.stats if e == endpoint})

    def _endpoint_series(
        self, endpoint: str, metric: str, minutes: list[datetime], visible: datetime, filt: str
    ) -> list[dict[str, Any]]:
        """Split by a dimension only when the filter asks for it (`dim eq '*'` or a value), as Azure does."""
        lowered = filt.lower()
        by_deployment = "deployment eq" in lowered
        by_status = "statuscode eq" in lowered
        wanted = {d.lower() for d in re.findall(r"deployment eq '([^'*]+)'", filt, re.IGNORECASE)}
        span = (minutes[0], minutes[-1] + timedelta(minutes=1)) if minutes else None
        groups: dict[str, list[str]] = {}
        for deployment in self._deployments_of(endpoint):
            if wanted and deployment not in wanted:
                continue
            groups.setdefault(deployment if by_deployment else "", []).append(deployment)

        def merged(members: list[str], t: datetime) -> MinuteStats | None:
            parts = [self.sim.minutes(endpoint, d, t, t + timedelta(minutes=1)).get(t) for d in members]
            parts = [p for p in parts if p is not None]
            if not parts or span is None:
                return None
            out = MinuteStats()
            for p in parts:
                out.requests += p.requests
                out.latencies.extend(p.latencies)
                for code, n in p.by_status.items():
                    out.by_status[code] += n
            return out

        series: list[dict[str, Any]] = []
        for group, members in groups.items():
            stats = {t: s for t in minutes if (s := merged(members, t)) is not None}
            meta = [{"name": {"value": "deployment", "localizedValue": "deployment"}, "value": group}] if group else []
            if metric == "RequestsPerMinute":
                if by_status:
                    keys: list[tuple[int, int] | None] = sorted({c for s in stats.values() for c in s.by_status})
                else:
                    keys = [None]
                for key in keys:
                    data = []
                    for t in minutes:
                        s = stats.get(t)
                        if s is None or t >= visible:
                            count = 0
                        else:
                            count = s.requests if key is None else s.by_status.get(key, 0)
                        data.append({"timeStamp": _iso(t), "total": count} if count else {"timeStamp": _iso(t)})
                    dims = list(meta)
                    if key is not None:
                        code, model_code = key
                        dims += [
                            {
                                "name": {"value": "statuscode", "localizedValue": "statusCode"},
                                "value": str(code),
                            },
                            {
                                "name": {"value": "statuscodeclass", "localizedValue": "statusCodeClass"},
                                "value": f"{code // 100}xx",
                            },
                            {
                                "name": {"value": "modelstatuscode", "localizedValue": "modelStatusCode"},
                                "value": str(model_code),
                            },
                        ]
                    series.append({"metadatavalues": dims, "data": data})
                continue
            mp = re.fullmatch(r"RequestLatency(?:_P(\d+))?", metric)
            if not mp:
                continue
            q = float(mp[1]) if mp[1] else None
            data = []
            for t in minutes:
                s = stats.get(t)
                if s is None or not s.latencies or t >= visible:
                    data.append({"timeStamp": _iso(t)})  # an empty minute: no value keys
                    continue
                v = float(np.mean(s.latencies)) if q is None else s.percentile(q)
                data.append({"timeStamp": _iso(t), "average": v})
            series.append({"metadatavalues": meta, "data": data})
        return series

    def _deployment_series(
        self, endpoint: str, deployment: str, metric: str, minutes: list[datetime], visible: datetime
    ) -> list[dict[str, Any]]:
        attr = {"CpuUtilizationPercentage": "cpu", "CpuMemoryUtilizationPercentage": "memory"}.get(metric)
        if attr is None:
            return []
        stats = (
            self.sim.minutes(endpoint, deployment, minutes[0], minutes[-1] + timedelta(minutes=1)) if minutes else {}
        )
        data = []
        for t in minutes:
            s = stats.get(t)
            v = getattr(s, attr) if s is not None and t < visible else None
            data.append({"timeStamp": _iso(t), "average": v} if v is not None else {"timeStamp": _iso(t)})
        return [{"metadatavalues": [], "data": data}]

    # -- Log Analytics ----------------------------------------------------------------------------

    _LOG_QUERY = re.compile(
        r"AmlOnlineEndpointTrafficLog\s*\|\s*where TimeGenerated >= datetime\((?P<start>[^)]+)\) and "
        r"TimeGenerated < datetime\((?P<end>[^)]+)\)\s*\|\s*"
        r'where EndpointName == "(?P<endpoint>[A-Za-z0-9-]+)"'
        r".*?DeploymentName in \((?P<deployments>[^)]*)\).*?sample (?P<sample>\d+)",
        re.DOTALL,
    )

    def _logs(self, method: str, path: str, body: Any) -> Response:
        if method != "POST" or not re.match(r"^/v1/workspaces/[^/]+/query$", path):
            return _error(404, "PathNotFoundError", f"the emulator serves only workspace queries, not {path}")
        fault = self._fault("logs")
        if fault is not None and not fault.partial:
            return self._fault_response(fault)
        text = str((body or {}).get("query") or "")
        m = self._LOG_QUERY.search(text)
        if not m:
            return _error(400, "BadArgumentError", "The request had some invalid properties (query shape not emulated)")
        start, end = _parse_time(m["start"]), _parse_time(m["end"])
        end = min(end, self.clock.now() - self.metrics_lag)
        deployments = re.findall(r'"([A-Za-z0-9-]+)"', m["deployments"])
        sample = int(m["sample"])
        rows: list[list[Any]] = []
        for deployment in deployments:
            found = self.sim.log_rows(m["endpoint"], deployment, start, end)
            if len(found) > sample:
                idx = self.sim.rng.choice(len(found), sample, replace=False)
                found = [found[i] for i in sorted(idx)]
            rows += [[r.deployment, r.total_ms, r.response_code, r.model_status_code] for r in found]
        result: dict[str, Any] = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [
                        {"name": "DeploymentName", "type": "string"},
                        {"name": "TotalDurationMs", "type": "real"},
                        {"name": "ResponseCode", "type": "int"},
                        {"name": "ModelStatusCode", "type": "int"},
                    ],
                    "rows": rows,
                }
            ]
        }
        if fault is not None and fault.partial:
            result["tables"][0]["rows"] = rows[: len(rows) // 2]
            result["error"] = {
                "code": "PartialError",
                "message": "There were some errors when processing your query.",
                "details": [{"code": "EngineError", "message": "Query exceeded limits (injected)"}],
            }
        return _json(200, result)

    # -- Event Grid -------------------------------------------------------------------------------

    def _eventgrid(self, host: str, body: Any) -> Response:
        if (fault := self._fault("eventgrid")) is not None:
            return self._fault_response(fault)
        events = body if isinstance(body, list) else [body]
        self.published.append(Published(host, [e for e in events if isinstance(e, dict)]))
        return 200, {}, b""
