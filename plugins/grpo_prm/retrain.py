"""Retrain the PRM at the end of an RL cycle (the plugin's ``on_cycle_end``): the cycle's labelled
rollouts from the replay buffer plus a share of history, a held-out split for step accuracy and AUC.

Versions live next to the reward's ``model`` path: ``model`` is a symlink (``prm/current``) that is
switched atomically to ``prm/cycle-K`` once that version is completely written, so a kill at any
moment leaves the previous PRM in place and a rerun of the phase repeats or reuses the work.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from grpo_plugins.replay import read_buffer

from .data import from_rollout
from .model import ProcessRewardModel, StepFormat
from .reward import PRMOptions, PRMReward
from .tiny import build_tiny_prm
from .train import evaluate, split_eval, train_prm

DONE = "DONE"


def point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` (a sibling), replacing any old link atomically."""
    if link.exists() and not link.is_symlink():
        raise ValueError(f"{link} is a real directory; the prm reward's model path must be a link the cycle manages "
                         f"(e.g. RUN_DIR/prm/current), with retrain.init pointing at your starting PRM")
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target.name, tmp)
    os.replace(tmp, link)


def initial_prm(options: PRMOptions, root: Path) -> Path:
    """The PRM the first retrain starts from: retrain.init, or a tiny one built under ``root/init``."""
    r = options.retrain
    if r.init:
        return Path(r.init)
    out = root / "init"
    if not (out / DONE).exists():
        tmp = root / f".init.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        fmt = StepFormat().override(options.split, options.tag, options.step_pattern)
        build_tiny_prm(tmp, tokenizer_dir=r.tokenizer, hidden_size=r.tiny_hidden_size, layers=r.tiny_layers,
                       heads=r.tiny_heads, step_format=fmt)
        (tmp / DONE).write_text("ok\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    return out


def retrain(options: PRMOptions, cycle: int, buffer: str | Path, history_share: float, seed: int = 0,
            log=None) -> dict[str, Any]:
    """Train PRM version ``cycle`` on the buffer (this cycle new, older cycles history) and switch to it."""
    r = options.retrain
    link = Path(options.model)
    root = link.parent
    root.mkdir(parents=True, exist_ok=True)
    version = root / f"cycle-{cycle}"
    if (version / DONE).exists():  # finished before a kill: only the switch may be missing
        point(link, version)
        return json.loads((version / "train_metrics.json").read_text())
    entries = read_buffer(buffer)
    new = [from_rollout(e.record) for e in entries if e.cycle == cycle]
    history = [from_rollout(e.record) for e in entries if e.cycle is not None and e.cycle < cycle]
    if not new:
        return {"skipped": "no labelled rollouts from this cycle in the buffer"}
    train, held = split_eval(new, r.eval_share, seed + cycle)
    opts = r.train.model_copy(update={"seed": r.train.seed + cycle})
    metrics: dict[str, Any] = {}
    if link.exists():  # how the previous PRM does on the new policy's steps
        old = ProcessRewardModel.load(link, device=opts.device, max_length=opts.max_length)
        metrics.update({k.replace("eval/", "eval_before/"): v for k, v in evaluate(old, held, opts).items()})
    init = link if (r.continue_training and link.exists()) else initial_prm(options, root)
    tmp = root / f".cycle-{cycle}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    share = history_share if r.history_share is None else r.history_share
    metrics.update(train_prm(init, tmp, train, opts, eval_examples=held, history=history, history_share=share,
                             log=log))
    metrics.update({"cycle": cycle, "new_examples": len(train), "heldout_examples": len(held),
                    "history_available": len(history)})
    (tmp / "train_metrics.json").write_text(json.dumps(metrics, indent=2))
    (tmp / DONE).write_text("ok\n")
    shutil.rmtree(version, ignore_errors=True)
    os.replace(tmp, version)
    point(link, version)
    return metrics


def retrain_configured(context) -> dict[str, Any]:
    """Retrain every configured ``prm`` reward that has ``retrain`` options; returns their metrics."""
    metrics: dict[str, Any] = {}
    for label, reward in context.rewards.items():
        if not isinstance(reward, PRMReward) or reward.options.retrain is None:
            continue
        m = retrain(reward.options, context.cycle, context.buffer_dir, context.history_share, context.seed)
        metrics.update({f"{label}/{k}": v for k, v in m.items()})
    return metrics
