"""The order of model versions, and what serves production now.

Azure ML model versions are strings. A workspace numbers them 1, 2, 3... unless the person
registering gives one, so they may also read "1.10" or "2024-06-rc1". The order we trust:
- both whole numbers: numeric ("10" after "9");
- both dotted numbers ("1.9", "1.10", "2.0.1"): component by component, missing parts as 0;
- the same text: equal;
- anything else cannot be ordered, and we refuse to guess: a rollout is never started (or a
  running one superseded) on an order we made up, since a wrong guess downgrades production.
"""

from __future__ import annotations

import re

from shared.rollout.model import ModelRef

_DOTTED = re.compile(r"^\d+(?:\.\d+)*$")
# A deployment's model as Azure returns it: the asset's ARM id (recorded sessions of azure-ai-ml,
# docs/AZURE-FACTS-USED.md), a registry asset id, or the short `azureml:name:version` form.
_ASSET_ID = re.compile(r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/?$", re.IGNORECASE)
_SHORT = re.compile(r"^azureml:(?P<name>[^:/]+):(?P<version>[^:/]+)$", re.IGNORECASE)


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as `a` is older than, the same as or newer than `b`; None when they cannot be ordered."""
    if a == b:
        return 0
    if _DOTTED.match(a) and _DOTTED.match(b):
        pa, pb = [int(x) for x in a.split(".")], [int(x) for x in b.split(".")]
        width = max(len(pa), len(pb))
        ka, kb = pa + [0] * (width - len(pa)), pb + [0] * (width - len(pb))
        return (ka > kb) - (ka < kb)
    return None


def model_of(asset: str | None) -> ModelRef | None:
    """The model name and version of a deployment's `model` field; None when it names none."""
    if not asset:
        return None
    found = _ASSET_ID.search(asset) or _SHORT.match(asset)
    if not found:
        return None
    return ModelRef(name=found["name"], version=found["version"])


def not_newer_reason(candidate: ModelRef, current: ModelRef | None, what: str) -> str | None:
    """Why `candidate` must not replace `current` (which serves as `what`); None if it may.

    Only versions of the same model are ordered: a different model is not a downgrade of this one.
    """
    if current is None or current.name.lower() != candidate.name.lower():
        return None
    order = compare_versions(candidate.version, current.version)
    if order is None:
        return (
            f"cannot tell whether {candidate.label} is newer than {current.label} ({what}): versions are ordered "
            "only when both are numbers such as 7 or 1.10, and a guess could downgrade production"
        )
    if order <= 0:
        newer = "the same version" if order == 0 else "a newer version"
        return f"{what} already runs {current.label}, {newer}; {candidate.label} would not move it forward"
    return None
