"""Built-in ``math`` plugin: final-answer checking with exact, tolerant and symbolic equivalence."""

from grpo_plugins import hookimpl, require


@hookimpl
def register_rewards(register):
    require("sympy", install="pip install 'grpo-plugins[math]'")
    from .reward import MathReward

    register(MathReward)
