"""Built-in ``math`` plugin: final-answer checking with exact, tolerant and symbolic equivalence."""

from grpo_plugins import hookimpl

from .reward import MathReward


@hookimpl
def register_rewards(register):
    register(MathReward)
