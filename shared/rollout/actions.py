"""What decide() asks the shell to do, and what it tells the world: plain data."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from shared.rollout.analysis import CheckResult
from shared.rollout.model import Frozen, ModelRef, Rollout, TrafficSplit

# Deployment tags in the vocabulary Azure ML rollout pipelines use, so people and scripts can see
# which deployment is which.
ROLE_TAG = "rollout-role"
ROLLOUT_TAG = "safe-rollout-id"
ROLE_CANDIDATE = "RELEASE_CANDIDATE"
ROLE_PROD = "PROD_DEPLOYMENT"
ROLE_OLD_PROD = "OLD_PROD"
ROLE_ROLLED_BACK = "ROLLED_BACK"


class CreateDeployment(Frozen):
    kind: Literal["create"] = "create"
    name: str
    model: ModelRef
    copy_from: str | None  # blue's name; None for an endpoint's first deployment
    tags: dict[str, str] = {}
    instance_count: int | None = None  # None: blue's count (capacity sizing off)


class SetTraffic(Frozen):
    kind: Literal["traffic"] = "traffic"
    split: TrafficSplit


class TagDeployment(Frozen):
    kind: Literal["tag"] = "tag"
    name: str
    tags: dict[str, str]


class DeleteDeployment(Frozen):
    kind: Literal["delete"] = "delete"
    name: str


class ScaleDeployment(Frozen):
    """Change a deployment's instance count (sku.capacity); a later read confirms it."""

    kind: Literal["scale"] = "scale"
    name: str
    instances: int


Action = Annotated[
    CreateDeployment | SetTraffic | TagDeployment | DeleteDeployment | ScaleDeployment, Field(discriminator="kind")
]


class DomainEvent(Frozen):
    """A lifecycle event, published as a CloudEvent of type `SafeRollout.<type>`."""

    type: str
    rollout_id: str
    subject: str  # the endpoint's ARM id
    data: dict[str, Any] = {}


class Decision(Frozen):
    rollout: Rollout
    actions: tuple[Action, ...] = ()
    events: tuple[DomainEvent, ...] = ()
    reason: str
    evidence: tuple[CheckResult, ...] = ()
    actor: str = "safe-rollout"
    record: bool = False  # worth a row in the audit trail

    @property
    def changes_traffic(self) -> bool:
        return any(isinstance(a, SetTraffic) for a in self.actions)
