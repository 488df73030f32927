"""A complete third-party reward plugin: installed with pip, discovered through entry points."""

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, hookimpl


class LengthOptions(RewardOptions):  # unknown keys are rejected, listing the valid ones
    target: int = Field(100, gt=0, description="ideal completion length in characters")


class LengthReward(Reward):
    """1 at the target length, falling linearly to 0 at zero or twice the target."""

    name = "length"
    granularity = "outcome"  # or "step": return RewardResult(steps=[(start, end, value), ...])
    Options = LengthOptions
    description = "closeness of the completion length to a target"  # shown by `grpo-plugins rewards`

    def score(self, samples):  # one RewardResult per sample, in order
        t = self.options.target
        return [RewardResult(max(0.0, 1 - abs(len(s.text) - t) / t), info={"chars": len(s.text)}) for s in samples]


@hookimpl
def register_rewards(register):
    register(LengthReward, aliases=["target_length"])
