"""Dry-run a policy against a scenario: what would happen, and when, before trusting the policy.

    python -m demo.dryrun --policy policy.yaml --scenario demo/scenarios/slow-after-30-minutes.yaml --expect RolledBack

The scenario file uses the emulator's traffic scenario fields:
    rpm: 600                      # users' requests per minute on the endpoint
    model: fraud-model            # the model name the policy file's targets are matched against
    blue:  {latency_ms: 80}       # emulator.traffic.Scenario fields for the current deployment
    green: {latency_ms: 80, error_rate: 0.002, changes: [[30, {latency_ms: 200}]]}
    minutes: 240                  # give up after this long (simulated)
    seed: 1                       # the simulator's random seed
    tags: {deploy-to: scorer-a}   # the new model version's tags (for targets with endpoint_tag)
Every key and every behaviour field is checked (unknown keys, wrong types) before anything runs: a
bad policy or scenario file is reported one line per problem, naming the file and the field, with
exit code 2. `--expect PHASE` exits 1 if the rollout ends in another phase.
Runs in-process on a simulated clock: the real decision code, the real SDK adapters against the
emulator, an in-memory store. Nothing touches Azure.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import StaticCredential, emulator_transport
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.monitor import MonitorMetrics
from shared.payloads import ModelRegistration
from shared.rollout.model import ModelRef, RolloutPhase, WorkspaceRef
from shared.service import RolloutService
from shared.store import memory_store
from shared.targets import PolicyFileError, describe_errors, load_policy_file


class ScenarioError(ValueError):
    """The scenario file cannot be read or is invalid: one line per problem, naming file and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def _checked(name: str, hint: Any) -> Any:
    """A Scenario field's type, strict (YAML's "slow" or `true` is not a number) and in range."""
    if hint is bool:
        return Annotated[bool, Field(strict=True)]
    low = {"ge": 0, "le": 1} if name.endswith("_rate") else {"gt": 0} if name == "latency_ms" else {"ge": 0}
    number = Annotated[float, Field(strict=True, **low)]  # type: ignore[call-overload]
    return number | None if hint == (float | None) else number


_HINTS = typing.get_type_hints(Scenario)
# One model per shape, generated from the emulator's Scenario so that a new field is accepted at once.
Change = create_model(  # type: ignore[call-overload]
    "Change",
    __config__=ConfigDict(extra="forbid"),
    **{
        f.name: (_checked(f.name, _HINTS[f.name]), f.default)
        for f in dataclasses.fields(Scenario)
        if f.name != "changes"
    },
)


class Behaviour(Change):  # type: ignore[misc,valid-type]
    """emulator.traffic.Scenario's fields; `changes`: [[minutes after green gets traffic, {fields}], ...]."""

    changes: tuple[tuple[Annotated[float, Field(strict=True, ge=0)], Change], ...] = ()  # type: ignore[valid-type]

    def scenario(self) -> Scenario:
        fields = self.model_dump(exclude_unset=True, exclude={"changes"})
        changes = tuple((after, change.model_dump(exclude_unset=True)) for after, change in self.changes)
        return Scenario(**fields, changes=changes)


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: Annotated[float, Field(strict=True, gt=0)] = 600
    model: Annotated[str, Field(strict=True, min_length=1)] | None = None
    tags: dict[Annotated[str, Field(strict=True)], Annotated[str, Field(strict=True)]] = {}
    blue: Behaviour = Behaviour()
    green: Behaviour = Behaviour()
    minutes: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 240
    seed: Annotated[int, Field(strict=True, ge=0)] = 1


def load_scenario(path: Path) -> ScenarioFile:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the scenario file: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ScenarioError([f"{path}: not valid YAML: {at}{getattr(exc, 'problem', None) or exc}"]) from None
    try:
        return ScenarioFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ScenarioError(describe_errors(exc, ScenarioFile, prefix=f"{path}: ")) from None


@dataclasses.dataclass(frozen=True)
class DryRun:
    lines: list[str]
    phase: RolloutPhase | None  # None: no rollout started


def dry_run(policy_path: Path, scenario_path: Path) -> list[str]:
    return simulate(policy_path, scenario_path).lines


def simulate(policy_path: Path, scenario_path: Path) -> DryRun:
    """Raises PolicyFileError or ScenarioError (one line per problem) before anything runs."""
    spec = load_scenario(scenario_path)
    policies = load_policy_file(policy_path)
    model_name = spec.model or policies.targets[0].model
    clock = SimClock()
    emu = Emulator(clock, seed=spec.seed)
    workspace = WorkspaceRef.parse(emu.workspace_id)
    matched = policies.match(workspace, model_name, dict(spec.tags))
    if isinstance(matched, str):
        return DryRun([f"no rollout: {matched}"], None)
    _, endpoint, _ = matched
    emu.add_endpoint(endpoint, rpm=spec.rpm)
    emu.add_deployment(endpoint, "blue", (model_name, "1"), scenario=spec.blue.scenario(), traffic=100)
    emu.register_model(model_name, "2")
    transport = emulator_transport(emu)
    service = RolloutService(
        store=memory_store(),
        gateway=AzureMLGateway(StaticCredential(), transport=transport, polling_interval=0),
        metrics=MonitorMetrics(
            StaticCredential(),
            metrics_endpoint="https://eastus.metrics.monitor.azure.com",
            logs_workspace_id="dry-run",
            transport=transport,
        ),
        events=NoopPublisher(),
        clock=clock,
        policies=policies,
    )
    start = clock.now()
    outcome = service.start(
        ModelRegistration(event_id="dry-run", workspace=workspace, model=ModelRef(name=model_name, version="2"))
    )
    if outcome.rollout_id is None:
        return DryRun([f"no rollout: {outcome.message}"], None)
    green = service.get(outcome.rollout_id).rollout.green
    emu.set_scenario(endpoint, green, spec.green.scenario())
    for _ in range(spec.minutes):
        if service.get(outcome.rollout_id).rollout.phase.terminal:
            break
        clock.advance(timedelta(minutes=1))
        service.reconcile_all()
    lines = []
    for d in service.store.decisions(outcome.rollout_id):
        minute = int((d.at - start).total_seconds() // 60)
        lines.append(f"+{minute:>4}m  {d.to_phase:<13} {d.traffic.describe():<40} {d.reason}")
    final = service.get(outcome.rollout_id).rollout
    users = emu.sim.user_answers[(endpoint.lower(), green.lower())]
    lines.append(
        f"ended {final.phase} after {int((clock.now() - start).total_seconds() // 60)} simulated minutes; "
        f"{users} user requests were answered by green"
    )
    return DryRun(lines, final.phase)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 as expected, 1 if the rollout did not end in the `--expect`ed phase, 2 for bad input."""
    phases = [str(p) for p in RolloutPhase]
    parser = argparse.ArgumentParser(description="Dry-run a policy file against a traffic scenario")
    parser.add_argument("--policy", type=Path, default=Path("policy.yaml"))
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument(
        "--expect",
        metavar="PHASE",
        choices=[*phases, "none"],
        help=f"exit 1 unless the rollout ends in this phase ({', '.join(phases)}, or none: no rollout starts)",
    )
    args = parser.parse_args(argv)
    # Quiet for the run only: a caller in the same process (the CLI, a test) keeps its logging.
    previous = logging.root.manager.disable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            result = simulate(args.policy, args.scenario)
    except (PolicyFileError, ScenarioError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    finally:
        logging.disable(previous)
    for line in result.lines:
        print(line)
    if args.expect is not None:
        ended = str(result.phase) if result.phase is not None else "none"
        if ended != args.expect:
            print(f"expected the rollout to end {args.expect}, it ended {ended}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
