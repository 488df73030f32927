"""The vLLM backend's adapter: the weights it pushes, the sampling it asks for, the ids it returns.

vLLM itself needs CUDA and is not installed in CI, so these tests put a recording stand-in for the
``vllm`` module in ``sys.modules``; they check our side of the contract (the calls TRL's colocate
mode makes against vLLM), not vLLM. A real engine has not been run by these tests.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

from grpo_plugins.grpo import tiny
from grpo_plugins.grpo.config import TrainConfig, VLLMSection


class _Output:
    """A RequestOutput as vLLM returns it: token_ids up to and including the stop token, and with
    ``logprobs=0`` one {token_id: Logprob} dict per generated token."""

    def __init__(self, token_ids, logprobs=None):
        lps = None if logprobs is None else [{t: types.SimpleNamespace(logprob=v, rank=1)}
                                             for t, v in zip(token_ids, logprobs)]
        self.outputs = [types.SimpleNamespace(token_ids=tuple(token_ids), logprobs=lps)]


def _fake_vllm(monkeypatch, completions, logprobs=None, on_init=None):
    calls = {"init": None, "loaded": [], "generate": [], "reset": 0, "sleep": [], "wake": []}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw
            if on_init is not None:
                on_init()
            runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=calls["loaded"].extend))
            self.llm_engine = types.SimpleNamespace(
                model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner)))

        def generate(self, prompts, sampling_params, use_tqdm):
            calls["generate"].append((prompts, sampling_params.kw))
            return [_Output(completions[i % len(completions)],
                            None if logprobs is None else logprobs[i % len(logprobs)]) for i in range(len(prompts))]

        def reset_prefix_cache(self):
            calls["reset"] += 1

        def sleep(self, level):
            calls["sleep"].append(level)

        def wake_up(self, tags):
            calls["wake"].append(tuple(tags))

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    return calls


def _model():
    tok = tiny.build_tokenizer()
    return tiny.build_model(tok, hidden_size=32, layers=1, heads=2), tok


def test_missing_vllm_is_a_clear_error(monkeypatch):
    from grpo_plugins.grpo.vllm import VLLMRollout

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails
    with pytest.raises(RuntimeError, match=r"pip install 'grpo-plugins\[vllm\]'"):
        VLLMRollout("m", VLLMSection(), 128)


def test_cpu_training_refuses_the_vllm_backend(tmp_path):
    from grpo_plugins.grpo.trainer import GRPOTrainer

    d = tiny.build(tmp_path / "t", n_train=8, n_eval=2, n_sft=8, hidden_size=16, layers=1, heads=1)
    cfg = TrainConfig.model_validate({
        "model": {"name_or_path": str(d / "model")}, "data": {"train": str(d / "train.jsonl")},
        "rollout": {"backend": "vllm"}, "rewards": [{"name": "format"}], "log": {"run_dir": str(tmp_path / "r")}})
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GRPOTrainer(cfg)


def test_generate_maps_sampling_and_pads_after_eos(monkeypatch):
    from grpo_plugins.grpo.vllm import VLLMRollout

    eos, pad = 2, 0
    calls = _fake_vllm(monkeypatch, [[5, 6, eos], [7, 8, 9, 10], [eos]])
    engine = VLLMRollout("/models/x", VLLMSection(gpu_memory_utilization=0.5), 200)
    assert calls["init"]["model"] == "/models/x" and calls["init"]["gpu_memory_utilization"] == 0.5
    assert calls["init"]["max_model_len"] == 200
    assert calls["init"]["distributed_executor_backend"] == "external_launcher"
    ids = torch.tensor([[0, 0, 11, 12], [13, 14, 15, 16], [0, 17, 18, 19]])
    mask = (ids != 0).long()
    out = engine.generate(ids, mask, 4, eos, pad, temperature=0.7, top_k=0, top_p=0.9)
    assert out.ids.tolist() == [[5, 6, eos, pad], [7, 8, 9, 10], [eos, pad, pad, pad]]
    assert out.mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert out.truncated.tolist() == [False, True, False]
    prompts, params = calls["generate"][0]
    assert [p["prompt_token_ids"] for p in prompts] == [[11, 12], [13, 14, 15, 16], [17, 18, 19]]  # padding dropped
    assert params["n"] == 1 and params["temperature"] == 0.7 and params["top_p"] == 0.9
    assert params["top_k"] == -1 and params["max_tokens"] == 4 and params["stop_token_ids"] == [eos]
    assert params["logprobs"] == 0 and calls["init"]["logprobs_mode"] == "processed_logprobs"
    engine.generate(ids, mask, 4, eos, pad, greedy=True)
    assert calls["generate"][1][1]["temperature"] == 0.0


def test_sync_pushes_every_weight_once_per_version(monkeypatch):
    from grpo_plugins.grpo.vllm import VLLMRollout

    calls = _fake_vllm(monkeypatch, [[1]])
    model, _ = _model()
    engine = VLLMRollout("m", VLLMSection(), 64)
    engine.sync(model, version=0)
    names = [n for n, _ in calls["loaded"]]
    assert names == [n for n, _ in model.named_parameters()]
    assert all(t.data_ptr() == p.data_ptr() for (_, t), (_, p) in zip(calls["loaded"], model.named_parameters()))
    engine.sync(model, version=0)  # unchanged policy: nothing pushed
    assert len(calls["loaded"]) == len(names) and calls["reset"] == 1
    engine.sync(model, version=1)
    assert len(calls["loaded"]) == 2 * len(names) and calls["reset"] == 2


def test_sync_merges_lora_and_uses_base_names(monkeypatch):
    from peft import LoraConfig, get_peft_model

    from grpo_plugins.grpo.vllm import VLLMRollout

    calls = _fake_vllm(monkeypatch, [[1]])
    base, _ = _model()
    plain = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj", "v_proj"]))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)  # a non-zero adapter, so merging changes the weights
    seen = {}
    real_load = calls["loaded"].extend

    def record(pairs):
        for name, t in pairs:
            seen[name] = t.clone()  # what the engine received, at the time it received it
        real_load(pairs)

    engine = VLLMRollout("m", VLLMSection(), 64)
    engine._engine_model = lambda: types.SimpleNamespace(load_weights=record)
    engine.sync(model, version=0)
    assert set(seen) == set(plain)  # transformers names, no lora_ / base_layer
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(seen[q], plain[q])  # merged weight went out
    after = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(after, plain[q])  # pushed out of place: the base weight was never rewritten


def test_sleep_mode_wakes_for_each_push_and_rollout(monkeypatch):
    from grpo_plugins.grpo.vllm import VLLMRollout

    calls = _fake_vllm(monkeypatch, [[3, 2]])
    model, _ = _model()
    engine = VLLMRollout("m", VLLMSection(enable_sleep_mode=True), 64)
    assert calls["sleep"] == [2]
    engine.sync(model, 0)
    engine.generate(torch.tensor([[4]]), torch.tensor([[1]]), 2, 2, 0)
    assert calls["wake"] == [("weights",), ("kv_cache",)] and calls["sleep"] == [2, 2]
    n = len(calls["loaded"])
    engine.sync(model, 0)  # level-2 sleep dropped the weights: the same version is pushed again
    assert len(calls["loaded"]) == 2 * n


def _bf16_lora():
    from peft import LoraConfig, get_peft_model

    base, _ = _model()
    model = get_peft_model(base.to(torch.bfloat16), LoraConfig(task_type="CAUSAL_LM", r=2, lora_alpha=4,
                                                               target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(3)
    for n, p in model.named_parameters():
        if "lora_" in n:
            torch.nn.init.normal_(p, std=0.5)
    return model


def test_lora_push_in_bf16_leaves_the_base_weights_bit_identical(monkeypatch):
    """Point 12: ten pushes of a bf16 LoRA policy; merge/unmerge in place would drift the base weights."""
    from grpo_plugins.grpo.vllm import VLLMRollout

    calls = _fake_vllm(monkeypatch, [[1]])
    model = _bf16_lora()
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    before = layer.base_layer.weight.detach().clone()
    engine = VLLMRollout("m", VLLMSection(), 64)
    for v in range(10):
        engine.sync(model, version=v)
    assert torch.equal(layer.base_layer.weight, before)
    # the pushed weight is W + B A * scale, rounded once: within one bf16 ulp of the float64 value
    pushed = dict(calls["loaded"][-len(dict(calls["loaded"])):])["model.layers.0.self_attn.q_proj.weight"]
    want = before.double() + (layer.lora_B["default"].weight.double() @ layer.lora_A["default"].weight.double()) * 2.0
    assert pushed.dtype == torch.bfloat16
    assert ((pushed.double() - want).abs() <= want.abs() * 2 ** -8 + 1e-30).all()


def test_in_place_merge_unmerge_does_drift_in_bf16():
    """The failure the out-of-place push avoids, shown with peft itself (so the test above means something)."""
    model = _bf16_lora()
    w = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    before = w.detach().clone()
    for _ in range(10):
        model.merge_adapter()
        model.unmerge_adapter()
    assert not torch.equal(w, before)


def test_mask_from_each_outputs_length_with_several_eos_and_pad_equal_to_eos(monkeypatch):
    """Point 3: vLLM stops on any EOS of the generation config (Qwen2.5: 151643 and 151645; here 2 and
    3) and keeps it; pad == eos (3). The mask covers each output's own tokens, nothing after."""
    from grpo_plugins.grpo.vllm import VLLMRollout

    stops, pad = [2, 3], 3
    outs = [[5, 2], [6, 3], [7, 8, 9, 10], [11]]  # stop on 1st eos, on 2nd, cut at max_tokens, cut short
    calls = _fake_vllm(monkeypatch, outs)
    engine = VLLMRollout("m", VLLMSection(), 64)
    ids = torch.tensor([[4, 4]] * 4)
    out = engine.generate(ids, torch.ones_like(ids), 4, stops, pad)
    assert calls["generate"][0][1]["stop_token_ids"] == stops
    assert out.ids.tolist() == [[5, 2, 3, 3], [6, 3, 3, 3], [7, 8, 9, 10], [11, 3, 3, 3]]
    assert out.mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert out.truncated.tolist() == [False, False, True, True]


def test_sampler_logprobs_come_back_per_token(monkeypatch):
    from grpo_plugins.grpo.vllm import VLLMRollout

    _fake_vllm(monkeypatch, [[5, 2], [6, 7, 8]], logprobs=[[-0.5, -0.25], [-1.0, -2.0, -3.0]])
    engine = VLLMRollout("m", VLLMSection(), 64)
    ids = torch.tensor([[4], [4]])
    out = engine.generate(ids, torch.ones_like(ids), 3, [2], 0)
    assert out.logprobs.tolist() == [[-0.5, -0.25, 0.0], [-1.0, -2.0, -3.0]]


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
def test_importance_weights_match_a_float64_reference(mode):
    """Point 4: TRL's four modes at cap 3.0, against the formula in float64."""
    from grpo_plugins.grpo.vllm import importance_weights

    g = torch.Generator().manual_seed(0)
    old = -torch.rand(6, 5, generator=g, dtype=torch.float64) * 3
    smp = old + torch.randn(6, 5, generator=g, dtype=torch.float64) * 1.5
    mask = (torch.rand(6, 5, generator=g) > 0.2).double()
    got = importance_weights(old.float(), smp.float(), mask.float(), mode, 3.0).double()
    d = (old - smp) * mask
    if mode.startswith("sequence"):
        d = d.sum(-1, keepdim=True)
    r = d.exp()
    want = r.clamp(max=3.0) if mode.endswith("truncate") else torch.where(r > 3.0, 0.0, r)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got <= 3.0 + 1e-6).all()


def test_engine_init_keeps_the_training_seed(monkeypatch):
    """Point 10: vLLM's worker init reseeds Python, numpy and torch; the trainer's stream survives it."""
    import random

    import numpy as np

    from grpo_plugins.grpo.vllm import VLLMRollout

    def reseed():
        random.seed(0), np.random.seed(0), torch.manual_seed(0)  # what vLLM's set_random_seed does

    _fake_vllm(monkeypatch, [[1]], on_init=reseed)
    torch.manual_seed(1234), random.seed(1234), np.random.seed(1234)
    want = (torch.rand(3).tolist(), random.random(), float(np.random.rand()))
    torch.manual_seed(1234), random.seed(1234), np.random.seed(1234)
    VLLMRollout("m", VLLMSection(), 64, rank=1)
    assert (torch.rand(3).tolist(), random.random(), float(np.random.rand())) == want


def test_engine_tokenizer_is_model_tokenizer(monkeypatch):
    """Point 11: the engine decodes/encodes with model.tokenizer, not name_or_path's."""
    from grpo_plugins.grpo.vllm import VLLMRollout

    calls = _fake_vllm(monkeypatch, [[1]])
    VLLMRollout("/models/base", VLLMSection(), 64, tokenizer="/models/tok")
    assert calls["init"]["tokenizer"] == "/models/tok"
    VLLMRollout("/models/base", VLLMSection(), 64)
    assert calls["init"]["tokenizer"] == "/models/base"


def test_cache_is_emptied_before_each_wake_up(monkeypatch):
    """Point 7: torch.cuda.empty_cache() right before both wake-ups (TRL avoids an OOM this way)."""
    import grpo_plugins.grpo.vllm as V

    calls = _fake_vllm(monkeypatch, [[3, 2]])
    events = []
    monkeypatch.setattr(V, "empty_cache", lambda: events.append("empty"))
    engine = V.VLLMRollout("m", VLLMSection(enable_sleep_mode=True), 64)
    engine.llm.wake_up = lambda tags: events.append(tuple(tags))
    model, _ = _model()
    engine.sync(model, 0)
    engine.generate(torch.tensor([[4]]), torch.tensor([[1]]), 2, 2, 0)
    assert events == ["empty", ("weights",), "empty", ("kv_cache",)]


def _tiny_trainer(tmp_path, **rollout):
    from grpo_plugins.grpo.trainer import GRPOTrainer

    d = tiny.build(tmp_path / "t", n_train=8, n_eval=2, n_sft=8, hidden_size=16, layers=1, heads=1)
    cfg = TrainConfig.model_validate({
        "model": {"name_or_path": str(d / "model"), "tokenizer": str(d / "model")},
        "data": {"train": str(d / "train.jsonl"), "eval": str(d / "test.jsonl")},
        "rollout": {"num_generations": 2, "max_new_tokens": 6, **rollout},
        "train": {"prompts_per_step": 2, "steps": 1}, "eval": {"max_new_tokens": 9},
        "rewards": [{"name": "format", "options": {"pattern": "1", "mode": "search"}}],
        "log": {"run_dir": str(tmp_path / "r"), "tensorboard": False, "progress": False},
        "checkpoint": {"every": 0}})
    return GRPOTrainer(cfg), d


def test_trainer_sizes_the_engine_and_names_its_tokenizer(monkeypatch, tmp_path):
    """Points 8 and 11 through the trainer: max_model_len = longest prompt + longest completion."""
    calls = _fake_vllm(monkeypatch, [[1]])
    trainer, d = _tiny_trainer(tmp_path)
    trainer.device = types.SimpleNamespace(type="cuda")  # _start_vllm only checks the device type
    trainer._start_vllm()
    tok = trainer.tokenizer
    rows = list(trainer.train_rows) + list(trainer.eval_rows)
    longest = max(len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) for r in rows)
    assert calls["init"]["max_model_len"] == longest + 9  # eval.max_new_tokens 9 > rollout's 6
    assert calls["init"]["tokenizer"] == str(d / "model")


def test_train_step_applies_the_importance_weights(monkeypatch, tmp_path):
    """Point 4 end to end: a step fed by the vLLM stand-in computes old log-probs at num_iterations 1
    and reports TRL's importance-ratio metrics from them (checked against a float64 recomputation)."""
    from grpo_plugins.grpo.vllm import VLLMRollout

    trainer, _ = _tiny_trainer(tmp_path, vllm={"importance_sampling": "token_truncate", "importance_sampling_cap": 1.5})
    eos = trainer.tokenizer.eos_token_id
    seqs = [[20, 21, eos], [22, 23, 24, 25, 26, 27], [28, eos], [29, 30, 31, eos]]
    lps = [[-2.0, -4.0, -1.0], [-3.0] * 6, [-0.1, -5.0], [-2.5, -3.5, -4.5, -0.5]]
    _fake_vllm(monkeypatch, seqs, logprobs=lps)
    trainer.generator.vllm = VLLMRollout("m", VLLMSection(), 64)
    seen = []
    real = trainer._logprobs
    trainer._logprobs = lambda *a: seen.append(real(*a)) or seen[-1]
    metrics = trainer.train_step()
    assert len(seen) == 1  # old log-probs (beta 0: no reference), though num_iterations is 1
    old = seen[0].double()
    smp = torch.zeros_like(old)
    mask = torch.zeros_like(old)
    for i, (s, lp) in enumerate(zip(seqs, lps)):
        smp[i, :len(s)] = torch.tensor(lp, dtype=torch.float64)
        mask[i, :len(s)] = 1
    ratio = ((old - smp) * mask).exp().clamp(max=1.5)[mask.bool()]
    assert metrics["sampling/importance_sampling_ratio/mean"] == pytest.approx(float(ratio.mean()), rel=1e-5)
    assert metrics["sampling/importance_sampling_ratio/max"] == pytest.approx(float(ratio.max()), rel=1e-5)
    assert metrics["completions/mean_length"] == pytest.approx(sum(map(len, seqs)) / 4)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
