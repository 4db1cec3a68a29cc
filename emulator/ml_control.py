"""Azure ML control plane (management.azure.com): workspace, online endpoints and deployments,
model versions, endpoint keys, and the long-running operations their writes start, on the
simulated clock. A mixin of emulator.azure.Emulator, which holds the state.

What Azure answers is taken from its own recorded sessions (tests/recordings/, listed in
tests/recordings/README.md) and the REST specification; each rule below names its source:
- every endpoint or deployment PUT, create or update, answers 201 with `Azure-AsyncOperation`
  (the operation status), `Location` (the resource) and `x-ms-async-operation-timeout: PT30M`;
  a DELETE answers 202 with `Azure-AsyncOperation`, `Location` (`mfeOperationResults`) and the
  timeout, body `null` (recordings `test_online_deployment*.json`, entries PUT/DELETE);
- the operation status is `{id, name, startTime, percentComplete, status}` with status
  `Updating` until it ends (`endTime`, `percentComplete: 100.0`, `Succeeded`); no poll carries
  `Retry-After` (same recordings);
- an endpoint update shows `provisioningState: Updating` with the *old* traffic until it
  succeeds (recorded PUT of `traffic: {dep: 100}` answered `traffic: {}`); users' requests follow
  the new split only from then on.
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from emulator.records import Operation, Resource
from emulator.responses import MAX_DEPLOYMENTS, ML_PROVIDER, REGION, Response, _error, _iso, _json
from emulator.scoring import AML_TOKEN, SCORING_KEYS
from shared.rollout.model import InvalidSplitError, TrafficSplit, is_valid_resource_name

WORKSPACE_GUID = "11111111-2222-3333-4444-555555555555"
ASYNC_OPERATION_TIMEOUT = "PT30M"  # recorded on every PUT and DELETE
DEFAULT_API_VERSION = "2025-12-01"
# An endpoint or deployment in one of these states has an operation in flight.
ENDPOINT_BUSY = frozenset({"Creating", "Updating", "Deleting"})
DEPLOYMENT_BUSY = frozenset({"Creating", "Updating", "Scaling", "Deleting"})
TERMINAL = frozenset({"Succeeded", "Failed", "Canceled"})


def _not_supported(message: str) -> Response:
    """Azure ML's shape for a request it does not support: 400 BadRequest "The request is invalid."
    with the reason in `details` (azure-cli-extensions#5102: `(BadRequest) The request is invalid.
    Exception Details: (NotSupported) ...`)."""
    return _json(
        400,
        {
            "error": {
                "code": "BadRequest",
                "message": "The request is invalid.",
                "details": [{"code": "NotSupported", "message": message, "details": []}],
            }
        },
    )


class MachineLearningControlPlane:
    # -- long-running operations on the simulated clock --------------------------------------------

    def _settle(self) -> None:
        """Finish every operation whose time has come (in the order they end), and generate traffic
        up to now."""
        now = self.clock.now()
        due = [op for op in self.operations.values() if not op.finished and op.outcome != "Hung" and op.done_at <= now]
        for op in sorted(due, key=lambda o: o.done_at):
            self._complete(op)
        self.sim.advance(now)

    def _complete(self, op: Operation) -> None:
        op.finished = True
        parts = op.resource.split("/")
        succeeded = op.outcome == "Succeeded"
        if "/deployments/" in op.resource:
            key = (parts[-3], parts[-1])
            res = self.deployments.get(key)
            if res is None:
                return
            if op.kind == "delete" and succeeded:
                del self.deployments[key]
                return
            if op.kind == "scale":
                # The new count serves from now on; a failed scale leaves the old one (capacity.py).
                self.capacity.serving_during_scale.pop(key, None)
                if not succeeded and op.pending is not None:
                    res.body["sku"]["capacity"] = op.pending["from"]
            res.body["properties"]["provisioningState"] = op.outcome
            res.body["systemData"]["lastModifiedAt"] = _iso(op.done_at)
            return
        name = parts[-1]
        res = self.endpoints.get(name)
        if res is None:
            return
        if op.kind == "delete" and succeeded:
            self.endpoints.pop(name, None)
            for key in [k for k in self.deployments if k[0] == name]:
                del self.deployments[key]
            return
        if not succeeded or op.pending is None:
            res.body["properties"]["provisioningState"] = op.outcome
            return
        # The endpoint as it was asked to be lands now: the traffic split included.
        body = op.pending
        body["properties"]["provisioningState"] = "Succeeded"
        body["properties"]["scoringUri"], body["properties"]["swaggerUri"] = self._endpoint_uris(res.body["name"])
        body["systemData"]["lastModifiedAt"] = _iso(op.done_at)
        res.body = body
        split = self.current_split(name)
        if split != self.routed_split(name):
            self._record_split(name, split, when=op.done_at)

    def _start_operation(
        self,
        kind: str,
        resource: str,
        duration: timedelta,
        outcome: str = "Succeeded",
        *,
        pending: dict[str, Any] | None = None,
    ) -> Operation:
        now = self.clock.now()
        prefix = "od" if "/deployments/" in resource else "oe"  # as Azure ML names them (recordings)
        op = Operation(
            f"{prefix}:{WORKSPACE_GUID}:{uuid.uuid4()}",
            kind,
            resource.lower(),
            now + duration,
            outcome,
            started=now,
            pending=pending,
        )
        self.operations[op.id] = op
        return op

    def _finish_if_instant(self, op: Operation) -> None:
        if op.done_at <= self.clock.now() and op.outcome != "Hung":
            self._complete(op)

    def _operation_urls(self, op: Operation, api_version: str = DEFAULT_API_VERSION) -> dict[str, str]:
        host = self.public_base or "https://management.azure.com"  # served over HTTPS: poll the server
        base = f"{host}/subscriptions/{self.subscription}/providers/{ML_PROVIDER}/locations/{REGION}"
        return {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}?api-version={api_version}",
            "Location": f"{base}/mfeOperationResults/{op.id}?api-version={api_version}",
        }

    def _resource_url(self, arm_id: str, api_version: str) -> str:
        return f"{self.public_base or 'https://management.azure.com'}{arm_id}?api-version={api_version}"

    def _poll_headers(self) -> dict[str, str]:
        return {} if self.poll_retry_after is None else {"Retry-After": str(self.poll_retry_after)}

    def _operation_status(self, op_id: str, results: bool) -> Response:
        op = self.operations.get(op_id)
        if op is None:
            return _error(404, "NotFound", f"operation {op_id} not found")
        headers = self._poll_headers()
        status_id = (
            f"/subscriptions/{self.subscription}/providers/{ML_PROVIDER}/locations/{REGION}/mfeOperationsStatus/{op.id}"
        )
        started = _iso(op.started or op.done_at)
        if not op.finished:
            if results:  # UNVERIFIED: the SDKs poll Azure-AsyncOperation, never this URL, while it runs
                return 202, {**headers, "Location": self._operation_urls(op)["Location"]}, b""
            return _json(
                200,
                {
                    "id": status_id,
                    "name": op.id,
                    "startTime": started,
                    "endTime": "0001-01-01T00:00:00+00:00",  # as recorded in 2025
                    "percentComplete": 0.0,
                    "status": "Updating",  # recorded for every operation in progress, deletes included
                },
                headers,
            )
        status = op.outcome
        if results:
            return (200, {}, b"") if status == "Succeeded" else _error(400, status, f"operation {status}")
        body: dict[str, Any] = {
            "id": status_id,
            "name": op.id,
            "startTime": started,
            "endTime": _iso(op.done_at),
            "percentComplete": 100.0,
            "status": status,
        }
        if status in ("Failed", "Canceled"):
            # ARM's asynchronous operation format: a failed or canceled operation carries
            # error {code, message} (Azure/azure-resource-manager-rpc, async-api-reference.md).
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
        api_version = query.get("api-version") or DEFAULT_API_VERSION
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
        served = self.data_assets.serve(method, rest, self.workspace_id)  # emulator/data_assets.py
        if served is not None:
            return served
        m2 = re.match(r"^/onlineEndpoints(?:/(?P<ep>[^/]+))?(?P<tail>/.*)?$", rest, re.IGNORECASE)
        if not m2:
            return _error(404, "ResourceNotFound", f"no resource at {path}")
        endpoint, tail = m2["ep"], m2["tail"] or ""
        if endpoint is None:
            return _json(200, {"value": [copy.deepcopy(r.body) for r in self.endpoints.values()]})
        if tail.lower() == "/listkeys" and method == "POST":
            if endpoint.lower() not in self.endpoints:
                return _error(404, "ResourceNotFound", f"endpoint {endpoint} not found")
            return _json(200, {"primaryKey": SCORING_KEYS[0], "secondaryKey": SCORING_KEYS[1]})
        if tail.lower() == "/token" and method == "POST":  # AMLToken auth (recorded: POST .../token)
            if endpoint.lower() not in self.endpoints:
                return _error(404, "ResourceNotFound", f"endpoint {endpoint} not found")
            expiry = int((self.clock.now() + timedelta(hours=12)).timestamp())
            return _json(
                200,
                {
                    "accessToken": AML_TOKEN,
                    "tokenType": "Bearer",
                    "expiryTimeUtc": expiry,
                    "refreshAfterTimeUtc": expiry - 6 * 3600,
                },
            )
        m3 = re.match(r"^/deployments(?:/(?P<d>[^/]+))?$", tail, re.IGNORECASE)
        if m3:
            return self._deployments(method, endpoint, m3["d"], body, api_version)
        if tail:
            return _error(404, "ResourceNotFound", f"no resource at {path}")
        return self._endpoint(method, endpoint, body, api_version)

    def _workspace_body(self) -> dict[str, Any]:
        return {
            "id": self.workspace_id,
            "name": self.workspace,
            "location": REGION,
            "type": f"{ML_PROVIDER}/workspaces",
            "kind": "Default",
            "etag": None,  # recorded
            "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "friendlyName": self.workspace,
                "discoveryUrl": f"https://{REGION}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{REGION}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                "workspaceId": WORKSPACE_GUID,
                "provisioningState": "Succeeded",
                "hbiWorkspace": False,
                "publicNetworkAccess": "Enabled",
            },
            "systemData": {"createdAt": _iso(self.clock.now())},
            "tags": {},
        }

    def _envelope(
        self,
        arm_id: str,
        name: str,
        kind: str,
        sent: dict[str, Any],
        principal: str,
        created: datetime | None = None,
    ) -> dict[str, Any]:
        """The ARM tracked-resource fields every online endpoint and deployment carries."""
        identity = dict(sent.get("identity") or {"type": "SystemAssigned"})
        if "SystemAssigned" in str(identity.get("type", "")):
            # Azure fills in the managed identity it made (recorded: sent {"type": "SystemAssigned"},
            # answered with principalId and tenantId).
            identity.setdefault("principalId", principal)
            identity.setdefault("tenantId", "00000000-0000-0000-0000-00000000000b")
        return {
            "id": arm_id,
            "name": name,
            "type": f"{ML_PROVIDER}/workspaces/{kind}",
            "location": sent.get("location") or REGION,
            "kind": sent.get("kind") or "Managed",
            "tags": dict(sent.get("tags") or {}),
            "identity": identity,
            "systemData": self._system_data(created),
        }

    def _endpoint_uris(self, name: str) -> tuple[str, str]:
        scoring = (
            f"{self.public_base}/endpoints/{name.lower()}/score"
            if self.public_base
            else f"https://{name.lower()}.{REGION}.inference.ml.azure.com/score"
        )
        return scoring, f"https://{name.lower()}.{REGION}.inference.ml.azure.com/swagger.json"

    def _endpoint_body(self, name: str, sent: dict[str, Any], created: datetime | None = None) -> dict[str, Any]:
        props = dict(sent.get("properties") or {})
        scoring, swagger = self._endpoint_uris(name)
        return {
            **self._envelope(
                self.endpoint_id(name), name, "onlineEndpoints", sent, "00000000-0000-0000-0000-00000000000a", created
            ),
            "sku": sent.get("sku") or {"name": "Default", "tier": "Standard", "capacity": 1},
            "properties": {
                "description": props.get("description") or "",
                "properties": {
                    **dict(props.get("properties") or {}),
                    # recorded on every endpoint: its lower-cased ARM id
                    "azureml.onlineendpointid": self.endpoint_id(name).lower(),
                },
                "authMode": props.get("authMode") or "Key",
                # a Kubernetes endpoint names its compute; a managed one has none (recorded: null)
                "compute": props.get("compute") or None,
                "scoringUri": scoring,
                "swaggerUri": swagger,
                "traffic": dict(props.get("traffic") or {}),
                "mirrorTraffic": dict(props.get("mirrorTraffic") or {}),
                "publicNetworkAccess": props.get("publicNetworkAccess") or "Enabled",
                "provisioningState": "Creating",
            },
        }

    def _system_data(self, created: datetime | None = None) -> dict[str, Any]:
        now = _iso(self.clock.now())
        return {
            "createdAt": _iso(created) if created else now,
            "createdBy": "emulator",
            "createdByType": "User",
            "lastModifiedAt": now,
            "lastModifiedBy": "emulator",
            "lastModifiedByType": "User",
        }

    def _record_split(self, endpoint: str, split: TrafficSplit, when: datetime | None = None) -> None:
        """The split users' requests follow from `when` (default now) on."""
        at = when or self.clock.now()
        last = [t for t, name, _ in self.traffic_history if name == endpoint.lower()]
        if last and at < last[-1]:
            at = last[-1]
        self.sim.record_split(endpoint, at, split)
        self.traffic_history.append((at, endpoint.lower(), split))

    def routed_split(self, endpoint: str) -> TrafficSplit:
        """The split users' requests follow now: the last one that landed (an update in flight does
        not count yet)."""
        for _, name, split in reversed(self.traffic_history):
            if name == endpoint.lower():
                return split
        return TrafficSplit()

    def is_kubernetes(self, endpoint: str) -> bool:
        res = self.endpoints.get(endpoint.lower())
        return bool(res is not None and res.body["properties"].get("compute"))

    def _pending_split(self, endpoint: str) -> TrafficSplit | None:
        """The split an endpoint operation in flight will set, if any."""
        arm_id = self.endpoint_id(endpoint).lower()
        for op in self.operations.values():
            if op.resource == arm_id and not op.finished and op.pending is not None:
                props = op.pending["properties"]
                return TrafficSplit(live=props.get("traffic") or {}, mirror=props.get("mirrorTraffic") or {})
        return None

    def _endpoint(self, method: str, name: str, body: Any, api_version: str = DEFAULT_API_VERSION) -> Response:
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
            return self._put_endpoint(name, res, body, api_version)
        if method == "DELETE":
            if (fault := self._fault("endpoint.delete")) is not None:
                return self._fault_response(fault)
            if res is None:
                return 204, {}, b""
            state = res.body["properties"].get("provisioningState")
            if state in ENDPOINT_BUSY:
                return self._busy(f"online endpoint {name}", str(state))
            res.body["properties"]["provisioningState"] = "Deleting"
            op = self._start_operation("delete", self.endpoint_id(name), self.endpoint_deletion)
            self._finish_if_instant(op)
            return self._accepted_delete(op, api_version)
        return _error(405, "MethodNotAllowed", f"{method} is not supported on online endpoints")

    def _busy(self, what: str, state: str) -> Response:
        # 409 while another operation on the same resource runs. UNVERIFIED wording for online
        # endpoints: modelled on Azure ML's "Conflict of operation, another operation on same entity
        # is already running" (Azure/azure-cli#17075).
        return _error(
            409,
            "Conflict",
            f"Conflict of operation, another operation on same entity is already running: {what} is {state}.",
        )

    def _accepted_delete(self, op: Operation, api_version: str) -> Response:
        urls = self._operation_urls(op, api_version)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Azure-AsyncOperation": urls["Azure-AsyncOperation"],
            "Location": urls["Location"],
            "x-ms-async-operation-timeout": ASYNC_OPERATION_TIMEOUT,
        }
        return 202, headers, b"null"  # recorded: 202, body "null"

    def _put_endpoint(self, name: str, res: Resource | None, body: Any, api_version: str) -> Response:
        key = name.lower()
        if (fault := self._fault("endpoint.put")) is not None:
            return self._fault_response(fault)
        if not isinstance(body, dict) or not isinstance(body.get("properties") or {}, dict):
            return _error(400, "BadRequest", "request body must be a JSON object")
        created = res is None
        if created and not is_valid_resource_name(name):
            return _error(400, "BadArgument", f"invalid endpoint name {name}")
        if res is not None and res.body["properties"].get("provisioningState") in ENDPOINT_BUSY:
            return self._busy(f"online endpoint {name}", str(res.body["properties"]["provisioningState"]))
        props = body.get("properties") or {}
        compute = props.get("compute") or (res.body["properties"].get("compute") if res else None)
        mirror_sent = props.get("mirrorTraffic") or {}
        if compute and isinstance(mirror_sent, dict) and any(mirror_sent.values()):
            # "Mirroring isn't currently supported for Kubernetes online endpoints." (Learn, "Safe
            # rollout for online endpoints", section "Test the deployment with mirrored traffic").
            return _not_supported(f"Mirror traffic is not supported for Kubernetes online endpoint {name}.")
        try:
            split = TrafficSplit(live=dict(props.get("traffic") or {}), mirror=dict(mirror_sent))
        except ValidationError as exc:
            message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            return _error(400, "BadArgument", f"Invalid traffic: {message}")
        except (InvalidSplitError, TypeError, ValueError) as exc:
            return _error(400, "BadArgument", f"Invalid traffic: {exc}")
        for deployment in [*split.live, *split.mirror]:
            if (key, deployment) not in self.deployments:
                return _error(
                    400,
                    "BadArgument",
                    f"Deployment {deployment} does not exist in endpoint {name}; cannot route traffic",
                )
        now = self.clock.now()
        target = self._endpoint_body(name, body, res.created if res else now)
        op = self._start_operation(
            "create" if created else "update",
            self.endpoint_id(name),
            self.endpoint_creation if created else self.endpoint_update,
            pending=target,
        )
        urls = self._operation_urls(op, api_version)
        target["properties"]["properties"]["AzureAsyncOperationUri"] = urls["Azure-AsyncOperation"]
        if created:
            visible = copy.deepcopy(target)
            visible["properties"]["provisioningState"] = "Creating"
            # recorded: no scoring or swagger URI until the endpoint exists
            visible["properties"]["scoringUri"] = visible["properties"]["swaggerUri"] = None
            self.endpoints[key] = Resource(visible, now)
            if key not in self.sim.endpoints:
                self.sim.set_rpm(name, 600.0)
        else:
            assert res is not None
            visible = copy.deepcopy(res.body)
            visible["properties"]["provisioningState"] = "Updating"
            visible["properties"]["properties"]["AzureAsyncOperationUri"] = urls["Azure-AsyncOperation"]
            visible["systemData"]["lastModifiedAt"] = _iso(now)
            if self.traffic_visible_during_update:
                visible["properties"]["traffic"] = dict(target["properties"]["traffic"])
                visible["properties"]["mirrorTraffic"] = dict(target["properties"]["mirrorTraffic"])
            res.body = visible
        answer = copy.deepcopy(visible)
        self._finish_if_instant(op)
        return _json(
            201,  # recorded for a create and for an update alike
            answer,
            {
                "Azure-AsyncOperation": urls["Azure-AsyncOperation"],
                "Location": self._resource_url(self.endpoint_id(name), api_version),
                "x-ms-async-operation-timeout": ASYNC_OPERATION_TIMEOUT,
            },
        )

    def current_split(self, endpoint: str) -> TrafficSplit:
        """The split the endpoint resource shows (GET)."""
        res = self.endpoints.get(endpoint.lower())
        if res is None:
            return TrafficSplit()
        props = res.body["properties"]
        return TrafficSplit(live=props.get("traffic") or {}, mirror=props.get("mirrorTraffic") or {})

    def _deployment_body(
        self, endpoint: str, name: str, sent: dict[str, Any], created: datetime | None = None
    ) -> dict[str, Any]:
        props = dict(sent.get("properties") or {})
        default_probe = {
            "failureThreshold": 30,
            "successThreshold": 1,
            "timeout": "PT2S",
            "period": "PT10S",
            "initialDelay": "PT10S",
        }
        kubernetes = str(props.get("endpointComputeType") or "").lower() == "kubernetes"
        body = {
            **self._envelope(
                self.deployment_id(endpoint, name),
                name,
                "onlineEndpoints/deployments",
                sent,
                "00000000-0000-0000-0000-00000000000c",
                created,
            ),
            "sku": {"name": "Default", "tier": "Standard", "capacity": 1, **(sent.get("sku") or {})},
            "properties": {
                "description": props.get("description") or "",
                "properties": dict(props.get("properties") or {}),
                "codeConfiguration": props.get("codeConfiguration") or {"codeId": "", "scoringScript": ""},
                "environmentId": props.get("environmentId") or "",
                "environmentVariables": dict(props.get("environmentVariables") or {}),
                "scaleSettings": props.get("scaleSettings") or {"scaleType": "Default"},
                # recorded defaults when none are sent: maxQueueWait PT0S, requestTimeout PT5S, 1
                "requestSettings": {
                    "maxQueueWait": "PT0S",
                    "requestTimeout": "PT5S",
                    "maxConcurrentRequestsPerInstance": 1,
                    **(props.get("requestSettings") or {}),
                },
                "appInsightsEnabled": bool(props.get("appInsightsEnabled", False)),
                "livenessProbe": props.get("livenessProbe") or default_probe,
                "readinessProbe": props.get("readinessProbe") or default_probe,
                "startupProbe": props.get("startupProbe") or default_probe,
                "provisioningState": self.deployment_creating_state,
                "instanceType": props.get("instanceType") or "Standard_DS3_v2",
                "model": props.get("model") or "",
                "endpointComputeType": "Kubernetes" if kubernetes else (props.get("endpointComputeType") or "Managed"),
                "modelMountPath": props.get("modelMountPath") or "/var/azureml-app",
                "egressPublicNetworkAccess": props.get("egressPublicNetworkAccess") or "Enabled",
                # recorded in 2022 responses (the older name of egressPublicNetworkAccess: Disabled)
                "privateNetworkConnection": bool(props.get("privateNetworkConnection", False)),
            },
        }
        if kubernetes:
            # REST spec 2025-12-01, KubernetesOnlineDeployment: the container's resource requests and limits
            body["properties"]["containerResourceRequirements"] = props.get("containerResourceRequirements") or {
                "containerResourceRequests": {"cpu": "1", "memory": "2Gi"},
                "containerResourceLimits": {"cpu": "2", "memory": "4Gi"},
            }
        return body

    def _deployments(
        self, method: str, endpoint: str, name: str | None, body: Any, api_version: str = DEFAULT_API_VERSION
    ) -> Response:
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
            return self._put_deployment(endpoint, name, res, body, api_version)
        if method == "PATCH":
            if res is None:
                return _error(404, "ResourceNotFound", f"Deployment {name} not found")
            if not isinstance(body, dict) or set(body) - {"tags", "sku"}:
                return _error(400, "BadArgument", "a deployment PATCH takes only tags and sku")
            wanted = (body.get("sku") or {}).get("capacity") if isinstance(body.get("sku"), dict) else None
            if wanted is not None and wanted != res.body["sku"].get("capacity"):
                return self._scale(endpoint, name, res, body, wanted, api_version)
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
            state = str(res.body["properties"].get("provisioningState"))
            if state in DEPLOYMENT_BUSY or state == self.deployment_creating_state:
                return self._busy(f"deployment {name}", state)
            # No delete while the deployment has traffic: the split shown, the one users follow and
            # one an update in flight is about to set (AZURE-FACTS; the last two UNVERIFIED).
            splits = [self.current_split(endpoint), self.routed_split(endpoint), self._pending_split(endpoint)]
            if any(s is not None and (s.live_of(name) or s.mirror_of(name)) for s in splits):
                return _error(
                    400,
                    "BadArgument",
                    f"Deployment {name} cannot be deleted because it has traffic; set its traffic to 0 first",
                )
            res.body["properties"]["provisioningState"] = "Deleting"
            op = self._start_operation("delete", self.deployment_id(endpoint, name), self.deployment_deletion)
            self._finish_if_instant(op)
            return self._accepted_delete(op, api_version)
        return _error(405, "MethodNotAllowed", f"{method} is not supported on deployments")

    # -- scaling (emulator/capacity.py) ----------------------------------------------------------

    def instances_serving(self, endpoint: str, deployment: str) -> int:
        """Instances serving users now: while a scale runs, the count before it."""
        key = (endpoint.lower(), deployment.lower())
        if key in self.capacity.serving_during_scale:
            return self.capacity.serving_during_scale[key]
        res = self.deployments.get(key)
        return int(res.body["sku"].get("capacity") or 1) if res is not None else 0

    def _scale(
        self, endpoint: str, name: str, res: Resource, body: dict[str, Any], wanted: Any, api_version: str
    ) -> Response:
        """PATCH of sku.capacity: a long-running operation (202, Location) that takes minutes and can
        fail (emulator/capacity.py). The 202's body is the deployment as it now reads (UNVERIFIED:
        azure-ai-ml reads no body from a 202)."""
        if (fault := self._fault("deployment.scale")) is not None:
            return self._fault_response(fault)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
            return _error(400, "BadArgument", f"sku.capacity must be a whole number of at least 1, got {wanted!r}")
        state = str(res.body["properties"].get("provisioningState"))
        if state in DEPLOYMENT_BUSY or state == self.deployment_creating_state:
            return self._busy(f"deployment {name}", state)
        limit = self.capacity.max_instances
        if limit is not None and wanted > limit:
            return _error(
                400,
                "OutOfQuota",
                f"Not enough quota available for {res.body['properties'].get('instanceType')}: "
                f"{wanted} instances asked, {limit} allowed",
            )
        key = (endpoint.lower(), name.lower())
        before = int(res.body["sku"].get("capacity") or 1)
        outcome = "Failed" if self.capacity.take_failure(name) else "Succeeded"
        if name.lower() in self.capacity.hung_scales:
            outcome = "Hung"
        took = self.capacity.scale_out if wanted > before else self.capacity.scale_in
        op = self._start_operation("scale", self.deployment_id(endpoint, name), took, outcome, pending={"from": before})
        self.capacity.serving_during_scale[key] = self.instances_serving(endpoint, name)
        res.body["sku"] = {**res.body["sku"], **body["sku"]}
        if "tags" in body:
            res.body["tags"] = dict(body["tags"] or {})
        res.body["properties"]["provisioningState"] = "Scaling"
        res.body["systemData"]["lastModifiedAt"] = _iso(self.clock.now())
        urls = self._operation_urls(op, api_version)
        self._finish_if_instant(op)
        return _json(
            202,
            copy.deepcopy(res.body),
            {"Location": urls["Location"], "Azure-AsyncOperation": urls["Azure-AsyncOperation"]},
        )

    def _put_deployment(self, endpoint: str, name: str, res: Resource | None, body: Any, api_version: str) -> Response:
        ep_key = endpoint.lower()
        key = (ep_key, name.lower())
        if (fault := self._fault("deployment.put")) is not None:
            return self._fault_response(fault)
        if not is_valid_resource_name(name):
            return _error(
                400,
                "BadArgument",
                f"Deployment name {name!r} is invalid: 3-32 characters, start with a letter, "
                "letters, digits and hyphens, end with a letter or digit",
            )
        if not isinstance(body, dict) or not isinstance(body.get("properties") or {}, dict):
            return _error(400, "BadRequest", "request body must be a JSON object")
        ep_state = str(self.endpoints[ep_key].body["properties"].get("provisioningState"))
        if res is None and ep_state in ENDPOINT_BUSY:
            # Azure/azure-sdk-for-net#36961: "Cannot create a deployment in endpoint {name} because it
            # is in Updating provisioning state." (status code UNVERIFIED)
            return _error(
                409,
                "Conflict",
                f"Cannot create a deployment in endpoint {endpoint} because it is in {ep_state} provisioning state.",
            )
        if res is not None:
            state = str(res.body["properties"].get("provisioningState"))
            if state in DEPLOYMENT_BUSY or state == self.deployment_creating_state:
                return self._busy(f"deployment {name}", state)
            # Learn, "Network isolation with managed online endpoints", Appendix: the egress flag
            # cannot change once the deployment exists ("Attempting to change the flag while updating
            # the deployment fails with an error"; the code and text here are UNVERIFIED).
            was = str(res.body["properties"].get("egressPublicNetworkAccess") or "Enabled").lower()
            asked = str((body.get("properties") or {}).get("egressPublicNetworkAccess") or "Enabled").lower()
            if was != asked:
                return _error(
                    400,
                    "BadArgument",
                    f"egressPublicNetworkAccess of deployment {name} cannot be changed after it is created",
                )
        if res is None and sum(1 for (e, _) in self.deployments if e == ep_key) >= MAX_DEPLOYMENTS:
            return _error(400, "BadArgument", f"An endpoint holds at most {MAX_DEPLOYMENTS} deployments")
        model_id = str((body.get("properties") or {}).get("model") or "")
        mm = re.search(r"/models/([^/]+)/versions/([^/]+)$", model_id, re.IGNORECASE)
        if not mm or (mm[1].lower(), mm[2]) not in self.models:
            return _error(400, "UserError", f"Model {model_id or '(none)'} was not found in the workspace")
        now = self.clock.now()
        new_body = self._deployment_body(endpoint, name, body, res.created if res else now)
        new_body["properties"]["provisioningState"] = self.deployment_creating_state if res is None else "Updating"
        outcome = self.provisioning_outcomes.get(name.lower(), "Succeeded")
        if name.lower() in self.hung_provisioning:
            outcome = "Hung"
        op = self._start_operation(
            "create" if res is None else "update",
            self.deployment_id(endpoint, name),
            self.deployment_provisioning if res is None else self.deployment_update,
            outcome,
        )
        urls = self._operation_urls(op, api_version)
        new_body["properties"]["properties"]["AzureAsyncOperationUri"] = urls["Azure-AsyncOperation"]
        self.deployments[key] = Resource(new_body, res.created if res else now)
        answer = copy.deepcopy(new_body)
        self._finish_if_instant(op)
        return _json(
            201,  # recorded for a new deployment; an update assumed alike (the endpoint's is 201 too)
            answer,
            {
                "Azure-AsyncOperation": urls["Azure-AsyncOperation"],
                "Location": self._resource_url(self.deployment_id(endpoint, name), api_version),
                "x-ms-async-operation-timeout": ASYNC_OPERATION_TIMEOUT,
            },
        )
