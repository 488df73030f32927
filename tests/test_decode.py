"""The lean decoder computes what the model's own forward computes, and steps aside when it cannot."""

from __future__ import annotations

import pytest
import torch

from grpo_plugins.grpo import tiny
from grpo_plugins.grpo.decode import HFDecoder, LeanDecoder, decoder_for, lean_unsupported
from grpo_plugins.grpo.generation import sample

SMALL = dict(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)


def _model(kind: str):
    import transformers as tf

    torch.manual_seed(0)
    if kind == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**SMALL))
    if kind == "llama-bias-rope3":  # attention biases and llama3 rope scaling
        return tf.LlamaForCausalLM(tf.LlamaConfig(**SMALL, attention_bias=True, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32}))
    if kind == "qwen2":  # q/k/v biases
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**SMALL))
    if kind == "qwen3":  # q/k norms and head_dim != hidden / heads
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(**SMALL, head_dim=24))
    raise ValueError(kind)


def _left_padded(B=3, P=6, vocab=50):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab, (B, P), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    mask[1, :1] = 0
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("kind", ["llama", "llama-bias-rope3", "qwen2", "qwen3"])
def test_lean_logits_match_the_models_forward(kind, fuse):
    """Prefill + decode steps on left-padded rows give the full forward's logits at every position,
    with fused weight copies (the CPU default) and on the model's own weights (elsewhere)."""
    model = _model(kind).double().eval()
    assert lean_unsupported(model) is None
    ids, mask = _left_padded()
    T = 7
    new = torch.randint(1, 50, (3, T), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        dec = LeanDecoder(model, T, fuse=fuse)
        got = [dec.prefill(ids, mask)] + [dec.step(new[:, t]) for t in range(T - 1)]
        full_ids = torch.cat([ids, new[:, :T - 1]], 1)
        full_mask = torch.cat([mask, torch.ones(3, T - 1, dtype=mask.dtype)], 1)
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        want = model(input_ids=full_ids, attention_mask=full_mask, position_ids=positions).logits[:, ids.shape[1] - 1:]
    got = torch.stack(got, 1)
    assert got.dtype == torch.float64 or got.dtype == torch.float32
    # transformers' RMSNorm rounds through float32 even in a float64 model, hence 1e-6 and not 1e-12
    assert torch.allclose(got.double(), want, atol=1e-6, rtol=0), (got.double() - want).abs().max()
    assert torch.isfinite(got).all()


def test_lean_and_hf_decoders_sample_the_same_tokens():
    """Greedy and seeded sampling give identical completions with and without the lean decoder."""
    tok = tiny.build_tokenizer()
    model = tiny.build_model(tok, hidden_size=32, layers=2, heads=2).double().eval()
    enc = tok(["12+34=?\n", "5+7=?\n", "99+9=?\n", "1+1=?\n"], return_tensors="pt", padding=True)
    args = (model, enc.input_ids, enc.attention_mask, 16, tok.eos_token_id, tok.pad_token_id)
    assert torch.equal(sample(*args, greedy=True, lean=True), sample(*args, greedy=True, lean=False))
    torch.manual_seed(5)
    lean = sample(*args, temperature=1.3, top_k=20, top_p=0.9, lean=True)
    torch.manual_seed(5)
    hf = sample(*args, temperature=1.3, top_k=20, top_p=0.9, lean=False)
    assert torch.equal(lean, hf)


def test_lean_decoder_dropping_rows_keeps_the_others_exact():
    model = _model("qwen2").double().eval()
    ids, mask = _left_padded(B=4)
    with torch.inference_mode():
        a, b = LeanDecoder(model, 5), LeanDecoder(model, 5)
        a.prefill(ids, mask)
        b.prefill(ids, mask)
        tok = torch.tensor([3, 4, 5, 6])
        a.step(tok)
        b.step(tok)
        a.keep(torch.tensor([1, 3]))
        got = a.step(torch.tensor([7, 8]))
        want = b.step(torch.tensor([9, 7, 9, 8]))[[1, 3]]
    assert torch.allclose(got, want, atol=1e-12, rtol=0)


def test_lean_decoder_under_bf16_autocast_stays_close():
    """The cache and weights take the autocast dtype; logits stay close to the float32 forward's."""
    model = _model("llama").eval()
    ids, mask = _left_padded()
    with torch.inference_mode():
        want = LeanDecoder(model, 2).prefill(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            dec = LeanDecoder(model, 2)
            got = dec.prefill(ids, mask)
            step = dec.step(torch.tensor([1, 2, 3]))
    assert dec.layers[0].w_qkv.dtype == torch.bfloat16 and dec.v[0].dtype == torch.bfloat16
    assert torch.isfinite(step).all()
    assert (got - want).abs().max() < 0.1 * want.abs().max()


def test_unsupported_models_fall_back_to_the_models_forward():
    import transformers as tf
    from peft import LoraConfig, get_peft_model

    gpt2 = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    assert "gpt2" in lean_unsupported(gpt2)
    assert isinstance(decoder_for(gpt2, 4), HFDecoder)
    lora = get_peft_model(_model("llama"), LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj", "v_proj"]))
    reason = lean_unsupported(lora.get_base_model())
    assert reason and "q_proj" in reason
    assert isinstance(decoder_for(lora, 4), HFDecoder)
    assert isinstance(decoder_for(_model("llama"), 4), LeanDecoder)
    assert isinstance(decoder_for(_model("llama"), 4, lean=False), HFDecoder)
    sliding = tf.MistralForCausalLM(tf.MistralConfig(**SMALL, sliding_window=8))
    assert "sliding" in lean_unsupported(sliding)
    ids, mask = _left_padded()
    out = sample(gpt2.eval(), ids, mask, 4, eos_id=-1, pad_id=0, greedy=True)  # the fallback samples
    assert out.shape == (3, 4)


def _tensors(obj):
    return [v for v in vars(obj).values() if isinstance(v, torch.Tensor)]


def test_unfused_lean_decoder_holds_no_copy_of_the_weights():
    """Point 13: off the CPU (fuse=False) the decoder keeps references to the model's weights only."""
    model = _model("qwen2").eval()
    params = {p.data_ptr() for p in model.parameters()}
    with torch.inference_mode():
        dec = LeanDecoder(model, 3, fuse=False)
        dec.prefill(*_left_padded())
    for layer in dec.layers:
        assert _tensors(layer) == []  # no fused matrices
        assert all(lin.weight.data_ptr() in params for lin in layer.linears)
    assert all(_tensors(layer) for layer in LeanDecoder(model, 3, fuse=True).layers)  # the CPU default copies


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("kind", ["llama", "qwen3"])
def test_kv_cache_is_in_the_compute_dtype_under_autocast(kind, fuse):
    """Point 13: float32 weights under bf16 autocast: K (after RoPE and q/k norm) and V are bf16."""
    model = _model(kind).eval()
    ids, mask = _left_padded()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        dec = LeanDecoder(model, 2, fuse=fuse)
        dec.prefill(ids, mask)
        logits = dec.step(torch.tensor([1, 2, 3]))
    assert all(k.dtype == torch.bfloat16 for k in dec.k) and all(v.dtype == torch.bfloat16 for v in dec.v)
    assert torch.isfinite(logits).all()


def test_sharded_parameters_fall_back_to_the_models_forward():
    """A DTensor (FSDP2) or ZeRO-3 parameter: the lean decoder would read a shard, so it steps aside."""
    model = _model("llama")
    model.model.layers[0].self_attn.q_proj.weight.ds_id = 7  # how ZeRO-3 marks a partitioned parameter
    assert "sharded" in lean_unsupported(model)
    assert isinstance(decoder_for(model, 4), HFDecoder)
