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

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from emulator.capacity import CapacityState
from emulator.clock import SimClock
from emulator.data_assets import DataAssets
from emulator.eventgrid_topic import EventGridTopic
from emulator.log_analytics import LogAnalytics
from emulator.ml_control import MachineLearningControlPlane
from emulator.monitor_metrics import MonitorMetrics
from emulator.records import Fault, Operation, Published, Resource
from emulator.responses import MAX_DEPLOYMENTS, ML_PROVIDER, REGION, Response, _error, _iso, _json, _parse_time
from emulator.scoring import Scoring
from emulator.traffic import Scenario, TrafficSimulator
from shared.rollout.model import TrafficSplit

__all__ = [
    "MAX_DEPLOYMENTS",
    "ML_PROVIDER",
    "REGION",
    "Emulator",
    "Fault",
    "Operation",
    "Published",
    "Resource",
    "_parse_time",
]


@dataclass
class Emulator(MachineLearningControlPlane, Scoring, MonitorMetrics, LogAnalytics, EventGridTopic):
    clock: SimClock
    seed: int = 0
    subscription: str = "00000000-0000-0000-0000-000000000001"
    resource_group: str = "rg-ml"
    workspace: str = "ws1"
    # How long Azure's long-running operations take, measured on Azure ML's own recorded sessions
    # (tests/recordings/README.md: each operation status body's startTime -> endTime, cross-checked
    # with the Date headers of the PUT and of the first poll that answered Succeeded).
    endpoint_creation: timedelta = timedelta(seconds=90)  # recorded 90.5 s and 90.5 s
    deployment_provisioning: timedelta = timedelta(seconds=570)  # recorded 582.2 s and 551.0 s
    endpoint_update: timedelta = timedelta(seconds=20)  # recorded 20.4 s (PUT traffic {dep: 100})
    # No recording: a PUT of an existing deployment (scale, new settings) assumed as slow as a create.
    deployment_update: timedelta = timedelta(seconds=570)
    deployment_deletion: timedelta = timedelta(minutes=2)  # no recording: UNVERIFIED
    endpoint_deletion: timedelta = timedelta(minutes=20)  # Learn tutorial: "approximately 20 minutes"
    metrics_lag: timedelta = timedelta(minutes=1)
    # How late the traffic log is behind the clock (Log Analytics' ingestion delay: UNVERIFIED, see
    # docs/AZURE-FACTS-USED.md); None: as late as the metrics.
    logs_lag: timedelta | None = None
    # The recorded polls carry no Retry-After (azure-core then waits its own polling interval:
    # 30 s for endpoints, 5 s for deployments in the recordings). An int sends that header.
    poll_retry_after: int | None = None
    # GET during an endpoint update: the recorded PUT response shows the old traffic with
    # provisioningState Updating, and the new split only once the operation succeeded.
    traffic_visible_during_update: bool = False
    # The recorded PUT of a new deployment answers provisioningState "Updating", not "Creating".
    deployment_creating_state: str = "Updating"
    faults: list[Fault] = field(default_factory=list)
    provisioning_outcomes: dict[str, str] = field(default_factory=dict)  # deployment name -> Failed/Canceled
    hung_provisioning: set[str] = field(default_factory=set)  # never finishes
    capacity: CapacityState = field(default_factory=CapacityState)  # scales and instances (emulator/capacity.py)
    data_assets: DataAssets = field(default_factory=DataAssets)  # data versions, datastores (emulator/data_assets.py)
    endpoints: dict[str, Resource] = field(default_factory=dict)  # key: lower endpoint name
    deployments: dict[tuple[str, str], Resource] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, url, json body)
    traffic_history: list[tuple[datetime, str, TrafficSplit]] = field(default_factory=list)
    latency_hook: Callable[[str], None] | None = None  # called with the service name per request
    rate_limits: Any = None  # emulator/rate_limits.RateLimits: Azure's 429s (off unless set)
    public_base: str | None = None  # served over HTTPS: scoring URIs point back at the server
    # KPI query text -> {deployment: rate} (or "__mean__": True with means): emulator/kpi_rows.py
    kpi_truth: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sim = TrafficSimulator(self.clock.now(), seed=self.seed)
        self.sim.instances_of = self.instances_serving  # emulator/capacity.py
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

    def add_endpoint(
        self, name: str, *, rpm: float = 600.0, compute: str | None = None, public_network_access: str = "Enabled"
    ) -> None:
        """An endpoint already Succeeded. `compute` makes it a Kubernetes online endpoint on that
        attached compute (a name in this workspace, or an ARM id): azure-ai-ml reads an endpoint
        whose `properties.compute` is set as a KubernetesOnlineEndpoint. `public_network_access`
        "Disabled" makes it private: its scoring name resolves only inside the VNet (scoring.py)."""
        with self._lock:
            sent: dict[str, Any] = {"properties": {"publicNetworkAccess": public_network_access}}
            if compute:
                compute_id = compute if compute.startswith("/") else f"{self.workspace_id}/computes/{compute}"
                sent["properties"]["compute"] = compute_id
            body = self._endpoint_body(name, sent)
            body["properties"]["provisioningState"] = "Succeeded"
            self.endpoints[name.lower()] = Resource(body, self.clock.now())
            self.sim.set_rpm(name, rpm)

    def add_deployment(
        self,
        endpoint: str,
        name: str,
        model: tuple[str, str],
        *,
        scenario: Scenario | None = None,
        traffic: int | None = None,
        instance_type: str | None = None,
        instance_count: int = 2,
    ) -> None:
        """A deployment already Succeeded (blue), optionally given all live traffic. On a
        Kubernetes endpoint it is a KubernetesOnlineDeployment (REST spec 2025-12-01:
        `endpointComputeType: Kubernetes`, `containerResourceRequirements`, a Kubernetes
        instance type)."""
        with self._lock:
            self.register_model(*model)
            kubernetes = self.is_kubernetes(endpoint)
            extra: dict[str, Any] = {}
            if kubernetes:
                extra["containerResourceRequirements"] = {
                    "containerResourceRequests": {"cpu": "1", "memory": "2Gi"},
                    "containerResourceLimits": {"cpu": "2", "memory": "4Gi"},
                }
            body = self._deployment_body(
                endpoint,
                name,
                {
                    "location": REGION,
                    "sku": {"name": "Default", "capacity": instance_count},
                    "properties": {
                        **extra,
                        "endpointComputeType": "Kubernetes" if kubernetes else "Managed",
                        "model": self.models[(model[0].lower(), model[1])]["id"],
                        "instanceType": instance_type or ("defaultinstancetype" if kubernetes else "Standard_DS3_v2"),
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
            if self.rate_limits is not None and (refused := self.rate_limits.check(method, url, self.clock.now())):
                return refused
            if host == "management.azure.com" or host.endswith(".management.azure.com"):
                return self._arm(method, path, query, payload)
            if host.endswith(".metrics.monitor.azure.com"):
                return self._metrics(method, path, query, payload)
            if host in ("api.loganalytics.io", "api.loganalytics.azure.com"):
                return self._logs(method, path, payload)
            if host.endswith(".inference.ml.azure.com"):
                return self._score(host, path, headers, payload)
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
