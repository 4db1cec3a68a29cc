"""Azure ML control plane (management.azure.com): workspace, online endpoints and deployments,
model versions, endpoint keys, and the long-running operations their writes start, on the
simulated clock. A mixin of emulator.azure.Emulator, which holds the state."""

from __future__ import annotations

import copy
import re
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from emulator.records import Operation, Resource
from emulator.responses import MAX_DEPLOYMENTS, ML_PROVIDER, REGION, Response, _error, _iso, _json
from shared.rollout.model import InvalidSplitError, TrafficSplit, is_valid_resource_name


class MachineLearningControlPlane:
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
