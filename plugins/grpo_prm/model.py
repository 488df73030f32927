"""The process reward model: a transformers token-classification model (2 classes: bad, good) read
at the last token of each step. Step-splitting settings travel with the model in ``grpo_prm.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from grpo_plugins.steps import StepFormat, step_end_tokens

SETTINGS_FILE = "grpo_prm.json"


@dataclass
class Encoded:
    """Token ids of prompt+completion (left-truncated) and the token index that ends each step."""

    input_ids: list[int]
    ends: list[int | None]


class ProcessRewardModel:
    """A token-classification model plus its tokenizer and step format; scores steps as P(good)."""

    def __init__(self, model, tokenizer, step_format: StepFormat | None = None, max_length: int = 1024,
                 device: str | torch.device = "cpu"):
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.step_format = step_format or StepFormat()
        self.max_length = max_length
        self.device = torch.device(device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", max_length: int = 1024,
             step_format: StepFormat | None = None) -> "ProcessRewardModel":
        """Load a saved PRM (model, tokenizer, grpo_prm.json) from a directory."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"PRM directory not found: {path}")
        model = AutoModelForTokenClassification.from_pretrained(path, num_labels=2)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if step_format is None:
            settings = path / SETTINGS_FILE
            step_format = StepFormat(**json.loads(settings.read_text())) if settings.exists() else StepFormat()
        return cls(model.eval(), tokenizer, step_format, max_length, device)

    def save(self, path: str | Path) -> None:
        """Save model, tokenizer and step format to a directory."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / SETTINGS_FILE).write_text(json.dumps(asdict(self.step_format), indent=2))

    def encode(self, prompt: str, completion: str, spans: Sequence[tuple[int, int]]) -> Encoded:
        """Tokenize prompt+completion, keep the last ``max_length`` tokens, locate each step's end token."""
        enc = self.tokenizer(prompt + completion, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        # cut from the left: the completion's steps matter more than the start of the prompt
        cut = max(0, len(ids) - self.max_length)
        ids, offsets = ids[cut:], offsets[cut:]
        shift = len(prompt)
        ends = step_end_tokens(offsets, [(s + shift, e + shift) for s, e in spans])
        return Encoded(list(ids), ends)

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists into (input_ids [B, T], attention_mask [B, T]) on the model's device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def score(self, items: Sequence[tuple[str, str, Sequence[tuple[int, int]]]],
              batch_size: int = 16) -> list[list[float | None]]:
        """P(good) per step for (prompt, completion, spans) items; None for a step cut off by truncation."""
        self.model.eval()
        encoded = [self.encode(p, c, s) for p, c, s in items]
        out: list[list[float | None]] = [[] for _ in encoded]
        # similar lengths share a batch so little compute goes to padding
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            ids, mask = self.pad([encoded[i].input_ids for i in idx])
            probs = self.model(input_ids=ids, attention_mask=mask).logits.float().softmax(-1)[..., 1].cpu()
            for row, i in enumerate(idx):
                out[i] = [None if t is None else float(probs[row, t]) for t in encoded[i].ends]
        return out

    def score_texts(self, prompts: Sequence[str], completions: Sequence[str],
                    batch_size: int = 16) -> list[list[tuple[int, int, float | None]]]:
        """Split each completion into steps and score them: [(start_char, end_char, P(good)), ...]."""
        spans = [self.step_format.spans(c) for c in completions]
        scores = self.score(list(zip(prompts, completions, spans)), batch_size)
        return [[(s, e, v) for (s, e), v in zip(sp, sc)] for sp, sc in zip(spans, scores)]
