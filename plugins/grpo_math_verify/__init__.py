"""Optional ``math_verify`` plugin: Hugging Face math-verify as a reward, to cross-check ``math`` against it.

Install with ``pip install 'grpo-plugins[math_verify]'``. Without the library the plugin still loads:
``grpo-plugins plugins`` shows the one-line fix, and using the reward fails with that line.
"""

from grpo_plugins import hookimpl

from .reward import INSTALL_HINT, MathVerifyReward, available


@hookimpl
def register_rewards(register):
    register(MathVerifyReward)


@hookimpl
def describe_plugins(manager):
    if "math_verify" not in manager.plugin_names():
        return {}
    return {"math_verify": {"library": "math-verify installed" if available() else f"missing: {INSTALL_HINT}"}}
