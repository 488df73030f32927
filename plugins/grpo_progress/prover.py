"""The frozen prover: a transformers causal LM that samples continuations of raw texts."""

from __future__ import annotations

import threading


class Prover:
    """``generate(texts, max_new_tokens)`` over a causal LM loaded from a directory: eval mode, no
    gradients, left padding; sampled at ``temperature`` (0 = greedy)."""

    def __init__(self, path: str, device: str | None = None, temperature: float = 1.0, max_length: int = 1024):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.temperature = temperature
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # left padding and left truncation: every row's continuation starts right after its own text
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = max_length
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self.model.requires_grad_(False)
        self._lock = threading.Lock()  # one generate at a time on the shared model

    def __call__(self, texts: list[str], max_new_tokens: int) -> list[str]:
        """One sampled continuation per text (special tokens dropped)."""
        import torch

        if not texts:
            return []
        tok = self.tokenizer
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
        # a text with no tokens (an empty prompt and prefix) starts from the start token: generate needs one
        start = next(t for t in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if t is not None)
        enc = tok.pad({"input_ids": [row or [start] for row in ids]}, return_tensors="pt").to(self.device)
        sampled = self.temperature > 0
        kwargs = {"do_sample": True, "temperature": self.temperature, "top_k": 0, "top_p": 1.0} if sampled else \
            {"do_sample": False}
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)
