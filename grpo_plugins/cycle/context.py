"""What an iterative cycle hands to ``on_cycle_end``: a typed, read-only view of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..host import RewardConfig


@dataclass(frozen=True)
class CycleContext:
    """The run a cycle belongs to, for plugins that retrain a reward model at its end."""

    cycle: int
    run_dir: Path
    rewards: tuple[RewardConfig, ...]  # the run's reward configs, as validated
    buffer_dir: Path  # the labelled-rollout replay buffer (grpo_plugins.replay)
    history_share: float  # share of each training batch to draw from older cycles
    seed: int  # the run's seed; derive per-cycle seeds from it
    policy_dir: Path  # the policy at the end of this cycle (save_pretrained folder)
