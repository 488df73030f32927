"""End-of-sequence text that OpenRLHF and slime leave on a response, and its removal before scoring.

Both decode with special tokens kept (OpenRLHF ``skip_special_tokens=False``; slime's defaults
``skip_special_tokens=False``, ``no_stop_trim=True``), so a response ends e.g. ``...</answer><|im_end|>``
and a reward that matches the whole completion (``format``) would pay 0 on a well-formed answer.
"""

from __future__ import annotations

from collections.abc import Iterable

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
