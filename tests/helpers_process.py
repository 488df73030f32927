"""Rewards that must be importable by module path, for tests that run them in worker processes."""

import os
import time

from grpo_plugins import Reward, RewardResult


class PidReward(Reward):
    """Reports the process id it ran in (executor = process)."""

    name = "pid"
    executor = "process"

    def score(self, samples):
        return [RewardResult(1.0, info={"pid": os.getpid()}) for _ in samples]


class HangingProcessReward(Reward):
    """Sleeps far past any test timeout, in a worker process."""

    name = "hang_proc"
    executor = "process"

    def score(self, samples):
        if any(s.text == "hang" for s in samples):
            time.sleep(3600)
        return [RewardResult(2.0, info={"pid": os.getpid()}) for _ in samples]
