"""Checkpoints: model, optimiser, scheduler, RNG states and data position, written atomically.

Layout: ``RUN_DIR/checkpoints/step-N/`` holding ``model.pt``, ``optimizer.pt`` (or one
``optimizer-RANK.pt`` per process under ZeRO-3, whose optimizer state is partitioned),
``scheduler.pt``, ``rng-RANK.pt`` and ``state.json`` (step, data position, metrics of the last
step). Model and optimizer state come whole through the engine's state-dict API (sharding.py), so
an FSDP2 checkpoint loads at any world size. A checkpoint is
written into a temporary folder, flushed to disk and renamed into place; ``latest`` is then
replaced atomically. A kill at any moment leaves either the previous or the new checkpoint, never a
half-written one, and resuming loses at most the steps since the last save.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_text, fsync_dir


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file, then rename: readers never see a torn file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _save(obj, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_checkpoint(root: str | os.PathLike, step: int, model_state: dict, optimizer, scheduler,
                    state: dict[str, Any], keep: int = 2, is_main: bool = True, rank: int = 0,
                    barrier=None, per_rank_optimizer: bool = False) -> Path:
    """Write ``step-N`` atomically and point ``latest`` at it; drop all but the ``keep`` newest.

    ``optimizer`` is an optimizer or its state dict. With ``barrier`` (a multi-process run, called
    on every process) each process writes its RNG state (and with ``per_rank_optimizer`` its
    optimizer partition) into the temporary folder before the main process renames it into place."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    opt_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    if barrier is not None:
        barrier()
        if per_rank_optimizer:
            _save(opt_state, tmp / f"optimizer-{rank}.pt")
        if not is_main:
            _save(rng_state(), tmp / f"rng-{rank}.pt")
        barrier()
    if is_main:
        _save(model_state, tmp / "model.pt")
        if not per_rank_optimizer:
            _save(opt_state, tmp / "optimizer.pt")
        _save(scheduler.state_dict(), tmp / "scheduler.pt")
        _save(rng_state(), tmp / f"rng-{rank}.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1, default=float))
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(root)
        atomic_write_text(root / "latest", final.name + "\n")
        steps = sorted((int(p.name.split("-")[1]), p) for p in root.glob("step-*") if p.name.split("-")[1].isdigit())
        for _, old in steps[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_rank_rng(ckpt: Path, rank: int) -> None:
    """Non-main processes of a multi-process run add their RNG state after the main one saved."""
    _save(rng_state(), Path(ckpt) / f"rng-{rank}.pt")


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest`` names, else the newest complete ``step-N``; None when there is none."""
    root = Path(root)
    pointer = root / "latest"
    if pointer.exists():
        cand = root / pointer.read_text().strip()
        if (cand / "state.json").exists():
            return cand
    steps = sorted((int(p.name.split("-")[1]), p) for p in root.glob("step-*")
                   if p.name.split("-")[1].isdigit() and (p / "state.json").exists())
    return steps[-1][1] if steps else None


def load_checkpoint(path: Path, model, optimizer, scheduler, rank: int = 0, map_location="cpu") -> dict[str, Any]:
    """Restore model, optimiser, scheduler and this rank's RNG; return state.json's contents."""
    from .sharding import load_model_state, load_optimizer_state

    path = Path(path)
    load_model_state(model, torch.load(path / "model.pt", map_location=map_location, weights_only=True))
    opt_file = path / f"optimizer-{rank}.pt"
    if not opt_file.exists():
        if any(path.glob("optimizer-*.pt")):
            raise ValueError(f"{path}: the optimizer state is partitioned per process (ZeRO-3) and has no "
                             f"optimizer-{rank}.pt: resume with the world size it was saved at")
        opt_file = path / "optimizer.pt"
    load_optimizer_state(model, optimizer, torch.load(opt_file, map_location=map_location, weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location=map_location, weights_only=True))
    rng_file = path / f"rng-{rank}.pt"
    if not rng_file.exists():
        rng_file = path / "rng-0.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((path / "state.json").read_text())
