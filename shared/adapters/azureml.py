"""EndpointGateway over azure-ai-ml's MLClient (Azure ML managed online endpoints, ARM).

- Reads: the endpoint (live and mirrored split) and its deployments (provisioning state, model, tags).
- Traffic: always GET, mutate, PUT the whole endpoint (PATCH cannot change traffic), then read back.
- Green: a copy of blue's deployment spec with the new model, started and never waited for.
- Tags: an ARM PATCH of the deployment's tags (a PUT would start a new provisioning operation).
- Smoke test: POST to the scoring URI with the `azureml-model-deployment` header, as
  `online_endpoints.invoke(..., deployment_name=...)` does.
SDK errors become ProviderError with a message that names what failed; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.ports import ProviderError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import EndpointRef, TrafficSplit
from shared.rollout.observation import DeploymentState, EndpointState, SmokeResult

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest import HttpRequest as _Req
    from azure.core.rest import HttpResponse as _Resp

ARM_SCOPE = "https://management.azure.com/.default"
ARM_API_VERSION = "2025-12-01"
# Fields of blue's deployment that green inherits: everything that makes it serve the same way.
COPIED_FIELDS = (
    "instance_type",
    "instance_count",
    "environment",
    "code_configuration",
    "environment_variables",
    "request_settings",
    "liveness_probe",
    "readiness_probe",
    "app_insights_enabled",
    "scale_settings",
    "egress_public_network_access",
    "description",
)


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

            policies: list[Any] = [HeadersPolicy(), UserAgentPolicy("safe-rollout"), RetryPolicy()]
            if authenticated:
                policies.append(BearerTokenCredentialPolicy(self._credential, ARM_SCOPE))
            kwargs: dict[str, Any] = {"transport": self._transport} if self._transport is not None else {}
            self._pipelines[authenticated] = PipelineClient(self._arm_endpoint, policies=policies, **kwargs)
        return self._pipelines[authenticated]

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

    def set_traffic(self, endpoint: EndpointRef, split: TrafficSplit) -> TrafficSplit:
        from azure.core.exceptions import AzureError

        ml = self._ml(endpoint)
        try:
            ep = ml.online_endpoints.get(endpoint.name)  # GET, mutate, PUT: never a fresh object
            ep.traffic = dict(split.live)
            ep.mirror_traffic = dict(split.mirror)
            ml.online_endpoints.begin_create_or_update(ep).result()
            after = ml.online_endpoints.get(endpoint.name)
        except AzureError as exc:
            raise ProviderError(f"setting traffic on {endpoint.name} ({split.describe()}): {_describe(exc)}") from exc
        return TrafficSplit(live=dict(after.traffic or {}), mirror=dict(after.mirror_traffic or {}))

    def create_deployment(self, endpoint: EndpointRef, action: CreateDeployment) -> None:
        from azure.ai.ml.entities import ManagedOnlineDeployment
        from azure.core.exceptions import AzureError, ResourceExistsError

        ml = self._ml(endpoint)
        model = f"azureml:{action.model.name}:{action.model.version}"
        try:
            if action.copy_from:
                blue = ml.online_deployments.get(action.copy_from, endpoint.name)
                fields = {f: getattr(blue, f, None) for f in COPIED_FIELDS}
            elif template := self._template_for(endpoint):
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

    def tag_deployment(self, endpoint: EndpointRef, deployment: str, tags: dict[str, str]) -> None:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        ml = self._ml(endpoint)
        # The ARM endpoint MLClient itself uses (sovereign clouds, AZUREML_DEV_URL_MFE), else the default.
        base = str(getattr(ml, "_base_url", "") or self._arm_endpoint).rstrip("/")
        url = f"{base}{endpoint.deployment_arm_id(deployment)}?api-version={ARM_API_VERSION}"
        try:
            current = ml.online_deployments.get(deployment, endpoint.name)
            merged = {**{str(k): str(v) for k, v in (current.tags or {}).items()}, **tags}
            response = self._arm().send_request(HttpRequest("PATCH", url, json={"tags": merged}))
            if response.status_code >= 400:
                raise ProviderError(f"tagging {deployment}: HTTP {response.status_code} {response.text()[:200]}")
        except AzureError as exc:
            raise ProviderError(f"tagging {deployment}: {_describe(exc)}") from exc

    def delete_deployment(self, endpoint: EndpointRef, deployment: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._ml(endpoint).online_deployments.begin_delete(deployment, endpoint.name)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise ProviderError(f"deleting deployment {deployment}: {_describe(exc)}") from exc

    def smoke_test(self, endpoint: EndpointRef, deployment: str, requests: Sequence[dict[str, Any]]) -> SmokeResult:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        ml = self._ml(endpoint)
        try:
            ep = ml.online_endpoints.get(endpoint.name)
            keys = ml.online_endpoints.get_keys(endpoint.name)
        except AzureError as exc:
            raise ProviderError(f"preparing the smoke test of {deployment}: {_describe(exc)}") from exc
        secret = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        failures: list[str] = []
        for body in requests:
            scoring = self._arm(authenticated=False)
            request = HttpRequest(
                "POST",
                str(ep.scoring_uri),
                headers={"azureml-model-deployment": deployment, "Authorization": f"Bearer {secret}"},
                json=body,
            )
            try:
                response = scoring.send_request(request)
            except AzureError as exc:
                failures.append(_describe(exc))
                continue
            if not 200 <= response.status_code < 300:
                failures.append(f"HTTP {response.status_code}")
        detail = ", ".join(sorted(set(failures)))
        return SmokeResult(sent=len(requests), failed=len(failures), detail=detail)
