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
    notify:                          # optional: Teams / Slack messages (shared/notifications.py)
      teams: {url_setting: TEAMS_WEBHOOK_URL}   # the app setting holding the URL, never the URL
      on: [ApprovalRequested, Paused, RolledBack, Failed, Succeeded]
```
The first target that matches wins. A model no target matches is ignored, with a log line saying why.
"""

from __future__ import annotations

import difflib
import fnmatch
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.notifications import NotifyConfig
from shared.prices import PriceTableError, prices_beside
from shared.rollout.model import Frozen, WorkspaceRef, is_valid_resource_name
from shared.rollout.policy import RolloutPolicy


class PolicyFileError(ValueError):
    """The policy file cannot be read or is invalid; the message says where, one line per problem:
    `<file>: <path, e.g. targets[1].policy.steps[0].percent>: <problem>`."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


def error_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as people write it: ('targets', 1, 'policy') -> targets[1].policy."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _model_at(root: type[BaseModel], keys: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose fields are found at `keys` below `root` (a policy's dict is a RolloutPolicy)."""
    model: type[BaseModel] | None = root
    for key in keys:
        if model is None:
            return None
        if isinstance(key, int):
            continue
        if (model is PolicyFile and key == "defaults") or (model is Target and key == "policy"):
            model = RolloutPolicy
            continue
        field = model.model_fields.get(key)
        found = _models_in(field.annotation) if field is not None else []
        model = found[0] if found else None
    return model


def describe_error(error: Any, root: type[BaseModel]) -> str:
    """One pydantic error as a plain sentence (no pydantic boilerplate); `root` is what was validated."""
    kind, loc, message = error["type"], tuple(error["loc"]), str(error["msg"])
    if kind == "policy":  # already described (a policy's problem re-located under its target or defaults)
        return message
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field {loc[-1]!r}{hint}" + (f" (known: {', '.join(known)})" if known else "")
    if kind == "missing":
        return "required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    message = message.replace("Tuple should", "List should")  # what YAML calls it
    value = error.get("input")
    if kind not in ("value_error", "assertion_error") and not isinstance(value, dict | list | tuple | BaseModel):
        message += f" (got {value!r})"
    return message


def describe_errors(exc: ValidationError, root: type[BaseModel], *, prefix: str = "") -> list[str]:
    """One line per problem: `<prefix><path>: <problem>`, in the order pydantic found them."""
    lines: list[str] = []
    for error in exc.errors():
        line = f"{prefix}{error_path(error['loc'])}: {describe_error(error, root)}"
        if line not in lines:
            lines.append(line)
    return lines


# The fields RolloutPolicy's whole-policy checks read (steps increase, stage durations).
_WHOLE_POLICY_FIELDS = {"mirror", "steps", "bake"}


def _from_defaults(loc: Sequence[int | str], override: Any, defaults: Any) -> bool:
    """Whether the value at `loc` of a merged policy came from `defaults` (not the target's `policy`)."""
    for key in loc:
        if isinstance(override, dict) and key in override:
            if not isinstance(override[key], dict):  # the target replaced it whole (a list, a value)
                return False
            override = override[key]
            defaults = defaults.get(key) if isinstance(defaults, dict) else None
            continue
        return isinstance(defaults, dict) and key in defaults
    return False


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
    notify: NotifyConfig | None = None  # Teams / Slack messages on lifecycle events (shared/notifications.py)

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
    # Hourly price per instance type; default: prices.csv beside the policy file (shared/prices.py).
    prices: dict[str, Annotated[float, Field(ge=0)]] = {}

    @model_validator(mode="after")
    def _policies_are_valid(self) -> PolicyFile:
        problems: list[InitErrorDetails] = []
        seen: set[tuple[tuple[int | str, ...], str]] = set()
        try:
            RolloutPolicy.model_validate(self.defaults)
            defaults_alone: set[str] = set()
        except ValidationError as exc:  # only to tell whether a whole-policy problem is the defaults' own
            defaults_alone = {describe_error(e, RolloutPolicy) for e in exc.errors() if not e["loc"]}
        for i, target in enumerate(self.targets):
            try:
                self.policy_for(target)
            except ValidationError as exc:
                for error in exc.errors():
                    loc = tuple(error["loc"])
                    problem = describe_error(error, RolloutPolicy)
                    # A problem in `defaults` is reported there once, not against every target.
                    if _from_defaults(loc, target.policy, self.defaults) or (
                        not loc and problem in defaults_alone and not _WHOLE_POLICY_FIELDS & set(target.policy)
                    ):
                        where: tuple[int | str, ...] = ("defaults", *loc)
                    else:
                        where = ("targets", i, "policy", *loc)
                    if (where, problem) in seen:
                        continue
                    seen.add((where, problem))
                    problems.append(
                        InitErrorDetails(
                            type=PydanticCustomError("policy", "{problem}", {"problem": problem}),
                            loc=where,
                            input=error.get("input"),
                        )
                    )
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def policy_for(self, target: Target) -> RolloutPolicy:
        merged = _merge(self.defaults, target.policy)
        cost = merged.get("cost")
        if self.prices and isinstance(cost, dict) and not cost.get("prices"):
            merged["cost"] = {**cost, "prices": dict(self.prices)}  # the snapshot keeps the table
        return RolloutPolicy.model_validate(merged)

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
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyFileError(f"policy file {path} is not valid YAML{at}: {problem}") from None
    if isinstance(raw, dict) and "prices" not in raw:
        try:
            table = prices_beside(path)
        except PriceTableError as exc:
            raise PolicyFileError(f"price table beside policy file {path} is invalid: {exc}") from None
        if table is not None:
            raw = {**raw, "prices": table}
    try:
        return PolicyFile.model_validate(raw or {})
    except ValidationError as exc:
        problems = describe_errors(exc, PolicyFile, prefix=f"{path}: ")
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise PolicyFileError("\n".join([f"policy file {path} is invalid ({count}):", *problems]), problems) from None
