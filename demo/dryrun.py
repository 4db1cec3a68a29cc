"""Dry-run a policy against a scenario: what would happen, and when, before trusting the policy.

    python -m demo.dryrun --policy policy.yaml --scenario demo/scenarios/slow-tail.yaml

The scenario file uses the emulator's traffic scenario fields:
    rpm: 600                      # users' requests per minute on the endpoint
    model: fraud-model            # the model name the policy file's targets are matched against
    blue:  {latency_ms: 80}       # emulator.traffic.Scenario fields for the current deployment
    green: {latency_ms: 80, error_rate: 0.002, changes: [[30, {latency_ms: 200}]]}
    minutes: 240                  # give up after this long (simulated)
Runs in-process on a simulated clock: the real decision code, the real SDK adapters against the
emulator, an in-memory store. Nothing touches Azure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.traffic import Scenario
from emulator.transport import StaticCredential, emulator_transport
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.monitor import MonitorMetrics
from shared.payloads import ModelRegistration
from shared.rollout.model import ModelRef, WorkspaceRef
from shared.service import RolloutService
from shared.store import memory_store
from shared.targets import load_policy_file


def _scenario(raw: dict[str, Any] | None) -> Scenario:
    raw = dict(raw or {})
    if "changes" in raw:
        raw["changes"] = tuple((float(after), dict(change)) for after, change in raw["changes"])
    return Scenario(**raw)


def dry_run(policy_path: Path, scenario_path: Path) -> list[str]:
    spec = yaml.safe_load(scenario_path.read_text()) or {}
    policies = load_policy_file(policy_path)
    model_name = str(spec.get("model", policies.targets[0].model))
    clock = SimClock()
    emu = Emulator(clock, seed=int(spec.get("seed", 1)))
    workspace = WorkspaceRef.parse(emu.workspace_id)
    matched = policies.match(workspace, model_name, dict(spec.get("tags", {})))
    if isinstance(matched, str):
        return [f"no rollout: {matched}"]
    _, endpoint, _ = matched
    emu.add_endpoint(endpoint, rpm=float(spec.get("rpm", 600)))
    emu.add_deployment(endpoint, "blue", (model_name, "1"), scenario=_scenario(spec.get("blue")), traffic=100)
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
        return [f"no rollout: {outcome.message}"]
    green = service.get(outcome.rollout_id).rollout.green
    emu.set_scenario(endpoint, green, _scenario(spec.get("green")))
    for _ in range(int(spec.get("minutes", 240))):
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
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dry-run a policy file against a traffic scenario")
    parser.add_argument("--policy", type=Path, default=Path("policy.yaml"))
    parser.add_argument("--scenario", type=Path, required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    for line in dry_run(args.policy, args.scenario):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
