"""What a simulated model version answers: a deterministic function of the request body.

Every version shares one base model (a score in [0, 1) from a hash of the input, and a class from
the score), so two versions agree unless a scenario says otherwise: `disagree` flips the label of
that share of inputs (chosen by a hash of the input and `salt`, so the same inputs every time),
`score_shift` moves every score, `swap` exchanges two labels (a label map off by one). Latency and
errors are the Scenario's business; a Predictor changes only what the answer says.

The answer's shape: `{"label": "...", "score": 0.73}` (a policy points at `/label` and `/score`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

CLASSES = ("legit", "review", "fraud")
# The base model's class thresholds on its score: legit below 0.6, review below 0.85, fraud above.
THRESHOLDS = (0.6, 0.85)


def _unit(text: str) -> float:
    """A number in [0, 1) from a hash: the same text always gives the same number."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def base_score(body: Any) -> float:
    return _unit("score:" + canonical(body))


def base_label(score: float) -> str:
    if score < THRESHOLDS[0]:
        return CLASSES[0]
    if score < THRESHOLDS[1]:
        return CLASSES[1]
    return CLASSES[2]


def true_label(body: Any, accuracy: float = 0.9) -> str:
    """The label the world gives the input: the base model is right on `accuracy` of inputs."""
    label = base_label(base_score(body))
    if _unit("truth:" + canonical(body)) < accuracy:
        return label
    return CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]


@dataclass(frozen=True)
class Predictor:
    disagree: float = 0.0  # share of inputs whose label differs from the base model's
    score_shift: float = 0.0  # added to every score (clipped to [0, 1])
    swap: tuple[str, str] | None = None  # two labels exchanged
    salt: str = "v"  # which inputs disagree (different versions, different inputs)
    unreadable: float = 0.0  # share of answers without a label (a broken output schema)

    def predict(self, body: Any) -> dict[str, Any]:
        text = canonical(body)
        score = min(1.0, max(0.0, base_score(body) + self.score_shift))
        label = base_label(base_score(body))
        if self.swap is not None and label in self.swap:
            label = self.swap[1] if label == self.swap[0] else self.swap[0]
        if self.disagree and _unit(f"disagree:{self.salt}:{text}") < self.disagree:
            label = CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]
        if self.unreadable and _unit(f"unreadable:{self.salt}:{text}") < self.unreadable:
            return {"result": "ok", "score": round(score, 6)}
        return {"label": label, "score": round(score, 6)}


BASE = Predictor()


def sample_inputs(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """n distinct request bodies shaped like the fraud model's (amount, merchant, hour)."""
    out = []
    for i in range(n):
        u = _unit(f"input:{seed}:{i}")
        out.append({"data": [{"amount": round(5 + 995 * u, 2), "merchant": f"m{i % 97}", "hour": i % 24, "id": i}]})
    return out
