"""The ``inconsistency`` monitor: more and more answers are not what their own steps derived.

It reads the step reward's answer-step verdict (``math_steps``: ``info.answer_agrees``, reported
whether or not its ``answer_step`` check pays for it; None where the steps derived nothing, not
counted); see share.py for when it fires."""

from __future__ import annotations

from pydantic import Field

from .share import ShareMonitor, ShareOptions


class InconsistencyOptions(ShareOptions):
    reward: str = Field("math_steps", description="step reward label whose info.answer_agrees is read")


class Inconsistency(ShareMonitor):
    name = "inconsistency"
    description = "the share of answers not derived from their own steps rises"
    Options = InconsistencyOptions
    what = "share of answers not derived from their own steps"

    def share(self, batch):
        verdicts = [r.info.get("answer_agrees") for r in batch.results.get(self.options.reward) or ()]
        verdicts = [v for v in verdicts if v is not None]
        if not verdicts:
            return None
        return sum(not v for v in verdicts) / len(verdicts), len(verdicts)
