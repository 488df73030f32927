"""Prompts from ``datasets``: local JSONL/JSON/parquet files, saved dataset folders or hub names.

Every column of a row travels with its prompt to the rewards (``Sample.columns``), as in TRL.
Conversational prompts (lists of ``{role, content}``) go through the tokenizer's chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_rows(source: str, split: str = "train", subset: str | None = None):
    """A ``datasets.Dataset`` from a file, a ``save_to_disk`` folder, or a hub dataset name."""
    import datasets

    from ..io import InputError  # a user's mistake: one Error: line, not a traceback

    p = Path(source)
    if p.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(p.suffix.lower())
        if kind is None:
            raise InputError(f"{source}: unsupported data file type {p.suffix!r} (use .jsonl, .json, .parquet, .csv)")
        if kind == "json" and _blank(p):  # datasets would stop on StopIteration or "corresponds to no data"
            raise InputError(f"{source}: no rows (the file is empty or holds only blank lines)")
        return datasets.load_dataset(kind, data_files=str(p), split="train")
    if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(p))
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    if p.exists():
        raise InputError(f"{source}: not a data file or a saved dataset folder")
    if source.endswith((".jsonl", ".json", ".parquet", ".csv")):
        raise InputError(f"{source}: file not found")
    return datasets.load_dataset(source, subset, split=split)


def row_location(source: str, row: int) -> str:
    """``file:line`` of a local JSONL file's row (blank lines are skipped, as the loader does), the way
    ``score`` and ``check`` name rows; else ``source row N (0-based)``."""
    p = Path(source)
    if p.is_file() and p.suffix.lower() == ".jsonl":
        with open(p, encoding="utf-8", errors="replace") as fh:
            seen = -1
            for lineno, line in enumerate(fh, 1):
                seen += bool(line.strip())
                if seen == row:
                    return f"{source}:{lineno}"
    return f"{source} row {row} (0-based)"


def few_rows_warning(rows: int, prompts_per_step: int) -> str | None:
    """The warning for training data smaller than one step's draw (each step repeats prompts), else None."""
    if rows >= prompts_per_step:
        return None
    return (f"data.train has {rows} row(s), fewer than train.prompts_per_step ({prompts_per_step}): every step "
            f"draws some prompts more than once; add rows or lower train.prompts_per_step")


def _blank(path: Path) -> bool:
    """True when a text file holds nothing but whitespace (read line by line: files can be large)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return not any(line.strip() for line in fh)


def prompt_text(prompt: Any, tokenizer, chat_template: str | bool = "auto", system_prompt: str | None = None) -> str:
    """The string the model continues: chat template for message lists (or all prompts when True)."""
    use_template = chat_template is True or (chat_template == "auto" and not isinstance(prompt, str))
    if not use_template:
        if not isinstance(prompt, str):
            raise ValueError("a conversational prompt needs chat_template: auto or true")
        return prompt
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}] + messages
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; set data.chat_template: false")
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class PromptSampler:
    """Shuffled passes over the prompts; the position is part of a checkpoint for exact resume.

    ``indices(k)`` returns the next k row indices; each epoch is a fresh permutation seeded by
    (seed, epoch), so a resumed run draws the same prompts as an uninterrupted one.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        if size <= 0:
            raise ValueError("no prompts in the training data")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def indices(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos >= self.size:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._permutation()
            take = min(k - len(out), self.size - self.pos)
            out += self._perm[self.pos:self.pos + take]
            self.pos += take
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"checkpoint was taken with {state['size']} prompts, the data now has {self.size}")
        self.epoch, self.pos, self.seed = state["epoch"], state["pos"], state["seed"]
        self._perm = self._permutation()
