"""Shared setup for tests: tiny run and cycle configs, toy rewards and plugins, a scripted prover.

Toy rewards are plain classes; ``plugin_source`` turns them into a plugin file's text for tests that
load plugins from files, entry points or subprocesses, which cannot import tests/.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import yaml

from grpo_plugins import PluginManager, Reward, RewardResult, hookimpl

def run_cli(*args, env=None, timeout=300):
    """``python -m grpo_plugins ARGS`` in a subprocess, ``env`` on top of this one's, output captured."""
    return subprocess.run([sys.executable, "-m", "grpo_plugins", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


# --- configs ---------------------------------------------------------------------------------


def merge_sections(cfg: dict, sections: dict) -> dict:
    """Update ``cfg``'s sections one level deep from ``sections``; a value that is not a dict replaces."""
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def tiny_run_config(tiny_dir: Path, run_dir: Path, rewards=(), defaults: dict | None = None, **sections) -> dict:
    """A training run on the ``tiny_dir`` model: 2 steps of 2 prompts x 4 completions of 8 tokens.

    ``rewards`` are names or reward dicts; a test file's ``defaults``, then a test's ``sections``, update
    the config (``merge_sections``); ``rewards`` stays the last key.
    """
    cfg = {
        "model": {"name_or_path": str(tiny_dir / "model")},
        "data": {"train": str(tiny_dir / "train.jsonl"), "chat_template": False},
        "rollout": {"num_generations": 4, "max_new_tokens": 8},
        "train": {"steps": 2, "prompts_per_step": 2, "learning_rate": 1e-3},
        "log": {"run_dir": str(run_dir)},
    }
    merge_sections(merge_sections(cfg, defaults or {}), sections)
    cfg["rewards"] = [{"name": r} if isinstance(r, str) else dict(r) for r in rewards]
    return cfg


MATH_REWARD = {"name": "math", "options": {"workers": 1}}


def prm_reward(tmp: Path, **options) -> dict:
    """The ``prm`` reward of a tiny cycle: its model under the run, skipped until the first retrain."""
    return {"name": "prm", "weight": 0.5, "options": {
        "model": f"{tmp}/run/prm/current", "missing_model": "skip", "max_length": 64,
        "retrain": {"tiny_hidden_size": 16, "tiny_layers": 1, "tiny_heads": 2, "eval_share": 0.25,
                    "train": {"epochs": 1, "batch_size": 4}},
        **options}}


def tiny_cycle_config(tmp: Path, rewards: list[dict], **sections) -> Path:
    """Write ``tmp/cycle.yaml``: 2 cycles of 1 GRPO step on a 1-layer tiny model built under ``tmp/tiny``
    after 3 SFT steps, a checkpoint each step; ``sections`` update it (``merge_sections``)."""
    cfg = {
        "plugins": ["math", "format", "prm"],
        "tiny": {"dir": f"{tmp}/tiny", "n_train": 64, "n_eval": 4, "n_sft": 64, "hidden_size": 32, "layers": 1,
                 "heads": 2},
        "model": {"name_or_path": f"{tmp}/tiny/model"},
        "data": {"train": f"{tmp}/tiny/train.jsonl", "eval": f"{tmp}/tiny/test.jsonl", "chat_template": False},
        "sft": {"data": f"{tmp}/tiny/sft.jsonl", "steps": 3, "batch_size": 8},
        "rollout": {"num_generations": 2, "max_new_tokens": 12},
        "train": {"prompts_per_step": 2, "learning_rate": 1.0e-3, "beta": 0.02, "seed": 0},
        "rewards": rewards,
        "cycle": {"cycles": 2, "steps_per_cycle": 1},
        "eval": {"reward": "math", "batch_size": 8},
        "log": {"run_dir": f"{tmp}/run", "progress": False, "tensorboard": False, "samples": 0},
        "checkpoint": {"every": 1},
    }
    path = tmp / "cycle.yaml"
    path.write_text(yaml.safe_dump(merge_sections(cfg, sections), sort_keys=False))
    return path


# --- toy rewards -----------------------------------------------------------------------------


class DigitShare(Reward):
    """Share of digits in the completion: varies within every group, even for a random model."""

    name = "digit_share"

    def score(self, samples):
        return [RewardResult(sum(c.isdigit() for c in s.text) / max(len(s.text), 1)) for s in samples]


class Constant(Reward):
    """The same ``value`` for every sample: no signal within a group."""

    name = "constant"
    value = 0.0

    def score(self, samples):
        return [RewardResult(self.value) for _ in samples]


class Explode(Reward):
    """Raises on every call, for the error paths."""

    name = "explode"

    def score(self, samples):
        raise RuntimeError("kaboom")


class ChunkSteps(Reward):
    """A step reward: every ``width`` characters are a step, valued by ``chunk_value`` (here their share of
    digits, counted over ``width``)."""

    name = "chunk_steps"
    granularity = "step"
    width = 4

    def chunk_value(self, sample, chunk):
        return sum(c.isdigit() for c in chunk) / self.width

    def score(self, samples):
        w = self.width
        return [RewardResult(steps=[(i, min(i + w, len(s.text)), self.chunk_value(s, s.text[i:i + w]))
                                    for i in range(0, len(s.text), w)]) for s in samples]


class DigitSteps(ChunkSteps):
    """Each run of 3 characters is a step, valued by whether it holds a digit."""

    name = "digit_steps"
    width = 3

    def chunk_value(self, sample, chunk):
        return float(any(c.isdigit() for c in chunk))


def plugin_source(*rewards: type) -> str:
    """The text of a plugin file that registers ``rewards`` (module-level classes; their bases come along)."""
    classes = []
    for reward in rewards:
        classes += [c for c in reversed(reward.__mro__)
                    if issubclass(c, Reward) and c is not Reward and c not in classes]
    body = "\n\n".join(textwrap.dedent(inspect.getsource(c)) for c in classes)
    calls = "".join(f"    register({r.__name__})\n" for r in rewards)
    return f"from grpo_plugins import Reward, RewardResult, hookimpl\n\n\n{body}\n\n" \
           f"@hookimpl\ndef register_rewards(register):\n{calls}"


class RewardPlugin:
    """An inline plugin registering ``rewards``; it keeps each step's ``(step, rollouts)`` in ``rollouts``."""

    def __init__(self, *rewards: type):
        self.rewards = rewards
        self.rollouts = []

    @property
    def batches(self):
        """Each step's rollouts."""
        return [batch for _, batch in self.rollouts]

    @hookimpl
    def register_rewards(self, register):
        for reward in self.rewards:
            register(reward)

    @hookimpl
    def on_rollouts_collected(self, rollouts, step, cycle):
        self.rollouts.append((step, rollouts))


def private_manager(*rewards: type, name: str = "test_rewards") -> tuple[PluginManager, RewardPlugin]:
    """A manager without entry points holding one ``RewardPlugin`` of ``rewards``, and that plugin."""
    manager, plugin = PluginManager(load_entrypoints=False), RewardPlugin(*rewards)
    manager.register(plugin, name=name)
    return manager, plugin


# --- a scripted prover -----------------------------------------------------------------------

PROMPT = "Start at 2, add 3, then double. "
RIGHT = "2+3=5\n\n5*2=10\n\nThe answer is \\boxed{10}"
WRONG_SECOND = "2+3=5\n\n5*2=11\n\nThe answer is \\boxed{11}"  # 5*2 is 10, so the answer is wrong too


class Prover:
    """Finishes ``PROMPT``'s task from wherever the prefix stops, trusting the last value written: from a
    right prefix it always reaches the right answer, from a wrong one it carries the error to the end.

    ``slip`` maps a prefix (text after the prompt) to k: every k-th continuation of it is off by one."""

    def __init__(self, slip=None):
        self.calls = []
        self.slip = slip or {}
        self.seen = Counter()

    def __call__(self, texts, max_new_tokens):
        out = []
        for text in texts:
            self.calls.append(text)
            done = text[len(PROMPT):] if text.startswith(PROMPT) else text
            self.seen[done] += 1
            off = 1 if done in self.slip and self.seen[done] % self.slip[done] == 0 else 0
            values = re.findall(r"=(\d+)", done)
            if not values:
                out.append(f"2+3=5\n\n5*2={10 + off}\n\nThe answer is \\boxed{{{10 + off}}}")
            elif "*2=" not in done:
                v = int(values[-1])
                out.append(f"\n\n{v}*2={2 * v + off}\n\nThe answer is \\boxed{{{2 * v + off}}}")
            else:
                out.append(f"\n\nThe answer is \\boxed{{{int(values[-1]) + off}}}")
        return out
