"""The reward host: scores a batch with every configured reward concurrently, each inside its own
error boundary and time limit, and combines the outcome values with weights."""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import UserError
from .manager import PluginManager, get_plugin_manager
from .provenance import reward_provenance
from .rewards import Reward, RewardConfig, RewardResult, Sample, run_score


class RewardError(UserError, RuntimeError):
    """A reward failed under the ``raise`` policy; names plugin, reward and sample index."""

    def __init__(self, label: str, plugin: str, message: str, index: int | None = None):
        self.label, self.plugin, self.index = label, plugin, index
        self.detail = message  # the reward's own words, for callers that re-index or re-word them
        where = f" on sample {index}" if index is not None else ""
        super().__init__(f"reward {label!r} (plugin {plugin!r}) failed{where}: {message}")


class RewardTimeout(RewardError):
    """A reward did not finish its batch within its timeout."""


@dataclass
class Scores:
    """What the host returns for a batch: per-reward results, weighted totals, metrics."""

    results: dict[str, list[RewardResult]]
    totals: list[float | None]
    metrics: dict[str, float]
    granularity: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    #: {label: {plugin, version, reward, options}} (grpo_plugins/provenance.py), one per reward, not per row
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)

    def record(self, i: int) -> dict[str, Any]:
        """The JSON fields ``grpo-plugins score`` adds to input line ``i``: reward, rewards, steps, info,
        provenance (when known)."""
        rewards, steps, info = {}, {}, {}
        for label, res in self.results.items():
            r = res[i]
            rewards[label] = r.value if r.applicable else None
            if self.granularity.get(label) == "step" or r.steps is not None:
                steps[label] = [list(s) for s in (r.steps or [])]
            info[label] = r.info
        out = {"reward": self.totals[i], "rewards": rewards, "steps": steps, "info": info}
        if self.provenance:
            out["provenance"] = self.provenance
        return out


def _in_thread(fn, *args) -> cf.Future:
    """Run ``fn`` in a fresh daemon thread: a hung reward holds only its own thread, never a pool slot."""
    fut: cf.Future = cf.Future()

    def target():
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            fut.set_exception(exc)

    threading.Thread(target=target, daemon=True, name=f"reward-{getattr(fn, '__name__', 'fn')}").start()
    return fut


def _import_local_plugins(files: dict[str, str]) -> None:
    """Worker initializer: import the parent's ``--plugin`` files under their module names, so
    rewards defined in them unpickle in the worker."""
    import importlib.util
    import sys

    for name, path in files.items():
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


class _ProcessRunner:
    """Worker processes for ``executor = "process"`` rewards; all terminated and replaced after a timeout.

    multiprocessing's Pool, because its ``terminate()`` is public (concurrent.futures can only stop
    workers through a private attribute before Python 3.14)."""

    def __init__(self, workers: int, local_files: dict[str, str]):
        self.workers, self.local_files = workers, dict(local_files)
        self.pool = None

    def submit(self, reward: Reward, samples: list[Sample]) -> cf.Future:
        if self.pool is None:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(self.workers, initializer=_import_local_plugins, initargs=(self.local_files,))
        fut: cf.Future = cf.Future()
        self.pool.apply_async(run_score, (reward, samples), callback=fut.set_result, error_callback=fut.set_exception)
        return fut

    def kill(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


class RewardHost:
    """Scores batches with configured rewards: concurrently, with timeouts and on_error policies."""

    def __init__(self, rewards: Iterable[RewardConfig | dict | str], manager: PluginManager | None = None,
                 process_workers: int = 2):
        self.manager = manager or get_plugin_manager()
        self.configs: list[RewardConfig] = []
        for r in rewards:
            if isinstance(r, str):
                r = RewardConfig(name=r)
            elif isinstance(r, dict):
                r = RewardConfig(**r)
            self.configs.append(r)
        labels = [c.label for c in self.configs]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"reward labels must be unique; repeated: {sorted(dup)} (set label: to tell them apart)")
        self.entries = {c.label: self.manager.reward_entry(c.name) for c in self.configs}
        # each config's options as parsed once (by config loading, or here on first use)
        self.rewards: dict[str, Reward] = {c.label: self.manager.create_reward(c) for c in self.configs}
        self.provenance = {c.label: reward_provenance(self.manager, c, self.entries[c.label],
                                                      self.rewards[c.label].options) for c in self.configs}
        self._procs = {c.label: _ProcessRunner(process_workers, self.manager.local_files) for c in self.configs
                       if self.rewards[c.label].executor == "process"}

    def close(self) -> None:
        """Release every reward's resources and worker processes."""
        for runner in self._procs.values():
            runner.kill()
        for r in self.rewards.values():
            r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def granularity(self, label: str) -> str:
        """'outcome' or 'step' for a configured reward label."""
        return self.rewards[label].granularity

    # --- scoring ---------------------------------------------------------------------------

    def _submit(self, label: str, samples: list[Sample]) -> cf.Future:
        if label in self._procs:
            return self._procs[label].submit(self.rewards[label], samples)
        return _in_thread(run_score, self.rewards[label], samples)

    def _check(self, label: str, out: Any, n: int) -> list[RewardResult]:
        plugin = self.entries[label].plugin
        if not isinstance(out, (list, tuple)):
            raise RewardError(label, plugin, f"score() returned {type(out).__name__}, expected a list of RewardResult")
        if len(out) != n:
            raise RewardError(label, plugin, f"returned {len(out)} results for {n} samples")
        results = []
        for i, r in enumerate(out):
            if not isinstance(r, RewardResult):
                hint = f" (wrap it: RewardResult({r!r}))" if isinstance(r, (int, float)) or r is None else ""
                raise RewardError(label, plugin, f"result is {type(r).__name__}, expected RewardResult{hint}", i)
            if self.rewards[label].granularity == "step" and r.steps is None and r.value is not None:
                raise RewardError(label, plugin, "step reward returned no steps", i)
            results.append(r)
        return results

    def _failed(self, cfg: RewardConfig, message: str, kind: str) -> RewardResult:
        value = 0.0 if cfg.on_error == "zero" else float("nan")
        steps = [] if self.rewards[cfg.label].granularity == "step" else None
        return RewardResult(value=value, steps=steps, info={"status": kind, "error": message, "on_error": cfg.on_error})

    def _locate(self, cfg: RewardConfig, samples: list[Sample], deadline: float | None):
        """After a batch failed, rescore sample by sample so only the failing samples are marked."""
        out: list[RewardResult | Exception] = []
        for i, s in enumerate(samples):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                out.append(TimeoutError(f"no time left to isolate the error (timeout {cfg.timeout}s)"))
                continue
            try:
                out.append(self._check(cfg.label, self._submit(cfg.label, [s]).result(left), 1)[0])
            except cf.TimeoutError:
                out.append(TimeoutError(f"timed out after {cfg.timeout}s"))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def score(self, samples: list[Sample], step: int | None = None) -> Scores:
        """Score a batch with every reward; raise RewardError or apply each reward's on_error policy."""
        samples = list(samples)
        n = len(samples)
        t0 = time.monotonic()
        futures = {c.label: self._submit(c.label, samples) for c in self.configs}
        results: dict[str, list[RewardResult]] = {}
        metrics: dict[str, float] = {}
        for cfg in self.configs:
            label, plugin = cfg.label, self.entries[cfg.label].plugin
            deadline = None if cfg.timeout is None else t0 + cfg.timeout
            errors = timeouts = 0
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                res = self._check(label, futures[label].result(left), n)
            except cf.TimeoutError:
                if label in self._procs:
                    self._procs[label].kill()
                msg = f"timed out after {cfg.timeout}s on a batch of {n}"
                if cfg.on_error == "raise":
                    raise RewardTimeout(label, plugin, msg) from None
                res = [self._failed(cfg, msg, "timeout") for _ in samples]
                timeouts = n
            except Exception as exc:  # noqa: BLE001 - policy decides
                located = self._locate(cfg, samples, deadline) if n > 1 and not isinstance(exc, RewardError) else None
                if located is None or all(isinstance(x, RewardResult) for x in located):
                    # the batch fails as a whole (wrong length, or only fails in a batch)
                    err = exc if isinstance(exc, RewardError) else RewardError(
                        label, plugin, _describe(exc), 0 if n == 1 else None)
                    if cfg.on_error == "raise":
                        raise err from exc
                    res = [self._failed(cfg, str(err), "error") for _ in samples]
                    errors = n
                else:
                    res = []
                    for i, x in enumerate(located):
                        if isinstance(x, RewardResult):
                            res.append(x)
                            continue
                        kind = "timeout" if isinstance(x, TimeoutError) else "error"
                        if cfg.on_error == "raise":
                            cls = RewardTimeout if kind == "timeout" else RewardError
                            raise cls(label, plugin, _describe(x), i) from x
                        res.append(self._failed(cfg, str(RewardError(label, plugin, _describe(x), i)), kind))
                        errors += kind == "error"
                        timeouts += kind == "timeout"
            for i, r in enumerate(res):  # values: a finite float or None; one bad value fails its sample only
                bad = "" if "on_error" in r.info and "error" in r.info else _bad_value(r)  # not ours to check
                if bad:
                    if cfg.on_error == "raise":
                        raise RewardError(label, plugin, bad, i)
                    res[i] = self._failed(cfg, str(RewardError(label, plugin, bad, i)), "error")
                    errors += 1
            results[label] = res
            values = [r.value for r in res if r.applicable]
            metrics[f"rewards/{label}/errors"] = float(errors)
            metrics[f"rewards/{label}/timeouts"] = float(timeouts)
            if self.granularity(label) == "step":  # a step reward applies where it scored steps, not by value
                metrics[f"rewards/{label}/not_applicable"] = float(
                    sum(1 for r in res if not r.steps and "on_error" not in r.info))
            else:
                metrics[f"rewards/{label}/not_applicable"] = float(n - len(values) - errors - timeouts)
            if values:
                metrics[f"rewards/{label}/mean"] = statistics.fmean(values)
                # sample std (ddof=1), as torch.std and TRL report it
                metrics[f"rewards/{label}/std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        totals = self.combine(results, n)
        metrics["reward_host/seconds"] = time.monotonic() - t0
        scores = Scores(results, totals, metrics,
                        granularity={c.label: self.granularity(c.label) for c in self.configs},
                        weights={c.label: c.weight for c in self.configs}, provenance=self.provenance)
        self.manager.hook.on_batch_scored(samples=samples, results=results, metrics=metrics, step=step)
        return scores

    def combine(self, results: dict[str, list[RewardResult]], n: int,
                granularity: str | None = None) -> list[float | None]:
        """Weighted sum of applicable values per sample (of one granularity if given); None when none applies."""
        configs = [c for c in self.configs if granularity is None or self.granularity(c.label) == granularity]
        totals: list[float | None] = []
        for i in range(n):
            parts = [c.weight * results[c.label][i].value for c in configs if results[c.label][i].applicable]
            totals.append(sum(parts) if parts else None)
        return totals


def _bad_value(r: RewardResult) -> str:
    """Why a plugin's result is not a finite float or None (outcome value and every step value); '' if fine."""
    def problem(v: Any, what: str) -> str:
        if v is None:  # not applicable: the whole result, or one step
            return ""
        if not isinstance(v, (int, float)):
            return f"{what} is {type(v).__name__} {v!r}, expected a finite float or None (not applicable)"
        if not math.isfinite(v):
            return f"{what} is {v}, expected a finite float or None (not applicable)"
        return ""

    msg = problem(r.value, "value")
    for k, (_, _, v) in enumerate(r.steps or []):
        msg = msg or problem(v, f"steps[{k}] value")
    return msg


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
