"""Hints for mistyped names: did-you-mean suggestions (difflib) and TRL's GRPOConfig names mapped to ours."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel

# TRL GRPOConfig / TrainingArguments field -> (our dotted key, note). Hints only, not aliases: one
# name per setting keeps a config and the resolved copy in the run dir unambiguous.
TRL_NAMES: dict[str, tuple[str, str]] = {
    "max_completion_length": ("rollout.max_new_tokens", ""),
    "max_prompt_length": ("data.max_prompt_tokens", "a GRPOConfig field of older TRL versions"),
    "num_generations": ("rollout.num_generations", ""),
    "temperature": ("rollout.temperature", ""),
    "top_p": ("rollout.top_p", ""),
    "top_k": ("rollout.top_k", ""),
    "use_vllm": ("rollout.backend", "set it to vllm"),
    "vllm_gpu_memory_utilization": ("rollout.vllm.gpu_memory_utilization", ""),
    "generation_batch_size": ("rollout.batch_size", ""),
    "max_steps": ("train.steps", ""),
    "num_train_epochs": ("train.steps", "runs are counted in steps"),
    "per_device_train_batch_size": ("train.prompts_per_step",
                                    "ours counts prompts across all processes: TRL's completions per device "
                                    "x processes x gradient_accumulation_steps / num_generations"),
    "gradient_accumulation_steps": ("train.micro_batch_size", "sequences per forward/backward; the step's batch "
                                                              "is accumulated automatically"),
    "learning_rate": ("train.learning_rate", ""),
    "lr_scheduler_type": ("train.lr_scheduler", ""),
    "warmup_steps": ("train.warmup_steps", ""),
    "weight_decay": ("train.weight_decay", ""),
    "max_grad_norm": ("train.max_grad_norm", ""),
    "adam_beta1": ("train.adam_betas", "a pair: [beta1, beta2]"),
    "adam_beta2": ("train.adam_betas", "a pair: [beta1, beta2]"),
    "beta": ("train.beta", ""),
    "epsilon": ("train.epsilon", ""),
    "epsilon_high": ("train.epsilon_high", ""),
    "num_iterations": ("train.num_iterations", ""),
    "loss_type": ("train.loss_type", ""),
    "scale_rewards": ("train.scale_rewards", ""),
    "mask_truncated_completions": ("train.mask_truncated_completions", ""),
    "seed": ("train.seed", ""),
    "bf16": ("train.bf16", ""),
    "gradient_checkpointing": ("model.gradient_checkpointing", ""),
    "model_name_or_path": ("model.name_or_path", ""),
    "output_dir": ("log.run_dir", ""),
    "logging_steps": ("log.every", ""),
    "report_to": ("log.report_to", ""),
    "log_completions": ("log.print_samples_every", "and log.samples"),
    "save_steps": ("checkpoint.every", ""),
    "save_total_limit": ("checkpoint.keep", ""),
    "resume_from_checkpoint": ("checkpoint.resume", "resuming from run_dir is automatic"),
    "eval_steps": ("eval.every", ""),
    "reward_weights": ("rewards[i].weight", "one weight per reward entry"),
}


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` close matches of ``word`` among ``choices`` (difflib, case-insensitive)."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    return [lower[m] for m in difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, list, tuple):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _leaf_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> dict[str, str]:
    """Every key of a config model as {dotted path: last name} (nested sections included)."""
    out = {}
    for name, f in model.model_fields.items():
        path = f"{prefix}{name}"
        out[path] = name
        sub = _model_of(f.annotation)
        if sub is not None and depth < 3:
            sep = "[i]." if typing.get_origin(f.annotation) is list else "."
            out.update(_leaf_paths(sub, path + sep, depth + 1))
    return out


def unknown_key_hint(model: type[BaseModel], loc: tuple) -> str:
    """Why ``loc`` (an unknown key) may be wrong: TRL's name for one of ours, a near miss, or the key elsewhere."""
    key = str(loc[-1])
    node: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int) or node is None:
            continue
        f = node.model_fields.get(part)
        node = _model_of(f.annotation) if f is not None else None
    if key in TRL_NAMES:
        ours, note = TRL_NAMES[key]
        return f"TRL's {key} is {ours} here" + (f"; {note}" if note else "") + "; see docs/trl-names.md"
    here = list(node.model_fields) if node is not None else []
    close = did_you_mean(key, here)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    everywhere = _leaf_paths(model)
    same = [p for p, name in everywhere.items() if name == key]
    if not same:
        same = [p for p, name in everywhere.items() if name in did_you_mean(key, set(everywhere.values()), 2)]
    if same:
        return "did you mean " + " or ".join(same[:3]) + "?"
    return ("valid keys here: " + ", ".join(here)) if here else ""
