"""The hooks a grpo-plugins plugin may implement. Hooks only register or observe.

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


@hookspec
def register_sandbox_backends(register: Callable[[str, type], None]) -> None:
    """Register code-execution backends: call ``register("name", BackendClass)``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``grpo-plugins`` click group passed as ``cli``."""


@hookspec
def on_batch_scored(samples: list, results: dict, metrics: dict, step: int | None) -> None:
    """Observe a scored batch: samples, {reward name: [RewardResult]}, host metrics, trainer step."""


@hookspec
def on_rollouts_collected(rollouts: list, step: int | None, cycle: int | None) -> None:
    """Observe rollouts after generation and scoring (the iterative cycle keeps them here)."""


@hookspec
def on_cycle_end(cycle: int, run_dir: str, context: dict) -> None:
    """End of an iterative RL cycle: reward models retrain here; add metrics to ``context["metrics"]``."""
