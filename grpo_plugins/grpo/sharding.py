"""How the policy is distributed (single, DDP, FSDP2, DeepSpeed ZeRO-3) and what each engine needs
from the trainer: gathered parameters for generation and the vLLM push, a sharded reference model,
and whole-tensor checkpoints written through the engine's own state-dict API.

- FSDP2 (``fully_shard``; configs/accelerate-fsdp2.yaml): parameters are DTensor shards. A forward
  all-gathers each layer, so every process must run the same number of forwards: generation is
  *synced* (a process whose rows are done keeps stepping until all are, like transformers'
  ``synced_gpus``); ``generate`` is registered as an FSDP forward (a PeftModel's skips the root's
  all-gather). The vLLM push calls ``full_tensor()`` per weight. Checkpoints use
  ``torch.distributed.checkpoint.state_dict`` with full state dicts (model and optimizer).
- ZeRO-3 (configs/accelerate-zero3.yaml): parameters are partitioned. Generation runs inside
  ``deepspeed.zero.GatheredParameters`` over the whole model with the engine's per-module hooks
  lifted (TRL's ``ds3_gather_for_generation`` and ``remove_hooks``); the DeepSpeed config gets
  concrete batch sizes and the micro-batches accumulate into one engine step (``configure_zero3``),
  the vLLM push gathers one weight at a time, the model checkpoint is gathered in float32 and the
  optimizer's partition is saved per rank (``optimizer-RANK.pt``), resumable at the same world size.
- The reference model (beta > 0, no LoRA) is sharded the same way, never a whole copy per process.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def engine(accelerator) -> str:
    """``zero3``, ``fsdp2``, ``ddp`` or ``single``; FSDP1 and ZeRO-1/2 are refused with the way out."""
    state = accelerator.state
    ds = getattr(state, "deepspeed_plugin", None)
    if ds is not None:
        if ds.zero_stage != 3:
            raise ValueError(f"DeepSpeed ZeRO-{ds.zero_stage} is not supported: use configs/accelerate-zero3.yaml "
                             "(ZeRO-3) or plain DDP")
        return "zero3"
    fsdp = getattr(state, "fsdp_plugin", None)
    if fsdp is not None:
        if getattr(fsdp, "fsdp_version", 1) != 2:
            raise ValueError("FSDP1 is not supported: set fsdp_version: 2 (configs/accelerate-fsdp2.yaml)")
        return "fsdp2"
    return "ddp" if accelerator.num_processes > 1 else "single"


def configure_zero3(accelerator, micro_batch_size: int, micro_batches: int, bf16: bool) -> dict:
    """Concrete batch sizes (and bf16 autocast) in the DeepSpeed config, before ``prepare``.

    accelerate fills ``"auto"`` micro-batch sizes from a DataLoader, and the trainer prepares none;
    one GRPO update is ``micro_batches`` engine backwards, so DeepSpeed accumulates over them and
    steps once. The engine's forward turns the caller's autocast off: with ``bf16`` the engine runs
    its own (``torch_autocast``), over the float32 master weights, as reference and rollout do."""
    cfg = accelerator.state.deepspeed_plugin.deepspeed_config
    cfg["train_micro_batch_size_per_gpu"] = micro_batch_size
    cfg["gradient_accumulation_steps"] = micro_batches
    cfg.pop("train_batch_size", None)  # DeepSpeed derives it from these and its own world size
    precision = [k for k in ("bf16", "fp16", "torch_autocast") if cfg.get(k, {}).get("enabled") not in (None, False, "auto")]
    if bf16 and not precision:
        cfg["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    accelerator.gradient_accumulation_steps = micro_batches
    return cfg


@contextlib.contextmanager
def micro_batch(accelerator, model, k: int, n: int):
    """The context of micro-batch ``k`` of ``n``: gradients sync only at the last one (DDP's
    ``no_sync`` before it); under ZeRO-3 ``sync_gradients`` is False until then, so the engine
    accumulates and steps once per update, not once per micro-batch."""
    if getattr(accelerator.state, "deepspeed_plugin", None) is not None:
        accelerator.step = k  # accumulate() counts from here: sync exactly at k == n - 1
        with accelerator.accumulate(model):
            yield
    elif k == n - 1:
        yield
    else:
        with accelerator.no_sync(model):
            yield


def backward_kwargs(accelerator) -> dict:
    """DeepSpeed divides each backward's loss by its accumulation count; the trainer's loss is already
    normalised over the whole batch, so that scaling is turned off."""
    return {"scale_wrt_gas": False} if getattr(accelerator.state, "deepspeed_plugin", None) is not None else {}


def is_fsdp2(model) -> bool:
    """The model's parameters are DTensor shards (``fully_shard`` ran on it)."""
    return any(hasattr(p, "full_tensor") for p in model.parameters())


def is_zero3(model) -> bool:
    """The model's parameters are ZeRO-3 partitions."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def gather(params):
    """A context in which ``params`` are whole: ZeRO-3's GatheredParameters, else nothing to do."""
    params = list(params)
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params)
    return contextlib.nullcontext()


def after_prepare(policy, prepared) -> None:
    """What generation needs once accelerate has prepared the model: FSDP2's ``generate`` registered
    as a forward (``register_generate``); ZeRO-3's parameter-offload hooks reachable from the module,
    so ``for_generation`` can lift them while the parameters are gathered."""
    register_generate(policy)
    off = getattr(getattr(prepared, "optimizer", None), "parameter_offload", None)
    if off is not None:
        policy._zero3_offload = off


def _remove_zero3_hooks(off) -> None:
    """TRL's ``remove_hooks`` (trl/models/utils.py): the per-module fetch/release hooks of ZeRO-3."""
    for p in off.module.parameters(recurse=True):
        p.ds_active_sub_modules.clear()
    for hook in off.forward_hooks + off.backward_hooks:
        hook.remove()
    off.forward_hooks, off.backward_hooks = [], []


@contextlib.contextmanager
def for_generation(model):
    """Whole parameters for a rollout under ZeRO-3 (one gather, not one per forward); FSDP2 gathers per
    forward, and is resharded after: a no-grad forward leaves the root unsharded (no backward follows)."""
    if is_zero3(model):
        off = getattr(model, "_zero3_offload", None)
        with gather(model.parameters()):
            if off is not None:  # else every forward re-gathers each layer, token by token (TRL removes them too)
                _remove_zero3_hooks(off)
            try:
                yield
            finally:
                if off is not None:
                    off._register_deepspeed_module(off.module)
    elif is_fsdp2(model):
        from torch.distributed.fsdp import FSDPModule

        try:
            yield
        finally:
            for m in model.modules():
                if isinstance(m, FSDPModule):
                    m.reshard()
    else:
        yield


def register_generate(model) -> None:
    """FSDP2: ``model.generate`` runs the root's all-gather hooks, as a forward does (transformers'
    Trainer does this); ``PeftModel.generate`` calls the base model's and would skip the root's, so
    embeddings and lm_head would stay sharded. A no-op on any other model."""
    if is_fsdp2(model):
        from torch.distributed.fsdp import register_fsdp_forward_method

        register_fsdp_forward_method(model, "generate")


def synced(model) -> bool:
    """Generation must keep every process stepping together (sharded parameters, more than one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    return torch.distributed.get_world_size() > 1 and (is_fsdp2(model) or is_zero3(model))


def all_done(done: torch.Tensor) -> bool:
    """True when every row of every process is done (one all-reduce of a flag)."""
    flag = torch.tensor([0.0 if bool(done.all()) else 1.0], device=done.device)
    torch.distributed.all_reduce(flag)
    return float(flag) == 0.0


def shard_like(ref, policy, offload: bool = False):
    """Shard a frozen reference the way the policy is: FSDP2 per decoder layer (optionally offloaded
    to CPU), ZeRO-3 through ``deepspeed.initialize`` without an optimizer (TRL's prepare_deepspeed)."""
    if is_fsdp2(policy):
        from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

        kwargs: dict[str, Any] = {"offload_policy": CPUOffloadPolicy()} if offload else {}
        units = set(getattr(ref, "_no_split_modules", None) or [])
        for m in ref.modules():
            if type(m).__name__ in units:
                fully_shard(m, **kwargs)
        fully_shard(ref, **kwargs)
        return ref.eval().requires_grad_(False)
    if is_zero3(policy):
        import deepspeed

        config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}}
        if offload:
            config["zero_optimization"]["offload_param"] = {"device": "cpu"}
        return deepspeed.initialize(model=ref, config=config)[0].module.eval().requires_grad_(False)
    return ref


def model_state(model) -> dict[str, torch.Tensor]:
    """Whole tensors of the model's state dict (collective when sharded: call it on every process).

    FSDP2: on the CPU, complete on rank 0 only (the others get {}); ZeRO-3: gathered in float32 on
    every process; otherwise the plain ``state_dict()``."""
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_zero3(model):
        return model.state_dict()
    keys = set(model.state_dict())
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):  # tied weights under both names
        with gather([p]):
            out[name] = p.data.detach().cpu().clone()
    for name, b in model.named_buffers():
        if name in keys:
            out[name] = b.detach().cpu().clone()
    return out


def load_model_state(model, state: dict[str, torch.Tensor]) -> None:
    """Load whole tensors into a possibly sharded model (FSDP2: rank 0's ``state`` is broadcast)."""
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        rank0 = torch.distributed.get_rank() == 0
        set_model_state_dict(model, state if rank0 else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        return
    if is_zero3(model):
        import deepspeed

        for name, p in model.named_parameters():
            with deepspeed.zero.GatheredParameters([p], modifier_rank=0):
                if torch.distributed.get_rank() == 0:
                    p.data.copy_(state[name])
        return
    model.load_state_dict(state)


def optimizer_state(model, optimizer) -> tuple[dict, bool]:
    """(optimizer state, per_rank): FSDP2's full state dict (complete on rank 0), ZeRO-3's partition."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, inner, options=StateDictOptions(full_state_dict=True,
                                                                               cpu_offload=True)), False
    return optimizer.state_dict(), is_zero3(model)


def optimizer_globals() -> list:
    """The DeepSpeed classes a ZeRO-3 optimizer partition pickles, allowed for a ``weights_only`` load."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    return [ZeroStageEnum, LossScaler, DynamicLossScaler]


def load_optimizer_state(model, optimizer, state: dict) -> None:
    """Restore what ``optimizer_state`` returned."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        rank0 = torch.distributed.get_rank() == 0
        set_optimizer_state_dict(model, inner, state if rank0 else {},
                                 options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        return
    if is_zero3(model):  # stage 3 takes every rank's saved partition and picks its own by rank
        optimizer.load_state_dict([state] * torch.distributed.get_world_size())
        return
    optimizer.load_state_dict(state)
