"""Decoders for the rollout sampler: a lean one for Llama-family models, and transformers' forward.

A small model's decode step in transformers spends most of its time outside the matmuls: the
causal mask and cache objects are rebuilt every token, attention goes through a dispatch layer
and CPU SDPA is slow for a single query. ``LeanDecoder`` runs the same math, calling the model's
own modules and weights, on a preallocated KV cache: q/k/v and gate/up become one matmul each and
attention is two batched matmuls. It accepts only models whose structure it knows (Llama, Qwen2,
Qwen3, Mistral without a sliding window, plain ``nn.Linear`` projections); ``decoder_for`` returns
``HFDecoder`` for anything else (LoRA adapters, quantised layers, other architectures).

Weights: on the CPU the lean decoder fuses each layer's projections into contiguous copies for the
length of a rollout (about 30% faster there, and CPU memory is plentiful); on any other device it
calls the model's own weights, with no copy (a second model on the GPU is what the memory is for).
The KV cache and attention run in the compute dtype: the autocast dtype under autocast (bf16 on
CUDA), else the weights' dtype; rotary tables are cast to it, so float32 embeddings cannot promote
the cache back to float32.

Both decoders have one interface: ``prefill(input_ids, attention_mask) -> logits [B, V]`` for the
last prompt token, ``step(tokens [B]) -> logits [B, V]`` for the next one, ``keep(rows)`` to drop
finished rows from the cache.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

LEAN_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
MASKED = torch.finfo(torch.float32).min  # not -inf: a left-pad query row sees no key and must stay finite


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded rows: 0 at each row's first real token (pads get 0 too)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def cache_kwarg(model) -> str:
    """Name of the KV-cache argument of ``model.forward``: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class HFDecoder:
    """transformers' own forward with a DynamicCache (any causal LM)."""

    def __init__(self, model, max_new_tokens: int):
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache()
        self.kw = {cache_kwarg(model): self.cache}

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.mask = attention_mask
        positions = position_ids(attention_mask)
        self.next_pos = positions[:, -1:] + 1
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **self.kw)
        return out.logits[:, -1].float()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.next_pos,
                         use_cache=True, **self.kw)
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1].float()

    @property
    def can_keep(self) -> bool:
        return hasattr(self.cache, "batch_select_indices")

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.next_pos = self.mask[rows], self.next_pos[rows]


def lean_unsupported(model) -> str | None:
    """Why ``LeanDecoder`` cannot run ``model`` (None when it can)."""
    config = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    if config is None or inner is None or getattr(config, "model_type", None) not in LEAN_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', type(model).__name__)!r} is not one of {LEAN_MODEL_TYPES}"
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, name):
            return f"the model has no model.{name}"
    if not isinstance(getattr(model, "lm_head", None), nn.Linear):
        return "lm_head is not an nn.Linear"
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return "the model has sliding-window layers"
    if config.model_type == "mistral" and getattr(config, "sliding_window", None):
        return "the model uses a sliding window"
    if any(hasattr(p, "full_tensor") or hasattr(p, "ds_id") for p in model.parameters()):
        return "the parameters are sharded (FSDP2 / ZeRO-3): each forward must gather them"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r} is not silu"
    for layer in inner.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None:
            return "a layer has no self_attn / mlp"
        for lin in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if type(getattr(attn, lin, None)) is not nn.Linear:
                return f"self_attn.{lin} is not a plain nn.Linear (adapters or quantisation)"
        for lin in ("gate_proj", "up_proj", "down_proj"):
            if type(getattr(mlp, lin, None)) is not nn.Linear:
                return f"mlp.{lin} is not a plain nn.Linear (adapters or quantisation)"
    return None


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Layer:
    """One decoder layer: its modules, and with ``fuse`` its weights as [in, out] matrices in the
    compute dtype, q/k/v and gate/up side by side.

    Fused copies are rebuilt for every rollout (the weights move between steps). ``x @ w`` on a
    contiguous [in, out] matrix is about 30% faster on CPU than ``F.linear``'s transposed one at
    decode batch sizes; the copy costs one set of the layer's weights for the length of a rollout,
    which is why it is made only on the CPU.
    """

    def __init__(self, layer, dtype: torch.dtype, fuse: bool = True):
        a, m = layer.self_attn, layer.mlp
        self.ln1, self.ln2 = layer.input_layernorm, layer.post_attention_layernorm
        self.q_norm, self.k_norm = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
        self.head_dim = a.head_dim
        self.n_q = a.q_proj.out_features // a.head_dim
        self.n_kv = a.k_proj.out_features // a.head_dim
        self.scaling = a.scaling
        self.inter = m.gate_proj.out_features
        self.act = m.act_fn
        self.fused = fuse
        self.linears = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
        if not fuse:
            return

        def t(*linears):
            return torch.cat([lin.weight for lin in linears]).to(dtype).t().contiguous()

        def b(*linears):
            return None if linears[0].bias is None else torch.cat([lin.bias for lin in linears]).to(dtype)

        self.w_qkv, self.b_qkv = t(a.q_proj, a.k_proj, a.v_proj), b(a.q_proj, a.k_proj, a.v_proj)
        self.w_o, self.b_o = t(a.o_proj), b(a.o_proj)
        self.w_gu, self.b_gu = t(m.gate_proj, m.up_proj), b(m.gate_proj, m.up_proj)
        self.w_down, self.b_down = t(m.down_proj), b(m.down_proj)


def _mm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    x = x.to(w.dtype)
    return x @ w if bias is None else torch.addmm(bias, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], -1)


def _linear(x: torch.Tensor, lin: nn.Linear, dtype: torch.dtype) -> torch.Tensor:
    """``lin(x)`` on the module's own weight (autocast casts it when enabled), in the compute dtype."""
    return F.linear(x.to(lin.weight.dtype) if not torch.is_autocast_enabled(x.device.type) else x,
                    lin.weight, lin.bias).to(dtype)


class LeanDecoder:
    """KV-cache decoding for Llama-family models on a preallocated cache (see module docstring)."""

    def __init__(self, model, max_new_tokens: int, fuse: bool | None = None):
        self.model = model
        self.inner = model.model
        self.max_new_tokens = max_new_tokens
        device = model.lm_head.weight.device
        self.dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) \
            else model.lm_head.weight.dtype
        fuse = device.type == "cpu" if fuse is None else fuse
        self.layers = [_Layer(layer, self.dtype, fuse) for layer in self.inner.layers]

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, col: int) -> torch.Tensor:
        """Hidden states [B, n, H] of ``tokens`` [B, n] written to cache columns col..col+n-1."""
        B, n = tokens.shape
        h = self.inner.embed_tokens(tokens)
        cos, sin = self.inner.rotary_emb(h, positions)
        cos, sin = cos[:, None].to(self.dtype), sin[:, None].to(self.dtype)  # [B, 1, n, D]
        end = col + n
        valid = self.valid[:, :end]
        if n == 1:
            allowed = valid[:, None, None, :]
        else:  # prefill: causal within the new tokens, padding masked
            causal = torch.ones(n, end, dtype=torch.bool, device=h.device).tril(col)
            allowed = (valid[:, None, :] & causal[None])[:, None, None]  # [B, 1, 1, n, end]
        for i, L in enumerate(self.layers):
            D, Hq, Hkv = L.head_dim, L.n_q, L.n_kv
            x = L.ln1(h)
            if L.fused:
                qkv = _mm(x, L.w_qkv, L.b_qkv)
                q, k, v = qkv[..., :Hq * D], qkv[..., Hq * D:(Hq + Hkv) * D], qkv[..., (Hq + Hkv) * D:]
            else:
                q, k, v = (_linear(x, lin, self.dtype) for lin in L.linears[:3])
            q, k, v = q.reshape(B, n, Hq, D), k.reshape(B, n, Hkv, D), v.reshape(B, n, Hkv, D)
            if L.q_norm is not None:  # RMSNorm returns its float32 weight's dtype: back to the compute dtype
                q, k = L.q_norm(q).to(self.dtype), L.k_norm(k).to(self.dtype)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, n, D]
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            if self.k[i] is None:  # the compute dtype (bf16 under autocast)
                shape = (B, Hkv, self.total, D)
                self.k[i] = torch.zeros(shape, dtype=self.dtype, device=k.device)
                self.v[i] = torch.zeros(shape, dtype=self.dtype, device=v.device)
            self.k[i][:, :, col:end] = k
            self.v[i][:, :, col:end] = v
            K, V = self.k[i][:, :, :end], self.v[i][:, :, :end]
            if n == 1:  # [B, Hkv, G, D] @ [B, Hkv, D, end]: grouped-query heads share their KV head
                scores = q.reshape(B, Hkv, Hq // Hkv, D) @ K.transpose(-1, -2)
            else:
                scores = q.reshape(B, Hkv, Hq // Hkv, n, D) @ K.transpose(-1, -2)[:, :, None]
            scores = (scores.float() * L.scaling).masked_fill(~allowed, MASKED)
            p = torch.softmax(scores, dim=-1).to(V.dtype)
            o = p @ (V if n == 1 else V[:, :, None])  # [B, Hkv, G, (n,) D]
            o = o.reshape(B, Hq, n, D).transpose(1, 2).reshape(B, n, Hq * D)
            if L.fused:
                h = h + _mm(o, L.w_o, L.b_o)
                gate, up = _mm(L.ln2(h), L.w_gu, L.b_gu).split(L.inter, dim=-1)
                h = h + _mm(L.act(gate) * up, L.w_down, L.b_down)
            else:
                h = h + _linear(o, L.linears[3], self.dtype)
                x = L.ln2(h)
                gate, up = _linear(x, L.linears[4], self.dtype), _linear(x, L.linears[5], self.dtype)
                h = h + _linear(L.act(gate) * up, L.linears[6], self.dtype)
        return h

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self.inner.norm(h)).float()

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        B, P = input_ids.shape
        self.total = P + self.max_new_tokens
        self.k: list[torch.Tensor | None] = [None] * len(self.layers)
        self.v: list[torch.Tensor | None] = [None] * len(self.layers)
        self.valid = torch.zeros(B, self.total, dtype=torch.bool, device=input_ids.device)
        self.valid[:, :P] = attention_mask.bool()
        positions = position_ids(attention_mask)
        h = self._forward(input_ids, positions, 0)
        self.col, self.next_pos = P, positions[:, -1:] + 1
        return self._logits(h[:, -1])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.valid[:, self.col] = True
        h = self._forward(tokens[:, None], self.next_pos, self.col)
        self.col += 1
        self.next_pos = self.next_pos + 1
        return self._logits(h[:, -1])

    can_keep = True

    def keep(self, rows: torch.Tensor) -> None:
        self.k = [k[rows] for k in self.k]
        self.v = [v[rows] for v in self.v]
        self.valid, self.next_pos = self.valid[rows], self.next_pos[rows]


def decoder_for(model, max_new_tokens: int, lean: bool = True):
    """``LeanDecoder`` when ``lean`` and the model is supported, else ``HFDecoder``."""
    if lean and lean_unsupported(model) is None:
        return LeanDecoder(model, max_new_tokens)
    return HFDecoder(model, max_new_tokens)
