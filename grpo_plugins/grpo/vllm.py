"""``rollout.backend: vllm``: a vLLM engine in the training process (colocated), one per GPU process.

vLLM is imported only here and only when this backend is chosen; it needs CUDA. The engine loads
the model once from ``model.name_or_path`` (tokenizer from ``model.tokenizer``); before each rollout
the policy's current weights are pushed into it (``load_weights`` with transformers' parameter
names). LoRA weights go out as ``W + delta`` computed out of place, so the policy's base weights
are never rewritten (merge/unmerge in bf16 drifts them a little every push). Sharded parameters
(FSDP2 DTensors, ZeRO-3 partitions) are gathered one weight at a time.

Each prompt row (already repeated G times) is sampled once; completions come back as
``generation.Completions`` with the mask built from each output's length (where vLLM stopped), and
with vLLM's own log-probabilities of the sampled tokens (``processed_logprobs``: after temperature,
the distribution the tokens came from) for the trainer's importance-sampling correction.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence

import torch

from .checkpoint import rng_state, set_rng_state
from .config import VLLMSection
from .generation import Completions, completion_mask


def import_vllm():
    """``(LLM, SamplingParams)`` from vLLM, or a RuntimeError that says how to get them."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise RuntimeError("rollout.backend: vllm needs the vllm package on a CUDA machine "
                           f"(pip install 'grpo-plugins[vllm]'); importing it failed: {e}") from e
    return LLM, SamplingParams


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_rendezvous(rank: int = 0, local_rank: int = 0, world_size: int = 1) -> None:
    """Set the torchrun variables vLLM's external_launcher reads, unless a launcher set them.

    ``MASTER_PORT`` unset, ``0`` or ``auto`` becomes a free port, so two single-process runs on one
    host do not collide on a fixed port (TRL's ``ensure_master_addr_port`` does the same)."""
    for key, value in (("RANK", rank), ("LOCAL_RANK", local_rank), ("WORLD_SIZE", world_size)):
        os.environ.setdefault(key, str(value))
    os.environ["MASTER_ADDR"] = os.environ.get("MASTER_ADDR") or "127.0.0.1"
    if os.environ.get("MASTER_PORT", "").strip().lower() in ("", "0", "auto"):
        os.environ["MASTER_PORT"] = str(free_port())


def empty_cache() -> None:
    """Return the caching allocator's free blocks to the device before vLLM maps its memory back."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_peft(policy) -> bool:
    """A peft model (adapters to fold into the pushed weights)."""
    return hasattr(policy, "get_base_model") and hasattr(policy, "peft_config")


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP2 DTensor shard (a collective); any other tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def merged_weight(layer) -> torch.Tensor:
    """``W + sum of the active adapters' deltas`` of a peft LoRA layer, out of place, in W's dtype."""
    w = full_tensor(layer.base_layer.weight.data)
    if getattr(layer, "merged", False):
        return w  # someone merged the adapters in: W already holds them
    out = w.float()
    for name in layer.active_adapters:
        if name in getattr(layer, "lora_A", {}):
            out = out + full_tensor(layer.get_delta_weight(name).detach()).float()
    return out.to(w.dtype)


def vllm_weights(policy, gather: Callable = lambda params: contextlib.nullcontext()
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """(transformers name, full tensor) for every weight vLLM holds; LoRA folded in out of place.

    ``gather(params)`` is a context that makes ``params`` whole (ZeRO-3's GatheredParameters); the
    tensor yielded is valid only until the next one is asked for."""
    peft = is_peft(policy)
    model = policy.get_base_model() if peft else policy
    modules = dict(model.named_modules()) if peft else {}
    for name, param in model.named_parameters():
        if peft and ("lora_" in name or "original_module" in name):
            continue  # folded into the base weight / replaced by the trained copy
        owner, _, leaf = name.rpartition(".")
        layer = modules.get(owner[:-len(".base_layer")]) if owner.endswith(".base_layer") and leaf == "weight" else None
        if layer is not None and hasattr(layer, "get_delta_weight"):
            with gather(list(layer.parameters())):
                tensor = merged_weight(layer)
        else:
            with gather([param]):
                tensor = full_tensor(param.data)
        if peft:
            name = name.replace(".base_layer", "").replace("modules_to_save.default.", "")
        yield name, tensor


class VLLMRollout:
    """Colocated vLLM engine: ``sync(policy)`` before sampling, ``generate(...)`` like ``rollout.sample``."""

    def __init__(self, name_or_path: str, cfg: VLLMSection, max_model_len: int | None, rank: int = 0,
                 local_rank: int = 0, world_size: int = 1, trust_remote_code: bool = False,
                 tokenizer: str | None = None):
        LLM, self.SamplingParams = import_vllm()
        # external_launcher keeps the engine in this process (its weights reachable for the push);
        # it reads the torchrun variables, which accelerate sets and a single process lacks
        ensure_rendezvous(rank, local_rank, world_size)
        rng = rng_state()  # vLLM's worker init reseeds Python, numpy and torch globally
        try:
            self.llm = LLM(model=name_or_path, tokenizer=tokenizer or name_or_path,
                           gpu_memory_utilization=cfg.gpu_memory_utilization,
                           max_model_len=cfg.max_model_len or max_model_len, enable_sleep_mode=cfg.enable_sleep_mode,
                           dtype=cfg.dtype, seed=rank, trust_remote_code=trust_remote_code,
                           distributed_executor_backend="external_launcher",
                           # log-probs after temperature: the distribution the tokens were drawn from
                           logprobs_mode="processed_logprobs")
        finally:
            set_rng_state(rng)  # training's seed + rank stream continues as if vLLM was not there
        self.sleep = cfg.enable_sleep_mode
        if self.sleep:
            self.llm.sleep(level=2)
        self.synced_version = None

    def _engine_model(self):
        executor = self.llm.llm_engine.model_executor
        return executor.driver_worker.model_runner.model

    def sync(self, policy, version: int, gather: Callable | None = None) -> None:
        """Push the policy's weights into the engine unless ``version`` (optimizer updates) was pushed already."""
        if version == self.synced_version:
            return
        if self.sleep:
            empty_cache()  # TRL does this before each wake-up: the allocator's cached blocks would OOM it
            self.llm.wake_up(tags=["weights"])
        model = self._engine_model()
        kwargs = {} if gather is None else {"gather": gather}
        for name, tensor in vllm_weights(policy, **kwargs):
            model.load_weights([(name, tensor)])
        self.llm.reset_prefix_cache()
        self.synced_version = version

    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                 eos_id: int | Sequence[int], pad_id: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, greedy: bool = False) -> Completions:
        """Completions of left-padded prompts [B, P], one sample per row: ids, length mask, log-probs."""
        stops = [eos_id] if isinstance(eos_id, int) else list(eos_id)
        params = self.SamplingParams(
            n=1, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
            top_k=top_k if (top_k and not greedy) else -1, max_tokens=max_new_tokens,
            stop_token_ids=stops, skip_special_tokens=False, logprobs=0)
        prompts = [{"prompt_token_ids": row[m.bool()].tolist()} for row, m in zip(prompt_ids.cpu(), prompt_mask.cpu())]
        if self.sleep:
            empty_cache()
            self.llm.wake_up(tags=["kv_cache"])
        try:
            outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        finally:
            if self.sleep:
                self.llm.sleep(level=2)
                self.synced_version = None  # level 2 drops the weights
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} completions for {len(prompts)} prompts")
        seqs = [list(o.outputs[0].token_ids)[:max_new_tokens] for o in outputs]
        width = max(1, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        logp = torch.zeros(len(seqs), width)
        for i, (s, o) in enumerate(zip(seqs, outputs)):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            for t, (tok, lp) in enumerate(zip(s, o.outputs[0].logprobs or [])):
                entry = lp.get(tok) if hasattr(lp, "get") else None
                entry = entry if entry is not None else next(iter(lp.values()))
                logp[i, t] = float(entry.logprob)
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        mask, truncated = completion_mask(ids, stops, lengths=lengths)
        device = prompt_ids.device
        has_logp = all(o.outputs[0].logprobs for o, s in zip(outputs, seqs) if s)
        return Completions(ids.to(device), mask.to(device), truncated.to(device),
                           logp.to(device) if has_logp else None)


def importance_weights(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, mode: str,
                       cap: float) -> torch.Tensor:
    """Sampler/trainer importance-sampling ratio (TRL's ``vllm_importance_sampling_mode``). All [B, T].

    ratio = exp(old_logp - sampler_logp) per token (``token_*``) or of the sequence sums
    (``sequence_*``, [B, 1]); ``*_truncate`` clips it at ``cap``, ``*_mask`` sets ratios above ``cap``
    to 0 (the token / sequence leaves the loss)."""
    diff = (old_logp - sampler_logp) * mask
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return ratio.clamp(max=cap)
    if mode.endswith("mask"):
        return ratio.masked_fill(ratio > cap, 0.0)
    raise ValueError(f"importance_sampling must be token_truncate | token_mask | sequence_truncate | sequence_mask, "
                     f"got {mode!r}")
