"""The shared core of the per-sample monitors: a share of completions (with no answer, whose two
verifiers disagree, whose answer its steps do not derive) that rises from where it started.

Each step the monitor computes its share from the scored batch and records it as metric
``monitors/LABEL/share``; a step without the results it needs (an offline replay of a row without
samples) keeps the share the live run recorded, if any. It fires when the mean share over the last
``window`` steps exceeds the mean over the first ``baseline`` steps by ``min_rise`` and a one-sided
Mann-Kendall test over those ``window`` steps says it is rising (the window is the steps after the
start, so the first verdict comes ``MIN_RECENT`` steps after it); once per episode."""

from __future__ import annotations

import statistics

from pydantic import Field

from grpo_plugins.monitors import Monitor, MonitorOptions

from .divergence import mann_kendall

MIN_RECENT = 6  # steps after the start before a rise is judged (a one-sided Mann-Kendall p can beat 0.01 at 6)


class ShareOptions(MonitorOptions):
    baseline: int = Field(10, ge=1, description="the first this many steps with a share are the start")
    window: int = Field(20, ge=6, description="the last this many steps after the start are compared with it")
    min_rise: float = Field(0.15, gt=0, le=1, description="the window's mean share must exceed the start's by this")
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided Mann-Kendall p-value the rise must beat")
    min_samples: int = Field(4, ge=1, description="a step with fewer counted completions records no share")


class ShareMonitor(Monitor):
    """Base: subclasses set ``what`` (the alert's words) and ``share(batch) -> (share, n) | None``."""

    Options = ShareOptions
    what = "share"

    def __init__(self, options=None, label=None):
        super().__init__(options, label)
        self.firing = False

    def share(self, batch) -> tuple[float, int] | None:  # pragma: no cover - abstract
        """(share, completions counted) on this batch; None when the batch lacks what it needs."""
        raise NotImplementedError

    def watched(self, row):
        return [f"monitors/{self.label}/share"]

    def observe(self, batch):
        o, key = self.options, f"monitors/{self.label}/share"
        got = self.share(batch)
        if got is not None and got[1] >= o.min_samples:
            batch.record(self.label, "share", got[0])
        steps, values = batch.series(key)
        # the window is the steps after the start, at most ``window`` of them: a collapse right after
        # the start is caught within MIN_RECENT steps, not only once a whole window has passed
        recent, recent_steps = values[o.baseline:][-o.window:], steps[o.baseline:][-o.window:]
        if len(recent) < MIN_RECENT or steps[-1] != batch.step:
            return []
        start = statistics.fmean(values[:o.baseline])
        rise = statistics.fmean(recent) - start
        if rise < o.min_rise or mann_kendall(recent_steps, recent, "up") >= o.alpha:
            self.firing = False
            return []
        if self.firing:
            return []
        self.firing = True
        return [self.alert(f"{self.what} rose from {start:.3g} (first {o.baseline} steps) to "
                           f"{statistics.fmean(recent):.3g} (steps {recent_steps[0]}-{recent_steps[-1]}; {key})",
                           value=rise)]
