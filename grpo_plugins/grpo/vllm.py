"""``rollout.backend: vllm``: a vLLM engine in the training process (colocated), one per GPU process.

vLLM is imported only here and only when this backend is chosen; it needs CUDA. The engine loads
the model once from ``model.name_or_path``; before each rollout the policy's current weights are
pushed into it (``load_weights`` with transformers' parameter names; LoRA adapters are merged for
the push and unmerged after), then each prompt row (already repeated G times) is sampled once.
Completions come back in the same [B, T] form as ``rollout.sample``: EOS kept, pad after it.

Not done: vLLM's log-probabilities are not used for an importance-sampling correction of the
sampler/trainer mismatch (TRL's ``vllm_importance_sampling_correction``); with ``num_iterations``
1 the first update's ratio is 1 by construction, as with the built-in sampler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from .config import VLLMSection


def import_vllm():
    """``(LLM, SamplingParams)`` from vLLM, or a RuntimeError that says how to get them."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise RuntimeError("rollout.backend: vllm needs the vllm package on a CUDA machine "
                           f"(pip install vllm); importing it failed: {e}") from e
    return LLM, SamplingParams


def is_peft(policy) -> bool:
    """A peft model (adapters to merge before a push)."""
    return hasattr(policy, "get_base_model") and hasattr(policy, "peft_config")


def vllm_weight_names(policy) -> Iterator[tuple[str, torch.Tensor]]:
    """(transformers name, tensor) for every weight vLLM holds; LoRA adapters must be merged first."""
    peft = is_peft(policy)
    model = policy.get_base_model() if peft else policy
    for name, param in model.named_parameters():
        if peft:
            if "lora_" in name or "original_module" in name:
                continue  # merged into the base weight / replaced by the trained copy
            name = name.replace(".base_layer", "").replace("modules_to_save.default.", "")
        yield name, param.data


class VLLMRollout:
    """Colocated vLLM engine: ``sync(policy)`` before sampling, ``generate(...)`` like ``rollout.sample``."""

    def __init__(self, name_or_path: str, cfg: VLLMSection, max_model_len: int, rank: int = 0,
                 local_rank: int = 0, world_size: int = 1, trust_remote_code: bool = False):
        LLM, self.SamplingParams = import_vllm()
        # external_launcher keeps the engine in this process (its weights reachable for the push);
        # it reads the torchrun variables, which accelerate sets and a single process lacks
        for key, value in (("RANK", rank), ("LOCAL_RANK", local_rank), ("WORLD_SIZE", world_size),
                           ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29517")):
            os.environ.setdefault(key, str(value))
        self.llm = LLM(model=name_or_path, gpu_memory_utilization=cfg.gpu_memory_utilization,
                       max_model_len=cfg.max_model_len or max_model_len, enable_sleep_mode=cfg.enable_sleep_mode,
                       dtype=cfg.dtype, seed=rank, trust_remote_code=trust_remote_code,
                       distributed_executor_backend="external_launcher")
        self.sleep = cfg.enable_sleep_mode
        if self.sleep:
            self.llm.sleep(level=2)
        self.synced_version = None

    def _engine_model(self):
        executor = self.llm.llm_engine.model_executor
        return executor.driver_worker.model_runner.model

    def sync(self, policy, version: int) -> None:
        """Push the policy's weights into the engine unless ``version`` (optimizer updates) was pushed already."""
        if version == self.synced_version:
            return
        if self.sleep:
            self.llm.wake_up(tags=["weights"])
        peft = is_peft(policy)
        if peft:
            policy.merge_adapter()
        try:
            model = self._engine_model()
            for name, tensor in vllm_weight_names(policy):
                model.load_weights([(name, tensor)])
        finally:
            if peft:
                policy.unmerge_adapter()
        self.llm.reset_prefix_cache()
        self.synced_version = version

    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int, eos_id: int,
                 pad_id: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 greedy: bool = False) -> torch.Tensor:
        """Completion ids [B, T] for left-padded prompts [B, P], one sample per row, pad after EOS."""
        params = self.SamplingParams(
            n=1, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
            top_k=top_k if (top_k and not greedy) else -1, max_tokens=max_new_tokens,
            stop_token_ids=[eos_id], skip_special_tokens=False)
        prompts = [{"prompt_token_ids": row[m.bool()].tolist()} for row, m in zip(prompt_ids.cpu(), prompt_mask.cpu())]
        if self.sleep:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        finally:
            if self.sleep:
                self.llm.sleep(level=2)
                self.synced_version = None  # level 2 drops the weights
        seqs = [list(o.outputs[0].token_ids)[:max_new_tokens] for o in outputs]
        if len(seqs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(seqs)} completions for {len(prompts)} prompts")
        width = max(1, max(len(s) for s in seqs))
        out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            if eos_id in s:
                s = s[:s.index(eos_id) + 1]
            out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        return out.to(prompt_ids.device)
