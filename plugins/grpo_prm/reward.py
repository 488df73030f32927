"""The ``prm`` reward: a process reward model scores each reasoning step of a completion."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

from .options import PRMRetrainOptions
from grpo_plugins.steps import SplitRule, StepFormat, aggregate_steps

Aggregate = Literal["none", "min", "product", "last", "mean"]


def aggregate(values: list[float], how: Aggregate) -> float | None:
    """One outcome value from step values (min | product | last | mean); None for 'none' or no steps."""
    return None if how == "none" else aggregate_steps(values, how)


class PRMOptions(RewardOptions):
    model: str = Field(description="directory of a PRM saved by `grpo-plugins prm train` (or the cycle)")
    split: Optional[SplitRule] = Field(None, description="blank_line | newline | step_prefix | tag; "
                                                          "null = the rule the PRM was trained with")
    tag: Optional[str] = Field(None, description="step tag for split: tag (null = the PRM's)")
    step_pattern: Optional[str] = Field(None, description="regex that starts a step for split: step_prefix")
    aggregate: Aggregate = Field("none", description="also give an outcome value: min | product | last | mean")
    batch_size: int = Field(16, ge=1, description="completions per forward pass")
    max_length: int = Field(1024, ge=8, description="tokens kept (from the right) of prompt + completion")
    device: str = Field("cpu", description="torch device for the PRM")
    missing_model: Literal["error", "skip"] = Field(
        "error", description="skip: score no steps while `model` does not exist yet (first RL cycle)")
    retrain: Optional[PRMRetrainOptions] = Field(
        None, description="retrain this PRM at the end of each RL cycle (`grpo-plugins cycle`); null = never")


class PRMReward(Reward):
    """Process reward: P(step is good) for each step, read at the step's last token."""

    name = "prm"
    granularity = "step"
    Options = PRMOptions
    description = "process reward model: a score per reasoning step (aggregate gives an outcome value)"

    def __init__(self, options=None):
        super().__init__(options)
        self._prm = None
        self._lock = threading.Lock()

    @property
    def prm(self):
        """The model, loaded on first use so listing or checking configs stays cheap."""
        with self._lock:
            if self._prm is None:
                from .model import ProcessRewardModel  # torch loads only when a PRM scores

                o = self.options
                prm = ProcessRewardModel.load(o.model, device=o.device, max_length=o.max_length)
                prm.step_format = prm.step_format.override(o.split, o.tag, o.step_pattern)
                self._prm = prm
            return self._prm

    @property
    def step_format(self) -> StepFormat:
        """How this reward cuts steps (the cycle labels with the same): options over the model's format."""
        o = self.options
        if not Path(o.model).exists():  # first cycle before any PRM exists: the options alone
            return StepFormat().override(o.split, o.tag, o.step_pattern)
        return self.prm.step_format

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        if self.options.missing_model == "skip" and not Path(self.options.model).exists():
            return [RewardResult(None, steps=[], info={"status": "no_model"}) for _ in samples]
        scored = self.prm.score_texts([s.prompt_text for s in samples], [s.text for s in samples],
                                      self.options.batch_size)
        out = []
        for steps in scored:
            kept = [(s, e, v) for s, e, v in steps if v is not None]
            info = {"status": "scored" if kept else "no_steps", "n_steps": len(steps)}
            if len(kept) < len(steps):
                info["truncated_steps"] = len(steps) - len(kept)
            value = aggregate([v for _, _, v in kept], self.options.aggregate)
            out.append(RewardResult(value=value, steps=kept, info=info))
        return out

    def close(self) -> None:
        self._prm = None
