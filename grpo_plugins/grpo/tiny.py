"""The offline demo's ingredients, built on disk: a character-level tokenizer (a fast tokenizer with
offsets), a tiny Llama-style causal LM with random weights, and a synthetic two-digit addition task
written in the think/answer format.

The supervised warm-up data teaches a common slip on purpose: in ``carry_slip`` of the examples that
need a carry, the worked solution forgets it (``27+45``: ``7+5=12, 2+4=6`` -> ``62``). After the
warm-up the model usually makes that slip, yet samples the right carry now and then; the ``math``
reward tells the two apart, and GRPO has a real mistake to unlearn.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from pathlib import Path

from .. import stop

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]


def build_tokenizer():
    """A character-level PreTrainedTokenizerFast; think/answer tags are single (non-special) tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + TAGS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # [\s\S], not ".": the regex engine's "." skips newlines, which would merge into one <unk>
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL)
    tok.add_tokens(TAGS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False, padding_side="left")


def build_model(tokenizer, hidden_size: int = 128, layers: int = 4, heads: int = 4, seed: int = 0):
    """A LlamaForCausalLM initialised from ``seed`` alone (about 0.8M parameters at the defaults).

    The global torch generator is left as it was: reseeding it here made a run that builds the model
    draw other numbers afterwards than a run on an already built one.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 3,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=256, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):  # the weights' initialisers draw from the CPU generator
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def addition_example(a: int, b: int, slip: bool = False) -> dict:
    """Prompt, worked completion and gold answer for ``a + b`` (two-digit numbers)."""
    u1, u2, t1, t2 = a % 10, b % 10, a // 10, b // 10
    us = u1 + u2
    carry = us >= 10
    if carry and not slip:
        tens = f"{t1}+{t2}+1={t1 + t2 + 1}"
        ts = t1 + t2 + 1
    else:
        tens = f"{t1}+{t2}={t1 + t2}"
        ts = t1 + t2
    answer = str(ts * 10 + us % 10)
    completion = f"<think>{u1}+{u2}={us}, {tens}</think><answer>{answer}</answer>"
    return {"prompt": f"{a}+{b}=?\n", "completion": completion, "answer": str(a + b), "carry": carry}


def build_data(n_train: int, n_eval: int, n_sft: int, carry_slip: float, seed: int) -> dict[str, list[dict]]:
    """Disjoint held-out pairs; GRPO prompts and SFT examples drawn from the remaining pairs."""
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    held, rest = pairs[:n_eval], pairs[n_eval:]
    train = [addition_example(a, b) for a, b in (rng.choice(rest) for _ in range(n_train))]
    sft = []
    for a, b in (rng.choice(rest) for _ in range(n_sft)):
        ex = addition_example(a, b, slip=rng.random() < carry_slip)
        sft.append({"prompt": ex["prompt"], "completion": ex["completion"], "answer": ex["answer"]})
    test = [addition_example(a, b) for a, b in held]
    strip = lambda rows: [{"prompt": r["prompt"], "answer": r["answer"], "carry": r["carry"]} for r in rows]  # noqa: E731
    return {"train": strip(train), "test": strip(test), "sft": sft}


def build(dir: str | os.PathLike, n_train: int = 4000, n_eval: int = 200, n_sft: int = 4000,
          carry_slip: float = 0.75, hidden_size: int = 128, layers: int = 4, heads: int = 4,
          seed: int = 1234) -> Path:
    """Write ``model/`` (weights + tokenizer), ``train.jsonl``, ``test.jsonl``, ``sft.jsonl`` under dir.

    Idempotent: an existing complete build is kept. Written to a temporary folder and renamed, so
    an interrupted build never leaves a half-written one behind; a stop signal (stop.py) ends it
    between files, the temporary folder removed.
    """
    out = Path(dir)
    if (out / "DONE").exists():
        return out
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tokenizer = build_tokenizer()
        model = build_model(tokenizer, hidden_size, layers, heads, seed)
        stop.check()
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        for name, rows in build_data(n_train, n_eval, n_sft, carry_slip, seed).items():
            stop.check()
            with open(tmp / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
        (tmp / "DONE").write_text("ok\n")
    except BaseException:  # a stop, a second Ctrl-C or an error: no stray .tmp-PID folder is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def ensure_built(section, accelerator=None) -> Path:
    """Build the demo's files for a config's ``tiny`` section unless present (main process first)."""
    ctx = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
    with ctx:
        return build(**section.model_dump())
