"""grpo-plugins: pluggable verifiable rewards and a GRPO trainer for language models."""

from .hookspecs import hookimpl, hookspec
from .host import RewardConfig, RewardError, RewardHost, RewardTimeout, Scores
from .manager import PluginManager, UnknownRewardError, get_plugin_manager
from .rewards import OptionsError, Reward, RewardOptions, RewardResult, Sample
from .trl import as_async_trl_reward_func, as_trl_reward_func, function_reward, samples_from_columns

__version__ = "0.1.0"

__all__ = [
    "hookimpl",
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
    "function_reward",
    "as_trl_reward_func",
    "as_async_trl_reward_func",
    "samples_from_columns",
]
