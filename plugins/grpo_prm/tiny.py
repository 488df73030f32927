"""A tiny PRM built on disk (no hub download): a small Llama token classifier over a character
tokenizer, or over a tokenizer you already have (the tiny policy's)."""

from __future__ import annotations

from pathlib import Path

import torch

from .model import ProcessRewardModel, StepFormat

CHARS = [chr(i) for i in range(32, 127)] + ["\n", "\t", "к", "и"]


def char_tokenizer():
    """A fast character-level tokenizer with offsets: one token per printable ASCII character."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + CHARS)}
    # BPE with no merges splits the text into characters and keeps exact offsets
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def build_tiny_prm(out_dir: str | Path, tokenizer_dir: str | Path | None = None, hidden_size: int = 64,
                   layers: int = 2, heads: int = 4, max_positions: int = 1024, seed: int = 0,
                   step_format: StepFormat | None = None) -> Path:
    """Write a randomly initialised tiny PRM (model, tokenizer, step format) to ``out_dir``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForTokenClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else char_tokenizer()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 4,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, num_labels=2,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForTokenClassification(config)
    prm = ProcessRewardModel(model, tokenizer, step_format or StepFormat())
    prm.save(out_dir)
    return Path(out_dir)
