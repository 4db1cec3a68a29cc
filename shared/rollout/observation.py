"""What the shell saw of the world this tick, handed to decide() as plain data."""

from __future__ import annotations

from shared.rollout.analysis import WindowMetrics
from shared.rollout.kpi import KpiReading
from shared.rollout.model import Frozen, TrafficSplit
from shared.rollout.predictions import PredictionBatch

# Azure ML provisioning states (deployments add Scaling).
PROVISIONING_IN_PROGRESS = frozenset({"Creating", "Updating", "Scaling"})
PROVISIONING_FAILED = frozenset({"Failed", "Canceled"})


class DeploymentState(Frozen):
    name: str
    provisioning_state: str
    model: str | None = None
    tags: dict[str, str] = {}
    compute_type: str = "Managed"  # endpointComputeType: Managed | Kubernetes | AzureMLCompute
    instance_type: str | None = None  # properties.instanceType, e.g. Standard_DS3_v2
    instance_count: int | None = None  # sku.capacity
    # (minInstances, maxInstances) of a TargetUtilization scale setting; None: no autoscale read
    autoscale: tuple[int, int] | None = None


class EndpointState(Frozen):
    name: str
    provisioning_state: str = "Succeeded"
    traffic: TrafficSplit = TrafficSplit()
    location: str = ""  # Azure region (ARM `location`), e.g. "eastus": metrics are regional
    deployments: dict[str, DeploymentState] = {}  # keyed by lower-cased name

    def deployment(self, name: str | None) -> DeploymentState | None:
        return self.deployments.get(name.lower()) if name else None


class SmokeResult(Frozen):
    sent: int
    failed: int
    detail: str = ""


class Observation(Frozen):
    """`endpoint` None with no `endpoint_error` means the endpoint no longer exists."""

    endpoint: EndpointState | None = None
    endpoint_error: str | None = None
    metrics: WindowMetrics | None = None
    metrics_error: str | None = None
    smoke: SmokeResult | None = None
    smoke_error: str | None = None  # why the smoke test could not run this tick (green is not to blame)
    # Inputs scored on blue and green this tick (predictions.py), or why they could not be.
    predictions: PredictionBatch | None = None
    predictions_error: str | None = None
    kpis: tuple[KpiReading, ...] = ()  # the policy's KPI queries over this tick's window
