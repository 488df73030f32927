"""The trainer end to end on a tiny model: KL at step 0, one step's effect, resume after a kill,
process rewards, num_iterations > 1. Rewards are inline plugins registered on a private manager."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

import grpo_format
from grpo_plugins import Reward, RewardResult
from grpo_plugins.grpo import tiny
from grpo_plugins.grpo.logprobs import token_logprobs
from grpo_plugins.grpo.config import TrainConfig
from grpo_plugins.grpo.trainer import GRPOTrainer
from helpers_runs import DigitShare, DigitSteps, private_manager, tiny_run_config


class ExactAnswer(Reward):
    """1 when the <answer> equals the ``answer`` column (stands in for the math plugin)."""

    name = "exact_answer"

    def score(self, samples):
        out = []
        for s in samples:
            m = re.search(r"<answer>(.*?)</answer>", s.text)
            out.append(RewardResult(float(bool(m) and m.group(1).strip() == str(s.columns["answer"]))))
        return out


@pytest.fixture
def manager():
    m, plugin = private_manager(ExactAnswer, DigitShare, DigitSteps, name="test_trainer_rewards")
    m.register(grpo_format, name="format")
    try:
        yield m, plugin
    finally:
        m.unregister(name="test_trainer_rewards")
        m.unregister(name="format")


def make_config(tiny_dir, run_dir, rewards=({"name": "digit_share"},), **sections) -> TrainConfig:
    defaults = {"train": {"seed": 0}, "log": {"progress": False, "tensorboard": False}, "checkpoint": {"every": 0}}
    return TrainConfig.model_validate(tiny_run_config(tiny_dir, run_dir, rewards, defaults, **sections))


def test_kl_is_zero_at_the_first_step(tiny_dir, tmp_path, manager):
    cfg = make_config(tiny_dir, tmp_path / "run", train={"beta": 0.1, "steps": 2})
    trainer = GRPOTrainer(cfg, manager[0])
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kl"] == 0.0  # policy == reference before the first update
    assert rows[1]["kl"] > 0.0  # and they differ after it
    assert trainer.ref_model is not None and (tmp_path / "run" / "ref.pt").exists()


def test_no_reference_model_when_beta_is_zero(tiny_dir, tmp_path, manager):
    trainer = GRPOTrainer(make_config(tiny_dir, tmp_path / "run", train={"beta": 0.0, "steps": 1}), manager[0])
    trainer.train()
    assert trainer.ref_model is None and not (tmp_path / "run" / "ref.pt").exists()


def _seq_logp(model, tokenizer, rollout):
    p = tokenizer(rollout.prompt_text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    c = torch.tensor([rollout.completion_ids])
    ids = torch.cat([p, c], 1)
    with torch.no_grad():
        logp, _ = token_logprobs(model, ids, torch.ones_like(ids), c.shape[1])
    return float(logp.sum())


def test_one_step_raises_the_logprob_of_the_best_completion(tiny_dir, tmp_path, manager):
    mgr, plugin = manager
    cfg = make_config(tiny_dir, tmp_path / "run", train={"learning_rate": 3e-3, "max_grad_norm": None})
    trainer = GRPOTrainer(cfg, mgr)
    trainer.reset_reference()
    before = copy.deepcopy(trainer.policy).eval()
    metrics = trainer.train_step()
    _, rollouts = plugin.rollouts[-1]
    best = max(rollouts, key=lambda r: r.advantage)
    worst = min(rollouts, key=lambda r: r.advantage)
    assert best.advantage > 0 > worst.advantage and metrics["frac_reward_zero_std"] < 1
    after = trainer.policy.eval()
    tok = trainer.tokenizer
    assert _seq_logp(after, tok, best) > _seq_logp(before, tok, best)
    assert _seq_logp(after, tok, worst) < _seq_logp(before, tok, worst)


TIMING = ("step_time", "time/", "tokens_per_second", "reward_host/")


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def test_resume_after_a_kill_gives_the_same_metrics(tiny_dir, tmp_path, manager):
    mgr, _ = manager
    common = dict(train={"steps": 4, "beta": 0.05, "learning_rate": 2e-3}, checkpoint={"every": 2})
    GRPOTrainer(make_config(tiny_dir, tmp_path / "a", **common), mgr).train()

    killed = GRPOTrainer(make_config(tiny_dir, tmp_path / "b", **common), mgr)
    real_step = killed.train_step

    def dies_during_step_4():
        if killed.step == 3:
            raise SystemExit("killed")  # no checkpoint is written on the way out
        return real_step()

    killed.train_step = dies_during_step_4
    with pytest.raises(SystemExit):
        killed.train()
    assert (tmp_path / "b" / "latest").read_text().strip() == "checkpoint-2"
    assert len(_metrics(tmp_path / "b")) == 3  # step 3 was logged but never checkpointed

    resumed = GRPOTrainer(make_config(tiny_dir, tmp_path / "b", **common), mgr)
    resumed.train()
    assert resumed.step == 4
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a == b
    from safetensors.torch import load_file

    wa = load_file(tmp_path / "a" / "checkpoint-4" / "model.safetensors")
    wb = load_file(tmp_path / "b" / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_process_and_outcome_rewards_combine(tiny_dir, tmp_path, manager):
    mgr, plugin = manager
    cfg = make_config(tiny_dir, tmp_path / "run", rewards=[{"name": "digit_steps"}, {"name": "digit_share"}],
                      train={"steps": 1})
    trainer = GRPOTrainer(cfg, mgr)
    trainer.reset_reference()
    metrics = trainer.train_step()
    _, rollouts = plugin.rollouts[-1]
    assert any(r.steps.get("digit_steps") for r in rollouts)
    assert metrics["advantages/mean_abs"] > 0
    assert 0 < metrics["rewards/digit_steps/step_mean"] <= 1
    assert metrics["rewards/digit_steps/steps_per_completion"] > 0


def test_num_iterations_reuses_the_batch(tiny_dir, tmp_path, manager):
    cfg = make_config(tiny_dir, tmp_path / "run", train={"steps": 1, "num_iterations": 3, "learning_rate": 5e-2,
                                                        "epsilon": 0.05, "max_grad_norm": None})
    trainer = GRPOTrainer(cfg, manager[0])
    trainer.reset_reference()
    m = trainer.train_step()
    # three optimizer updates on one batch: the scheduler counted them, and later ones clipped tokens
    assert trainer.scheduler.last_epoch == 3
    assert m["clip_ratio/region_mean"] > 0


def test_sft_then_eval_and_plot(tiny_dir, tmp_path, manager):
    from grpo_plugins.grpo.plot import plot_run

    cfg = make_config(tiny_dir, tmp_path / "run", rewards=[{"name": "exact_answer"}, {"name": "format"}],
                      data={"eval": str(tiny_dir / "test.jsonl")},
                      sft={"data": str(tiny_dir / "sft.jsonl"), "steps": 3, "batch_size": 8},
                      rollout={"max_new_tokens": 24}, train={"steps": 2}, eval={"every": 1})
    final = GRPOTrainer(cfg, manager[0]).train()
    ev = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(ev) == {"before", "after", "curve"} and ev["before"]["eval/n"] == 8
    assert 0 <= final["after/eval/accuracy"] <= 1
    assert (tmp_path / "run" / "final" / "config.json").exists()
    png = plot_run(tmp_path / "run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sft_until_ends_the_warm_up_at_the_first_check_that_says_so(tiny_dir, tmp_path, manager):
    cfg = make_config(tiny_dir, tmp_path / "run", sft={"data": str(tiny_dir / "sft.jsonl"), "steps": 9, "batch_size": 4},
                      rollout={"max_new_tokens": 8})
    trainer = GRPOTrainer(cfg, manager[0])
    seen = []

    def until(step):
        seen.append((step, len(trainer.generate([trainer.train_rows[i] for i in range(2)], n=1).rollouts)))
        return step >= 4

    losses = trainer.sft(until=until, every=2)
    assert len(losses) == 4 and [s for s, _ in seen] == [2, 4]  # checked every 2 steps, stopped at 4
    assert all(n == 2 for _, n in seen)  # the check can sample from the model mid-warm-up
    assert len(GRPOTrainer(cfg, manager[0]).sft()) == 9  # without until: every step


def test_lora_trains_adapters_only_and_uses_the_base_as_reference(tiny_dir, tmp_path, manager):
    cfg = make_config(tiny_dir, tmp_path / "run", train={"beta": 0.1, "steps": 2, "learning_rate": 1e-2},
                      model={"lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                             "gradient_checkpointing": True})
    trainer = GRPOTrainer(cfg, manager[0])
    base = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if "lora_" not in n}
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kl"] == 0.0 and rows[1]["kl"] > 0  # reference = the base model (adapters off)
    assert trainer.ref_model is None  # no copy: the reference is the policy with adapters off
    after = dict(trainer.policy.named_parameters())
    assert all(torch.equal(base[n], after[n]) for n in base)  # the base weights never move


def test_sampler_matches_generate_and_compaction_changes_nothing(tiny_dir):
    from transformers import AutoModelForCausalLM

    from grpo_plugins.grpo.generation import hf_generate, sample

    model = AutoModelForCausalLM.from_pretrained(tiny_dir / "model").eval()
    tok = tiny.build_tokenizer()
    enc = tok([f"{a}+{b}=?\n" for a, b in [(12, 34), (5, 77), (99, 9), (45, 67), (10, 10), (31, 42)]],
              return_tensors="pt", padding=True)
    first = sample(model, enc.input_ids, enc.attention_mask, 12, -1, tok.pad_token_id, greedy=True)
    eos = int(first[0, 2])  # a token some rows emit early, so rows finish at different times
    args = (model, enc.input_ids, enc.attention_mask, 12, eos, tok.pad_token_id)
    always = sample(*args, greedy=True, compact_at=0.0)  # drop finished rows as soon as one finishes
    never = sample(*args, greedy=True, compact_at=2.0)
    assert torch.equal(always, never)
    assert bool((always == eos).any(-1)[0])  # row 0 finished at token 2; the others kept going
    ref = hf_generate(*args, greedy=True)
    assert torch.equal(ref[:, :always.shape[1]], always)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_micro_batches_give_the_whole_batch_gradient(tiny_dir, tmp_path, manager, loss_type):
    """Sorted, padding-trimmed micro-batches accumulate the whole batch's gradient."""
    runs = []
    for mb in (None, 3):
        cfg = make_config(tiny_dir, tmp_path / f"run-{mb}", rollout={"max_new_tokens": 12},
                          train={"steps": 1, "beta": 0.05, "num_iterations": 2, "micro_batch_size": mb,
                                 "loss_type": loss_type})
        trainer = GRPOTrainer(cfg, manager[0])
        trainer.reset_reference()
        grads, step = [], trainer.optimizer.step

        def record(*a, _step=step, _grads=grads, _model=trainer.policy, **k):
            _grads.append([p.grad.detach().clone() for p in _model.parameters()])
            return _step(*a, **k)

        trainer.optimizer.step = record
        m = trainer.train_step()
        runs.append((grads[0], m))  # the first update: both start from the same weights
    (g_whole, m1), (g_micro, m2) = runs
    assert m1["kl"] == pytest.approx(m2["kl"], rel=1e-4, abs=1e-7)
    assert m1["entropy"] == pytest.approx(m2["entropy"], rel=1e-4)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(g_whole, g_micro))
    assert any(float(g.abs().max()) > 1e-4 for g in g_whole)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_cycle_reference_reset_takes_effect(tiny_dir, tmp_path, manager, lora):
    """After the cycle's reference phase, the resumed trainer's reference is the trained policy."""
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle

    model = {"lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}} if lora else {}
    kls = {}
    for reset in (False, True):
        run = tmp_path / f"reset-{reset}"
        cfg = make_config(tiny_dir, run / "policy", model=model,
                          train={"beta": 0.1, "steps": 2, "learning_rate": 2e-2})
        GRPOTrainer(cfg, manager[0]).train()
        if reset:
            cycle_cfg = CycleConfig.model_validate({**cfg.model_dump(), "log": {"run_dir": str(run)}})
            Cycle(cycle_cfg, manager[0]).reference(0)
        more = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 3})})
        resumed = GRPOTrainer(more, manager[0])
        resumed.train()
        assert (resumed.ref_model is not None) == (reset or not lora)
        rows = [json.loads(line) for line in (run / "policy" / "metrics.jsonl").read_text().splitlines()]
        kls[reset] = rows[2]["kl"]  # the first step after resuming: policy vs reference before its update
    assert kls[True] == pytest.approx(0.0, abs=1e-6)  # the reference is the policy as it was trained
    assert kls[False] > 1e-4  # without the reset it is the policy of step 0


@pytest.mark.parametrize("where", ["cpu", "cpu:0"])
def test_a_save_pretrained_checkpoint_loads_with_any_cpu_device_name(tmp_path, tiny_lm_dir, where):
    """A CPU accelerator can name its device cpu:0, which safetensors refuses (a resume crashed on it)."""
    import torch
    from transformers import AutoModelForCausalLM

    from grpo_plugins.grpo.checkpoint import _load_model_state
    from pathlib import Path

    src = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    dst = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    with torch.no_grad():
        for p in dst.parameters():
            p.add_(1.0)
    _load_model_state(Path(tiny_lm_dir), dst, torch.device(where))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_storage_location_names_every_cpu_device_cpu(tmp_path):
    """torch.load refuses map_location cpu:0 too (the optimizer and reference loads of a resume)."""
    import torch

    from grpo_plugins.grpo.checkpoint import storage_location

    torch.save({"w": torch.ones(2)}, tmp_path / "x.pt")
    loaded = torch.load(tmp_path / "x.pt", map_location=storage_location(torch.device("cpu", 0)), weights_only=True)
    assert torch.equal(loaded["w"], torch.ones(2))
    assert storage_location("cuda:1") == "cuda:1" and storage_location(torch.device("cpu")) == "cpu"
