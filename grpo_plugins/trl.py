"""TRL interop: TRL's column-wise reward-function convention to and from our Reward classes."""

from __future__ import annotations

import asyncio
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


#: keyword arguments TRL's GRPOTrainer passes besides the dataset columns (TRL 1.16 ``_calculate_rewards``)
TRL_EXTRA_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")


def split_trl_kwargs(n: int, kwargs: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """Split TRL's keyword arguments into dataset columns (lists of the batch's length) and extras."""
    columns, extras = {}, {}
    for key, value in kwargs.items():
        if key in TRL_EXTRA_KWARGS:
            extras[key] = value
        elif isinstance(value, (list, tuple)):
            # a list of another length is a column with a bug, not an extra: say so
            if len(value) != n:
                raise ValueError(f"column {key!r} must be a list of {n} values, got {len(value)}")
            columns[key] = value
        else:
            extras[key] = value  # scalars and objects a trainer adds are not per-completion columns
    return columns, extras


class _StatusLog:
    """Per-reward ``info['status']`` counts sent through TRL's ``log_metric`` (zero for a status not seen)."""

    def __init__(self, name: str):
        self.name = name
        self.seen: set[str] = set()

    def log(self, results: list[RewardResult], log_metric: Callable[[str, float], Any] | None) -> None:
        if log_metric is None:
            return
        counts: dict[str, int] = {}
        for r in results:
            status = r.info.get("status") if isinstance(r.info, dict) else None
            if status is not None:
                counts[str(status)] = counts.get(str(status), 0) + 1
        self.seen |= set(counts)
        for status in sorted(self.seen):
            log_metric(f"{self.name}/{status}", float(counts.get(status, 0)))
        log_metric(f"{self.name}/not_applicable", float(sum(not r.applicable for r in results)))


def _resolve(reward: Reward | str, manager, options: dict[str, Any]) -> Reward:
    if isinstance(reward, str):
        reward = (manager or get_plugin_manager()).create_reward(reward, options)
    elif options:
        raise TypeError("options are only accepted with a reward name")
    if reward.granularity != "outcome":
        raise TypeError(f"reward {reward.name!r} is step-level; TRL reward functions are outcome-level")
    return reward


def _values(reward: Reward, results: list[RewardResult], n: int) -> list[float | None]:
    if len(results) != n:
        raise RuntimeError(f"reward {reward.name!r} returned {len(results)} results for {n} samples")
    return [r.value if r.applicable else None for r in results]


def as_trl_reward_func(reward: Reward | str, manager=None, **options: Any) -> Callable[..., list[float | None]]:
    """Export a reward (instance or registered name) as a TRL reward function returning values or None.

    Takes what TRL's GRPOTrainer passes: ``prompts``, ``completions``, ``completion_ids``, every
    dataset column as a list, and ``trainer_state`` / ``log_extra`` / ``log_metric`` /
    ``environments``; the statuses in each result's ``info`` go to ``log_metric`` as counts.
    """
    reward = _resolve(reward, manager, options)
    status_log = _StatusLog(reward.name)

    def reward_func(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        columns, extras = split_trl_kwargs(len(completions), kwargs)
        samples = samples_from_columns(prompts, completions, completion_ids, **columns)
        results = run_score(reward, samples)
        values = _values(reward, results, len(samples))
        status_log.log(results, extras.get("log_metric"))
        return values

    reward_func.__name__ = reward_func.__qualname__ = reward.name
    reward_func.reward = reward
    return reward_func


def as_async_trl_reward_func(reward: Reward | str, manager=None, **options: Any) -> Callable[..., Any]:
    """The ``async def`` form of :func:`as_trl_reward_func`; TRL runs async reward functions concurrently.

    A reward whose ``score`` is ``async def`` is awaited on TRL's loop; a synchronous one runs in a
    worker thread so the other reward functions keep going.
    """
    reward = _resolve(reward, manager, options)
    status_log = _StatusLog(reward.name)

    async def reward_func(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        columns, extras = split_trl_kwargs(len(completions), kwargs)
        samples = samples_from_columns(prompts, completions, completion_ids, **columns)
        if inspect.iscoroutinefunction(reward.score):
            results = list(await reward.score(samples))
        else:
            results = await asyncio.to_thread(run_score, reward, samples)
        values = _values(reward, results, len(samples))
        status_log.log(results, extras.get("log_metric"))
        return values

    reward_func.__name__ = reward_func.__qualname__ = reward.name
    reward_func.reward = reward
    return reward_func
