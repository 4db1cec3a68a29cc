"""The whole service under random histories (issue 11): a hypothesis state machine over the real
RolloutService, the real SDK adapters on the in-process emulator, the store (memory rows with Table
storage's semantics, able to go down) and a simulated clock.

Rules: model versions registered in any order (new, duplicate, late/older, newer), people's
commands in any phase, timer ticks, alerts, Azure faults (404, 409, 429 with Retry-After, 5xx, a
lasting 403 on the traffic PUT, failed/hung/slow provisioning, slow deletes), a person changing the
split or deleting a deployment behind our back, and a Table storage outage and its return.
After every step, the invariants below (each a named function with its promise) must hold.

`SAFE_ROLLOUT_SOAK=1` (make soak) runs far more examples, randomised; the default profile is
derandomised so CI is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from emulator.azure import Emulator
from shared.payloads import AlertNotice, ModelRegistration
from shared.ports import ConflictError, ProviderError, StoredRollout
from shared.rollout.machine import CommandKind, CommandRejectedError
from shared.rollout.model import ModelRef, RolloutPhase, TrafficSplit
from shared.service import NotFoundError, RolloutService, TickReport
from shared.store import RolloutStoreImpl
from tests.functions.harness import RecordingPublisher
from tests.reliability import stateful_world as sw
from tests.reliability.world import Fast, fast, policies

P = RolloutPhase
# Holding phases: a person decides (the deadline invariant accepts them).
HOLDING = frozenset({P.PAUSED, P.ABORTED})
# Ended: green must hold no traffic (Aborted: "traffic back to blue, green kept").
ENDED_WITHOUT_GREEN = frozenset({P.ROLLED_BACK, P.SUPERSEDED, P.FAILED, P.ABORTED})
PROMOTIONS = frozenset({CommandKind.PROMOTE, CommandKind.PROMOTE_FULL})

# CI: 200 histories of 60 steps, in two halves of 100 (this file and test_stateful_more.py, with
# another seed) so that the two xdist workers share them: 3 to 4.5 minutes for both, side by side;
# derandomised, so a CI run is reproducible. Soak (make soak): 5,000 of 100 steps, new ones each run.
PROFILE = settings(
    max_examples=5_000 if sw.SOAK else 100,
    stateful_step_count=100 if sw.SOAK else 60,
    deadline=None,
    derandomize=not sw.SOAK,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class InvariantBrokenError(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# what the test knows besides Azure and the store


@dataclass
class Ledger:
    """What the test saw happen, to judge the invariants."""

    floor: int = 1  # the highest model version that became production (Succeeded; blue serves v1)
    promoted_by_person: set[str] = field(default_factory=set)  # rollout ids a person promoted
    hand_split: TrafficSplit | None = None  # the split a person set, while it is still in place
    hand_routed: set[str] = field(default_factory=set)  # deployments a person gave live traffic by hand
    hand_split_untouchable: bool = False  # no command/alert/event since: a tick must leave it alone
    outage_minutes: int = 0  # simulated minutes with the store down (ticks could not run)
    outage_since: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# the invariants: each a small function that raises InvariantBrokenError with what it saw


def traffic_only_on_ready_deployments(emu: Emulator) -> None:
    """1. No user (live) or mirrored traffic on a deployment whose provisioning state is not
    Succeeded (or that does not exist)."""
    split = emu.current_split(sw.ENDPOINT)
    for name, pct in [*split.live.items(), *split.mirror.items()]:
        state = sw.provisioning_state(emu, name)
        if pct and state != "Succeeded":
            raise InvariantBrokenError(
                f"invariant 1: {name} holds traffic ({split.describe()}) but its provisioning state is {state}"
            )


def ended_rollouts_leave_green_dry(rollouts: list[StoredRollout], emu: Emulator, ledger: Ledger) -> None:
    """2. A rollout that ended RolledBack, Superseded, Failed (or is Aborted) leaves its green with
    no live and no mirrored traffic (unless a person put traffic there by hand: then it may have
    become production, and the next rollout's blue)."""
    if ledger.hand_split is not None:
        return
    split = emu.current_split(sw.ENDPOINT)
    for stored in rollouts:
        r = stored.rollout
        if r.green.lower() in ledger.hand_routed:
            continue
        if r.phase in ENDED_WITHOUT_GREEN and (split.live_of(r.green) or split.mirror_of(r.green)):
            raise InvariantBrokenError(
                f"invariant 2: rollout of {r.model.label} is {r.phase} ({r.last_reason!r}) but its green "
                f"{r.green} still holds traffic: {split.describe()}"
            )


def production_never_goes_back(rollouts: list[StoredRollout], emu: Emulator, ledger: Ledger) -> None:
    """3. The model version serving 100% of live traffic is never older than the newest version
    that became production (a Succeeded rollout), unless a person promoted it or set the split."""
    split = emu.current_split(sw.ENDPOINT)
    if len(split.live) != 1 or ledger.hand_split is not None:
        return
    (deployment,) = split.live
    version = sw.deployment_version(emu, deployment)
    if version is None or version >= ledger.floor:
        return
    owners = [s for s in rollouts if s.rollout.green.lower() == deployment]
    if any(s.rollout.id in ledger.promoted_by_person for s in owners):
        return
    owner = owners[0].rollout if owners else None
    raise InvariantBrokenError(
        f"invariant 3: production went back to version {version} ({deployment}) after version "
        f"{ledger.floor} succeeded; " + (f"its rollout is {owner.phase}: {owner.last_reason!r}" if owner else "")
    )


def active_rollouts_meet_their_deadline(rollouts: list[StoredRollout], now: datetime, ledger: Ledger) -> None:
    """4. Every active rollout is finished or held for a person (Paused, Aborted) by its policy
    deadline, plus a few ticks, plus any time the store was down (no tick could run)."""
    for stored in rollouts:
        r = stored.rollout
        if not r.phase.active or r.phase in HOLDING:
            continue
        outage = timedelta(minutes=ledger.outage_minutes - ledger.outage_since.get(r.id, 0))
        limit = r.created_at + stored.policy.deadline + sw.SLACK + outage
        if now > limit:
            raise InvariantBrokenError(
                f"invariant 4: rollout of {r.model.label} is still {r.phase} "
                f"{now - r.created_at} after it started (deadline {stored.policy.deadline}): {r.last_reason!r}"
            )


def lock_names_an_active_rollout(store: RolloutStoreImpl, endpoint: Any) -> None:
    """5. The endpoint's lock is released when its rollout ends: it is absent or names an active
    rollout."""
    holder = store.active_for(endpoint)
    if holder is not None and not holder.rollout.phase.active:
        raise InvariantBrokenError(
            f"invariant 5: the endpoint lock is held by {holder.rollout.model.label}, which is {holder.rollout.phase}"
        )


def audit_trail_has_no_gaps(store: RolloutStoreImpl, rollouts: list[StoredRollout]) -> None:
    """7. Each rollout's decisions are numbered 1..rollout.decisions, none missing or repeated."""
    for stored in rollouts:
        seqs = [d.seq for d in store.decisions(stored.rollout.id)]
        if seqs != list(range(1, stored.rollout.decisions + 1)):
            raise InvariantBrokenError(
                f"invariant 7: rollout of {stored.rollout.model.label} counts {stored.rollout.decisions} "
                f"decisions but its audit trail holds seq {seqs}"
            )


def one_rollout_drives_the_endpoint(store: RolloutStoreImpl, rollouts: list[StoredRollout], endpoint: Any) -> None:
    """8. One rollout at a time drives an endpoint: at most one active rollout besides those rolling
    back to blue (a superseded one winds down beside its successor), and it is the one the lock
    names (ARCHITECTURE: "the rollout record ... is the lock: one active rollout per endpoint")."""
    driving = [s.rollout for s in rollouts if s.rollout.phase.active and s.rollout.phase != P.ROLLING_BACK]
    if len(driving) > 1:
        raise InvariantBrokenError(
            "invariant 8: several rollouts drive the endpoint: "
            + ", ".join(f"{r.model.label} {r.phase}" for r in driving)
        )
    holder = store.active_for(endpoint)
    if driving and (holder is None or holder.rollout.id != driving[0].id):
        raise InvariantBrokenError(
            f"invariant 8: {driving[0].model.label} is {driving[0].phase} but the lock names "
            f"{holder.rollout.model.label if holder else 'nobody'}"
        )


def registration_is_never_dropped_while_the_endpoint_exists(status: str, message: str, emu: Emulator) -> None:
    """10. A ModelRegistered event is not dropped as "the endpoint does not exist" while it does
    (README: "if Azure cannot be reached the function fails so Event Grid retries"): a read that
    failed (a transient 404 included) must fail the delivery, not reject the version for good."""
    if status == "rejected" and "does not exist" in message and sw.ENDPOINT in emu.endpoints:
        raise InvariantBrokenError(f"invariant 10: the registration was rejected ({message}) but the endpoint exists")


def ticks_never_fight_a_person(before: TrafficSplit, after: TrafficSplit, exempt: str | None) -> None:
    """9. A split a person set by hand is left alone by the timer (README: "If someone changes the
    split by hand, the rollout pauses and reports what it found instead of overwriting it"), unless
    the rollout had an order not yet seen (level-triggered), is rolling back, or passed its deadline."""
    if before != after and exempt is None:
        raise InvariantBrokenError(
            f"invariant 9: a timer tick overwrote a person's split {before.describe()} with {after.describe()}"
        )


# ---------------------------------------------------------------------------------------------
# the machine


class RolloutWorld(RuleBasedStateMachine):
    env: Fast
    service: RolloutService
    rows: sw.FlakyRows
    inspect: RolloutStoreImpl
    ledger: Ledger

    @initialize(seed=st.integers(0, 2**16), approval=st.booleans())
    def build(self, seed: int, approval: bool) -> None:
        sw.count("examples")
        policy = dict(sw.POLICY)
        if approval:
            steps = [dict(s) for s in policy["steps"]]
            steps[1]["approval"] = True
            policy["steps"] = steps
        env = fast(seed=seed)
        self.rows = sw.FlakyRows()
        store = RolloutStoreImpl(self.rows)
        self.inspect = RolloutStoreImpl(self.rows.inner)  # the test's own view, never down
        self.env = Fast(env.world, store, RecordingPublisher(), policies(**policy))
        # One rollout at a time, so an example replays exactly.
        self.service = self.env.service(max_concurrency=1)
        self.ledger = Ledger()
        self.events = 0
        self.seen_phase: dict[str, RolloutPhase] = {}

    def teardown(self) -> None:
        if hasattr(self, "env"):
            sw.release_pollers(self.env.world.emu)

    # -- helpers ----------------------------------------------------------------------------------

    @property
    def emu(self) -> Emulator:
        return self.env.world.emu

    def rollouts(self) -> list[StoredRollout]:
        return self.inspect.find()

    def _pick(self, index: int) -> StoredRollout | None:
        found = self.rollouts()
        return found[index % len(found)] if found else None

    def _call(self, what: str, fn: Any, allowed: tuple[type[BaseException], ...]) -> Any:
        """6. No call answers 500: only the documented exceptions; ProviderError only when Azure or
        the store really failed during the call."""
        faults_before = sw.pending_faults(self.emu)
        self.rows.refused = 0
        try:
            return fn()
        except ProviderError as exc:
            outage = self.rows.refused > 0 or sw.pending_faults(self.emu) < faults_before
            if ProviderError not in allowed or not outage:
                raise InvariantBrokenError(
                    f"invariant 6: {what} raised ProviderError with Azure and storage up: {exc}"
                ) from exc
            return None
        except allowed:
            return None
        except Exception as exc:
            raise InvariantBrokenError(f"invariant 6: {what} raised {type(exc).__name__}: {exc}") from exc

    def _hand_split(self) -> None:
        """A person set the split. The timer must leave it alone, unless it is the very split an
        active rollout ordered (then nothing tells it apart from our own order)."""
        split = self.emu.current_split(sw.ENDPOINT)
        ours = any(s.rollout.phase.active and s.rollout.desired == split for s in self.rollouts())
        self.ledger.hand_split = split
        self.ledger.hand_split_untouchable = not ours
        if len(split.live) == 1 and not ours:
            # The person chose what serves production: later rollouts start from it, and going back
            # to it (a rollback of a newer version) is no regression of ours. Unless it is the green
            # of a rollout still under way: that rollout may still be rolled back or superseded,
            # which sends its green's traffic back to its blue as it always does.
            (serving,) = split.live
            version = sw.deployment_version(self.emu, serving)
            still_judged = any(s.rollout.phase.active and s.rollout.green.lower() == serving for s in self.rollouts())
            if version is not None and not still_judged:
                self.ledger.floor = version
        self.ledger.hand_routed |= set(split.live) | set(split.mirror)

    def _person_acted(self) -> None:
        self.ledger.hand_split_untouchable = False

    # -- events -----------------------------------------------------------------------------------

    @rule(version=st.integers(2, 6), scenario=st.sampled_from(sorted(sw.SCENARIOS)))
    def model_registered(self, version: int, scenario: str) -> None:
        """ModelRegistered for a version: new, a duplicate, late (older) or newer, in any order."""
        self.events += 1
        self.emu.register_model(sw.MODEL, str(version))
        self.emu.set_scenario(sw.ENDPOINT, f"{sw.MODEL}-v{version}", sw.SCENARIOS[scenario])
        registration = ModelRegistration(
            event_id=f"e{version}-{self.events}",
            workspace=self.env.world.endpoint.workspace,
            model=ModelRef(name=sw.MODEL, version=str(version)),
        )
        outcome = self._call(f"start(v{version})", lambda: self.service.start(registration), (ProviderError,))
        if outcome is not None:
            registration_is_never_dropped_while_the_endpoint_exists(outcome.status, outcome.message, self.emu)
        sw.count(f"event:{outcome.status if outcome else 'error'}")
        self._person_acted()  # a new rollout may legitimately re-order traffic
        self._after()

    @rule(version=st.integers(2, 6))
    def quiet_release(self, version: int) -> None:
        """A healthy version arrives and nothing else happens for half an hour (so that histories
        also hold rollouts that succeed, and late versions after them)."""
        self.model_registered(version, "healthy")
        self.ticks(30)

    # -- people -----------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(list(CommandKind)), index=st.integers(0, 9), bogus=st.booleans())
    def command(self, kind: CommandKind, index: int, bogus: bool) -> None:
        """A person's command on some rollout (or on one that does not exist)."""
        target = None if bogus and index == 0 else self._pick(index)
        rollout_id = target.rollout.id if target else "r-does-not-exist"
        sw.count(f"command:{kind}")
        result = self._call(
            f"command({kind})",
            lambda: self.service.command(rollout_id, kind, actor="ops@example.com", reason="stateful test"),
            (NotFoundError, CommandRejectedError, ConflictError, ProviderError),
        )
        if result is not None and kind in PROMOTIONS:
            self.ledger.promoted_by_person.add(rollout_id)
        if result is not None:
            self._person_acted()
        self._after()

    @rule(data=st.data())
    def person_sets_split(self, data: st.DataObject) -> None:
        """Someone changes the split in the portal (only to ready deployments, as Azure requires)."""
        self.emu.settle()
        ready = sorted(
            d
            for (e, d), res in self.emu.deployments.items()
            if e == sw.ENDPOINT and res.body["properties"].get("provisioningState") == "Succeeded"
        )
        if not ready:
            return
        live = data.draw(st.lists(st.sampled_from(ready), min_size=1, max_size=2, unique=True), label="live")
        if len(live) == 2:
            first = data.draw(st.integers(1, 99), label="first %")
            split = {live[0]: first, live[1]: 100 - first}
        else:
            split = {live[0]: 100}
        others = [d for d in ready if d not in split]
        mirror = {}
        if others and data.draw(st.booleans(), label="mirror"):
            mirror = {data.draw(st.sampled_from(others), label="mirrored"): data.draw(st.integers(1, 50), label="%")}
        sw.count("fault:person sets the split")
        self.emu.set_traffic_by_hand(sw.ENDPOINT, split, mirror)
        self._hand_split()
        self._after()

    @rule(index=st.integers(0, 9))
    def person_deletes_deployment(self, index: int) -> None:
        """Someone deletes a deployment in the portal: Azure refuses while it has traffic, so they
        first move its traffic to another ready deployment (or take the endpoint to no traffic)."""
        self.emu.settle()
        names = sorted(
            d
            for (e, d), res in self.emu.deployments.items()
            if e == sw.ENDPOINT and res.body["properties"].get("provisioningState") in ("Succeeded", "Failed")
        )
        if not names:
            return
        victim = names[index % len(names)]
        split = self.emu.current_split(sw.ENDPOINT)
        if split.live_of(victim) or split.mirror_of(victim):
            rest = [d for d in names if d != victim and sw.provisioning_state(self.emu, d) == "Succeeded"]
            live = {d: p for d, p in split.live.items() if d != victim}
            if split.live_of(victim):
                if live:
                    heir = max(live, key=lambda d: live[d])
                    live[heir] += split.live_of(victim)
                elif rest:
                    live = {rest[0]: 100}
            mirror = {d: p for d, p in split.mirror.items() if d != victim and d not in live}
            self.emu.set_traffic_by_hand(sw.ENDPOINT, live, mirror)
            self._hand_split()
        url = f"https://management.azure.com{self.emu.deployment_id(sw.ENDPOINT, victim)}?api-version=2025-12-01"
        faults, self.emu.faults = self.emu.faults, []  # the portal's request, not ours
        try:
            status, _, body = self.emu.handle("DELETE", url, {}, None)
        finally:
            self.emu.faults = faults
        assert status < 300, (status, body)
        sw.count("fault:person deletes a deployment")
        self._after()

    # -- alerts -----------------------------------------------------------------------------------

    @rule(
        condition=st.sampled_from(["Fired", "Resolved"]),
        shape=st.sampled_from(["green", "endpoint+deployment", "endpoint", "unrelated"]),
        index=st.integers(0, 9),
        alert=st.integers(0, 3),
    )
    def alert(self, condition: str, shape: str, index: int, alert: int) -> None:
        """An Azure Monitor alert (common schema, already parsed) about green, the endpoint, or else."""
        target = self._pick(index)
        endpoint = self.env.world.endpoint
        green = target.rollout.green.lower() if target else "nobody-v0"
        targets = {
            "green": (endpoint.deployment_arm_id(green).lower(),),
            "endpoint+deployment": (endpoint.arm_id.lower(),),
            "endpoint": (endpoint.arm_id.lower(),),
            "unrelated": ("/subscriptions/x/resourcegroups/y/providers/microsoft.compute/virtualmachines/z",),
        }[shape]
        notice = AlertNotice(
            alert_id=f"alert-{alert}",
            rule=f"rule-{alert}",
            condition=condition,
            severity="Sev1",
            target_ids=targets,
            deployments=(green,) if shape == "endpoint+deployment" else (),
            fired_at=self.env.world.clock.now(),
        )
        sw.count(f"alert:{condition} {shape}")
        self._call(f"alert({condition}, {shape})", lambda: self.service.alert(notice), (ProviderError, ConflictError))
        self._person_acted()
        self._after()

    # -- time -------------------------------------------------------------------------------------

    def _tick(self) -> None:
        sw.count("ticks")
        clock = self.env.world.clock
        before = self.emu.current_split(sw.ENDPOINT)
        exempt = self._overwrite_allowed(clock.now() + timedelta(minutes=1))
        self.env.world.advance(1)
        if self.rows.down:
            self.ledger.outage_minutes += 1
        report = self._call("reconcile_all()", self.service.reconcile_all, (ProviderError,))
        if isinstance(report, TickReport) and report.failed:
            real = [e for e in report.errors if not (": ProviderError:" in e and self.rows.refused)]
            if real:
                raise InvariantBrokenError(f"invariant 6: the tick failed on {report.failed} rollout(s): {real}")
        if self.ledger.hand_split is not None and self.ledger.hand_split_untouchable:
            ticks_never_fight_a_person(before, self.emu.current_split(sw.ENDPOINT), exempt)
        self._after()

    def _overwrite_allowed(self, at: datetime) -> str | None:
        for stored in self.rollouts():
            r = stored.rollout
            if not r.phase.active:
                continue
            if not r.traffic_confirmed:
                return "an order not yet seen"
            if r.phase == P.ROLLING_BACK:
                return "rolling back"
            if at - r.created_at > stored.policy.deadline:
                return "deadline"
        return None

    @rule()
    def tick(self) -> None:
        """The timer: one simulated minute, then reconcile_all()."""
        self._tick()

    @rule(minutes=st.integers(2, 30))
    def ticks(self, minutes: int) -> None:
        """Several timer ticks in a row (invariants checked after each)."""
        for _ in range(minutes):
            self._tick()
            self.check()

    # -- Azure faults -----------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from([*sorted(sw.ARM_FAULTS), *sw.OTHER_FAULTS]),
        times=st.integers(1, 30),
        seconds=st.integers(1, 30),
        version=st.integers(2, 6),
        minutes=st.integers(0, 14),
    )
    def azure_fault(self, kind: str, times: int, seconds: int, version: int, minutes: int) -> None:
        """Azure misbehaves: errors on the next requests of one kind (with Retry-After where it
        sends one), version N's green failing, cancelled, in an unknown state or hung while
        provisioning, or operations taking longer from now on."""
        sw.count(f"fault:{kind}")
        green = f"{sw.MODEL}-v{version}"
        if kind in sw.ARM_FAULTS:
            sw.inject(self.emu, kind, times, seconds)
        elif kind == "provisioning hangs":
            self.emu.hung_provisioning.add(green)
        elif kind.startswith("provisioning ends "):
            self.emu.provisioning_outcomes[green] = kind.removeprefix("provisioning ends ")
        elif kind == "slow provisioning":
            self.emu.deployment_provisioning = timedelta(minutes=max(1, minutes))
        else:
            self.emu.deployment_deletion = timedelta(minutes=minutes)

    @rule(after_calls=st.integers(0, 8))
    def storage_goes_down(self, after_calls: int) -> None:
        """Table storage becomes unreachable (now, or in the middle of the next operation)."""
        sw.count("fault:storage outage")
        self.rows.go_down(after_calls)
        for stored in self.rollouts():
            self.ledger.outage_since.setdefault(stored.rollout.id, self.ledger.outage_minutes)

    @precondition(lambda self: self.rows.down or self.rows.down_after is not None)
    @rule()
    def storage_comes_back(self) -> None:
        self.rows.come_back()

    # -- invariants -------------------------------------------------------------------------------

    def _after(self) -> None:
        """Book-keeping after each step: production versions, and whether a hand split still stands."""
        rollouts = self.rollouts()
        for stored in rollouts:
            r = stored.rollout
            if r.phase == P.SUCCEEDED and self.seen_phase.get(r.id) != P.SUCCEEDED:  # became production now
                version = int(r.model.version)
                self.ledger.floor = max(self.ledger.floor, version)
            if r.phase.terminal and self.seen_phase.get(r.id) != r.phase:
                sw.count(f"phase:{r.phase}")
            self.seen_phase[r.id] = r.phase
            if r.id not in self.ledger.outage_since:
                self.ledger.outage_since[r.id] = self.ledger.outage_minutes
        if self.ledger.hand_split is not None and self.emu.current_split(sw.ENDPOINT) != self.ledger.hand_split:
            self.ledger.hand_split = None
            self.ledger.hand_split_untouchable = False

    @invariant()
    def after_every_step(self) -> None:
        if hasattr(self, "env"):
            sw.count("steps")
            self.check()

    def check(self) -> None:
        self.emu.settle()
        rollouts = self.rollouts()
        endpoint = self.env.world.endpoint
        traffic_only_on_ready_deployments(self.emu)
        ended_rollouts_leave_green_dry(rollouts, self.emu, self.ledger)
        production_never_goes_back(rollouts, self.emu, self.ledger)
        active_rollouts_meet_their_deadline(rollouts, self.env.world.clock.now(), self.ledger)
        lock_names_an_active_rollout(self.inspect, endpoint)
        audit_trail_has_no_gaps(self.inspect, rollouts)
        one_rollout_drives_the_endpoint(self.inspect, rollouts, endpoint)


def run_histories(machine: type[RolloutWorld], name: str, tmp_path_factory: Any, capsys: Any) -> None:
    run_state_machine_as_test(machine, settings=PROFILE)
    text = sw.summary()
    (tmp_path_factory.getbasetemp() / f"{name}-stats.txt").write_text(text + "\n")
    with capsys.disabled():
        print(f"\n{name}: {text}")


def test_no_history_breaks_a_promise(tmp_path_factory: Any, capsys: Any) -> None:
    run_histories(RolloutWorld, "stateful", tmp_path_factory, capsys)
