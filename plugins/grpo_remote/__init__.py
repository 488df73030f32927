"""Built-in ``remote`` plugin: score on other machines' ``grpo-plugins serve`` processes, spread over several, with retries."""

from grpo_plugins import hookimpl

from .reward import RemoteReward


@hookimpl
def register_rewards(register):
    register(RemoteReward)
