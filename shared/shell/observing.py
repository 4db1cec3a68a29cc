"""Observing a rollout: its endpoint, green's smoke test, the model checks, and the metrics of a batch."""

from __future__ import annotations

from datetime import timedelta

from shared.ports import (
    MetricsQuery,
    ProviderError,
    StoredRollout,
    ThrottledError,
)
from shared.rollout import machine
from shared.rollout.analysis import WindowMetrics
from shared.rollout.model import Rollout, RolloutPhase
from shared.rollout.observation import EndpointState, Observation
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.shell.acting import Acting
from shared.shell.base import log

# How long Azure's 429s on a rollout's reads are waited out (no decision, no error counted) before
# the rollout is decided on as unreadable: then its deadline and error limits apply as usual.
THROTTLE_PATIENCE = timedelta(minutes=10)


class Observing(Acting):
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
