"""The iterative-RL cycle's config: a GRPO run config (TrainConfig) plus cycle, label and buffer
sections. Every section rejects unknown keys, so a typo is reported with its file and line."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..grpo.config import Section, TrainConfig


class CycleSection(Section):
    cycles: int = Field(3, ge=1, description="RL cycles to run")
    steps_per_cycle: int = Field(20, ge=1, description="GRPO steps in each cycle's policy phase")
    keep_rollouts: int = Field(512, ge=1, description="rollouts kept per cycle (the latest) for step labelling")
    reference_reset: bool = Field(True, description="reset the KL reference to the policy after each cycle")


class LabelSection(Section):
    """Math-Shepherd step labels: N policy continuations per step prefix, graded by a checker reward."""

    source: str = Field(
        "math_shepherd", min_length=1,
        description="math_shepherd: continuations graded by `reward`; else the label (in rewards:) or name of a "
                    "step reward whose scored steps are the labels, e.g. math_steps (no continuations; a step "
                    "it cannot check gets no label)")
    reward: str = Field("math", description="label of the reward that grades final answers (in rewards:, "
                                            "or a registered reward name)")
    threshold: float = Field(1.0, description="a continuation is correct when that reward's value >= threshold")
    continuations: int = Field(4, ge=1, description="N: continuations sampled per step prefix")
    max_rollouts: int = Field(64, ge=1, description="rollouts labelled per cycle (sampled from those kept)")
    budget: int | None = Field(None, ge=1, description="cap on continuations sampled per cycle; null = none")
    max_new_tokens: int | None = Field(None, gt=0, description="default: rollout.max_new_tokens")
    temperature: float | None = Field(None, gt=0, description="default: rollout.temperature")
    batch_size: int = Field(256, ge=1, description="continuations generated at once")
    split: Literal["blank_line", "newline", "step_prefix", "tag"] | None = Field(
        None, description="step split rule when no configured step reward has a step format (default blank_line); "
                          "otherwise the reward's format is used")
    tag: str | None = Field(None, description="step tag for split: tag (same rule)")
    step_pattern: str | None = Field(None, description="regex that starts a step for split: step_prefix (same rule)")


class BufferSection(Section):
    capacity: int | None = Field(100_000, ge=1, description="labelled rollouts kept on disk; null = unbounded")
    eviction: Literal["fifo", "random"] = Field("fifo", description="fifo: oldest first; random: among older cycles")
    history_share: float = Field(0.1, ge=0, lt=1, description="share of each PRM batch drawn from older cycles")


class CycleConfig(TrainConfig):
    """A GRPO run config plus the iterative cycle: `grpo-plugins cycle CONFIG.yaml`."""

    cycle: CycleSection = Field(default_factory=CycleSection)
    label: LabelSection = Field(default_factory=LabelSection)
    buffer: BufferSection = Field(default_factory=BufferSection)
