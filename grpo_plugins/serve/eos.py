"""End-of-sequence text that OpenRLHF and slime leave on a response, and its removal before scoring.

Both decode with special tokens kept (OpenRLHF ``skip_special_tokens=False``; slime's defaults
``skip_special_tokens=False``, ``no_stop_trim=True``), so a response ends e.g. ``...</answer><|im_end|>``
and a reward that matches the whole completion (``format``) would pay 0 on a well-formed answer.
With ``serve.tokenizer`` set, the tokens come from that tokenizer (its EOS and pad tokens and the
EOS ids of a ``generation_config.json`` beside it), else from ``serve.eos_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import SettingError

# Chat templates' end-of-turn / end-of-text / pad tokens, per family.
DEFAULT_EOS_TOKENS: tuple[str, ...] = (
    "<|im_end|>", "<|endoftext|>",            # Qwen
    "<|eot_id|>", "<|end_of_text|>",          # Llama-3
    "</s>",                                   # Mistral / Llama-2
    "<｜end▁of▁sentence｜>",                   # DeepSeek
    "<end_of_turn>", "<eos>",                 # Gemma
)


def strip_eos(text: str, tokens: Iterable[str] = DEFAULT_EOS_TOKENS) -> str:
    """``text`` without its trailing run of ``tokens`` and whitespace (repeated and mixed, in any order)."""
    toks = sorted({t for t in tokens if t}, key=len, reverse=True)
    cut = len(text)
    while True:
        stripped = text[:cut].rstrip()
        for t in toks:
            if stripped.endswith(t):
                cut = len(stripped) - len(t)
                break
        else:
            break
    return text[:cut].rstrip()


def tokenizer_eos_tokens(name: str) -> tuple[str, ...]:
    """The end-of-sequence and pad tokens of the tokenizer at ``name`` (a local folder or a model name).

    Chat models end a turn with a token that is not always the tokenizer's ``eos_token`` (Llama-3
    Instruct: ``<|eot_id|>``; Gemma: ``<end_of_turn>``); those are the ``eos_token_id`` list of the
    model's ``generation_config.json``, read when the folder has one.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise SettingError("serve.tokenizer", "needs transformers", "pip install 'grpo-plugins[train]'") from None
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingError("serve.tokenizer", f"cannot load tokenizer {name!r}: {first}",
                           "a local folder with tokenizer files, or a model name") from None
    found = [tok.eos_token, tok.pad_token]
    gen = Path(name) / "generation_config.json"
    if gen.is_file():
        try:
            ids = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            ids = None
        ids = [ids] if isinstance(ids, int) else [i for i in ids or [] if isinstance(i, int)]
        found += [tok.convert_ids_to_tokens(i) for i in ids]
    return tuple(dict.fromkeys(t for t in found if isinstance(t, str) and t))


def eos_tokens_for(tokenizer: str | None, configured: Iterable[str], configured_set: bool) -> tuple[str, ...]:
    """The tokens to strip: the tokenizer's (plus ``eos_tokens`` when set explicitly), else ``eos_tokens``."""
    if tokenizer is None:
        return tuple(configured)
    extra = tuple(configured) if configured_set else ()
    return tuple(dict.fromkeys(tokenizer_eos_tokens(tokenizer) + extra))
