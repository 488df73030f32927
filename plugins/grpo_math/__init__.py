"""Built-in ``math`` plugin: final-answer checking with exact, tolerant and symbolic equivalence,
and ``math_steps``, which checks each intermediate claim of a reasoning trace."""

from grpo_plugins import hookimpl, require


@hookimpl
def register_rewards(register):
    require("sympy", install="pip install 'grpo-plugins[math]'")
    from .reward import MathReward
    from .steps_reward import MathStepsReward

    register(MathReward)
    register(MathStepsReward)
