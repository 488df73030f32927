"""The ``length_drift`` monitor: completion length trends away from its start while the reward rises.

Over the last ``window`` steps, a one-sided Mann-Kendall test for each trend's sign (length up or
down, ``reward`` up) and a Theil-Sen line for the length's size: it fires when the fitted length at
the window's end is at least ``min_change`` (a fraction) away from the mean of the first
``baseline`` steps, in the direction of its trend, while the reward rises; once per episode."""

from __future__ import annotations

import statistics

from pydantic import Field

from grpo_plugins import require
from grpo_plugins.monitors import Monitor, MonitorOptions

from .divergence import mann_kendall, theil_sen
from .series import metric_of

LENGTH = "completions/mean_length"


class LengthDriftOptions(MonitorOptions):
    reward: str = Field("reward", description="what must be rising: ``reward`` (the summed reward), a reward "
                                              "label or a metric key")
    length: str = Field(LENGTH, description="the length metric")
    baseline: int = Field(10, ge=1, description="the first this many steps are the start")
    window: int = Field(20, ge=4, description="steps the trends are read over")
    min_change: float = Field(0.5, gt=0, description="relative change of the fitted length from the start")
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided Mann-Kendall p-value each trend must beat")


class LengthDrift(Monitor):
    name = "length_drift"
    description = "completion length trends away from its start while the reward rises"
    Options = LengthDriftOptions

    def __init__(self, options=None, label=None):
        require("scipy", install="pip install scipy (the length_drift monitor's trend tests)")
        super().__init__(options, label)
        self.firing = False

    def watched(self, row):
        return [self.options.length, metric_of(row, self.options.reward)]

    def observe(self, batch):
        o = self.options
        steps, lengths = batch.series(o.length)
        if len(lengths) < o.baseline + o.window or steps[-1] != batch.step:
            return []
        start = statistics.fmean(lengths[:o.baseline])
        steps, lengths = steps[-o.window:], lengths[-o.window:]
        direction = "up" if lengths[-1] >= start else "down"
        drifting = start > 0 and mann_kendall(steps, lengths, direction) < o.alpha
        if drifting:
            end = theil_sen(steps, lengths)[1]
            change = (end - start) / start
            drifting = abs(change) >= o.min_change and (change > 0) == (direction == "up")
        if drifting:
            r_steps, rewards = batch.series(metric_of(batch.metrics, o.reward), o.window)
            drifting = len(rewards) >= 4 and mann_kendall(r_steps, rewards, "up") < o.alpha
        if not drifting:
            self.firing = False
            return []
        if self.firing:
            return []
        self.firing = True
        return [self.alert(f"{o.length} moved {start:.3g} -> {end:.3g} ({change:+.0%}) from the first {o.baseline} "
                           f"steps to step {steps[-1]} while {o.reward} rose: the policy may be paid for length",
                           value=change)]
