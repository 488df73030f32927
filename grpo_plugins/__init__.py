"""grpo-plugins: pluggable verifiable rewards and a GRPO trainer for language models.

The public API a plugin may use is what this module exports plus the modules in ``PUBLIC_MODULES``;
built-in plugins use nothing else (tests/test_layout.py checks it)."""

from .cycle.context import CycleContext
from .errors import MissingDependency, SettingError, UserError, require
from .hookspecs import hookimpl, hookspec
from .host import RewardError, RewardHost, RewardTimeout, Scores
from .manager import PluginManager, UnknownRewardError, get_plugin_manager
from .rewards import OptionsError, Reward, RewardConfig, RewardOptions, RewardResult, Sample
from .trl import as_async_trl_reward_func, as_trl_reward_func, function_reward, samples_from_columns

__version__ = "0.1.0"

#: documented modules a plugin may import from (besides this package's own exports)
PUBLIC_MODULES = (
    "grpo_plugins.config",  # parse_override, RunConfig, ConfigError
    "grpo_plugins.continuations",  # correct shares of sampled continuations (step labels, progress)
    "grpo_plugins.errors",
    "grpo_plugins.io",  # JSONL in and out, atomic writes
    "grpo_plugins.monitors",  # the Monitor API (register_monitors)
    "grpo_plugins.steps",  # step spans and the char -> token mapping
    "grpo_plugins.stop",  # the Ctrl-C / SIGTERM stop flag long loops poll
    "grpo_plugins.trl",
    "grpo_plugins.replay",  # the crash-safe replay buffer (reward-model plugins train from it)
)

__all__ = [
    "hookimpl",
    "MissingDependency",
    "SettingError",
    "require",
    "UserError",
    "hookspec",
    "Reward",
    "RewardOptions",
    "RewardResult",
    "Sample",
    "OptionsError",
    "RewardConfig",
    "RewardHost",
    "RewardError",
    "RewardTimeout",
    "Scores",
    "PluginManager",
    "UnknownRewardError",
    "get_plugin_manager",
    "CycleContext",
    "function_reward",
    "as_trl_reward_func",
    "as_async_trl_reward_func",
    "samples_from_columns",
]
