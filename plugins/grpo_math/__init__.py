"""Built-in ``math`` plugin: final-answer checking with exact, tolerant and symbolic equivalence."""

from grpo_plugins import hookimpl

from .reward import MathReward
from .steps_reward import MathStepsReward


@hookimpl
def register_rewards(register):
    register(MathReward)
    register(MathStepsReward)
