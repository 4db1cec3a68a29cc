"""The shell's part of the model checks: score inputs on blue and green, run the KPI queries.

Called while observing a rollout (RolloutService._observe_endpoint); adds to the Observation what
the pure core judges (shared/rollout/shadow.py): a PredictionBatch (or why none could be scored)
and the KPI readings. What to score and when is the core's answer (`predictions.inputs_due`: the
per-minute and per-stage budgets); which inputs: the next ones of the sample after the tally's
cursor. A failure here never stops the tick: it becomes an error in the Observation (the check holds).
"""

from __future__ import annotations

import bisect
import logging
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.paired_scoring import Sample
from shared.ports import ProviderError, StoredRollout
from shared.rollout import predictions, shadow
from shared.rollout.kpi import KpiReading
from shared.rollout.model import EndpointRef
from shared.rollout.observation import Observation
from shared.rollout.prediction_policy import PredictionCheck
from shared.rollout.stages import analysis_window
from shared.rollout.tally import PredictionTally

log = logging.getLogger("safe_rollout")
SAMPLE_CACHE = timedelta(minutes=5)  # a sample file or the collected inputs are read again after this
# A tick spends at most this long scoring inputs (the rest are scored on later ticks): other
# rollouts share the tick (functions/reconcile_timer.py, the service's tick budget).
SCORING_TIME_BUDGET = timedelta(seconds=20)


def _key(source: int, within: str) -> str:
    """A sample's key: the source's place in the policy's order (inline rows, url, data asset,
    collected inputs), then its key within the source. Keys sort the way `samples` lists them."""
    return f"{source}|{within}"


def _pinned_version(tally: PredictionTally | None) -> str | None:
    """The data asset version the comparison has been reading, from the last input's key."""
    if tally is None or not tally.last_key.startswith("2|"):
        return None
    return tally.last_key.split("|")[1] or None


def next_input(samples: list[Sample], tally: PredictionTally | None) -> int:
    """Where to go on in `samples`: just after the last input scored, found by its key, so inputs
    are neither scored twice nor skipped while the collected window moves on (older hours age out,
    new ones arrive). A tally from before keys were kept goes on by position."""
    if tally is None:
        return 0
    if tally.last_key:
        return bisect.bisect_right([s.key for s in samples], tally.last_key)
    return tally.cursor


class ModelChecks:
    def __init__(
        self, *, scorer: Any, inputs: Any = None, kpis: Any = None, clock: Any, data_assets: Any = None
    ) -> None:
        self._scorer = scorer  # PairedScorer
        self._inputs = inputs  # BlobInputs (None: only inline rows can be used)
        self._data_assets = data_assets  # DataAssetInputs (None: a data_asset source holds, saying so)
        self._kpis = kpis  # KpiQueries (None: KPI checks hold, saying no query source is configured)
        self._clock = clock
        self._cache: dict[str, tuple[datetime, list[Sample]]] = {}

    # -- inputs -----------------------------------------------------------------------------------

    def _cached(self, key: str, now: datetime, read: Any) -> list[Sample]:
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < SAMPLE_CACHE:
            return hit[1]
        samples: list[Sample] = read()
        self._cache[key] = (now, samples)
        return samples

    def samples(
        self,
        check: PredictionCheck,
        endpoint: str,
        blue: str,
        now: datetime,
        *,
        ref: EndpointRef | None = None,
        tally: PredictionTally | None = None,
    ) -> tuple[list[Sample], str]:
        src = check.inputs
        out = [
            Sample(r["input"], None if r.get("label") is None else str(r["label"]), _key(0, f"{i:08d}"))
            for i, r in enumerate(src.rows)
        ]
        used = [f"{len(src.rows)} inline rows"] if src.rows else []
        if (src.url is not None or src.data_collector is not None) and self._inputs is None:
            raise ProviderError("no Blob storage client is configured to read the inputs")
        if src.url is not None:
            url = src.url
            found = self._cached(url, now, lambda: self._inputs.read_sample(url))
            out += [Sample(x.body, x.label, _key(1, f"{i:08d}")) for i, x in enumerate(found)]
            used.append(f"{len(found)} from {url.split('?')[0]}")
        if src.data_asset is not None:
            asset = src.data_asset
            if self._data_assets is None or ref is None:
                raise ProviderError("no Azure ML client is configured to read the data asset")
            pinned = _pinned_version(tally)
            reader, where = self._data_assets, ref

            def read_asset() -> list[Sample]:
                # each input's key holds the version read: `@latest` stays on it for the rollout
                found, version = reader.read_pinned(asset, where, pinned)
                return [Sample(x.body, x.label, _key(2, f"{version}|{i:08d}")) for i, x in enumerate(found)]

            found = self._cached(f"{ref.workspace.arm_id.lower()}|{asset}|{pinned or ''}", now, read_asset)
            out += found
            version = found[0].key.split("|")[1] if found else (pinned or "")
            shown = f"{asset} (version {version})" if version and not asset.endswith(f":{version}") else asset
            used.append(f"{len(found)} from {shown}")
        if src.data_collector is not None:
            dc = src.data_collector
            key = f"{dc.account_url}/{dc.container}/{endpoint}/{blue}/{dc.collection}"
            found = self._cached(key, now, lambda: self._inputs.read_collected(dc, endpoint, blue, now, wrap=dc.wrap))
            # oldest first, in key order (hour, file, line): new hours add to the end
            out += sorted((Sample(x.body, x.label, _key(3, x.key)) for x in found), key=lambda x: x.key)
            used.append(f"{len(found)} collected from {blue} ({dc.collection})")
        return out, ", ".join(used)

    # -- observing --------------------------------------------------------------------------------

    def observe(self, stored: StoredRollout, observation: Observation) -> Observation:
        rollout, policy = stored.rollout, stored.policy
        endpoint = observation.endpoint
        if stored.policy_error is not None or endpoint is None or rollout.blue is None:
            return observation
        now = self._clock.now()
        update: dict[str, Any] = {}
        check = policy.predictions
        green = endpoint.deployment(rollout.green)
        if (
            check is not None
            and shadow.comparing_predictions(rollout, policy)
            and green is not None
            and green.provisioning_state == "Succeeded"
        ):
            due = predictions.inputs_due(check, rollout.predictions, now)
            if due > 0:
                tally = rollout.predictions
                try:
                    samples, source = self.samples(
                        check, rollout.endpoint.name, rollout.blue, now, ref=rollout.endpoint, tally=tally
                    )
                    cursor = next_input(samples, tally)
                    chosen = samples[cursor : cursor + due]
                    pairs = self._scorer.score(
                        rollout.endpoint,
                        rollout.blue,
                        rollout.green,
                        check,
                        chosen,
                        time_budget=SCORING_TIME_BUDGET,
                    )
                    scored = len(pairs)  # the time budget may have stopped the batch early
                    update["predictions"] = predictions.PredictionBatch(
                        at=now,
                        pairs=tuple(pairs),
                        next_cursor=cursor + scored,
                        last_key=chosen[scored - 1].key if scored else (tally.last_key if tally else ""),
                        exhausted=cursor + scored >= len(samples),
                        source=source,
                    )
                except ProviderError as exc:
                    log.warning("rollout %s: inputs not scored, will retry: %s", rollout.id, exc)
                    update["predictions_error"] = str(exc)
        if shadow.judging_kpis(rollout, policy):
            window = analysis_window(rollout, policy, now)
            if window is not None:
                update["kpis"] = tuple(self._kpi(k, stored, window) for k in policy.kpis)
        return observation.model_copy(update=update) if update else observation

    def _kpi(self, kpi: Any, stored: StoredRollout, window: tuple[datetime, datetime]) -> KpiReading:
        rollout = stored.rollout
        if self._kpis is None:
            return KpiReading(name=kpi.name, error="no Log Analytics client is configured for KPI queries")
        assert rollout.blue is not None
        reading: KpiReading = self._kpis.read(kpi, rollout.endpoint, rollout.blue, rollout.green, *window)
        return reading
