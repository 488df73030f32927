"""The ``disagreement`` monitor: two verifiers of the same answer disagree more than they did at start.

On up to ``sample_size`` completions a step (evenly spaced, so the same rows every step), each of the
``pair`` of configured rewards gives a pass/fail verdict: an outcome reward passes at value >=
``threshold``, a step reward (a PRM, ``math_steps``) when its lowest step value does. Completions
either reward does not apply to are not counted. See share.py for when it fires."""

from __future__ import annotations

from pydantic import Field

from .share import ShareMonitor, ShareOptions


class DisagreementOptions(ShareOptions):
    pair: tuple[str, str] = Field(("math", "math_verify"), description="the two reward labels compared")
    sample_size: int = Field(32, ge=1, description="completions compared per step")
    threshold: float = Field(0.5, description="a value (a step reward: its lowest step value) at or above it passes")


def passes(result, granularity: str, threshold: float) -> bool | None:
    """One reward's pass/fail verdict on one completion; None when it does not apply."""
    if granularity == "step":
        values = [v for _, _, v in result.steps or () if isinstance(v, float)]
        return min(values) >= threshold if values else None
    return result.value >= threshold if result.applicable else None


class Disagreement(ShareMonitor):
    name = "disagreement"
    description = "two verifiers of the same answer disagree more than at start"
    Options = DisagreementOptions

    @property
    def what(self) -> str:
        return "disagreement between {} and {}".format(*self.options.pair)

    def share(self, batch):
        o = self.options
        a, b = (batch.results.get(label) for label in o.pair)
        if not a or not b:
            return None
        n = min(len(a), len(b))
        every = max(1, n // o.sample_size)
        ga, gb = (batch.granularity.get(label, "outcome") for label in o.pair)
        pairs = [(passes(a[i], ga, o.threshold), passes(b[i], gb, o.threshold)) for i in range(0, n, every)]
        pairs = [(x, y) for x, y in pairs[:o.sample_size] if x is not None and y is not None]
        if not pairs:
            return None
        return sum(x != y for x, y in pairs) / len(pairs), len(pairs)
