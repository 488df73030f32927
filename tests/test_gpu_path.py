"""The GPU path's bookkeeping, checked on a CPU machine (issue 17's points 1, 2, 3, 6 and 9).

A second device is stood in for by torch's FakeTensorMode, whose fake ``cuda`` tensors carry a
device (and refuse to mix with CPU tensors, as real ones do) without a GPU; the ``meta`` device is
no substitute here, since it cannot run the data-dependent ops (``nonzero``, ``.item()``) around it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
import warnings

import pytest
import torch

from grpo_plugins.grpo import tiny
from grpo_plugins.grpo.config import TrainConfig, VLLMSection
from grpo_plugins.grpo.generation import Completions, Generator, completion_mask, sample, stop_ids


def _cfg(d, tmp_path, **model):
    return TrainConfig.model_validate({
        "model": {"name_or_path": str(d / "model"), **model}, "data": {"train": str(d / "train.jsonl")},
        "rollout": {"num_generations": 2, "max_new_tokens": 6}, "train": {"prompts_per_step": 2, "steps": 1},
        "rewards": [{"name": "format", "options": {"pattern": "1", "mode": "search"}}],
        "log": {"run_dir": str(tmp_path / "r"), "tensorboard": False, "progress": False}, "checkpoint": {"every": 0}})


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny.build(tmp_path_factory.mktemp("gpu") / "t", n_train=8, n_eval=2, n_sft=8, hidden_size=16, layers=1,
                      heads=1)


# -- 1. advantages vs a mask on another device ----------------------------------------------------

def test_advantage_bookkeeping_with_the_mask_on_another_device(tiny_dir, tmp_path):
    """Point 1: the rewards' statistics run on the CPU, the mask lives on CUDA: the trainer's
    ``_advantages`` and the per-rollout / loss bookkeeping after it must not mix the two."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from grpo_plugins.grpo.advantages import mean_over_mask
    from grpo_plugins.grpo.trainer import GRPOTrainer

    trainer = GRPOTrainer(_cfg(tiny_dir, tmp_path))
    batch = trainer.generate([trainer.train_rows[0], trainer.train_rows[1]], n=2)
    scores = trainer.host.score(batch.rollouts)
    B, T = batch.completion_ids.shape
    with FakeTensorMode():
        mask = torch.ones(B, T, dtype=torch.long, device="cuda")
        adv = trainer._advantages(trainer._credit(scores, batch.rollouts, T), mask)
        assert adv.device == mask.device
        rows = mean_over_mask(adv, mask)  # r.advantage for every rollout
        per_token = adv * mask  # what the loss reads (fake CUDA cannot index: slicing needs a real device)
        mean_abs = adv.abs().sum() / mask.sum().clamp(min=1)  # the metric
        assert rows.device.type == per_token.device.type == mean_abs.device.type == "cuda"
        # the stand-in is strict: a CPU [B, T] against the CUDA mask is refused, as on a GPU
        with pytest.raises(Exception, match="device"):
            mean_over_mask(torch.zeros(B, T), mask)


def test_mean_over_mask_matches_a_float64_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 7, generator=g) > 0.4).long()
    mask[2] = 0
    from grpo_plugins.grpo.advantages import mean_over_mask

    got = mean_over_mask(x.float(), mask).double()
    want = torch.tensor([float(x[i][mask[i].bool()].mean()) if mask[i].any() else 0.0 for i in range(5)],
                        dtype=torch.float64)
    assert torch.allclose(got, want, atol=1e-6)


# -- 2. dtype auto on a bf16 checkpoint --------------------------------------------------------------

@pytest.fixture(scope="module")
def bf16_dir(tmp_path_factory):
    d = tiny.build(tmp_path_factory.mktemp("bf16") / "t", n_train=8, n_eval=2, n_sft=8, hidden_size=16, layers=1,
                   heads=1)
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(d / "model").to(torch.bfloat16)
    m.config.dtype = torch.bfloat16
    m.save_pretrained(d / "model")  # a checkpoint saved in bf16, as Qwen2.5 and Llama-3 ship
    assert json.loads((d / "model" / "config.json").read_text())["dtype"] == "bfloat16"
    return d


def test_dtype_auto_loads_float32_master_weights_from_a_bf16_checkpoint(bf16_dir, tmp_path):
    """Point 2: transformers 5 would load bf16 for an absent dtype; auto means float32 (TRL's default)."""
    from grpo_plugins.grpo.models import load_model_and_tokenizer, load_pretrained_policy

    cfg = _cfg(bf16_dir, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto warns about nothing
        model, _ = load_model_and_tokenizer(cfg)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.dtype for p in load_pretrained_policy(bf16_dir / "model", cfg).parameters()} == {torch.float32}
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(bf16_dir / "model").dtype == torch.bfloat16  # what we override


def test_a_small_update_survives_in_float32_and_rounds_away_in_bf16(bf16_dir, tmp_path):
    """Why fp32 master weights: one lr-1e-6 AdamW step changes fp32 weights and leaves most bf16 ones."""
    from grpo_plugins.grpo.models import load_model_and_tokenizer

    changed = {}
    for dtype in ("auto", "bfloat16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = load_model_and_tokenizer(_cfg(bf16_dir, tmp_path, dtype=dtype))
        w = model.model.layers[0].mlp.down_proj.weight
        before = w.detach().clone()
        opt = torch.optim.AdamW([w], lr=1e-6)
        w.grad = torch.ones_like(w)
        opt.step()
        changed[dtype] = float((w != before).float().mean())
    assert changed["auto"] == 1.0 and changed["bfloat16"] < 0.1, changed


def test_half_dtype_with_full_fine_tuning_warns_and_lora_does_not(bf16_dir, tmp_path):
    from grpo_plugins.grpo.models import weights_dtype

    with pytest.warns(UserWarning, match="no float32 master copy"):
        assert weights_dtype(_cfg(bf16_dir, tmp_path, dtype="bfloat16")) == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert weights_dtype(_cfg(bf16_dir, tmp_path, dtype="bfloat16", lora={"r": 2})) == torch.bfloat16


# -- 3. one mask for every backend ---------------------------------------------------------------------

def _two_eos_model():
    """A tiny model whose generation config lists two EOS ids, and the greedy path it takes."""
    tok = tiny.build_tokenizer()
    model = tiny.build_model(tok, hidden_size=32, layers=2, heads=2, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # large random weights: a greedy path that does not repeat one token
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    enc = tok(["12+34=?\n", "5+7=?\n", "99+9=?\n"], return_tensors="pt", padding=True)
    free = sample(model, enc.input_ids, enc.attention_mask, 8, eos_id=-1, pad_id=tok.pad_token_id, greedy=True)
    # row 0's third greedy token becomes a second EOS (Llama-3's 128008 next to 128009); pad == eos
    second = int(free[0, 2])
    assert second not in free[0, :2].tolist() + free[1:].flatten().tolist()
    model.generation_config.eos_token_id = [tok.eos_token_id, second]
    tok.pad_token = tok.eos_token
    return model, tok, enc, free, second


def test_every_backend_gives_the_same_mask_with_several_eos_and_pad_equal_to_eos(monkeypatch):
    """Point 3: sample, generate and vLLM (the stand-in fed ids as vLLM returns them: up to and
    including the stop token) agree on ids, mask and truncation, and all stop on the second EOS."""
    from grpo_plugins.grpo.config import RolloutSection
    from grpo_plugins.grpo.vllm import VLLMRollout

    model, tok, enc, free, second = _two_eos_model()
    stops = stop_ids(tok, model)
    assert stops == [tok.eos_token_id, second]
    data = types.SimpleNamespace(chat_template=False, system_prompt=None, max_prompt_tokens=None)
    got = {}
    for backend in ("sample", "generate"):
        gen = Generator(tok, RolloutSection(backend=backend, max_new_tokens=8), data, torch.device("cpu"))
        got[backend] = gen.generate(model, enc.input_ids, enc.attention_mask, 8, greedy=True)
    # vLLM returns each output's ids up to its stop, no padding
    outs = []
    for row in free.tolist():
        hit = [i for i, t in enumerate(row) if t in stops]
        outs.append(row[:hit[0] + 1] if hit else row)
    llm = types.SimpleNamespace(generate=lambda prompts, sampling_params, use_tqdm: [
        types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=tuple(o), logprobs=None)]) for o in outs])
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=lambda **kw: llm, SamplingParams=lambda **kw: types.SimpleNamespace(kw=kw)))
    engine = VLLMRollout("m", VLLMSection(), 64)
    got["vllm"] = engine.generate(enc.input_ids, enc.attention_mask, 8, stops, tok.pad_token_id, greedy=True)
    ref = got["sample"]
    assert ref.mask[0].tolist()[:4] == [1, 1, 1, 0] and not ref.truncated[0]  # stopped on the second EOS
    for name, c in got.items():
        w = min(c.ids.shape[1], ref.ids.shape[1])
        assert torch.equal(c.ids[:, :w], ref.ids[:, :w]), name
        assert torch.equal(c.mask[:, :w], ref.mask[:, :w]) and not c.mask[:, w:].any() and not ref.mask[:, w:].any(), name
        assert torch.equal(c.truncated, ref.truncated), name
    # the old rule (tokenizer.eos_token_id alone) would have put row 0's pads into the loss
    old, _ = completion_mask(ref.ids, tok.eos_token_id)
    assert old[0].sum() > ref.mask[0].sum()


def test_completions_cat_pads_ids_masks_and_logprobs():
    a = Completions(torch.tensor([[5, 2]]), torch.tensor([[1, 1]]), torch.tensor([False]), torch.tensor([[-1.0, -2.0]]))
    b = Completions(torch.tensor([[7, 8, 9]]), torch.tensor([[1, 1, 1]]), torch.tensor([True]),
                    torch.tensor([[-1.0, -1.0, -1.0]]))
    c = Completions.cat([a, b], pad_id=0)
    assert c.ids.tolist() == [[5, 2, 0], [7, 8, 9]] and c.mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert c.truncated.tolist() == [False, True] and c.logprobs.tolist() == [[-1.0, -2.0, 0.0], [-1.0] * 3]


# -- 6. two engines' rendezvous on one host ----------------------------------------------------------------

RENDEZVOUS = textwrap.dedent("""
    import os, sys, time
    import torch.distributed as dist
    from grpo_plugins.grpo.vllm import ensure_rendezvous
    for k in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)
    if len(sys.argv) > 1:
        os.environ["MASTER_PORT"] = sys.argv[1]  # what the old code fixed
    ensure_rendezvous()
    dist.init_process_group("gloo", init_method="env://", rank=0, world_size=1)  # binds MASTER_PORT
    print("up", os.environ["MASTER_PORT"], flush=True)
    time.sleep(4)  # both hold their store at once
    dist.destroy_process_group()
""")


def _two(*args):
    procs = [subprocess.Popen([sys.executable, "-c", RENDEZVOUS, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    return [p.communicate(timeout=120) + (p.returncode,) for p in procs]


def test_two_single_process_rendezvous_on_one_host_get_different_ports():
    """Point 6: two runs without a launcher each start a real gloo TCP store, concurrently."""
    res = _two()
    assert [r[2] for r in res] == [0, 0], [r[1][-400:] for r in res]
    ports = [r[0].split()[1] for r in res]
    assert ports[0] != ports[1]


def test_a_fixed_port_collides_so_the_test_above_means_something():
    from grpo_plugins.grpo.vllm import free_port

    res = _two(str(free_port()))
    assert sorted(r[2] != 0 for r in res) == [False, True], [r[1][-300:] for r in res]


# -- 9. left truncation of a chat-template prompt ---------------------------------------------------------

def test_max_prompt_tokens_keeps_the_end_of_a_chat_template_prompt():
    """Point 9: a long conversational prompt loses its beginning, never the assistant header."""
    from grpo_plugins.grpo.config import DataSection, RolloutSection

    tok = tiny.build_tokenizer()
    tok.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<s>assistant: {% endif %}")
    assert tok.truncation_side == "right"  # transformers' default, which cut the header off
    data = DataSection(train="x.jsonl", max_prompt_tokens=30)
    gen = Generator(tok, RolloutSection(), data, torch.device("cpu"))
    long = [{"role": "user", "content": "what is " + "1+" * 40 + "1?"}]
    ids, mask, texts = gen.encode([long, [{"role": "user", "content": "2+2?"}]])
    assert ids.shape[1] == 30
    assert tok.decode(ids[0], skip_special_tokens=False).endswith("1+1?\n<s>assistant: ")
    assert texts[0].endswith("<s>assistant: ")
    short = tok.decode(ids[1][mask[1].bool()], skip_special_tokens=False)
    assert short == "<s>user: 2+2?\n<s>assistant: "  # short prompts untouched, left-padded
