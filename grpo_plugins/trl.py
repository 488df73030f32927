"""TRL interop: TRL's column-wise reward-function convention to and from our Reward classes."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from .io import finite_or_none
from .manager import get_plugin_manager
from .rewards import Granularity, Reward, RewardResult, Sample, run_score


def samples_from_columns(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[list[int]] | None = None,
    groups: Sequence[int] | None = None,
    **columns: Sequence[Any],
) -> list[Sample]:
    """Build Samples from TRL's column-wise call convention (one list per column)."""
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for {n} completions")
    for key, col in columns.items():
        if not isinstance(col, (list, tuple)) or len(col) != n:
            raise ValueError(f"column {key!r} must be a list of {n} values")
    return [
        Sample(
            prompt=prompts[i],
            completion=completions[i],
            completion_ids=None if completion_ids is None or completion_ids[i] is None else list(completion_ids[i]),
            group=groups[i] if groups is not None else None,
            columns={k: v[i] for k, v in columns.items()},
        )
        for i in range(n)
    ]


def function_reward(
    func: Callable[..., Sequence[float | None]],
    name: str | None = None,
    granularity: Granularity = "outcome",
    description: str = "",
) -> type[Reward]:
    """Wrap a TRL-style ``f(prompts, completions, completion_ids=..., **columns)`` as a Reward class."""
    reward_name = name or func.__name__

    class FunctionReward(Reward):
        def score(self, samples: list[Sample]) -> list[RewardResult]:
            keys = sorted({k for s in samples for k in s.columns})
            cols = {k: [s.columns.get(k) for s in samples] for k in keys}
            values = func(
                prompts=[s.prompt for s in samples],
                completions=[s.completion for s in samples],
                completion_ids=[s.completion_ids for s in samples],
                **cols,
            )
            values = list(values)
            return [RewardResult(value=None if v is None else finite_or_none(float(v))) for v in values]

    FunctionReward.name = reward_name
    FunctionReward.granularity = granularity
    FunctionReward.description = description or (inspect.getdoc(func) or "").split("\n")[0]
    FunctionReward.__qualname__ = FunctionReward.__name__ = f"FunctionReward[{reward_name}]"
    FunctionReward.func = staticmethod(func)
    return FunctionReward


def as_trl_reward_func(reward: Reward | str, manager=None, **options: Any) -> Callable[..., list[float | None]]:
    """Export a reward (instance or registered name) as a TRL reward function returning values or None."""
    if isinstance(reward, str):
        reward = (manager or get_plugin_manager()).create_reward(reward, options)
    elif options:
        raise TypeError("options are only accepted with a reward name")
    if reward.granularity != "outcome":
        raise TypeError(f"reward {reward.name!r} is step-level; TRL reward functions are outcome-level")

    def reward_func(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        kwargs.pop("trainer_state", None)  # TRL >= 0.20 passes its state; not a dataset column
        samples = samples_from_columns(prompts, completions, completion_ids, **kwargs)
        results = run_score(reward, samples)
        if len(results) != len(samples):
            raise RuntimeError(f"reward {reward.name!r} returned {len(results)} results for {len(samples)} samples")
        return [r.value if r.applicable else None for r in results]

    reward_func.__name__ = reward.name
    reward_func.__qualname__ = reward.name
    return reward_func
