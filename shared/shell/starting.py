"""Starting rollouts: from a ModelRegistered event or by hand, once per model version, superseding
an older one still running on the endpoint."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from shared.payloads import ModelRegistration
from shared.ports import (
    AlreadyExistsError,
    ConflictError,
    EndpointBusyError,
    ProviderError,
    StoredRollout,
)
from shared.rollout import machine
from shared.rollout.actions import (
    Decision,
)
from shared.rollout.machine import StartRejectedError
from shared.rollout.model import EndpointRef, ModelRef, WorkspaceRef
from shared.rollout.observation import EndpointState
from shared.rollout.policy import RolloutPolicy
from shared.rollout.versions import model_of, not_newer_reason
from shared.shell.acting import decision_record
from shared.shell.base import log
from shared.shell.reconciling import Reconciling

START_RETRIES = 5  # a registration racing another: look again; then fail so Event Grid redelivers


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


class Starting(Reconciling):
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
        record = decision_record(decision.rollout, decision, now)
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
                decision_record(new.rollout, new, now),
                replacing=(active, old.rollout, decision_record(current, old, now)),
            )
        except ConflictError as exc:
            # It ended (promoted, rolled back) or changed while we looked: decide again from fresh state.
            raise _LookAgainError(f"{current.id} changed while superseding it: {exc}") from exc
        log.info("rollout %s superseded by %s (%s)", current.id, new.rollout.id, label)
        self._act(old.rollout, old.actions)  # traffic back to blue first
        self._act(new.rollout, new.actions)
        self.events.publish([*old.events, *new.events])
        return StartOutcome("superseded", f"{current.model.label} superseded by {label}", new.rollout.id)
