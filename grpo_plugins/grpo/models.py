"""Models: loading the policy and tokenizer, the dtype its weights load in, the device and autocast
rule, and the frozen copy the KL reference is made of."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TrainConfig


def weights_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype the policy's weights load in: ``auto`` = float32 master weights, as TRL.

    transformers 5 turns an absent dtype into the checkpoint's (bf16 for Qwen2.5 and Llama-3), and
    AdamW on bf16 weights rounds most lr-1e-6 updates away; so auto asks for float32 explicitly and
    bf16 comes from autocast. An explicit half dtype with full fine-tuning warns."""
    m = cfg.model
    if m.dtype == "auto":
        return torch.float32
    if m.dtype != "float32" and not m.lora:
        import warnings

        warnings.warn(f"model.dtype: {m.dtype} with full fine-tuning keeps no float32 master copy: AdamW updates "
                      "smaller than the weights' precision round away (use dtype: auto = float32 + bf16 autocast)",
                      stacklevel=2)
    return getattr(torch, m.dtype)


def load_model_and_tokenizer(cfg: TrainConfig):
    """AutoModelForCausalLM + AutoTokenizer from a hub name or a local folder, LoRA when asked."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = cfg.model
    tokenizer = AutoTokenizer.from_pretrained(m.tokenizer or m.name_or_path, trust_remote_code=m.trust_remote_code)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"  # data.max_prompt_tokens keeps the end (the assistant header)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"trust_remote_code": m.trust_remote_code, "dtype": weights_dtype(cfg)}
    if m.attn_implementation:
        kwargs["attn_implementation"] = m.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(m.name_or_path, **kwargs)
    if m.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if m.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **m.lora))
    return model, tokenizer


def autocast_for(cfg: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The autocast factory on ``device``: bf16 when ``train.bf16`` is true, or ``auto`` on CUDA; else none."""
    if cfg.train.bf16 is True or (cfg.train.bf16 == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def rollout_device(cfg: TrainConfig):
    """(device, autocast factory) the trainer would use here: CUDA when present, bf16 autocast there."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return device, autocast_for(cfg, device)


def frozen_copy(model):
    """A frozen copy of ``model`` for the KL reference; a peft model is merged into a plain one."""
    ref = copy.deepcopy(model)
    if hasattr(ref, "merge_and_unload"):
        ref = ref.merge_and_unload()
    return ref.eval().requires_grad_(False)


def load_pretrained_policy(path: str | os.PathLike, cfg: TrainConfig):
    """A saved policy (``export``'s folder; a LoRA adapter folder loads its base with the adapter)."""
    kwargs: dict[str, Any] = {"trust_remote_code": cfg.model.trust_remote_code, "dtype": weights_dtype(cfg)}
    if (Path(path) / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(path, **kwargs)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **kwargs)
