"""The serve tests' rewards as a ``--plugin`` file, for servers run as subprocesses."""

import json
import os
import time

from grpo_plugins import Reward, RewardOptions, RewardResult, hookimpl


class SleepOptions(RewardOptions):
    seconds: float = 0.0
    log: str | None = None  # append the ids of the rows scored, once scoring finished


class Sleepy(Reward):
    name = "sleepy"
    Options = SleepOptions

    def score(self, samples):
        time.sleep(max([self.options.seconds] + [float(s.columns.get("delay", 0)) for s in samples]))
        if self.options.log:
            with open(self.options.log, "a") as fh:
                fh.write(json.dumps([s.columns.get("id") for s in samples]) + "\n")
        return [RewardResult(float(s.columns.get("id", 1)), info={"status": "slept", "pid": os.getpid()})
                for s in samples]


@hookimpl
def register_rewards(register):
    register(Sleepy)
