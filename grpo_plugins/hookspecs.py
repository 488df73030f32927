"""The hooks a grpo-plugins plugin may implement. Hooks only register, observe or return.

Implementations may take fewer arguments than a spec names (pluggy passes only those they ask
for), so specs can gain arguments without breaking plugins.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "grpo_plugins"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_rewards(register: Callable[..., None]) -> None:
    """Register reward classes: call ``register(RewardClass, aliases=("other_name",))``."""


@hookspec(historic=True)
def add_hookspecs(manager: Any) -> None:
    """Add a plugin's own hook specifications: ``manager.add_hookspecs(module)`` (as pytest_addhooks)."""


@hookspec
def describe_plugins(manager: Any) -> dict:
    """Extra fields for ``grpo-plugins plugins``: return {plugin name: {field: JSON value}}."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``grpo-plugins`` click group passed as ``cli``."""


@hookspec
def on_batch_scored(samples: list, results: dict, metrics: dict, step: int | None) -> None:
    """Observe a scored batch: samples, {reward name: [RewardResult]}, host metrics, trainer step."""


@hookspec
def on_rollouts_collected(rollouts: list, step: int | None, cycle: int | None) -> None:
    """Observe rollouts after generation and scoring (the iterative cycle keeps them here)."""


# ``cycle`` and ``run_dir`` repeat ``context.cycle`` / ``context.run_dir`` and are deprecated: they stay in
# the spec only because pluggy refuses to register an implementation that names an argument the spec
# lacks. The cycle passes them, with a DeprecationWarning naming the plugin, to implementations that ask.
@hookspec
def on_cycle_end(context: Any, cycle: int, run_dir: str) -> dict | None:
    """End of an iterative RL cycle (``context``: a CycleContext): retrain here; return metrics to merge."""


@hookspec
def register_monitors(register: Callable[..., None]) -> None:
    """Register monitor classes (``register(MonitorClass)``): each observes scored batches and returns alerts."""
