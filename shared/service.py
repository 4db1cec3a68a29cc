"""The imperative shell around decide(): load (with ETag), observe, decide, save, act, publish.

Order of a change: the decision is saved first (ETag-guarded, with its audit row), then carried out.
Whoever wins the save is the one who acts, so a timer tick and an alert cannot both act on stale
state. Every action is idempotent and traffic is level-triggered (see shared/rollout/machine.py), so
a tick that dies after saving is finished by the next one. The endpoint itself has no ETag: after a
traffic change we re-read the rollout and, if someone saved a newer decision meanwhile, re-apply
its split, so the last word on traffic is always the latest decision's (rollback wins).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.payloads import AlertNotice, ModelRegistration
from shared.ports import (
    AlreadyExistsError,
    Clock,
    ConflictError,
    DecisionRecord,
    EndpointBusyError,
    EndpointGateway,
    EventPublisher,
    MetricsQuery,
    MetricsSource,
    OperationInProgressError,
    ProviderError,
    RolloutStore,
    StoredRollout,
    ThrottledError,
)
from shared.report import ReportItem, render_report
from shared.rollout import machine
from shared.rollout.actions import (
    Action,
    CreateDeployment,
    Decision,
    DeleteDeployment,
    ScaleDeployment,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.analysis import WindowMetrics
from shared.rollout.machine import CommandKind, CommandRejectedError, StartRejectedError
from shared.rollout.model import BUSY_REFUSAL, EndpointRef, ModelRef, Rollout, RolloutPhase, WorkspaceRef
from shared.rollout.observation import PROVISIONING_IN_PROGRESS, EndpointState, Observation
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.rollout.versions import model_of, not_newer_reason
from shared.targets import PolicyFile

log = logging.getLogger("safe_rollout")
ACTION_ORDER: dict[type[Any], int] = {
    SetTraffic: 0,
    TagDeployment: 1,
    CreateDeployment: 2,
    ScaleDeployment: 2,
    DeleteDeployment: 3,
}
SAVE_RETRIES = 5  # a person's command: then 409, and they can try again
# A person's or an alert's order that meets an endpoint still applying an earlier update (about 20 s
# in the recorded sessions) waits for it within the request, polling every URGENT_POLL_SECONDS.
URGENT_WAIT_SECONDS = 30.0
URGENT_POLL_SECONDS = 5.0
ROLLBACK_RETRIES = 25  # an alert's rollback: each retry reloads; then 503 so the action group retries
START_RETRIES = 5  # a registration racing another: look again; then fail so Event Grid redelivers
# How long Azure's 429s on a rollout's reads are waited out (no decision, no error counted) before
# the rollout is decided on as unreadable: then its deadline and error limits apply as usual.
THROTTLE_PATIENCE = timedelta(minutes=10)
MAX_NOTES = 20  # audit notes that change nothing (resolved alerts) kept per rollout; the rest are logged


class NotFoundError(LookupError):
    pass


class EndpointNotFoundError(ProviderError):
    """The endpoint a rollout would start on was not found in Azure (an event is delivered again:
    ARM reads can miss a resource for a while; a person is told so)."""


class StartRefusedError(ValueError):
    """A rollout started by hand that the policy file does not allow (no target sends it there)."""


class WorkspaceNeededError(StartRefusedError):
    """A rollout started by hand without a workspace, where the policy file does not name just one."""


class _LookAgainError(Exception):
    """The endpoint's rollouts changed while starting one: read everything again."""


@dataclass(frozen=True)
class StartOutcome:
    status: str  # started | duplicate | ignored | rejected | superseded
    message: str
    rollout_id: str | None = None


@dataclass
class TickReport:
    due: int = 0
    reconciled: int = 0
    conflicts: int = 0
    failed: int = 0
    deferred: int = 0  # left for the next tick: the time budget ran out
    metrics_calls: int = 0
    throttled: int = 0  # left for the next tick: Azure answered 429 (never counted as an error)
    skipped: int = 0  # in a work item but no longer due (finished, or gone)
    errors: list[str] = field(default_factory=list)


def _record(before: Rollout, decision: Decision, now: datetime) -> DecisionRecord:
    return DecisionRecord(
        seq=decision.rollout.decisions,
        at=now,
        actor=decision.actor,
        from_phase=before.phase,
        to_phase=decision.rollout.phase,
        reason=decision.reason[:4000],
        traffic=decision.rollout.desired,
        actions=tuple(_describe(a) for a in decision.actions),
        events=tuple(e.type for e in decision.events),
        evidence=decision.evidence,
    )


def _describe(action: Action) -> str:
    if isinstance(action, SetTraffic):
        return f"set traffic ({action.split.describe()})"
    if isinstance(action, CreateDeployment):
        return f"create {action.name} ({action.model.label})"
    if isinstance(action, TagDeployment):
        return f"tag {action.name} " + ", ".join(f"{k}={v}" for k, v in action.tags.items())
    if isinstance(action, ScaleDeployment):
        return f"scale {action.name} to {action.instances} instances"
    return f"delete {action.name}"


class RolloutService:
    def __init__(
        self,
        *,
        store: RolloutStore,
        gateway: EndpointGateway,
        metrics: MetricsSource,
        events: EventPublisher,
        clock: Clock,
        policies: PolicyFile | Callable[[], PolicyFile],
        max_concurrency: int = 8,
        tick_budget_seconds: float = 240.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        model_checks: Any = None,
    ) -> None:
        self.store = store
        # Scoring inputs on blue and green, and the KPI queries (shared/model_checks.py); None: off.
        self.model_checks = model_checks
        self.gateway = gateway
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self._policies = policies
        self.max_concurrency = max_concurrency
        self.tick_budget_seconds = tick_budget_seconds
        self._monotonic = monotonic
        # Waits within a request (a person's or an alert's order meeting a busy endpoint). A
        # simulated clock (tests, the demo) sleeps on its own time.
        self._sleep: Callable[[float], None] = sleep or getattr(clock, "sleep", None) or time.sleep
        self._lock = threading.Lock()

    @property
    def policies(self) -> PolicyFile:
        return self._policies() if callable(self._policies) else self._policies

    # -- carrying out a decision ------------------------------------------------------------------

    def _commit(
        self, stored: StoredRollout, decision: Decision, *, markers: Sequence[str] = (), urgent: bool = False
    ) -> StoredRollout:
        """Save (ETag), then act, then publish. ConflictError if someone saved first: nothing done.
        `urgent` (a person's or an alert's order): a traffic order Azure refuses because it is still
        applying an earlier update is ordered again within the request, once the endpoint is idle."""
        now = self.clock.now()
        record = _record(stored.rollout, decision, now) if decision.record else None
        if not decision.record and not decision.actions and decision.rollout == stored.rollout and not markers:
            return stored
        saved = self.store.save(stored, decision.rollout, record, markers=markers)
        if record is not None:
            log.info(
                "rollout %s [%s] %s -> %s: %s",
                stored.rollout.id,
                stored.rollout.endpoint.name,
                stored.rollout.phase,
                decision.rollout.phase,
                decision.reason,
            )
        refused = self._act(saved.rollout, decision.actions)
        if urgent and refused.startswith(BUSY_REFUSAL) and self._order_when_idle(saved.rollout):
            refused = ""
        if decision.changes_traffic:
            self._reassert(saved)
        if refused:
            saved = self._note_refusal(saved, refused)
        self.events.publish(decision.events)
        return saved

    def _note_refusal(self, saved: StoredRollout, refused: str) -> StoredRollout:
        """Keep what Azure said when it refused our order, so the decision that gives up on it
        (after the error limit) can say why. No audit row: the next tick's decision has one."""
        if saved.rollout.last_action_error == refused:
            return saved
        try:
            return self.store.save(saved, saved.rollout.model_copy(update={"last_action_error": refused}), None)
        except (ConflictError, ProviderError) as exc:
            # A newer decision was saved, or storage blinked: the next tick decides afresh (and the
            # refusal is in the log line above; only its copy in the rollout's reason is lost).
            log.info("rollout %s: Azure's refusal not kept with the rollout: %s", saved.rollout.id, exc)
            return saved

    def _act(self, rollout: Rollout, actions: Sequence[Action]) -> str:
        """Traffic first, teardown last. A failed action stops the rest; the next tick retries.
        A traffic change is only started here (Azure applies it over tens of seconds); the next
        tick's read confirms it. Returns what Azure said if it refused our traffic order."""
        for action in sorted(actions, key=lambda a: ACTION_ORDER[type(a)]):
            try:
                if isinstance(action, SetTraffic):
                    self.gateway.set_traffic(rollout.endpoint, action.split)
                elif isinstance(action, CreateDeployment):
                    self.gateway.create_deployment(rollout.endpoint, action)
                elif isinstance(action, TagDeployment):
                    self.gateway.tag_deployment(rollout.endpoint, action.name, action.tags)
                elif isinstance(action, ScaleDeployment):
                    self.gateway.scale_deployment(rollout.endpoint, action.name, action.instances)
                else:
                    self.gateway.delete_deployment(rollout.endpoint, action.name)
            except OperationInProgressError as exc:
                log.info("rollout %s: %s waits for Azure's operation in flight: %s", rollout.id, _describe(action), exc)
                if isinstance(action, ScaleDeployment):  # capacity.py says why the scale is not under way
                    return f"{_describe(action)}: {exc}"[:500]
                return f"{BUSY_REFUSAL}{exc}"[:500] if isinstance(action, SetTraffic) else ""
            except ProviderError as exc:
                log.warning("rollout %s: %s failed, will retry next tick: %s", rollout.id, _describe(action), exc)
                return f"{_describe(action)}: {exc}"[:500] if isinstance(action, SetTraffic | ScaleDeployment) else ""
        return ""

    def _order_when_idle(self, rollout: Rollout) -> bool:
        """Azure refused our order (409) because an earlier update is still being applied (one takes
        about 20 s). A rollback must not wait for the next tick: wait here for the endpoint to be
        idle, within URGENT_WAIT_SECONDS, and order again. True once the order was accepted."""
        waited = 0.0
        while waited < URGENT_WAIT_SECONDS:
            self._sleep(URGENT_POLL_SECONDS)
            waited += URGENT_POLL_SECONDS
            try:
                endpoint = self.gateway.read_endpoint(rollout.endpoint)
            except ProviderError:
                continue
            if endpoint is None:
                return False
            if endpoint.provisioning_state in PROVISIONING_IN_PROGRESS:
                continue
            latest = self.store.get(rollout.id)
            if latest is None or latest.rollout.desired != rollout.desired:
                return False  # decided anew meanwhile: that decision orders its own split
            try:
                self.gateway.set_traffic(rollout.endpoint, rollout.desired)
            except OperationInProgressError:
                continue
            except ProviderError as exc:
                log.warning("rollout %s: ordering %s again failed: %s", rollout.id, rollout.desired.describe(), exc)
                return False
            log.info(
                "rollout %s: ordered %s after Azure's earlier update (%.0f s)",
                rollout.id,
                rollout.desired.describe(),
                waited,
            )
            return True
        log.warning(
            "rollout %s: the endpoint is still busy after %.0f s; the next tick orders %s",
            rollout.id,
            waited,
            rollout.desired.describe(),
        )
        return False

    def _reassert(self, saved: StoredRollout) -> None:
        """The endpoint has no ETag: if a newer decision was saved while we set traffic, ours may
        have landed after theirs. Re-apply the newest decision's split."""
        latest = self.store.get(saved.rollout.id)
        if latest is None or latest.etag == saved.etag:
            return
        if latest.rollout.desired != saved.rollout.desired:
            log.warning(
                "rollout %s: a newer decision (%s) was saved while we set traffic; re-applying its split",
                saved.rollout.id,
                latest.rollout.phase,
            )
            try:
                self.gateway.set_traffic(latest.rollout.endpoint, latest.rollout.desired)
            except OperationInProgressError:
                self._order_when_idle(latest.rollout)  # ours is being applied: theirs goes next
            except ProviderError as exc:
                log.warning("rollout %s: re-applying traffic failed, next tick retries: %s", saved.rollout.id, exc)

    # -- observing --------------------------------------------------------------------------------

    def _observe_endpoint(self, stored: StoredRollout) -> Observation:
        rollout, policy = stored.rollout, stored.policy
        try:
            endpoint = self.gateway.read_endpoint(rollout.endpoint)
        except ThrottledError as exc:
            # Not an answer about the endpoint: the rollout is left for a later tick, and that is
            # not an error. But never for ever: past THROTTLE_PATIENCE without a decision, or past
            # the rollout's deadline, it is decided on as an unreadable endpoint, so the deadline,
            # the stage's timeout and the limit on errors in a row still apply.
            waited = self.clock.now() - rollout.updated_at
            if waited <= THROTTLE_PATIENCE and self.clock.now() - rollout.created_at <= policy.deadline:
                raise
            for_ = format_duration(timedelta(seconds=int(waited.total_seconds())))
            return Observation(endpoint_error=f"Azure has refused reads with 429 for {for_}: {exc}")
        except ProviderError as exc:
            return Observation(endpoint_error=str(exc))
        observation = Observation(endpoint=endpoint)
        if endpoint is not None and self._wants_smoke_test(rollout, policy, endpoint):
            assert policy.smoke_test is not None
            try:
                smoke = self.gateway.smoke_test(rollout.endpoint, rollout.green, policy.smoke_test.requests)
            except ProviderError as exc:
                log.warning("rollout %s: smoke test could not run, will retry: %s", rollout.id, exc)
                observation = observation.model_copy(update={"smoke_error": str(exc)})
            else:
                observation = observation.model_copy(update={"smoke": smoke})
        if self.model_checks is not None and endpoint is not None:
            try:
                observation = self.model_checks.observe(stored, observation)
            except Exception as exc:  # a fault here holds the prediction checks, never the tick
                log.exception("rollout %s: model checks could not observe", rollout.id)
                observation = observation.model_copy(update={"predictions_error": f"{exc.__class__.__name__}: {exc}"})
        return observation

    @staticmethod
    def _wants_smoke_test(rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState) -> bool:
        green = endpoint.deployment(rollout.green)
        return (
            rollout.phase == RolloutPhase.PENDING
            and policy.smoke_test is not None
            and rollout.smoke_passed is None
            and green is not None
            and green.provisioning_state == "Succeeded"
        )

    def _metrics_query(self, stored: StoredRollout, observation: Observation) -> MetricsQuery | None:
        if stored.policy_error is not None:
            return None  # nothing is judged on a policy nobody can read
        window = machine.analysis_window(stored.rollout, stored.policy, self.clock.now())
        if window is None:
            return None
        r, p = stored.rollout, stored.policy
        return MetricsQuery(
            endpoint=r.endpoint,
            blue=r.blue,
            green=r.green,
            start=window[0],
            end=window[1],
            error_codes=p.errors.status_codes,
            percentile=p.latency.percentile,
            region=(observation.endpoint.location if observation.endpoint is not None else "") or r.region,
            tail_percentile=p.tail_latency.percentile if p.tail_latency.enabled else None,
            blue_resources=p.capacity is not None and p.capacity.check.enabled,
        )

    def _with_metrics(self, pairs: list[tuple[StoredRollout, Observation]]) -> list[tuple[StoredRollout, Observation]]:
        """One batched metrics fetch for every rollout whose window is ready."""
        wanted = [
            (i, q)
            for i, (s, o) in enumerate(pairs)
            if o.endpoint is not None and (q := self._metrics_query(s, o)) is not None
        ]
        if not wanted:
            return pairs
        results = self.metrics.fetch([q for _, q in wanted])
        out = list(pairs)
        for (i, _), result in zip(wanted, results, strict=True):
            stored, obs = out[i]
            if isinstance(result, WindowMetrics):
                out[i] = (stored, obs.model_copy(update={"metrics": result}))
            else:
                out[i] = (stored, obs.model_copy(update={"metrics_error": str(result)}))
        return out

    # -- reconcile --------------------------------------------------------------------------------

    def reconcile_one(self, rollout_id: str) -> StoredRollout:
        stored = self.store.get(rollout_id)
        if stored is None:
            raise NotFoundError(rollout_id)
        ((stored, obs),) = self._with_metrics([(stored, self._observe_endpoint(stored))])
        return self._commit(stored, self._decide(stored, obs))

    def _decide(self, stored: StoredRollout, observation: Observation) -> Decision:
        if stored.policy_error is not None:
            return machine.decide_isolated(stored.rollout, observation, self.clock.now(), stored.policy_error)
        return machine.decide(stored.rollout, stored.policy, observation, self.clock.now())

    def reconcile_all(self) -> TickReport:
        """One tick in one process (the CLI, the demo, tests): every due rollout, bounded
        concurrency, one failure never blocks the others, and no new work once the time budget is
        spent. In Azure the timer dispatches work items instead and the queue worker calls
        reconcile_batch (functions/reconcile_timer.py, functions/judge_queue.py)."""
        return self._reconcile(self.store.find(due_only=True))

    def reconcile_batch(self, rollout_ids: Sequence[str], *, dispatched_at: datetime | None = None) -> TickReport:
        """One work item: these rollouts (one subscription and region), judged together with one
        metrics fetch. A rollout no longer due, or gone, is skipped; reading one that fails is that
        rollout's failure only. Safe to run twice (at-least-once delivery): every save is
        ETag-guarded and every action is level-triggered. `dispatched_at`: the tick that enqueued
        the item; a rollout judged since (a redelivered item, or a later tick's) is skipped, so a
        redelivery sends no second round of reads, scoring requests and queries."""
        loaded: list[StoredRollout] = []
        report = TickReport()
        for rid in dict.fromkeys(rollout_ids):
            try:
                stored = self.store.get(rid)
            except Exception as exc:  # one unreadable row never blocks the batch
                log.exception("rollout %s: could not be loaded", rid)
                report.failed += 1
                report.errors.append(f"{rid}: {type(exc).__name__}: {exc}")
                continue
            if stored is None or not stored.rollout.due:
                report.skipped += 1
                continue
            if dispatched_at is not None and stored.rollout.updated_at > dispatched_at:
                report.skipped += 1  # judged since this item was enqueued
                continue
            loaded.append(stored)
        judged = self._reconcile(loaded)
        judged.failed += report.failed
        judged.skipped = report.skipped
        judged.errors = report.errors + judged.errors
        return judged

    def _reconcile(self, due: list[StoredRollout]) -> TickReport:
        started = self._monotonic()
        calls_before = int(getattr(self.metrics, "calls", {}).get("metrics", 0))
        report = TickReport()
        report.due = len(due)

        def in_budget() -> bool:
            return self._monotonic() - started < self.tick_budget_seconds

        def observe(stored: StoredRollout) -> tuple[StoredRollout, Observation] | None:
            if not in_budget():
                return None
            try:
                return stored, self._observe_endpoint(stored)
            except ThrottledError as exc:
                log.info("rollout %s: %s", stored.rollout.id, exc)
                with self._lock:
                    report.throttled += 1
                return None

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="reconcile") as pool:
            observed = [o for o in pool.map(self._guard(observe, report), due) if o is not None]
            report.deferred = len(due) - len(observed) - report.throttled
            try:
                with_metrics = self._with_metrics(observed)
            except Exception:  # a bug in the metrics path must not stop traffic decisions
                log.exception("metrics fetch failed for the whole tick; deciding without metrics")
                with_metrics = [
                    (s, o.model_copy(update={"metrics_error": "metrics fetch failed"})) for s, o in observed
                ]
            report.metrics_calls = int(getattr(self.metrics, "calls", {}).get("metrics", 0)) - calls_before

            def decide_and_act(pair: tuple[StoredRollout, Observation]) -> str:
                if not in_budget():
                    return "deferred"
                stored, obs = pair
                try:
                    self._commit(stored, self._decide(stored, obs))
                except ConflictError:
                    return "conflict"
                return "ok"

            for outcome in pool.map(self._guard(decide_and_act, report), with_metrics):
                if outcome == "ok":
                    report.reconciled += 1
                elif outcome == "conflict":
                    report.conflicts += 1
                elif outcome == "deferred":
                    report.deferred += 1
        if report.deferred:
            log.warning(
                "tick ran out of its %.0fs budget: %d rollout(s) left for the next tick",
                self.tick_budget_seconds,
                report.deferred,
            )
        return report

    @staticmethod
    def _guard(fn: Callable[[Any], Any], report: TickReport) -> Callable[[Any], Any]:
        def run(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:  # one failing rollout never blocks the others
                stored = item[0] if isinstance(item, tuple) else item
                rid = getattr(getattr(stored, "rollout", None), "id", "?")
                log.exception("rollout %s: reconcile failed", rid)
                report.failed += 1
                report.errors.append(f"{rid}: {type(exc).__name__}: {exc}")
                return None

        return run

    # -- start ------------------------------------------------------------------------------------

    def start(self, registration: ModelRegistration) -> StartOutcome:
        """Start (or supersede into) a rollout for a registered model version. Idempotent.

        Raises ProviderError if Azure or storage cannot be read, or if the endpoint's rollouts kept
        changing under us: Event Grid then redelivers the event, and nothing was written. An event
        is acknowledged as a duplicate only when this very version's rollout exists."""
        matched = self.policies.match(registration.workspace, registration.model.name, registration.tags)
        if isinstance(matched, str):
            log.info("ignored %s (event %s): %s", registration.model.label, registration.event_id, matched)
            return StartOutcome("ignored", matched)
        _, endpoint_name, policy = matched
        endpoint_ref = EndpointRef(workspace=registration.workspace, name=endpoint_name)
        for _ in range(START_RETRIES):
            try:
                return self._start_once(registration, endpoint_ref, policy)
            except _LookAgainError as exc:
                log.info("event %s: %s; looking again", registration.event_id, exc)
        raise ProviderError(
            f"endpoint {endpoint_name}'s rollouts kept changing while starting {registration.model.label}; "
            "the event will be delivered again"
        )

    def start_by_hand(
        self,
        *,
        endpoint: str,
        model: ModelRef,
        workspace: WorkspaceRef | None,
        actor: str,
        reason: str = "",
    ) -> StartOutcome:
        """A rollout a person starts (POST /api/rollouts): the same path as a ModelRegistered event,
        with the same policy matching, idempotency and refusals. The workspace may be left out when
        the policy's targets for this model all name the same one. StartRefusedError when the
        policy file does not send this model to this endpoint; EndpointNotFoundError when Azure has
        no such endpoint; ProviderError when Azure or storage cannot be read."""
        policies = self.policies
        if workspace is None:
            # Event Grid names the workspace in every event (its topic); a person may leave it out
            # only where the policy leaves no doubt.
            named = {
                (t.workspace or "").lower(): WorkspaceRef.parse(t.workspace) if t.workspace else None
                for t in policies.targets
                if fnmatch.fnmatchcase(model.name, t.model)
            }
            only = next(iter(named.values())) if len(named) == 1 else None
            if only is None:
                raise WorkspaceNeededError(
                    "give the workspace (its ARM id, /subscriptions/{sub}/resourceGroups/{rg}/providers/"
                    "Microsoft.MachineLearningServices/workspaces/{ws}): the policy file's targets for model "
                    f"{model.name} do not name exactly one workspace"
                )
            workspace = only
        # A target that takes its endpoint from a model tag is asked about the endpoint named here.
        tags = {t.endpoint_tag: endpoint for t in policies.targets if t.endpoint_tag}
        matched = policies.match(workspace, model.name, tags)
        if isinstance(matched, str):
            raise StartRefusedError(matched)
        if matched[1].lower() != endpoint.lower():
            raise StartRefusedError(
                f"the policy file sends model {model.name} to endpoint {matched[1]}, not {endpoint}"
            )
        registration = ModelRegistration(
            event_id=f"manual-{self.clock.now().strftime('%Y%m%dT%H%M%S')}",
            workspace=workspace,
            model=model,
            tags=tags,
            actor=actor,
            reason=reason,
        )
        return self.start(registration)

    def _start_once(
        self, registration: ModelRegistration, endpoint_ref: EndpointRef, policy: RolloutPolicy
    ) -> StartOutcome:
        label = registration.model.label
        rollout_id = machine.rollout_id_for(endpoint_ref, registration.model)
        if self.store.get(rollout_id) is not None:
            msg = f"{label} already has rollout {rollout_id} on {endpoint_ref.name}"
            log.info("duplicate (event %s): %s", registration.event_id, msg)
            return StartOutcome("duplicate", msg, rollout_id)
        active = self.store.active_for(endpoint_ref)
        endpoint = self.gateway.read_endpoint(endpoint_ref)
        if endpoint is None:
            # Never believed at once (ARM reads can miss a resource for a while): the delivery fails
            # and Event Grid brings it again; an endpoint the policy names wrongly ends dead-lettered.
            raise EndpointNotFoundError(
                f"endpoint {endpoint_ref.name} was not found in workspace {registration.workspace.workspace}; "
                "the event will be delivered again (check the policy file if the endpoint does not exist)"
            )
        too_old = self._not_newer(registration, endpoint, active)
        if too_old is not None:
            log.info("ignored %s (event %s): %s", label, registration.event_id, too_old)
            return StartOutcome("ignored", too_old, active.rollout.id if active else None)
        if active is not None:
            return self._supersede(active, registration, endpoint_ref, endpoint, policy)
        now = self.clock.now()
        try:
            decision = self._plan(registration, endpoint_ref, endpoint, policy, now)
        except StartRejectedError as exc:
            log.warning("rejected %s: %s", label, exc)
            return StartOutcome("rejected", str(exc))
        record = _record(decision.rollout, decision, now)
        try:
            saved = self.store.create(decision.rollout, policy, record)
        except EndpointBusyError as exc:
            raise _LookAgainError(str(exc)) from exc  # another version took the endpoint first
        except AlreadyExistsError as exc:
            if self.store.get(rollout_id) is None:
                raise _LookAgainError(str(exc)) from exc  # the lock was taken in the same instant
            log.info("duplicate (event %s): %s", registration.event_id, exc)
            return StartOutcome("duplicate", str(exc), rollout_id)
        log.info("rollout %s started: %s", rollout_id, decision.reason)
        # Green's creation is started here and never waited for; if it fails to start, the timer
        # sees green missing and starts it again.
        self._act(saved.rollout, decision.actions)
        self.events.publish(decision.events)
        return StartOutcome("started", decision.reason, rollout_id)

    @staticmethod
    def _not_newer(
        registration: ModelRegistration, endpoint: EndpointState, active: StoredRollout | None
    ) -> str | None:
        """Why this version must not start: not newer than what serves production (the deployment
        holding all live traffic, or the active rollout's blue), or than the active rollout's."""
        model = registration.model
        if active is not None:
            current = active.rollout
            if current.model.name.lower() != model.name.lower():
                return f"endpoint {endpoint.name} is busy with {current.model.label} ({current.phase})"
            busy = not_newer_reason(model, current.model, f"the active rollout {current.id}")
            if busy is not None:
                return busy
            if active.policy.on_newer_version == "ignore":
                return f"endpoint {endpoint.name} is busy with {current.model.label}; the policy ignores newer versions"
        live = endpoint.traffic.live
        serving = active.rollout.blue if active is not None else None
        if serving is None and len(live) == 1:
            serving = next(iter(live))
        deployment = endpoint.deployment(serving)
        production = model_of(deployment.model) if deployment is not None else None
        return not_newer_reason(model, production, f"production ({serving})")

    @staticmethod
    def _plan(
        registration: ModelRegistration,
        endpoint_ref: EndpointRef,
        endpoint: EndpointState,
        policy: RolloutPolicy,
        now: datetime,
        *,
        blue_hint: str | None = None,
    ) -> Decision:
        """The start of a rollout for a registration (an event or a person's request)."""
        return machine.plan_start(
            endpoint_ref,
            registration.model,
            endpoint,
            policy,
            now,
            trigger=registration.trigger,
            actor=registration.actor,
            note=registration.reason,
            blue_hint=blue_hint,
        )

    def _supersede(
        self,
        active: StoredRollout,
        registration: ModelRegistration,
        endpoint_ref: EndpointRef,
        endpoint: EndpointState,
        policy: RolloutPolicy,
    ) -> StartOutcome:
        current = active.rollout
        label = registration.model.label
        blue = endpoint.deployment(current.blue)
        # Nowhere to send traffic back to (blue gone, or a first deployment): the split stays as it
        # is and the newer version starts from what serves now, the old green included.
        blue_gone = current.blue is None or blue is None or blue.provisioning_state == "Deleting"
        serves = endpoint.traffic.live_of(current.green) > 0
        now = self.clock.now()
        old = machine.supersede(
            current, active.policy, registration.model, now, blue_gone=blue_gone, green_serves=serves
        )
        try:
            # With blue gone, the newer version starts from what serves now (not from a blue that is gone).
            new = self._plan(
                registration, endpoint_ref, endpoint, policy, now, blue_hint=None if blue_gone else current.blue
            )
        except StartRejectedError as exc:
            log.warning("rejected %s: %s", label, exc)
            return StartOutcome("rejected", str(exc), current.id)
        try:
            self.store.create(
                new.rollout,
                policy,
                _record(new.rollout, new, now),
                replacing=(active, old.rollout, _record(current, old, now)),
            )
        except ConflictError as exc:
            # It ended (promoted, rolled back) or changed while we looked: decide again from fresh state.
            raise _LookAgainError(f"{current.id} changed while superseding it: {exc}") from exc
        log.info("rollout %s superseded by %s (%s)", current.id, new.rollout.id, label)
        self._act(old.rollout, old.actions)  # traffic back to blue first
        self._act(new.rollout, new.actions)
        self.events.publish([*old.events, *new.events])
        return StartOutcome("superseded", f"{current.model.label} superseded by {label}", new.rollout.id)

    # -- commands and alerts ----------------------------------------------------------------------

    def command(self, rollout_id: str, kind: CommandKind, *, actor: str, reason: str = "") -> StoredRollout:
        """A person's command. NotFoundError, CommandRejectedError (not in this phase),
        ConflictError (lost every retry of a race) or ProviderError (Azure or storage could not be
        read; try again). A rollback tries harder than the rest."""
        attempts = ROLLBACK_RETRIES if kind == CommandKind.ROLLBACK else SAVE_RETRIES
        for _ in range(attempts):
            stored = self.store.get(rollout_id)
            if stored is None:
                raise NotFoundError(rollout_id)
            decision = self._command_decision(stored, kind, actor=actor, reason=reason)
            try:
                saved = self._commit(stored, decision, urgent=True)
            except EndpointBusyError as exc:
                raise CommandRejectedError(f"{kind} is not possible: {exc}") from exc
            except ConflictError:
                continue
            return self._settle(saved)
        raise ConflictError(f"rollout {rollout_id} kept changing; try again")

    def _command_decision(self, stored: StoredRollout, kind: CommandKind, *, actor: str, reason: str) -> Decision:
        """The command's decision. One that may send users to green first reads the endpoint, so a
        person's click never sends users to a green that failed."""
        if stored.policy_error is not None and kind not in machine.SAFE_WITHOUT_POLICY:
            raise CommandRejectedError(
                f"rollout {stored.rollout.id}'s stored policy cannot be read ({stored.policy_error}); "
                "only pause, rollback and abort are possible"
            )
        endpoint = None
        if kind in machine.TOWARD_GREEN and not stored.rollout.phase.terminal:
            endpoint = self.gateway.read_endpoint(stored.rollout.endpoint)
            if endpoint is None:
                raise CommandRejectedError(f"endpoint {stored.rollout.endpoint.name} was not found; {kind} refused")
        return machine.apply_command(
            stored.rollout, stored.policy, kind, self.clock.now(), actor=actor, reason=reason, endpoint=endpoint
        )

    def _settle(self, saved: StoredRollout) -> StoredRollout:
        """After a rollback order, look once more so the answer can say where traffic now is."""
        if saved.rollout.phase != RolloutPhase.ROLLING_BACK:
            return saved
        try:
            return self.reconcile_one(saved.rollout.id)
        except ConflictError:
            return self.store.get(saved.rollout.id) or saved

    def alert(self, notice: AlertNotice) -> list[dict[str, str]]:
        """Roll back every rollout the alert is about; record Resolved. Idempotent on alertId +
        monitorCondition. A rollout promoted after the alert fired is undone while its old blue is
        kept (rollback wins over a promotion that landed a moment earlier). Returns what happened
        per matched rollout. Raises ProviderError / ConflictError when it could not be applied yet."""
        targets = set(notice.target_ids)
        outcomes: list[dict[str, str]] = []
        for stored in self.store.find(due_only=True):
            rollout = stored.rollout
            if rollout.phase.terminal and not self._undoable_by(rollout, notice):
                continue
            green_id = rollout.endpoint.deployment_arm_id(rollout.green).lower()
            endpoint_id = rollout.endpoint.arm_id.lower()
            about_green = green_id in targets or (
                endpoint_id in targets and rollout.green.lower() in notice.deployments
            )
            endpoint_wide = endpoint_id in targets and not notice.deployments
            if not about_green and not (endpoint_wide and stored.policy.endpoint_alerts_roll_back):
                continue
            outcomes.append({"rollout": rollout.id, "outcome": self._alert_one(stored, notice)})
        if not outcomes:
            log.info(
                "alert %s (%s, %s) about %s matches no active rollout: ignored",
                notice.alert_id,
                notice.rule,
                notice.condition,
                ", ".join(notice.target_ids) or "no resources",
            )
        return outcomes

    def _undoable_by(self, rollout: Rollout, notice: AlertNotice) -> bool:
        """A Succeeded rollout that an alert, fired before the success, may still undo."""
        if rollout.phase != RolloutPhase.SUCCEEDED or notice.condition != "Fired" or rollout.finished_at is None:
            return False
        fired = notice.fired_at or self.clock.now()
        kept = any(item.deployment == rollout.blue for item in rollout.cleanup)
        return kept and fired <= rollout.finished_at

    def _alert_one(self, stored: StoredRollout, notice: AlertNotice) -> str:
        key = notice.idempotency_key
        actor = f"alert:{notice.rule or notice.alert_id}"
        for _ in range(ROLLBACK_RETRIES):
            if self.store.has_marker(stored.rollout.endpoint, key):
                return "duplicate"
            now = self.clock.now()
            rollout = stored.rollout
            if notice.condition == "Fired" and (rollout.phase.active or self._undoable_by(rollout, notice)):
                try:
                    decision = machine.apply_command(
                        rollout,
                        stored.policy,
                        CommandKind.ROLLBACK,
                        now,
                        actor=actor,
                        reason=f"alert {notice.rule} fired ({notice.severity})",
                    )
                except CommandRejectedError as exc:
                    decision = self._note(rollout, now, f"alert {notice.rule} fired: {exc}", actor)
            elif notice.condition == "Fired":
                decision = self._note(rollout, now, f"alert {notice.rule} fired after the rollout ended", actor)
            else:
                decision = self._note(rollout, now, f"alert {notice.rule} resolved", actor)
            try:
                saved = self._commit(stored, decision, markers=[key], urgent=True)
            except EndpointBusyError as exc:
                log.warning("alert %s not applied to rollout %s: %s", notice.alert_id, rollout.id, exc)
                return f"not applied: {exc}"
            except ConflictError:
                fresh = self.store.get(stored.rollout.id)
                if fresh is None:
                    return "gone"
                stored = fresh
                continue
            if saved.rollout.phase in (RolloutPhase.ROLLING_BACK, RolloutPhase.ROLLED_BACK):
                saved = self._settle(saved)
                return f"rolled back ({saved.rollout.phase})"
            return "recorded"
        raise ConflictError(f"rollout {stored.rollout.id} kept changing; the alert could not be applied yet")

    @staticmethod
    def _note(rollout: Rollout, now: datetime, reason: str, actor: str) -> Decision:
        """An audit note that changes nothing. Bounded per rollout: past MAX_NOTES it is logged only,
        so a flapping alert cannot grow the audit trail without end."""
        if rollout.notes >= MAX_NOTES:
            log.info("rollout %s: %s (by %s; not stored: %d notes already)", rollout.id, reason, actor, MAX_NOTES)
            return machine.unrecorded(rollout, now)
        return machine.annotate(rollout.model_copy(update={"notes": rollout.notes + 1}), now, reason, actor)

    # -- reads ------------------------------------------------------------------------------------

    def report(self, rollout_ids: Sequence[str], title: str = "Safe Rollout report") -> str:
        """The HTML report of rollouts, from their stored history and Azure Monitor's minutes."""
        items = []
        for rollout_id in rollout_ids:
            stored = self.get(rollout_id)
            r = stored.rollout
            end = min(self.clock.now(), (r.finished_at or self.clock.now()) + timedelta(minutes=5))
            query = MetricsQuery(
                endpoint=r.endpoint,
                blue=r.blue,
                green=r.green,
                start=r.created_at,
                end=end,
                error_codes=stored.policy.errors.status_codes,
                percentile=stored.policy.latency.percentile,
                region=r.region or self._region_of(r),
            )
            found = self.metrics.timeline(query)
            timeline = None if isinstance(found, ProviderError) else found
            if timeline is None:
                log.warning("report of %s without metrics: %s", rollout_id, found)
            items.append(ReportItem(stored, self.store.decisions(rollout_id), timeline))
        return render_report(items, title)

    def _region_of(self, rollout: Rollout) -> str:
        """A rollout stored before regions were kept: read the endpoint's region from Azure."""
        try:
            endpoint = self.gateway.read_endpoint(rollout.endpoint)
        except ProviderError:
            return ""
        return endpoint.location if endpoint is not None else ""

    def get(self, rollout_id: str) -> StoredRollout:
        stored = self.store.get(rollout_id)
        if stored is None:
            raise NotFoundError(rollout_id)
        return stored
