"""The policy file: which model goes to which endpoint, with which policy.

```yaml
defaults:                 # RolloutPolicy fields applied to every target
  mirror: {percent: 20, min_duration: 10m}
targets:
  - model: fraud-model    # exact name, or a glob such as fraud-*
    endpoint: fraud-scorer
    workspace: /subscriptions/.../workspaces/ws1   # optional: only events from this workspace
    policy: {steps: [{percent: 5}, {percent: 50}]}  # optional overrides, merged into defaults
  - model: "*"
    endpoint_tag: deploy-to          # the model's tag names the endpoint...
    allowed_endpoints: [scorer-a, scorer-b]   # ...but only one of these
```
The first target that matches wins. A model no target matches is ignored, with a log line saying why.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from shared.rollout.model import Frozen, WorkspaceRef, is_valid_resource_name
from shared.rollout.policy import RolloutPolicy


class PolicyFileError(ValueError):
    """The policy file cannot be read or is invalid; the message says where."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class Target(Frozen):
    model: str = Field(min_length=1, max_length=260)
    endpoint: str | None = None
    endpoint_tag: str | None = None
    allowed_endpoints: tuple[str, ...] = ()
    workspace: str | None = None
    policy: dict[str, Any] = {}
    template: dict[str, Any] = {}  # first deployment on an empty endpoint: instance_type, instance_count, ...

    @field_validator("workspace")
    @classmethod
    def _workspace_id(cls, value: str | None) -> str | None:
        if value is not None:
            WorkspaceRef.parse(value)
        return value

    @model_validator(mode="after")
    def _one_way_to_name_the_endpoint(self) -> Target:
        if (self.endpoint is None) == (self.endpoint_tag is None):
            raise ValueError("give either `endpoint` or `endpoint_tag` (with `allowed_endpoints`)")
        if self.endpoint is not None and not is_valid_resource_name(self.endpoint):
            raise ValueError(f"not a valid endpoint name: {self.endpoint!r}")
        if self.endpoint_tag is not None and not self.allowed_endpoints:
            raise ValueError("`endpoint_tag` needs `allowed_endpoints`: a tag may only pick among listed endpoints")
        return self


class PolicyFile(Frozen):
    defaults: dict[str, Any] = {}
    targets: tuple[Target, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _policies_are_valid(self) -> PolicyFile:
        for i, target in enumerate(self.targets):
            try:
                self.policy_for(target)
            except ValidationError as exc:
                raise ValueError(f"targets[{i}] ({target.model}): {exc}") from None
        return self

    def policy_for(self, target: Target) -> RolloutPolicy:
        return RolloutPolicy.model_validate(_merge(self.defaults, target.policy))

    def match(
        self, workspace: WorkspaceRef, model: str, tags: dict[str, str]
    ) -> tuple[Target, str, RolloutPolicy] | str:
        """(target, endpoint name, policy), or the reason nothing matched."""
        for target in self.targets:
            if not fnmatch.fnmatchcase(model, target.model):
                continue
            if target.workspace and WorkspaceRef.parse(target.workspace).arm_id.lower() != workspace.arm_id.lower():
                continue
            if target.endpoint is not None:
                return target, target.endpoint, self.policy_for(target)
            assert target.endpoint_tag is not None
            wanted = tags.get(target.endpoint_tag)
            if wanted is None:
                return f"model {model} has no tag {target.endpoint_tag!r} to name its endpoint"
            if wanted not in target.allowed_endpoints:
                return (
                    f"model {model} names endpoint {wanted!r} in tag {target.endpoint_tag!r}, "
                    f"which the policy file does not allow (allowed: {', '.join(target.allowed_endpoints)})"
                )
            return target, wanted, self.policy_for(target)
        return f"no target in the policy file matches model {model} in workspace {workspace.workspace}"


def load_policy_file(path: Path) -> PolicyFile:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PolicyFileError(f"policy file {path} not found (SAFE_ROLLOUT_POLICY_FILE)") from None
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"policy file {path} is not valid YAML: {exc}") from None
    try:
        return PolicyFile.model_validate(raw or {})
    except ValidationError as exc:
        raise PolicyFileError(f"policy file {path} is invalid: {exc}") from None
