"""Checkpoints: model, optimiser, scheduler, RNG states and data position, written atomically.

Layout (TRL's): ``RUN_DIR/checkpoint-N/`` holding a ``save_pretrained`` model and tokenizer
(``AutoModelForCausalLM.from_pretrained("RUN_DIR/checkpoint-N")`` loads it; a LoRA run holds the
adapter plus ``model.pt``, the full state it resumes from), ``optimizer.pt`` (or one
``optimizer-RANK.pt`` per process under ZeRO-3, whose optimizer state is partitioned),
``scheduler.pt``, ``rng-RANK.pt`` and ``state.json`` (step, data position, token, rollout and
continuation counts, metrics of the last step); ``RUN_DIR/latest`` names the newest. Model and optimizer state come whole through the
engine's state-dict API (sharding.py), so an FSDP2 checkpoint loads at any world size; resume
loads the save_pretrained weights of a sharded model through the same API (read on rank 0, broadcast). Runs written
before this layout (``RUN_DIR/checkpoints/step-N/model.pt``) still resume. A checkpoint is written
into a temporary folder, flushed to disk and renamed into place; ``latest`` is then replaced
atomically. A kill at any moment leaves either the previous or the new checkpoint, never a
half-written one, and resuming loses at most the steps since the last save.

accelerate's ``save_state`` is not used: it writes in place (a kill mid-save leaves a torn
checkpoint that ``load_state`` then reads) and writes no ``save_pretrained`` folder.
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


PREFIX = "checkpoint-"
OLD_ROOT, OLD_PREFIX = "checkpoints", "step-"  # the layout before checkpoint-N


def _numbered(root: Path, prefix: str) -> list[tuple[int, Path]]:
    out = []
    for p in root.glob(prefix + "*"):
        tail = p.name[len(prefix):]
        if tail.isdigit() and (p / "state.json").exists():
            out.append((int(tail), p))
    return sorted(out)


def _save_pretrained(model, tokenizer, path: Path, state_dict) -> None:
    """save_pretrained without transformers' shard-writing bar, which floods a log that is not a terminal."""
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        # a copy: transformers empties the dict it is handed while writing shards
        model.save_pretrained(path, state_dict=None if state_dict is None else dict(state_dict))
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def save_checkpoint(root: str | os.PathLike, step: int, model_state: dict, optimizer, scheduler,
                    state: dict[str, Any], keep: int = 2, is_main: bool = True, rank: int = 0,
                    model=None, tokenizer=None, barrier=None, per_rank_optimizer: bool = False) -> Path:
    """Write ``checkpoint-N`` atomically and point ``latest`` at it; drop all but the ``keep`` newest.

    With ``model`` (and ``tokenizer``) the weights are written with ``save_pretrained`` so
    ``from_pretrained`` loads the folder; without, as ``model.pt``. ``optimizer`` is an optimizer or
    its state dict. With ``barrier`` (a multi-process run, called on every process) each process
    writes its RNG state (and with ``per_rank_optimizer`` its optimizer partition) into the
    temporary folder before the main process renames it into place."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step}"
    tmp = root / f".tmp-{PREFIX}{step}"
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
        if model is None or hasattr(model, "peft_config"):
            _save(model_state, tmp / "model.pt")  # a LoRA adapter alone cannot restore the run
        if model is not None:
            _save_pretrained(model, tokenizer, tmp, None if hasattr(model, "peft_config") else model_state)
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
        for _, old in _numbered(root, PREFIX)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest`` names, else the newest complete ``checkpoint-N`` (or old ``checkpoints/step-N``)."""
    run_dir = Path(run_dir)
    for root, prefix in ((run_dir, PREFIX), (run_dir / OLD_ROOT, OLD_PREFIX)):
        pointer = root / "latest"
        if pointer.exists():
            cand = root / pointer.read_text().strip()
            if (cand / "state.json").exists():
                return cand
        found = _numbered(root, prefix)
        if found:
            return found[-1][1]
    return None


def storage_location(device) -> str:
    """A device as torch.load and safetensors take it: "cpu" for any CPU device (a CPU accelerator, or a
    rank's device, can be named cpu:0, which both refuse), else its name ("cuda:1")."""
    device = torch.device(device)
    return "cpu" if device.type == "cpu" else str(device)


def _read_pretrained(path: Path, map_location) -> dict[str, torch.Tensor]:
    """The save_pretrained safetensors of ``path`` (one file or an index of shards) as one state dict."""
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(load_file(str(path / f), device=storage_location(map_location)))
    return sd


def _with_tied(model, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` plus the tied names save_pretrained wrote once (the same Parameter under several names)."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    out = dict(sd)
    for group in names.values():
        have = [n for n in group if n in sd]
        for n in group:
            if have and n not in out:
                out[n] = sd[have[0]]
    return out


def _load_model_state(path: Path, model, map_location) -> None:
    """The save_pretrained safetensors (shards too), tied weights re-tied; a sharded model (FSDP2,
    ZeRO-3) takes them through the engine's state-dict API, read on rank 0 only and broadcast."""
    from .sharding import is_fsdp2, is_zero3, load_model_state

    if is_fsdp2(model) or is_zero3(model):
        rank0 = torch.distributed.get_rank() == 0
        load_model_state(model, _with_tied(model, _read_pretrained(path, map_location)) if rank0 else {})
        return
    sd = _read_pretrained(path, map_location)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in sd if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]  # tied copies are saved once
    if untied or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the model (missing {untied[:5]}, unexpected {unexpected[:5]})")


def load_checkpoint(path: Path, model, optimizer, scheduler, rank: int = 0, map_location="cpu") -> dict[str, Any]:
    """Restore model, optimiser, scheduler and this rank's RNG; return state.json's contents."""
    from .sharding import load_model_state, load_optimizer_state, optimizer_globals

    path, map_location = Path(path), storage_location(map_location)
    if (path / "model.pt").exists():
        load_model_state(model, torch.load(path / "model.pt", map_location=map_location, weights_only=True))
    else:  # a save_pretrained folder
        _load_model_state(path, model, map_location)
    opt_file = path / f"optimizer-{rank}.pt"
    if not opt_file.exists():
        if any(path.glob("optimizer-*.pt")):
            raise ValueError(f"{path}: the optimizer state is partitioned per process (ZeRO-3) and has no "
                             f"optimizer-{rank}.pt: resume with the world size it was saved at")
        opt_file = path / "optimizer.pt"
    allowed = optimizer_globals() if opt_file.name != "optimizer.pt" else []  # ZeRO-3's partition pickles enums
    with torch.serialization.safe_globals(allowed):
        load_optimizer_state(model, optimizer, torch.load(opt_file, map_location=map_location, weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location=map_location, weights_only=True))
    rng_file = path / f"rng-{rank}.pt"
    if not rng_file.exists():
        rng_file = path / "rng-0.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((path / "state.json").read_text())
