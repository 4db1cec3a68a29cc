"""A traffic simulator for the detection benchmark that does not flatter per-request tests.

One endpoint, two deployments (blue serves, green is the candidate), generated minute by minute:

- Load: users send a Poisson number of requests a minute around a diurnal curve (a random phase
  per seed, +-30%), with bursts (about one an hour, 2-5 minutes at 1.5-3x).
- Noise shared by blue and green, per minute: a latency factor (lognormal, plus slower under
  load) and an error-rate factor (gamma, mean 1: errors are overdispersed, not binomial); shared
  error bursts (a downstream dependency failing: both deployments, +1-4 points for 1-3 minutes).
  Each deployment also has its own small per-minute latency noise and its own rare, small error
  blips (a replica restarting: +0.3-1 point for a minute, about one every 5 hours), drawn from the
  same process for blue and green.
- Requests: every user request has a latent difficulty z; a deployment answers it in
  median * exp(sigma * (rho*z + sqrt(1-rho^2)*eps)), so a mirrored copy's latency correlates with
  the original's (rho = 0.7). Live requests are routed by the split in force (multinomial);
  mirrored copies are a random share of the live requests.
- Green warms up: the first requests after provisioning are slow (cold start) and the first
  minutes somewhat slower. Blue is warm.
- Traffic changes take effect like Azure's, about 20 s after the order: at minute granularity the
  split applies from the next minute, and now and then (15%) an update takes a minute longer. The
  endpoint reads provisioning state "Updating" (and the old split) until the new split applies.
- Scenario behaviour that depends on time (memory leak ending in OOM restarts, latency spikes) or
  on load (capacity) is evaluated per minute.

The environment (load, bursts, noise) comes from its own random stream, so every policy run on
the same seed sees the same users' load and the same shared noise, whatever split it sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from shared.adapters.monitor import is_error
from shared.rollout.model import TrafficSplit

# -- the environment ------------------------------------------------------------------------------

DIURNAL_AMPLITUDE = 0.3
DIURNAL_PERIOD = 1440.0  # minutes
BURSTS_PER_HOUR = 1.0
SHARED_LATENCY_SIGMA = 0.06  # per-minute latency factor shared by both deployments
OWN_LATENCY_SIGMA = 0.03  # each deployment's own per-minute latency noise
LOAD_LATENCY_SLOPE = 0.15  # both get slower when the endpoint is busier than usual
ERROR_GAMMA_SHAPE = 3.0  # per-minute error-rate factor, mean 1
SHARED_ERROR_BURSTS_PER_HOUR = 0.5
OWN_ERROR_BURSTS_PER_HOUR = 0.2
LATENT_RHO = 0.7  # correlation (log scale) of a request's latency on blue and on green
COLD_REQUESTS = 10  # green's first requests after provisioning, 4x slower
COLD_FACTOR = 4.0
WARM_UP = 0.15  # green's first minutes: latency x (1 + WARM_UP * exp(-minutes))
SLOW_UPDATE_SHARE = 0.15  # traffic updates that take more than a minute to apply

STATUSES = (503, 424, 408, 429)
MODEL_STATUS = {503: "503", 424: "500", 408: "408", 429: "429"}


@dataclass(frozen=True)
class Noise:
    """The environment's imperfections (the defaults are the benchmark's; zero one to see its effect)."""

    bursts_per_hour: float = BURSTS_PER_HOUR
    shared_latency_sigma: float = SHARED_LATENCY_SIGMA
    own_latency_sigma: float = OWN_LATENCY_SIGMA
    load_latency_slope: float = LOAD_LATENCY_SLOPE
    error_gamma_shape: float | None = ERROR_GAMMA_SHAPE  # None: no overdispersion
    shared_error_bursts_per_hour: float = SHARED_ERROR_BURSTS_PER_HOUR
    own_error_bursts_per_hour: float = OWN_ERROR_BURSTS_PER_HOUR
    cold_requests: int = COLD_REQUESTS
    warm_up: float = WARM_UP


@dataclass(frozen=True)
class Model:
    """How one deployment answers (healthy defaults are blue's)."""

    latency_ms: float = 80.0  # median
    latency_sigma: float = 0.35  # lognormal shape
    tail_rate: float = 0.0  # share of requests in a slow tail
    tail_multiplier: float = 1.0
    error_rate: float = 0.002  # 503 from the model server
    model_error_rate: float = 0.0  # the model returned 500: clients see 424
    timeout_rate: float = 0.0  # 408
    throttle_rate: float = 0.0005  # 429
    capacity_rpm: float | None = None  # above this many requests a minute: slower, and 429s
    memory_leak_per_hour: float = 0.0  # points of memory per hour of traffic; OOM restart at 97%
    spike_every: int = 0  # minutes between latency spikes (0: none), from green's first traffic
    spike_length: int = 0
    spike_factor: float = 1.0

    def scaled(self, **changes: float) -> Model:
        return replace(self, **changes)  # type: ignore[arg-type]


BLUE = Model()


@dataclass(frozen=True)
class Load:
    rpm: float = 1200.0
    diurnal_amplitude: float = DIURNAL_AMPLITUDE


@dataclass
class Minute:
    """One deployment's traffic in one minute (live and mirrored requests)."""

    requests: int
    live: int
    codes: dict[int, int]  # error status -> count (200s are the rest)
    latencies: np.ndarray
    cpu: float
    memory: float
    _percentiles: dict[float, float] = field(default_factory=dict)
    _errors: dict[tuple[str, ...], int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        if q not in self._percentiles:
            self._percentiles[q] = float(np.percentile(self.latencies, q))
        return self._percentiles[q]

    def errors(self, codes: tuple[str, ...]) -> int:
        if codes not in self._errors:
            self._errors[codes] = sum(n for s, n in self.codes.items() if is_error(str(s), MODEL_STATUS[s], codes))
        return self._errors[codes]

    @property
    def server_errors(self) -> int:
        """5xx as clients see them (a model's 500 reaches them as 424)."""
        return sum(n for s, n in self.codes.items() if s >= 500)

    @property
    def non_2xx(self) -> int:
        return sum(self.codes.values())


def _episodes(rng: np.random.Generator, horizon: int, per_hour: float, lengths: tuple[int, int]) -> list[int]:
    """Minute indices covered by Poisson-arriving episodes."""
    covered: list[int] = []
    for start in np.flatnonzero(rng.random(horizon) < per_hour / 60.0):
        covered += range(int(start), min(horizon, int(start) + int(rng.integers(lengths[0], lengths[1] + 1))))
    return covered


class Environment:
    """Load and shared noise for a whole run: a function of the seed only."""

    def __init__(self, seed: int, load: Load, horizon: int, noise: Noise) -> None:
        rng = np.random.default_rng([seed, 1])
        t = np.arange(horizon, dtype=float)
        phase = rng.uniform(0, DIURNAL_PERIOD)
        rpm = load.rpm * (1 + load.diurnal_amplitude * np.sin(2 * math.pi * (t + phase) / DIURNAL_PERIOD))
        burst = np.ones(horizon)
        for start in np.flatnonzero(rng.random(horizon) < noise.bursts_per_hour / 60.0):
            length = int(rng.integers(2, 6))
            burst[start : start + length] = np.maximum(burst[start : start + length], rng.uniform(1.5, 3.0))
        self.rpm = rpm * burst
        relative = self.rpm / load.rpm
        self.latency = np.exp(rng.normal(0, noise.shared_latency_sigma, horizon)) * (
            1 + noise.load_latency_slope * np.maximum(0.0, relative - 1)
        )
        shape = noise.error_gamma_shape
        self.error_factor = rng.gamma(shape, 1 / shape, horizon) if shape else np.ones(horizon)
        self.error_burst = np.zeros(horizon)
        for m in _episodes(rng, horizon, noise.shared_error_bursts_per_hour, (1, 3)):
            self.error_burst[m] = rng.uniform(0.01, 0.04)
        self.own_latency: dict[str, np.ndarray] = {}
        self.own_burst: dict[str, np.ndarray] = {}
        for name in ("blue", "green"):
            own = np.random.default_rng([seed, 2, len(name)])
            self.own_latency[name] = np.exp(own.normal(0, noise.own_latency_sigma, horizon))
            bursts = np.zeros(horizon)
            for m in _episodes(own, horizon, noise.own_error_bursts_per_hour, (1, 1)):
                bursts[m] = own.uniform(0.003, 0.01)
            self.own_burst[name] = bursts
        self.slow_update = np.random.default_rng([seed, 3]).random(horizon) < SLOW_UPDATE_SHARE


class Simulator:
    """Blue and green behind one endpoint; `advance(m)` generates every minute before m."""

    def __init__(
        self,
        seed: int,
        green: Model,
        *,
        load: Load | None = None,
        blue: Model = BLUE,
        horizon: int = 240,
        noise: Noise | None = None,
    ) -> None:
        self.horizon = horizon
        load = load or Load()
        self.noise = noise or Noise()
        self.env = Environment(seed, load, horizon, self.noise)
        self.base_rpm = load.rpm  # instances are sized for the usual load: CPU 45% at all of it
        self.rng = np.random.default_rng([seed, 4])
        self.query_rng = np.random.default_rng([seed, 5])  # traffic-log sampling, apart from traffic
        self.models = {"blue": blue, "green": green}
        self.data: dict[str, dict[int, Minute]] = {"blue": {}, "green": {}}
        self.generated = 0
        self.in_force: list[TrafficSplit] = []  # the split in force, per generated minute
        self.split = TrafficSplit(live={"blue": 100})
        self.ordered = self.split
        self.applies_at = 0  # the minute the ordered split takes effect
        self.first_traffic: dict[str, int] = {}
        self.served = {"blue": 0, "green": 0}  # requests served so far (cold start)
        self.user_answers = {"blue": 0, "green": 0}  # live requests answered: what users received
        self.leak_since: dict[str, int] = {}  # minute a deployment's leak started (first traffic / restart)
        self.counts_only_from: int | None = None

    # -- traffic changes ---------------------------------------------------------------------------

    def order(self, minute: int, split: TrafficSplit) -> None:
        """A traffic update ordered at the tick that starts `minute`: in force from the next minute
        (20 s or so later), or the one after for a slow update."""
        if split == self.ordered:
            return
        self.ordered = split
        delay = 2 if self.env.slow_update[min(minute, self.horizon - 1)] else 1
        self.applies_at = max(self.applies_at, minute + delay) if self.split != split else minute

    def observed(self, minute: int) -> tuple[TrafficSplit, str]:
        """What a read of the endpoint shows at the tick that starts `minute`: the split serving and
        the endpoint's provisioning state."""
        self._apply(minute)
        return self.split, "Succeeded" if self.split == self.ordered else "Updating"

    def _apply(self, minute: int) -> None:
        if self.split != self.ordered and minute >= self.applies_at:
            self.split = self.ordered

    def split_at(self, minute: int) -> TrafficSplit:
        return self.in_force[minute] if minute < len(self.in_force) else self.split

    # -- generation ------------------------------------------------------------------------------

    def advance(self, until: int) -> None:
        while self.generated < min(until, self.horizon):
            m = self.generated
            self._apply(m)
            self.in_force.append(self.split)
            self._generate(m)
            self.generated += 1

    def finish(self) -> None:
        """Play the rest of the horizon with the split where it is, counting users' answers only."""
        self.counts_only_from = self.generated
        self.advance(self.horizon)

    def _generate(self, m: int) -> None:
        split = self.split
        total = int(self.rng.poisson(self.env.rpm[m]))
        names = list(split.live)
        shares = np.array([split.live[n] for n in names], dtype=float) / 100.0
        counts = self.rng.multinomial(total, shares / shares.sum()) if names else np.zeros(0, dtype=int)
        for name, n in zip(names, counts, strict=True):
            self.user_answers[name] += int(n)
        if self.counts_only_from is not None:
            return
        z = self.rng.standard_normal(total)
        order = self.rng.permutation(total)
        start = 0
        served: dict[str, list[np.ndarray]] = {}
        live: dict[str, int] = {}
        for name, n in zip(names, counts, strict=True):
            served.setdefault(name, []).append(z[order[start : start + int(n)]])
            live[name] = live.get(name, 0) + int(n)
            start += int(n)
        for target, pct in split.mirror.items():
            served.setdefault(target, []).append(z[self.rng.random(total) < pct / 100.0])
        for name, parts in served.items():
            latent = np.concatenate(parts)
            if len(latent):
                self._serve(name, m, latent, live.get(name, 0))

    def _serve(self, name: str, m: int, z: np.ndarray, live: int) -> None:
        n = len(z)
        model = self.models[name]
        first = self.first_traffic.setdefault(name, m)
        active = m - first
        factor = self.env.latency[m] * self.env.own_latency[name][m]
        p503 = model.error_rate * self.env.error_factor[m] + self.env.error_burst[m] + self.env.own_burst[name][m]
        p429 = model.throttle_rate
        if name == "green":
            factor *= 1 + self.noise.warm_up * math.exp(-active)
        if model.spike_every and active >= model.spike_every and active % model.spike_every < model.spike_length:
            factor *= model.spike_factor
        memory = 45.0
        if model.memory_leak_per_hour:
            since = self.leak_since.setdefault(name, first)
            memory = 45.0 + model.memory_leak_per_hour * (m - since) / 60.0
            if memory >= 97.0:  # out of memory: the container restarts, requests in flight fail
                p503 += 0.2
                self.leak_since[name] = m
            factor *= 1 + 0.05 * max(0.0, memory - 85.0)
        if model.capacity_rpm:
            load = n / model.capacity_rpm
            if load > 1:
                factor *= load**2
                p429 = min(0.9, p429 + (load - 1) * 0.5)
        median = model.latency_ms * factor
        eps = self.rng.standard_normal(n)
        latencies = median * np.exp(model.latency_sigma * (LATENT_RHO * z + math.sqrt(1 - LATENT_RHO**2) * eps))
        if model.tail_rate > 0:
            latencies[self.rng.random(n) < model.tail_rate] *= model.tail_multiplier
        cold = self.noise.cold_requests - self.served[name]
        if name == "green" and cold > 0:
            latencies[:cold] *= COLD_FACTOR
        self.served[name] += n
        bad = np.clip(
            np.array([p503, model.model_error_rate * self.env.error_factor[m], model.timeout_rate, p429]), 0, 1
        )
        if bad.sum() > 1:
            bad = bad / bad.sum()
        outcome = self.rng.multinomial(n, [*bad, max(0.0, 1.0 - float(bad.sum()))])
        codes = {s: int(c) for s, c in zip(STATUSES, outcome[:4], strict=True) if c}
        cpu = float(np.clip(25 + 20 * n / self.base_rpm + self.rng.normal(0, 1.5), 0, 100))
        mem = float(np.clip(memory + self.rng.normal(0, 1.0), 0, 100))
        self.data[name][m] = Minute(requests=n, live=live, codes=codes, latencies=latencies, cpu=cpu, memory=mem)

    # -- reading ---------------------------------------------------------------------------------

    def minutes(self, name: str, start: int, end: int) -> list[tuple[int, Minute]]:
        """(minute, data) for every minute in [start, end) in which `name` served requests."""
        series = self.data[name]
        return [(m, series[m]) for m in range(max(0, start), min(end, self.generated)) if m in series]

    def minute(self, name: str, m: int) -> Minute | None:
        return self.data[name].get(m)

    def log_sample(self, name: str, start: int, end: int, size: int) -> np.ndarray:
        """At most `size` random rows of the traffic log over [start, end): what production's KQL
        (`partition by DeploymentName (sample N)`, one query for both deployments) returns."""
        parts = [d.latencies for _, d in self.minutes(name, start, end)]
        if not parts:
            return np.zeros(0)
        values = np.concatenate(parts)
        if len(values) > size:
            values = values[self.query_rng.choice(len(values), size, replace=False)]
        return values

    def first_green_minute(self) -> int | None:
        return self.first_traffic.get("green")

    def green_full_from(self) -> int | None:
        """The first minute green served all live traffic."""
        for m, split in enumerate(self.in_force):
            if split.live_of("green") == 100:
                return m
        return None


def healthy_percentile(q: float, *, seed: int = 12345, minutes: int = 120) -> float:
    """Blue's per-request percentile `q` on the simulator at the usual load (for fixed thresholds)."""
    sim = Simulator(seed, BLUE, horizon=minutes)
    sim.advance(minutes)
    values = np.concatenate([d.latencies for _, d in sim.minutes("blue", 0, minutes)])
    return float(np.percentile(values, q))
