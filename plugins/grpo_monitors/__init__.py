"""Built-in ``monitors`` plugin: reward-hacking monitors over each step's metrics (divergence, dominance)."""

from grpo_plugins import hookimpl

from .divergence import Divergence
from .dominance import Dominance


@hookimpl
def register_monitors(register):
    register(Divergence)
    register(Dominance)
