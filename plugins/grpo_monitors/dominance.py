"""The ``dominance`` monitor: process (step-reward) credit swamps outcome credit by more than a factor.

It reads the two terms' mean |advantage| per token the trainer logs when both exist
(``adv/process_mean_abs``, ``adv/outcome_mean_abs``, before the process scale c, and
``adv/process_scale``), and fires when their ratio's median over the last ``window`` steps that hold
both exceeds ``factor``; once per episode (again only after the ratio has fallen back)."""

from __future__ import annotations

import math
import statistics

from pydantic import Field

from grpo_plugins.monitors import Monitor, MonitorOptions

PROCESS, OUTCOME, SCALE = "adv/process_mean_abs", "adv/outcome_mean_abs", "adv/process_scale"


class DominanceOptions(MonitorOptions):
    factor: float = Field(3.0, gt=1, description="alert when process credit exceeds outcome credit this many times")
    window: int = Field(5, ge=1, description="the median ratio over this many steps decides (one step is noise)")
    as_trained: bool = Field(True, description="compare the process term as trained (times adv/process_scale); "
                                               "false = before the scale")


def ratio(row: dict, as_trained: bool) -> float | None:
    """Process over outcome mean |advantage| in one metrics row (inf when only the process term is non-zero);
    None when the row lacks them or both are zero."""
    p, o = row.get(PROCESS), row.get(OUTCOME)
    if not isinstance(p, (int, float)) or not isinstance(o, (int, float)):
        return None
    if as_trained:
        p *= row.get(SCALE, 1.0) if isinstance(row.get(SCALE), (int, float)) else 1.0
    if o > 0:
        return p / o
    return math.inf if p > 0 else None


class Dominance(Monitor):
    name = "dominance"
    description = "process credit swamps outcome credit by more than a factor"
    Options = DominanceOptions

    def __init__(self, options=None, label=None):
        super().__init__(options, label)
        self.firing = False

    def watched(self, row):
        return [PROCESS, OUTCOME]

    def observe(self, batch):
        o = self.options
        ratios = [(r["step"], x) for r in batch.history if (x := ratio(r, o.as_trained)) is not None][-o.window:]
        if len(ratios) < o.window or ratios[-1][0] != batch.step:
            return []
        median = statistics.median(x for _, x in ratios)
        if median <= o.factor:
            self.firing = False
            return []
        if self.firing:
            return []
        self.firing = True
        how = "as trained" if o.as_trained else "before the process scale"
        return [self.alert(f"process credit is {median:.3g}x outcome credit (median of {PROCESS} / {OUTCOME}, {how}, "
                           f"steps {ratios[0][0]}-{ratios[-1][0]}; factor {o.factor:g}): the step reward decides "
                           f"what is learned", value=median)]
