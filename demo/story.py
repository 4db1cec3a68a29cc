"""The demo story: five model versions on one endpoint, through the real function handlers.

The app is configured exactly as in production (environment variables and a policy file), pointed
at the emulator's HTTPS server and at Azurite. The handlers are called the way the Functions host
calls them: Event Grid deliveries, timer ticks, HTTP requests. Time is simulated.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from demo.shadow_story import DISAGREEING, collect_recent_inputs, with_model
from demo.shadow_story import prepare as prepare_predictions
from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.host import user_functions
from emulator.queue_host import drain_work_queue, use_memory_work_queue
from emulator.server import serve
from emulator.traffic import Scenario
from shared.rollout.cost import summary as cost_summary
from shared.rollout.model import RolloutPhase

HERE = Path(__file__).resolve().parent
ENDPOINT = "fraud-scorer"
MODEL = "fraud-model"
ALERT_SECRET = "demo-alert-secret-4f9c2a71"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Chapter:
    version: str
    title: str
    scenario: Scenario
    expect: RolloutPhase
    how: str  # what must be true of the outcome, checked by `check`
    alert_in: RolloutPhase | None = None  # send a Fired alert when the rollout reaches this phase


STORY = (
    Chapter("2", "healthy", Scenario(), RolloutPhase.SUCCEEDED, "promoted"),
    Chapter("3", "slower (1.6x latency)", Scenario(latency_ms=130), RolloutPhase.ROLLED_BACK, "mirror"),
    Chapter(
        "4",
        "fine in the shadow, failing under live load",
        Scenario(live_error_rate=0.06),
        RolloutPhase.ROLLED_BACK,
        "first-live-step",
    ),
    Chapter(
        "5",
        "healthy, but an Azure Monitor alert fires",
        Scenario(),
        RolloutPhase.ROLLED_BACK,
        "alert",
        alert_in=RolloutPhase.CANARY,
    ),
    # demo/shadow_story.py: fast and error-free, but a different label on 15% of blue's inputs
    Chapter("6", "fast, error-free, disagrees on 15%", DISAGREEING, RolloutPhase.ROLLED_BACK, "shadow-predictions"),
)


@dataclass
class Outcome:
    chapter: Chapter
    rollout_id: str
    phase: RolloutPhase
    minutes: int
    ok: bool
    why: str
    cost: str = ""  # extra instance-hours and cost of the rollout (shared/rollout/cost.py)


@dataclass
class DemoEnv:
    clock: SimClock
    emu: Emulator
    fns: dict[str, Callable[..., Any]]
    service: Any
    on_tick: Callable[[DemoEnv], None] = lambda env: None
    outcomes: list[Outcome] = field(default_factory=list)
    chapters: int = 0  # how many versions the story tells, for the view's progress
    blob_connection: str | None = None  # Azurite's blob service: blue's data collector output
    queue_delivered: int = 0  # work items the queue worker took from the queue
    queue_errors: list[str] = field(default_factory=list)  # and what failed (redelivered by the host)

    def tick(self) -> None:
        self.clock.advance(timedelta(minutes=1))
        self.fns["reconcile_timer"](TimerRequest(past_due=False))
        report = drain_work_queue(self.fns["judge_queue"])  # the worker judges what the timer enqueued
        self.queue_delivered += report.delivered
        self.queue_errors += report.errors
        self.on_tick(self)

    def deliver(self, version: str) -> None:
        event = func.EventGridEvent(
            id=f"demo-{MODEL}-{version}",
            data={"modelName": MODEL, "modelVersion": version, "modelTags": {}},
            topic=self.emu.workspace_id,
            subject=f"models/{MODEL}:{version}",
            event_type="Microsoft.MachineLearningServices.ModelRegistered",
            event_time=self.clock.now(),
            data_version="2",
        )
        self.fns["model_registered"](event)

    def post_alert(self, green: str) -> dict[str, Any]:
        body = {
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": f"/subscriptions/{self.emu.subscription}/providers/Microsoft.AlertsManagement/"
                    f"alerts/demo-{green}",
                    "alertRule": "green-5xx-and-424",
                    "severity": "Sev1",
                    "signalType": "Metric",
                    "monitorCondition": "Fired",
                    "alertTargetIDs": [self.emu.deployment_id(ENDPOINT, green).lower()],
                    "firedDateTime": self.clock.now().isoformat(),
                },
                "alertContext": {
                    "condition": {
                        "allOf": [
                            {"metricName": "RequestsPerMinute", "threshold": "5", "dimensions": [], "metricValue": 12}
                        ]
                    }
                },
            },
        }
        req = func.HttpRequest(
            "POST",
            "https://demo/api/alerts",
            params={"secret": ALERT_SECRET},
            headers={"content-type": "application/json"},
            body=json.dumps(body).encode(),
        )
        response = self.fns["alert_webhook"](req)
        return dict(json.loads(response.get_body()))

    def current(self, version: str) -> Any:
        found = [s for s in self.service.store.find() if s.rollout.model.version == version]
        return found[-1] if found else None


@contextmanager
def demo_environment(
    azurite_connection: str,
    workdir: Path,
    *,
    seed: int = 7,
    blob_connection: str | None = None,
    queue_connection: str | None = None,
) -> Iterator[DemoEnv]:
    """The emulator's HTTPS server on a free port, and the app configured through its settings.

    With `queue_connection` (Azurite's queue service) the timer's work items go through a real
    Storage queue, built by the app from its own settings (SAFE_ROLLOUT_QUEUE), and each tick the
    host's queue loop (emulator/queue_host.py) hands them to the registered worker; without it an
    in-memory stand-in with the same calls carries them."""
    from emulator.azurite import free_port

    clock = SimClock(START)
    emu = Emulator(clock, seed=seed)
    emu.poll_retry_after = 0  # azure-core then polls at MLClient's polling_interval (0 below)
    emu.deployment_provisioning = timedelta(minutes=6)
    emu.add_endpoint(ENDPOINT, rpm=900)
    emu.add_deployment(ENDPOINT, "fraud-model-v1", (MODEL, "1"), scenario=with_model(Scenario()), traffic=100)
    policy_file = HERE / "policy.yaml"
    if blob_connection is not None:  # blue's collected inputs, and the prediction comparison in the policy
        policy_file = prepare_predictions(emu, blob_connection, workdir, policy_file, ENDPOINT, "fraud-model-v1", START)
        shutil.copy(HERE / "prices.csv", policy_file.parent / "prices.csv")  # the price table beside it
    port = free_port()
    server = serve(emu, port, workdir / "certs")
    base = f"https://127.0.0.1:{port}"
    queue = {"SAFE_ROLLOUT_QUEUE": queue_connection, "SAFE_ROLLOUT_WORK_QUEUE": "demo-work"} if queue_connection else {}
    settings = {
        "SAFE_ROLLOUT_POLICY_FILE": str(policy_file),
        "SAFE_ROLLOUT_STORAGE_CONNECTION": azurite_connection,
        "SAFE_ROLLOUT_TABLE_NAME": "demorollouts",
        "SAFE_ROLLOUT_METRICS_ENDPOINT": base,
        "SAFE_ROLLOUT_LOGS_ENDPOINT": base,
        "SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID": "demo-law",
        "SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT": f"{base}/api/events",
        "SAFE_ROLLOUT_EVENTGRID_TOPIC_KEY": "demo-topic-key",
        "SAFE_ROLLOUT_ALERT_SECRET": ALERT_SECRET,
        "SAFE_ROLLOUT_POLLING_INTERVAL": "0",
        "SAFE_ROLLOUT_CREDENTIAL": "emulator",
        **queue,  # the work queue: Azurite's queue service
        # where the Azure SDKs find the emulator and trust its certificate
        "AZUREML_DEV_URL_MFE": base,
        "REQUESTS_CA_BUNDLE": str(workdir / "certs" / "emulator.crt"),
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        import function_app
        from shared.bootstrap import build_service, set_service
        from shared.queue_wiring import get_work_queue, set_work_queue
        from shared.settings import Settings

        service = build_service(Settings.from_env(), clock=clock)
        set_service(service)
        if queue_connection is None:
            use_memory_work_queue()
        else:
            set_work_queue(None)  # built from the settings above on first use, as in Azure
            get_work_queue().ensure()
        fns = user_functions(function_app.app)
        yield DemoEnv(clock=clock, emu=emu, fns=fns, service=service, blob_connection=blob_connection)
    finally:
        from shared.bootstrap import set_service
        from shared.queue_wiring import set_work_queue

        set_service(None)
        set_work_queue(None)
        server.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check(env: DemoEnv, chapter: Chapter, stored: Any) -> tuple[bool, str]:
    rollout = stored.rollout
    decisions = env.service.store.decisions(rollout.id)
    if rollout.phase != chapter.expect:
        return False, f"expected {chapter.expect}, got {rollout.phase}: {rollout.last_reason}"
    users_on_green = env.emu.sim.user_answers[(ENDPOINT, rollout.green.lower())]
    rollback = next((d for d in decisions if d.to_phase == RolloutPhase.ROLLING_BACK), None)
    if chapter.how == "mirror":
        if users_on_green:
            return False, f"{users_on_green} user requests reached green"
        return True, f"rolled back while mirrored; 0 users saw green ({rollback.reason if rollback else ''})"
    if chapter.how == "first-live-step":
        if rollback is None or not rollback.reason.startswith("canary 10%"):
            return False, f"not rolled back at the first live step: {rollback.reason if rollback else 'never'}"
        return True, f"rolled back at canary 10% after {users_on_green} user requests ({rollback.reason[:90]})"
    if chapter.how == "shadow-predictions":
        if users_on_green or rollback is None or rollback.from_phase != RolloutPhase.MIRRORING:
            return False, f"{users_on_green} user requests reached green; {rollback.reason if rollback else 'never'}"
        if not any(e.check == "predictions" and e.verdict == "Fail" for e in rollback.evidence):
            return False, f"not rolled back for its predictions: {rollback.reason[:120]}"
        return True, f"rolled back in the shadow for its predictions; 0 users saw green ({rollback.reason[:90]})"
    if chapter.how == "alert":
        if rollback is None or not rollback.actor.startswith("alert:"):
            return False, "not rolled back by the alert"
        return True, f"rolled back by {rollback.actor}, ordered in the webhook request"
    return True, f"promoted to 100%; {users_on_green} user requests served by green so far"


def run_story(env: DemoEnv, chapters: tuple[Chapter, ...] = STORY, max_ticks: int = 150) -> list[Outcome]:
    env.chapters = len(chapters)
    for chapter in chapters:
        env.emu.register_model(MODEL, chapter.version)
        env.emu.set_scenario(ENDPOINT, f"{MODEL}-v{chapter.version}", with_model(chapter.scenario))
        if env.blob_connection is not None:  # blue's data collector wrote what it served in the last hour
            collect_recent_inputs(env.emu, env.blob_connection, ENDPOINT, env.clock.now())
        started = env.clock.now()
        env.deliver(chapter.version)
        alerted = False
        for _ in range(max_ticks):
            stored = env.current(chapter.version)
            if stored is None:
                break
            if chapter.alert_in and not alerted and stored.rollout.phase == chapter.alert_in:
                env.post_alert(stored.rollout.green)
                alerted = True
                env.on_tick(env)
                stored = env.current(chapter.version)
            if stored.rollout.phase.terminal:
                break
            env.tick()
        stored = env.current(chapter.version)
        minutes = int((env.clock.now() - started).total_seconds() // 60)
        if stored is None:
            env.outcomes.append(Outcome(chapter, "", RolloutPhase.FAILED, minutes, False, "no rollout started"))
            continue
        ok, why = check(env, chapter, stored)
        spent = cost_summary(stored.rollout, stored.policy, env.clock.now(), stored.rollout.capacity_ratio).describe()
        env.outcomes.append(Outcome(chapter, stored.rollout.id, stored.rollout.phase, minutes, ok, why, spent))
        env.tick()  # let the endpoint settle before the next version arrives
    return env.outcomes
