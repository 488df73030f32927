"""The ``divergence`` monitor: a reward component keeps rising while the outcome reward falls.

The trend of each series over the last ``window`` steps is a one-sided Mann-Kendall test (Kendall's
tau between step and value, scipy.stats.kendalltau, which corrects for ties) for its sign, and a
Theil-Sen line (scipy.stats.theilslopes) for its size: one noisy step moves neither. It fires when
a watched component rises and the outcome falls, both significantly and both by at least
``min_change`` over the window; once per episode (again only after the condition has cleared)."""

from __future__ import annotations

import math

from pydantic import Field

from grpo_plugins import require
from grpo_plugins.monitors import Monitor, MonitorOptions

from .series import is_step_reward, metric_of, reward_labels


class DivergenceOptions(MonitorOptions):
    outcome: str | None = Field(None, description="reward label (or metric key) that must not fall; "
                                                  "null = the first outcome reward")
    watch: list[str] | None = Field(None, description="reward labels (``reward`` = the summed step reward, or "
                                                      "metric keys) that must not rise while it falls; "
                                                      "null = every other reward")
    window: int = Field(20, ge=4, description="steps the trend is read over")
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided Mann-Kendall p-value each trend must beat")
    min_change: float = Field(0.05, ge=0, description="each series must move at least this much over the window "
                                                      "(Theil-Sen slope times the steps spanned)")


def mann_kendall(steps: list[int], values: list[float], direction: str) -> float:
    """One-sided Mann-Kendall p-value for a trend ``direction`` "up" or "down"; 1 for a constant series."""
    from scipy.stats import kendalltau

    tau = kendalltau(steps, values, alternative="greater" if direction == "up" else "less")
    return float(tau.pvalue) if math.isfinite(tau.pvalue) else 1.0


def theil_sen(steps: list[int], values: list[float]) -> tuple[float, float]:
    """The Theil-Sen line's values at the first and the last step."""
    from scipy.stats import theilslopes

    slope, intercept = (float(x) for x in theilslopes(values, steps)[:2])
    return intercept + slope * steps[0], intercept + slope * steps[-1]


def trend(steps: list[int], values: list[float], direction: str,
          alpha: float = 1.0) -> tuple[float, float, float, float]:
    """(Mann-Kendall p-value, Theil-Sen change over the span, fitted start, fitted end); the line only when
    p < alpha (it costs more than the test), else change 0 and both ends nan."""
    p = mann_kendall(steps, values, direction)
    if p >= alpha:
        return p, 0.0, math.nan, math.nan
    start, end = theil_sen(steps, values)
    return p, end - start, start, end


class Divergence(Monitor):
    name = "divergence"
    description = "a reward component (or the summed reward) keeps rising while the outcome reward falls"
    Options = DivergenceOptions

    def __init__(self, options=None, label=None):
        require("scipy", install="pip install scipy (the divergence monitor's trend tests)")
        import scipy.stats  # noqa: F401 - its first import takes seconds: here, not inside a training step

        super().__init__(options, label)
        self.firing: set[str] = set()  # watched metrics alerted on and not cleared since

    def watched(self, row):
        labels = reward_labels(row)
        outcome = self.options.outcome or next((lab for lab in labels if not is_step_reward(row, lab)), None)
        if outcome is None:
            return []
        watch = self.options.watch if self.options.watch is not None else [lab for lab in labels if lab != outcome]
        return [metric_of(row, outcome)] + [metric_of(row, name) for name in watch]

    def observe(self, batch):
        o, row = self.options, batch.metrics
        labels = reward_labels(row)
        outcome = o.outcome or next((lab for lab in labels if not is_step_reward(row, lab)), None)
        if outcome is None:
            return []
        down_key = metric_of(row, outcome)
        steps, values = batch.series(down_key, o.window)
        if len(values) < o.window:
            return []
        p_down, change_down, start_down, end_down = trend(steps, values, "down", o.alpha)
        falling = p_down < o.alpha and -change_down >= o.min_change
        alerts = []
        for name in o.watch if o.watch is not None else [lab for lab in labels if lab != outcome]:
            key = metric_of(row, name)
            up_steps, up_values = batch.series(key, o.window)
            rising = False
            if falling and len(up_values) >= o.window:
                p_up, change_up, start_up, end_up = trend(up_steps, up_values, "up", o.alpha)
                rising = p_up < o.alpha and change_up >= o.min_change
            if not rising:
                self.firing.discard(key)
                continue
            if key in self.firing:
                continue
            self.firing.add(key)
            alerts.append(self.alert(
                f"{key} rose {start_up:.3g} -> {end_up:.3g} while {down_key} fell {start_down:.3g} -> {end_down:.3g} "
                f"over steps {steps[0]}-{steps[-1]} (Mann-Kendall p {p_up:.2g} up, {p_down:.2g} down): "
                f"the policy may be gaming {name!r}", value=change_down))
        return alerts
