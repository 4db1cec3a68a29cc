"""EndpointGateway over azure-ai-ml's MLClient (Azure ML managed online endpoints, ARM).

- Reads: the endpoint (live and mirrored split) and its deployments (provisioning state, model, tags).
- Traffic: always GET, mutate, PUT the whole endpoint (PATCH cannot change traffic); the update is
  started and never waited for (it takes tens of seconds); the next tick's read confirms it.
- Green: blue's ARM resource with the new model (every serving field kept), started and never
  waited for.
- Tags: an ARM PATCH of the deployment's tags (a PUT would start a new provisioning operation).
- Smoke test: POST to the scoring URI with the `azureml-model-deployment` header, as
  `online_endpoints.invoke(..., deployment_name=...)` does.
SDK errors become ProviderError with a message that names what failed; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.adapters.scoring_reach import (
    REFUSALS,
    SCORING_TIMEOUTS,
    ScoringTarget,
    never_sent,
    refused_alike,
    refused_for_network,
    unreachable,
)
from shared.ports import OperationInProgressError, ProviderError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import EndpointRef, ModelRef, TrafficSplit
from shared.rollout.observation import DeploymentState, EndpointState, SmokeResult

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest import HttpRequest as _Req
    from azure.core.rest import HttpResponse as _Resp

ARM_SCOPE = "https://management.azure.com/.default"
ARM_API_VERSION = "2025-12-01"
_STATES = {s.lower(): s for s in ("Creating", "Updating", "Scaling", "Deleting", "Succeeded", "Failed", "Canceled")}


def _state(value: Any) -> str:
    """azure-ai-ml returns enum members ('DeploymentProvisioningState.SUCCEEDED'); ARM spells 'Succeeded'."""
    raw = str(getattr(value, "value", value) or "Unknown").rsplit(".", 1)[-1]
    return _STATES.get(raw.lower(), raw)


def _compute_type(deployment: Any) -> str:
    """ARM's `endpointComputeType` (Managed, Kubernetes, AzureMLCompute); azure-ai-ml exposes it as
    the entity's `type` ("managed" / "kubernetes")."""
    raw = str(getattr(deployment, "type", "") or "managed").lower()
    return {"managed": "Managed", "kubernetes": "Kubernetes", "azuremlcompute": "AzureMLCompute"}.get(raw, raw)


def _sizes(deployment: Any) -> dict[str, Any]:
    """Instance type and count (ARM `properties.instanceType`, `sku.capacity`), and the autoscale
    limits of a TargetUtilization scale setting (REST spec 2025-12-01, OnlineScaleSettings)."""
    count = getattr(deployment, "instance_count", None)
    kind = getattr(deployment, "instance_type", None)
    scale = getattr(deployment, "scale_settings", None)
    low, high = getattr(scale, "min_instances", None), getattr(scale, "max_instances", None)
    autoscale = (int(low), int(high)) if isinstance(low, int) and isinstance(high, int) and 1 <= low <= high else None
    return {
        "instance_count": int(count) if isinstance(count, int) and count >= 0 else None,
        "instance_type": str(kind) if kind else None,
        "autoscale": autoscale,
    }


# Read-only fields of an online endpoint (REST spec 2025-12-01, OnlineEndpoint / TrackedResource /
# ManagedServiceIdentity): sent back on a PUT they are at best ignored, so they are left out.
_READ_ONLY = ("id", "name", "type", "systemData")
_READ_ONLY_PROPERTIES = ("provisioningState", "scoringUri", "swaggerUri")
_READ_ONLY_IDENTITY = ("principalId", "tenantId")


def _writable_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """ManagedServiceIdentity without what ARM fills in: its principalId and tenantId, and each
    user-assigned identity's principalId and clientId (sent as `{}`, as ARM documents)."""
    out = {k: v for k, v in identity.items() if k not in _READ_ONLY_IDENTITY}
    if isinstance(out.get("userAssignedIdentities"), dict):
        out["userAssignedIdentities"] = {key: {} for key in out["userAssignedIdentities"]}
    return out


def _writable_endpoint(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ValueError("the endpoint has no properties object")
    out = {k: v for k, v in body.items() if k not in _READ_ONLY}
    out["properties"] = {k: v for k, v in body["properties"].items() if k not in _READ_ONLY_PROPERTIES}
    if isinstance(body.get("identity"), dict):
        out["identity"] = _writable_identity(body["identity"])
    return out


def _writable_deployment(body: Any) -> dict[str, Any]:
    """A deployment as Azure returned it, without its read-only fields (REST spec 2025-12-01,
    OnlineDeployment: id, name, type, systemData, properties.provisioningState, the identity's ids)."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ValueError("the deployment has no properties object")
    out = {k: v for k, v in body.items() if k not in _READ_ONLY}
    # Not the property bag: Azure writes its own entries there (AzureAsyncOperationUri, ...); it is
    # the deployment's metadata, not how it serves.
    out["properties"] = {k: v for k, v in body["properties"].items() if k not in ("provisioningState", "properties")}
    if isinstance(body.get("identity"), dict):
        out["identity"] = _writable_identity(body["identity"])
    return out


def _registry_asset(model: ModelRef) -> str | None:
    """A registry model's asset id, which a deployment in any workspace may name as its model
    (Learn, "Share models, components, and environments across workspaces with registries",
    https://learn.microsoft.com/azure/machine-learning/how-to-share-models-pipelines-across-workspaces-with-registries:
    `model: azureml://registries/<registry-name>/models/<model-name>/versions/<version>`);
    None for a workspace model."""
    if model.registry is None:
        return None
    return f"azureml://registries/{model.registry}/models/{model.name}/versions/{model.version}"


def _http_error(response: Any) -> str:
    """`HTTP 409 Conflict: message`, from ARM's error body {"error": {"code", "message"}}."""
    try:
        error = response.json().get("error") or {}
        detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        detail = ""
    return f"HTTP {response.status_code}" + (f" {detail[:300]}" if detail else f" {response.text()[:200]}")


def _scoring_message(response: Any) -> str:
    """The `message` of a scoring answer's JSON body, or the start of its text."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:200]
    except ValueError:
        pass
    return str(response.text() or "")[:200]


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or exc).strip().splitlines()
    text = message[0][:300] if message else exc.__class__.__name__
    return f"HTTP {status}: {text}" if status else f"{exc.__class__.__name__}: {text}"


class AzureMLGateway:
    def __init__(
        self,
        credential: TokenCredential,
        *,
        transport: HttpTransport[_Req, _Resp] | None = None,
        polling_interval: float = 5.0,
        first_deployment_template: Mapping[str, Any] | Callable[[str], Mapping[str, Any] | None] | None = None,
        arm_endpoint: str = "https://management.azure.com",
    ) -> None:
        self._credential = credential
        self._transport = transport
        self._polling_interval = polling_interval
        # For an endpoint with no deployment to copy: a spec, or a function of the endpoint's name
        # that reads it (from the policy file) only when it is needed.
        self._template = first_deployment_template
        self._arm_endpoint = arm_endpoint.rstrip("/")
        self._clients: dict[tuple[str, str, str], MLClient] = {}
        self._pipelines: dict[bool, Any] = {}

    def _template_for(self, endpoint: EndpointRef) -> Mapping[str, Any] | None:
        if not callable(self._template):
            return self._template
        try:
            return self._template(endpoint.name)
        except Exception as exc:  # the policy file cannot be read: like Azure being down, retry later
            raise ProviderError(f"reading the deployment template for {endpoint.name}: {exc}") from exc

    def _ml(self, endpoint: EndpointRef) -> MLClient:
        ws = endpoint.workspace
        key = (ws.subscription_id.lower(), ws.resource_group.lower(), ws.workspace.lower())
        if key not in self._clients:
            from azure.ai.ml import MLClient

            kwargs: dict[str, Any] = {"polling_interval": self._polling_interval}
            if self._transport is not None:
                kwargs["transport"] = self._transport
            self._clients[key] = MLClient(
                self._credential, ws.subscription_id, ws.resource_group, ws.workspace, **kwargs
            )
        return self._clients[key]

    def _arm(self, *, authenticated: bool = True) -> Any:
        """A plain azure-core pipeline for what MLClient does not offer: the ARM PATCH of tags
        (authenticated with the ARM token) and scoring requests (which carry the endpoint key and
        must never carry the ARM token)."""
        if authenticated not in self._pipelines:
            from azure.core import PipelineClient
            from azure.core.pipeline.policies import (
                BearerTokenCredentialPolicy,
                HeadersPolicy,
                RetryPolicy,
                UserAgentPolicy,
            )

            # Bounded: a webhook request or a tick never waits minutes on retries (azure-core's default
            # allows 10 retries with no overall limit); the next tick retries anyway.
            retry = RetryPolicy(retry_total=3, timeout=60)
            policies: list[Any] = [HeadersPolicy(), UserAgentPolicy("safe-rollout"), retry]
            if authenticated:
                policies.append(BearerTokenCredentialPolicy(self._credential, ARM_SCOPE))
            kwargs: dict[str, Any] = {"transport": self._transport} if self._transport is not None else {}
            self._pipelines[authenticated] = PipelineClient(self._arm_endpoint, policies=policies, **kwargs)
        return self._pipelines[authenticated]

    def _arm_base(self, endpoint: EndpointRef) -> str:
        """The ARM endpoint MLClient itself uses (sovereign clouds, AZUREML_DEV_URL_MFE), else the default."""
        return str(getattr(self._ml(endpoint), "_base_url", "") or self._arm_endpoint).rstrip("/")

    # -- reads ----------------------------------------------------------------------------------

    def read_endpoint(self, endpoint: EndpointRef) -> EndpointState | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        ml = self._ml(endpoint)
        try:
            ep = ml.online_endpoints.get(endpoint.name)
            deployments = list(ml.online_deployments.list(endpoint.name))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise ProviderError(f"reading endpoint {endpoint.name}: {_describe(exc)}") from exc
        try:
            traffic = TrafficSplit(live=dict(ep.traffic or {}), mirror=dict(ep.mirror_traffic or {}))
        except ValueError as exc:
            raise ProviderError(f"endpoint {endpoint.name} reports a split Azure should refuse: {exc}") from exc
        states = {
            d.name.lower(): DeploymentState(
                name=d.name,
                provisioning_state=_state(d.provisioning_state),
                model=str(d.model) if d.model else None,
                tags={str(k): str(v) for k, v in (d.tags or {}).items()},
                compute_type=_compute_type(d),
                **_sizes(d),
            )
            for d in deployments
        }
        return EndpointState(
            name=ep.name,
            provisioning_state=_state(ep.provisioning_state),
            traffic=traffic,
            deployments=states,
            location=str(getattr(ep, "location", "") or "").replace(" ", "").lower(),
        )

    # -- writes ---------------------------------------------------------------------------------

    def set_traffic(self, endpoint: EndpointRef, split: TrafficSplit) -> None:
        """Start the traffic update and return: ARM answers the PUT at once (201/200 with an
        `Azure-AsyncOperation` header) and applies it in the background, which takes tens of seconds.
        The next tick's read confirms it. Plain ARM REST ("Online Endpoints - Create Or Update",
        api-version 2025-12-01) rather than azure-ai-ml, whose begin_create_or_update starts a
        polling thread we would leave behind."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        url = f"{self._arm_base(endpoint)}{endpoint.arm_id}?api-version={ARM_API_VERSION}"
        what = f"setting traffic on {endpoint.name} ({split.describe()})"
        try:
            current = self._arm().send_request(HttpRequest("GET", url))
            if current.status_code >= 400:
                raise ProviderError(f"{what}: reading the endpoint: {_http_error(current)}")
            body = _writable_endpoint(current.json())
            body["properties"]["traffic"] = dict(split.live)  # GET, mutate, PUT: never a fresh object
            body["properties"]["mirrorTraffic"] = dict(split.mirror)
            response = self._arm().send_request(HttpRequest("PUT", url, json=body))
        except AzureError as exc:
            raise ProviderError(f"{what}: {_describe(exc)}") from exc
        except ValueError as exc:  # a body that is not the JSON object ARM documents
            raise ProviderError(f"{what}: unexpected answer from Azure: {exc}") from exc
        if response.status_code == 409:
            raise OperationInProgressError(f"{what}: {_http_error(response)}")
        if response.status_code >= 400:
            raise ProviderError(f"{what}: {_http_error(response)}")

    def create_deployment(self, endpoint: EndpointRef, action: CreateDeployment) -> None:
        from azure.ai.ml.entities import ManagedOnlineDeployment
        from azure.core.exceptions import AzureError, ResourceExistsError

        if action.copy_from:
            self._copy_deployment(endpoint, action, action.copy_from)
            return
        ml = self._ml(endpoint)
        model = _registry_asset(action.model) or f"azureml:{action.model.name}:{action.model.version}"
        try:
            if template := self._template_for(endpoint):
                fields = dict(template)
            else:
                raise ProviderError(
                    f"endpoint {endpoint.name} has no deployment to copy; give the target a "
                    "`template` (instance_type, instance_count, environment) in the policy file"
                )
            green = ManagedOnlineDeployment(
                name=action.name,
                endpoint_name=endpoint.name,
                model=model,
                tags=dict(action.tags),
                **{k: v for k, v in fields.items() if v is not None},
            )
            # Start the operation and return: provisioning takes many minutes; the timer polls state.
            ml.online_deployments.begin_create_or_update(green, skip_script_validation=True)
        except ResourceExistsError:
            return  # an earlier tick started it
        except AzureError as exc:
            if getattr(exc, "status_code", None) == 409:
                return  # an operation on it is already in progress
            raise ProviderError(f"creating deployment {action.name}: {_describe(exc)}") from exc

    def _copy_deployment(self, endpoint: EndpointRef, action: CreateDeployment, blue: str) -> None:
        """Green is blue's ARM resource as Azure returns it, with the new model and our tags: every
        serving field the REST spec has (instance type and count, probes including the startup probe,
        request settings including maxQueueWait, scale settings, data collector, model mount path,
        egress, environment variables, Kubernetes resource requirements) is kept, including fields
        azure-ai-ml's entities do not carry. PUT starts provisioning; the timer polls its state."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        base = self._arm_base(endpoint)
        what = f"creating deployment {action.name} as a copy of {blue}"
        try:
            read = self._arm().send_request(
                HttpRequest("GET", f"{base}{endpoint.deployment_arm_id(blue)}?api-version={ARM_API_VERSION}")
            )
            if read.status_code >= 400:
                raise ProviderError(f"{what}: reading {blue}: {_http_error(read)}")
            body = _writable_deployment(read.json())
            body["properties"]["model"] = (
                _registry_asset(action.model)
                or f"{endpoint.workspace.arm_id}/models/{action.model.name}/versions/{action.model.version}"
            )
            body["tags"] = dict(action.tags)
            if action.instance_count is not None:  # sized to its first stage (capacity.py)
                body["sku"] = {**(body.get("sku") or {}), "capacity": action.instance_count}
            url = f"{base}{endpoint.deployment_arm_id(action.name)}?api-version={ARM_API_VERSION}"
            response = self._arm().send_request(HttpRequest("PUT", url, json=body))
        except AzureError as exc:
            raise ProviderError(f"{what}: {_describe(exc)}") from exc
        except ValueError as exc:
            raise ProviderError(f"{what}: unexpected answer from Azure: {exc}") from exc
        if response.status_code == 409:
            # An earlier tick's create still runs, or the endpoint is busy with an update ("Cannot
            # create a deployment in endpoint ... because it is in Updating provisioning state"):
            # the next tick looks again (and orders the create again if green is still missing).
            raise OperationInProgressError(f"{what}: {_http_error(response)}")
        if response.status_code >= 400:
            raise ProviderError(f"{what}: {_http_error(response)}")

    def tag_deployment(self, endpoint: EndpointRef, deployment: str, tags: dict[str, str]) -> None:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        ml = self._ml(endpoint)
        url = f"{self._arm_base(endpoint)}{endpoint.deployment_arm_id(deployment)}?api-version={ARM_API_VERSION}"
        try:
            current = ml.online_deployments.get(deployment, endpoint.name)
            merged = {**{str(k): str(v) for k, v in (current.tags or {}).items()}, **tags}
            response = self._arm().send_request(HttpRequest("PATCH", url, json={"tags": merged}))
            if response.status_code >= 400:
                raise ProviderError(f"tagging {deployment}: HTTP {response.status_code} {response.text()[:200]}")
        except AzureError as exc:
            raise ProviderError(f"tagging {deployment}: {_describe(exc)}") from exc

    def scale_deployment(self, endpoint: EndpointRef, deployment: str, instances: int) -> None:
        """Start the scale and return: ARM's "Online Deployments - Update" (PATCH of `sku.capacity`,
        api-version 2025-12-01) is a long-running operation; the next ticks' reads confirm it (count
        shown, provisioning Succeeded). Plain ARM REST, as for traffic: no polling thread left behind."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        url = f"{self._arm_base(endpoint)}{endpoint.deployment_arm_id(deployment)}?api-version={ARM_API_VERSION}"
        what = f"scaling deployment {deployment} to {instances} instances"
        try:
            response = self._arm().send_request(HttpRequest("PATCH", url, json={"sku": {"capacity": instances}}))
        except AzureError as exc:
            raise ProviderError(f"{what}: {_describe(exc)}") from exc
        if response.status_code == 409:
            raise OperationInProgressError(f"{what}: {_http_error(response)}")
        if response.status_code >= 400:
            raise ProviderError(f"{what}: {_http_error(response)}")

    def delete_deployment(self, endpoint: EndpointRef, deployment: str) -> None:
        """Start the delete (ARM answers 202 and deletes in the background) and return. Plain ARM
        REST: azure-ai-ml's begin_delete would leave a polling thread behind, printing progress dots
        to stdout for minutes."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        url = f"{self._arm_base(endpoint)}{endpoint.deployment_arm_id(deployment)}?api-version={ARM_API_VERSION}"
        what = f"deleting deployment {deployment}"
        try:
            response = self._arm().send_request(HttpRequest("DELETE", url))
        except AzureError as exc:
            raise ProviderError(f"{what}: {_describe(exc)}") from exc
        if response.status_code in (200, 202, 204, 404):
            return  # started, done, or already gone
        if response.status_code == 409:
            raise OperationInProgressError(f"{what}: {_http_error(response)}")
        raise ProviderError(f"{what}: {_http_error(response)}")

    def scoring_target(self, endpoint: EndpointRef) -> ScoringTarget:
        """The scoring URI as Azure returns it, the endpoint's key or AML token (get_keys answers
        whichever its auth mode gives), an unauthenticated pipeline and the endpoint's public network
        access, for requests addressed to one deployment (the smoke test, shared/adapters/paired_scoring.py)."""
        from azure.core.exceptions import AzureError

        ml = self._ml(endpoint)
        try:
            ep = ml.online_endpoints.get(endpoint.name)
            keys = ml.online_endpoints.get_keys(endpoint.name)
        except AzureError as exc:
            raise ProviderError(f"reading the scoring URI and key of {endpoint.name}: {_describe(exc)}") from exc
        secret = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        if not secret or not ep.scoring_uri:
            raise ProviderError(f"endpoint {endpoint.name} has no scoring URI or key yet")
        access = getattr(ep, "public_network_access", None) or "Enabled"  # an enum in azure-ai-ml
        access = str(getattr(access, "value", access))
        return ScoringTarget(str(ep.scoring_uri), str(secret), self._arm(authenticated=False), access)

    def smoke_test(self, endpoint: EndpointRef, deployment: str, requests: Sequence[dict[str, Any]]) -> SmokeResult:
        """Send the policy's sample requests to green. ProviderError (the test did not run: the stage
        holds) if the scoring URI or key cannot be read, or if the app cannot reach the endpoint at
        all (shared/adapters/scoring_reach.py): green cannot fail a test that never reached it."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        target = self.scoring_target(endpoint)
        what = f"the smoke test of {deployment}"
        failures: list[str] = []
        for body in requests:
            request = HttpRequest(
                "POST",
                target.uri,
                headers={"azureml-model-deployment": deployment, "Authorization": f"Bearer {target.secret}"},
                json=body,
            )
            try:
                response = target.pipeline.send_request(request, **SCORING_TIMEOUTS)
            except AzureError as exc:
                if never_sent(exc):
                    raise unreachable(target, what, _describe(exc)) from exc
                failures.append(_describe(exc))
                continue
            if refused_for_network(response.status_code, target):
                raise unreachable(target, what, f"HTTP 403 {_scoring_message(response)}")
            if response.status_code in REFUSALS and target.public_access.lower() == "disabled":
                # Is it green, or the way in? The same request without the header goes to blue (all
                # live traffic while green is tested): if blue is refused alike, it is the way in.
                probe = HttpRequest("POST", target.uri, headers={"Authorization": f"Bearer {target.secret}"}, json=body)
                try:
                    blue_status = target.pipeline.send_request(probe, **SCORING_TIMEOUTS).status_code
                except AzureError:
                    blue_status = 0
                if refused_alike(blue_status, response.status_code, target):
                    answer = f"HTTP {response.status_code} {_scoring_message(response)}"
                    raise unreachable(target, what, f"green and blue both answered {answer}")
            if not 200 <= response.status_code < 300:
                failures.append(f"HTTP {response.status_code}")
        detail = ", ".join(sorted(set(failures)))
        return SmokeResult(sent=len(requests), failed=len(failures), detail=detail)
