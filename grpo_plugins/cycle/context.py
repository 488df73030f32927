"""What an iterative cycle hands to ``on_cycle_end``: a typed, read-only view of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..rewards import Reward


@dataclass(frozen=True)
class CycleContext:
    """The run a cycle belongs to, for plugins that retrain a reward model at its end.

    ``rewards`` are the run's configured rewards, live: instantiated with their options parsed once,
    by label. A plugin finds its own by class (``isinstance(reward, MyReward)``) and reads
    ``reward.options``; they are closed after the hook returns, so keep none of them."""

    cycle: int  # the cycle that just ended (0-based)
    run_dir: Path  # the cycle run's folder: a plugin may keep its own state under it
    rewards: Mapping[str, Reward]  # label -> the configured reward, read-only
    buffer_dir: Path  # the labelled-rollout replay buffer (grpo_plugins.replay)
    history_share: float  # share of each training batch to draw from older cycles
    seed: int  # the run's seed; derive per-cycle seeds from it
    policy_dir: Path  # the policy at the end of this cycle (save_pretrained folder), e.g. to label with it
