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
    def __init__(self, token_ids):
        self.outputs = [types.SimpleNamespace(token_ids=tuple(token_ids))]


def _fake_vllm(monkeypatch, completions):
    calls = {"init": None, "loaded": [], "generate": [], "reset": 0, "sleep": [], "wake": []}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw
            runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=calls["loaded"].extend))
            self.llm_engine = types.SimpleNamespace(
                model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner)))

        def generate(self, prompts, sampling_params, use_tqdm):
            calls["generate"].append((prompts, sampling_params.kw))
            return [_Output(completions[i % len(completions)]) for i in range(len(prompts))]

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
    with pytest.raises(RuntimeError, match="pip install vllm"):
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
    assert out.tolist() == [[5, 6, eos, pad], [7, 8, 9, 10], [eos, pad, pad, pad]]
    prompts, params = calls["generate"][0]
    assert [p["prompt_token_ids"] for p in prompts] == [[11, 12], [13, 14, 15, 16], [17, 18, 19]]  # padding dropped
    assert params["n"] == 1 and params["temperature"] == 0.7 and params["top_p"] == 0.9
    assert params["top_k"] == -1 and params["max_tokens"] == 4 and params["stop_token_ids"] == [eos]
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
    assert torch.allclose(after, plain[q], atol=1e-6)  # unmerged again (up to float rounding)


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
