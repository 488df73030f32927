"""veRL interop: ``compute_score`` (and its batched form) for veRL's ``custom_reward_function``.

veRL calls ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **reward_kwargs)``
from its naive reward manager (verl/workers/reward_manager/naive.py, and the reward loop's
verl/experimental/reward_loop/reward_manager/naive.py), and ``compute_score(data_sources=,
solution_strs=, ground_truths=, extra_infos=, **reward_kwargs)`` from the batch manager
(verl/workers/reward_manager/batch.py). A dict result must carry ``score``; its other keys become
``reward_extra_info`` lists, so every result here has the same keys.

A reward that does not apply to a sample (another data_source's reward, or a None value) is NaN in
its key: veRL appends each key's value per sample (a missing key misaligns the lists) and its
validation metrics take ``np.mean`` per data_source and prompt (None raises there), so NaN is the one
value that marks the mean undefined instead of pulling it towards a made-up 0.0.

Which rewards score a sample: ``reward_kwargs.config`` (or env ``GRPO_VERL_CONFIG``) names a YAML
file with ``rewards:`` (the default) and ``data_sources: {name: [rewards]}``; else
``reward_kwargs.reward`` names one reward; else ``math``.

Imports are absolute and annotations eager (no ``from __future__``) so veRL can load this file by
path, under a made-up module name, as well as by ``pkg://grpo_plugins.verl``.
"""


import atexit
import math
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from grpo_plugins.config import ConfigError, Problem, RunConfig, load_run_config
from grpo_plugins.host import RewardError, RewardHost
from grpo_plugins.manager import PluginManager
from grpo_plugins.rewards import RewardConfig, Sample

CONFIG_ENV = "GRPO_VERL_CONFIG"


class VerlConfig(RunConfig):
    """Rewards for veRL: a default list and, optionally, a list per ``data_source``."""

    data_sources: dict[str, list[RewardConfig]] = Field(
        default_factory=dict, description="data_source -> rewards scoring its samples (else `rewards`)")
    label_column: str = Field("answer", min_length=1, description="column that veRL's ground_truth fills")
    none_score: float = Field(0.0, description="score when no configured reward applies (veRL takes numbers)")


class VerlScorer:
    """Scores veRL samples: routes each by data_source to a RewardHost, returns veRL's dicts."""

    def __init__(self, cfg: VerlConfig, manager: PluginManager | None = None):
        self.cfg = cfg
        self.manager = manager or cfg.plugin_manager()
        self._hosts: dict[str | None, RewardHost] = {}
        self._lock = threading.Lock()
        routes = [cfg.rewards, *cfg.data_sources.values()]
        self.labels = sorted({r.label for route in routes for r in route})

    def host(self, data_source: str) -> RewardHost:
        """The host for a data_source (created on first use)."""
        key = data_source if data_source in self.cfg.data_sources else None
        with self._lock:
            if key not in self._hosts:
                rewards = self.cfg.data_sources[key] if key is not None else self.cfg.rewards
                if not rewards:
                    known = ", ".join(sorted(self.cfg.data_sources)) or "none"
                    raise ValueError(f"no rewards for data_source {data_source!r} (configured data_sources: "
                                     f"{known}; add a default rewards: list)")
                self._hosts[key] = RewardHost(rewards, manager=self.manager)
            return self._hosts[key]

    def score(self, data_sources: Sequence[str], solutions: Sequence[str], ground_truths: Sequence[Any],
              extra_infos: Sequence[dict | None] | None = None) -> list[dict[str, float]]:
        """One veRL result dict per sample: ``score`` plus one value per configured reward label."""
        n = len(solutions)
        if not (len(data_sources) == len(ground_truths) == n):
            raise ValueError(f"{len(data_sources)} data_sources, {n} solution_strs, {len(ground_truths)} "
                             "ground_truths: veRL passes one of each per sample")
        extra_infos = list(extra_infos) if extra_infos is not None else [None] * n
        groups: dict[str, list[int]] = {}
        for i, ds in enumerate(data_sources):
            groups.setdefault(str(ds), []).append(i)
        out: list[dict[str, float] | None] = [None] * n
        for ds, idx in groups.items():
            samples = [self._sample(ds, solutions[i], ground_truths[i], extra_infos[i]) for i in idx]
            host = self.host(ds)
            self._check_ground_truth(host, ds, idx, ground_truths)
            try:
                scores = host.score(samples)
            except RewardError as exc:
                # the reward names the column ('answer'); veRL users know the field by its parquet name
                if exc.index is None or f"column {self.cfg.label_column!r}" not in str(exc):
                    raise
                raise GroundTruthError(exc.label, exc.plugin, f"{exc.detail} (column {self.cfg.label_column!r} "
                                       f"is veRL's reward_model.ground_truth, data_source {ds!r})",
                                       idx[exc.index]) from exc
            for j, i in enumerate(idx):
                total = scores.totals[j]
                row = {"score": self.cfg.none_score if total is None else float(total)}
                for label in self.labels:
                    res = scores.results.get(label)
                    row[label] = res[j].value if res is not None and res[j].applicable else math.nan
                out[i] = row
        return out  # type: ignore[return-value]

    def _check_ground_truth(self, host: RewardHost, ds: str, idx: list[int], ground_truths: Sequence[Any]) -> None:
        """Raise naming ``reward_model.ground_truth`` for a sample without one that some reward reads."""
        readers = [label for label, r in host.rewards.items() if self.cfg.label_column in _declared_columns(r)]
        for i in idx:
            if readers and ground_truths[i] is None:
                label = readers[0]
                raise GroundTruthError(label, host.entries[label].plugin,
                                       f"reward_model.ground_truth is None (data_source {ds!r}); reward {label!r} "
                                       f"reads it as column {self.cfg.label_column!r}: give every row of the "
                                       "dataset a reward_model.ground_truth", i)

    def _sample(self, data_source: str, solution: str, ground_truth: Any, extra_info: dict | None) -> Sample:
        columns = dict(extra_info or {})
        columns.update({"data_source": data_source, "ground_truth": ground_truth,
                        self.cfg.label_column: ground_truth})
        return Sample(prompt=columns.get("question"), completion=solution, columns=columns)

    def close(self) -> None:
        """Close every host this scorer opened."""
        with self._lock:
            for h in self._hosts.values():
                h.close()
            self._hosts.clear()


class GroundTruthError(RewardError):
    """A sample's ``reward_model.ground_truth`` is missing or unusable for a reward that reads it."""


def _declared_columns(reward) -> list[str]:
    declared = getattr(reward, "required_columns", None)
    declared = declared() if callable(declared) else declared
    return list(declared or [])


_SCORERS: dict[tuple, VerlScorer] = {}
_SCORERS_LOCK = threading.Lock()


def scorer(config: str | os.PathLike | None = None, reward: str | None = None) -> VerlScorer:
    """The process-wide scorer for a config file (or one reward name); built once, reused per call."""
    config = config or os.environ.get(CONFIG_ENV) or None
    key = (str(Path(config).resolve()) if config else None, None if config else (reward or "math"))
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            if config:
                cfg, manager = load_run_config(config, model=VerlConfig)
            else:
                cfg, manager = VerlConfig(rewards=[RewardConfig(name=key[1])]), None
            _SCORERS[key] = VerlScorer(cfg, manager)
        return _SCORERS[key]


def _pick(kwargs: dict[str, Any]) -> VerlScorer:
    # veRL merges custom_reward_function.reward_kwargs into every call; other keys it adds are ignored
    config, reward = kwargs.get("config"), kwargs.get("reward")
    if config is not None and not Path(config).is_file():
        raise ConfigError(str(config), [Problem("custom_reward_function.reward_kwargs.config", None,
                                                "file not found")])
    return scorer(config, reward)


def compute_score(data_source: str | None = None, solution_str: str | None = None, ground_truth: Any = None,
                  extra_info: dict | None = None, *, data_sources: Sequence[str] | None = None,
                  solution_strs: Sequence[str] | None = None, ground_truths: Sequence[Any] | None = None,
                  extra_infos: Sequence[dict | None] | None = None, **kwargs: Any):
    """veRL's reward function: one sample -> ``{"score", <label>...}``; the batch keywords -> a list of them."""
    if solution_strs is not None:
        return compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)
    if solution_str is None:
        raise TypeError("compute_score needs solution_str (one sample) or solution_strs (a batch)")
    return _pick(kwargs).score([data_source or ""], [solution_str], [ground_truth], [extra_info])[0]


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[dict | None] | None = None, **kwargs: Any) -> list[dict[str, float]]:
    """veRL's batch reward manager form: lists in, one result dict per sample out."""
    return _pick(kwargs).score(list(data_sources), list(solution_strs), list(ground_truths), extra_infos)


@atexit.register
def _close_all() -> None:
    for s in _SCORERS.values():
        s.close()
