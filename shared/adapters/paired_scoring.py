"""Score the same inputs on blue and on green: POST to the endpoint's scoring URI with the
`azureml-model-deployment` header naming each deployment in turn (as `online_endpoints.invoke(...,
deployment_name=...)` and the smoke test do), authenticated with the endpoint's key or AML token
(whichever its auth mode gives; get_keys answers either). Each answer is read at the policy's JSON
pointer by the pure core (predictions.pair_from_answers): a failed or unreadable answer is that
side's error, never an exception.

The scoring URI and key (a GET of the endpoint and a POST listKeys on ARM) are read once per
endpoint and kept for TARGET_CACHE, and read again sooner if an answer says 401 or 403 (a key
rotated). A batch stops early once `time_budget` has passed on the clock: a tick never spends
more than that on scoring, and the caller counts only the pairs scored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.azureml import AzureMLGateway, _describe, _scoring_message
from shared.adapters.scoring_reach import (
    SCORING_TIMEOUTS,
    ScoringTarget,
    never_sent,
    refused_alike,
    refused_for_network,
    unreachable,
)
from shared.ports import ProviderError
from shared.rollout.model import EndpointRef
from shared.rollout.prediction_policy import PredictionCheck
from shared.rollout.predictions import ScoredPair, pair_from_answers

MAX_ANSWER_BYTES = 1_000_000  # an answer larger than this is not read (a prediction is small)
TARGET_CACHE = timedelta(minutes=5)  # the scoring URI and key are read again after this


class Sample:
    """One input: the request body, the expected label if the sample has one, and a key that orders
    it among the inputs of its source and names it while the source changes (shared/model_checks.py)."""

    __slots__ = ("body", "key", "label")

    def __init__(self, body: Any, label: str | None = None, key: str = "") -> None:
        self.body = body
        self.label = label
        self.key = key


class _SystemClock:
    def now(self) -> datetime:
        from datetime import UTC

        return datetime.now(UTC)


def _status(error: str) -> int:
    """The status of an "HTTP 404" error, or 0."""
    return int(error[5:]) if error.startswith("HTTP ") and error[5:].isdigit() else 0


class PairedScorer:
    def __init__(self, gateway: AzureMLGateway, *, clock: Any = None) -> None:
        self._gateway = gateway  # the paced gateway (throttle.ThrottledGateway) in production
        self._clock = clock or _SystemClock()
        self._targets: dict[str, tuple[datetime, ScoringTarget]] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.targets_read = 0  # scoring URI and key reads (each a GET and a POST on ARM)

    def _target(self, endpoint: EndpointRef) -> ScoringTarget:
        key = endpoint.arm_id.lower()
        now = self._clock.now()
        with self._lock:
            hit = self._targets.get(key)
        if hit is not None and now - hit[0] < TARGET_CACHE:
            return hit[1]
        self.targets_read += 1
        target: ScoringTarget = self._gateway.scoring_target(endpoint)
        with self._lock:
            self._targets[key] = (now, target)
        return target

    def _forget(self, endpoint: EndpointRef) -> None:
        with self._lock:
            self._targets.pop(endpoint.arm_id.lower(), None)

    def _one(self, target: ScoringTarget, deployment: str, body: Any) -> tuple[Any, str]:
        """(the answer's JSON, "") or (None, the error): the deployment's answer, whatever it was.
        ProviderError if the request never reached the endpoint (scoring_reach.py): no side is
        to blame for that, and nothing is counted."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        request = HttpRequest(
            "POST",
            target.uri,
            headers={"azureml-model-deployment": deployment, "Authorization": f"Bearer {target.secret}"},
            json=body,
        )
        self.requests_sent += 1
        try:
            response = target.pipeline.send_request(request, **SCORING_TIMEOUTS)
        except AzureError as exc:
            if never_sent(exc):
                raise unreachable(target, "the prediction comparison", _describe(exc)) from exc
            return None, _describe(exc)
        if refused_for_network(response.status_code, target):
            raise unreachable(target, "the prediction comparison", f"HTTP 403 {_scoring_message(response)}")
        if not 200 <= response.status_code < 300:
            return None, f"HTTP {response.status_code}"
        raw = response.content or b""
        if len(raw) > MAX_ANSWER_BYTES:
            return None, f"answer of {len(raw)} bytes not read"
        try:
            return json.loads(raw), ""
        except ValueError:
            return None, "the answer is not JSON"

    def score(
        self,
        endpoint: EndpointRef,
        blue: str,
        green: str,
        check: PredictionCheck,
        samples: Sequence[Sample],
        *,
        time_budget: timedelta | None = None,
    ) -> list[ScoredPair]:
        """ProviderError if the endpoint's scoring URI or key cannot be read, or the app cannot reach
        the endpoint at all (the comparison holds, spending nothing); otherwise one pair per
        sample scored, whatever each request answered: all of them, or the first ones if
        `time_budget` ran out (the caller counts len(result))."""
        target = self._target(endpoint)
        started = self._clock.now()
        pairs: list[ScoredPair] = []
        for sample in samples:
            if time_budget is not None and pairs and self._clock.now() - started >= time_budget:
                break
            try:
                blue_doc, blue_error = self._one(target, blue, sample.body)
                green_doc, green_error = self._one(target, green, sample.body)
                if refused_alike(_status(blue_error), _status(green_error), target):
                    raise unreachable(target, "the prediction comparison", f"blue and green both answered {blue_error}")
            except ProviderError:
                if not pairs:
                    raise  # nothing scored: the comparison holds with the reason
                break  # keep what was scored (and paid for); the next tick goes on from there
            if blue_error in ("HTTP 401", "HTTP 403") or green_error in ("HTTP 401", "HTTP 403"):
                self._forget(endpoint)  # the key may have been rotated: read it again next time
            pairs.append(
                pair_from_answers(
                    check, blue_doc, green_doc, blue_error=blue_error, green_error=green_error, expected=sample.label
                )
            )
        return pairs
