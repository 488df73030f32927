"""DAPO dynamic sampling in the trainer: only groups with signal reach the optimizer, extra rounds
are bounded and counted, step rewards count as signal, a killed run resumes exactly, and two
processes (torchrun, gloo) each keep whole groups, the same number of them, without a hang.

This file is also the two-process helper: ``python -m torch.distributed.run ... THIS CONFIG OUT``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo_plugins import Reward, RewardResult
from grpo_plugins.grpo.advantages import Credit
from grpo_plugins.grpo.config import TrainConfig
from grpo_plugins.grpo.dynamic_sampling import assemble, groups_with_signal, next_draw
from grpo_plugins.grpo.generation import RolloutBatch
from grpo_plugins.grpo.trainer import GRPOTrainer
from grpo_plugins.host import Scores
from helpers_runs import ChunkSteps, Constant, private_manager, tiny_run_config


def _odd(sample) -> bool:
    return int(sample.columns["answer"]) % 2 == 1


class HalfSignal(Reward):
    """Digit share (varies within a group) for odd answers; a constant 0.5 (no signal) for even ones."""

    name = "half_signal"

    def score(self, samples):
        return [RewardResult(sum(c.isdigit() for c in s.text) / max(len(s.text), 1) if _odd(s) else 0.5)
                for s in samples]


class HalfSteps(ChunkSteps):
    """A step reward that varies only for odd answers: each 2 characters a step, digit or not."""

    name = "half_steps"
    width = 2

    def chunk_value(self, sample, chunk):
        return float(_odd(sample) and any(c.isdigit() for c in chunk))


def make_manager():
    return private_manager(HalfSignal, Constant, HalfSteps, name="ds_test")


def config(tiny_dir, run_dir, rewards=("half_signal",), **train) -> dict:
    return tiny_run_config(tiny_dir, run_dir, rewards, {
        "rollout": {"temperature": 1.5},
        "train": {"prompts_per_step": 4, "seed": 0, "dynamic_sampling": True, "dynamic_sampling_rounds": 6,
                  "torch_threads": 1},
        "log": {"progress": False, "tensorboard": False},
        "checkpoint": {"every": 0}}, train=train)


def groups_of(rollouts, G):
    return [rollouts[i:i + G] for i in range(0, len(rollouts), G)]


# --- pieces ----------------------------------------------------------------------------------


def test_groups_with_signal():
    adv = torch.zeros(6, 3)
    adv[1, 2] = -0.5  # group 0 (rows 0-1) has one non-zero token
    adv[5, 0] = 1e-3
    assert groups_with_signal(adv, 2) == [True, False, True]


def test_next_draw_is_a_bounded_multiple_of_world():
    assert next_draw(missing=4, kept=8, drawn=16, world=1, cap=16) == 16  # (4 + 2*2) groups at a rate of 1/2
    assert next_draw(missing=4, kept=16, drawn=16, world=1, cap=16) == 8
    assert next_draw(missing=3, kept=0, drawn=16, world=1, cap=16) == 16  # rate floor 1/16, capped
    assert next_draw(missing=1, kept=16, drawn=16, world=2, cap=16) == 6  # 3 prompts for each process
    assert next_draw(missing=5, kept=4, drawn=8, world=4, cap=16) % 4 == 0


def test_assemble_repads_rows_whole_groups_at_a_time():
    def batch(P, T, start):
        ids = torch.arange(start, start + 4 * P).view(4, P)
        pm = torch.ones(4, P, dtype=torch.long)
        pm[0, 0] = 0
        cids = torch.arange(100 + start, 100 + start + 4 * T).view(4, T)
        cm = torch.ones(4, T, dtype=torch.long)
        cm[1, -1] = 0
        from grpo_plugins.grpo.generation import Rollout

        ros = [Rollout(prompt="p", completion=f"{start}-{i}") for i in range(4)]
        return RolloutBatch(ids, pm, cids, cm, torch.tensor([False, True, False, False]), ros)

    def scores(vals):
        return Scores({"r": [RewardResult(v) for v in vals]}, list(vals), {"rewards/r/mean": 0.0}, {"r": "outcome"},
                      {"r": 1.0})

    def credit(start, T):
        r = torch.arange(start, start + 4, dtype=torch.float64)
        return Credit(r, -r, torch.arange(4 * T, dtype=torch.float64).view(4, T) + start)

    b0, b1 = batch(3, 5, 0), batch(5, 2, 1000)
    out, sc, cr = assemble([(b0, scores([0, 1, 2, 3]), credit(0, 5)), (b1, scores([4, 5, 6, 7]), credit(1000, 2))],
                           [(0, 1), (1, 0)], 2, pad_id=-1)
    assert out.prompt_ids.shape == (4, 5) and out.completion_ids.shape == (4, 5)
    # group 1 of round 0 (rows 2, 3), prompts left-padded by 2, completions right-padded
    assert out.prompt_ids[0].tolist() == [-1, -1, 6, 7, 8] and out.prompt_mask[0].tolist() == [0, 0, 1, 1, 1]
    assert out.completion_ids[0].tolist() == [110, 111, 112, 113, 114]
    # group 0 of round 1 (rows 0, 1): completions padded from 2 to 5 with mask 0
    assert out.completion_ids[3].tolist() == [1102, 1103, -1, -1, -1] and out.mask[3].tolist() == [1, 0, 0, 0, 0]
    assert out.truncated.tolist() == [False, False, False, True]
    assert [r.completion for r in out.rollouts] == ["0-2", "0-3", "1000-0", "1000-1"]
    assert sc.totals == [2, 3, 4, 5] and [r.value for r in sc.results["r"]] == [2, 3, 4, 5]
    # the credit's rows travel with their completions; process terms padded with 0 like the mask
    assert cr.rewards.tolist() == [2, 3, 1000, 1001] and cr.outcome.tolist() == [-2, -3, -1000, -1001]
    assert cr.process.tolist() == [[10, 11, 12, 13, 14], [15, 16, 17, 18, 19],
                                   [1000, 1001, 0, 0, 0], [1002, 1003, 0, 0, 0]]
    _, _, none = assemble([(b0, scores([0, 1, 2, 3]), Credit(None, None, None))], [(0, 0)], 2, pad_id=-1)
    assert none == Credit(None, None, None)


# --- in the trainer --------------------------------------------------------------------------


def test_only_groups_with_signal_reach_the_optimizer(tiny_dir, tmp_path):
    G, P = 4, 4
    off_mgr, off = make_manager()
    plain = GRPOTrainer(TrainConfig.model_validate(config(tiny_dir, tmp_path / "off", dynamic_sampling=False)), off_mgr)
    m_off = plain.train_step()
    on_mgr, on = make_manager()
    trainer = GRPOTrainer(TrainConfig.model_validate(config(tiny_dir, tmp_path / "on")), on_mgr)
    m = trainer.train_step()
    # without it, about half the groups (even answers) are constant
    assert m_off["frac_reward_zero_std"] > 0 and "dynamic_sampling/rounds" not in m_off
    assert m_off["num_rollouts"] == P * G
    rollouts = on.batches[-1]
    assert len(rollouts) == P * G
    for group in groups_of(rollouts, G):
        assert len({r.prompt_text for r in group}) == 1  # whole groups
        assert _odd(group[0]) and len({r.reward for r in group}) > 1
    assert m["frac_reward_zero_std"] == 0.0 and m["dynamic_sampling/filled_groups"] == 0
    assert m["dynamic_sampling/rounds"] >= 2
    assert m["num_rollouts"] == trainer.num_rollouts == P * G + m["dynamic_sampling/extra_rollouts"]
    assert m["dynamic_sampling/frac_reward_zero_std_drawn"] > 0


def test_extra_rollouts_are_bounded_and_shortfalls_filled(tiny_dir, tmp_path):
    mgr, plugin = make_manager()
    cfg = config(tiny_dir, tmp_path / "run", rewards=("constant",), dynamic_sampling_rounds=2)
    trainer = GRPOTrainer(TrainConfig.model_validate(cfg), mgr)
    m = trainer.train_step()
    assert m["dynamic_sampling/rounds"] == 3
    assert m["dynamic_sampling/extra_rollouts"] == 2 * 4 * 4  # each extra round at most prompts_per_step prompts
    assert m["dynamic_sampling/filled_groups"] == 4 and m["frac_reward_zero_std"] == 1.0
    assert len(plugin.batches[-1]) == 16 and trainer.sampler.pos == 12  # 3 rounds of 4 prompts drawn


@pytest.mark.parametrize("scale", ["group", "batch"])
def test_advantages_of_the_assembled_rounds_equal_those_of_the_assembled_batch(tiny_dir, tmp_path, scale):
    """Advantages are computed once per round and joined: the same numbers as computing them afresh on
    the batch that trains (the batch-wide scale, applied after joining, included)."""
    mgr, _ = make_manager()
    cfg = config(tiny_dir, tmp_path / "run", rewards=("half_signal", "half_steps"), scale_rewards=scale,
                 mask_truncated_completions=True)
    trainer = GRPOTrainer(TrainConfig.model_validate(cfg), mgr)
    batch, scores, credit, m, _ = trainer._sample_batch()
    assert m["dynamic_sampling/rounds"] >= 2
    mask = trainer._loss_mask(batch)
    fresh = trainer._credit(scores, batch.rollouts, batch.completion_ids.shape[1])
    adv = trainer._advantages(credit, mask)
    assert torch.equal(adv, trainer._advantages(fresh, mask)) and adv.abs().sum() > 0


def test_step_rewards_count_as_signal(tiny_dir, tmp_path):
    mgr, plugin = make_manager()
    trainer = GRPOTrainer(TrainConfig.model_validate(config(tiny_dir, tmp_path / "run", rewards=("half_steps",))), mgr)
    m = trainer.train_step()
    assert m["dynamic_sampling/filled_groups"] == 0
    for group in groups_of(plugin.batches[-1], 4):
        assert _odd(group[0])  # only odd answers have varying step rewards
    assert m["advantages/mean_abs"] > 0


TIMING = ("step_time", "time/", "tokens_per_second", "reward_host/")


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def test_resume_after_a_kill_is_exact(tiny_dir, tmp_path):
    common = {"steps": 4, "beta": 0.05}
    mgr, _ = make_manager()
    cfg_a = config(tiny_dir, tmp_path / "a", **common)
    cfg_a["checkpoint"] = {"every": 2}
    GRPOTrainer(TrainConfig.model_validate(cfg_a), mgr).train()
    cfg_b = config(tiny_dir, tmp_path / "b", **common)
    cfg_b["checkpoint"] = {"every": 2}
    killed = GRPOTrainer(TrainConfig.model_validate(cfg_b), mgr)
    real_step = killed.train_step

    def dies_during_step_4():
        if killed.step == 3:
            raise SystemExit("killed")
        return real_step()

    killed.train_step = dies_during_step_4
    with pytest.raises(SystemExit):
        killed.train()
    resumed = GRPOTrainer(TrainConfig.model_validate(cfg_b), mgr)
    resumed.train()
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4] and a == b
    assert any(r["dynamic_sampling/rounds"] > 1 for r in a)
    from safetensors.torch import load_file

    wa = load_file(tmp_path / "a" / "checkpoint-4" / "model.safetensors")
    wb = load_file(tmp_path / "b" / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_max_rollouts_stops_training(tiny_dir, tmp_path):
    mgr, _ = make_manager()
    cfg = config(tiny_dir, tmp_path / "run", steps=50, max_rollouts=40, dynamic_sampling=False)
    trainer = GRPOTrainer(TrainConfig.model_validate(cfg), mgr)
    trainer.train()
    assert trainer.step == 3 and trainer.num_rollouts == 48  # 16 per step: stops at the first step past 40


# --- two processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_keep_whole_groups_in_step(tiny_dir, tmp_path):
    cfg = config(tiny_dir, tmp_path / "run", prompts_per_step=4)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           __file__, str(tmp_path / "cfg.json"), str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    for r in (r0, r1):
        for step in r["steps"]:
            assert len(step) == 2  # prompts_per_step / world groups each
            assert all(len(set(g["prompts"])) == 1 and len(g["prompts"]) == 4 and g["varies"] for g in step)
    assert r0["metrics"] == r1["metrics"]  # every process took the same decisions
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        assert not {g["prompts"][0] for g in s0} & {g["prompts"][0] for g in s1}


def _helper_main() -> None:
    cfg = TrainConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    mgr, plugin = make_manager()
    trainer = GRPOTrainer(cfg, mgr)
    metrics = []
    for _ in range(cfg.train.steps):
        m = trainer.train_step()
        metrics.append({k: m[k] for k in m if k.startswith("dynamic_sampling/") or k == "num_rollouts"})
    steps = [[{"prompts": [r.prompt_text for r in g], "varies": len({r.reward for r in g}) > 1}
              for g in groups_of(batch, cfg.rollout.num_generations)] for batch in plugin.batches]
    Path(sys.argv[2], f"rank{trainer.rank}.json").write_text(json.dumps({"steps": steps, "metrics": metrics}))


if __name__ == "__main__":
    _helper_main()


def test_assemble_keeps_the_sampler_log_probs_of_the_kept_rows():
    """vLLM's per-token log-probs travel with their completions (else the importance-sampling correction turns off)."""
    from grpo_plugins.grpo.generation import Rollout

    gen = torch.Generator().manual_seed(0)

    def batch(T, start):
        logp = -torch.rand(4, T, generator=gen, dtype=torch.float64)
        return RolloutBatch(torch.ones(4, 2, dtype=torch.long), torch.ones(4, 2, dtype=torch.long),
                            torch.arange(start, start + 4 * T).view(4, T), torch.ones(4, T, dtype=torch.long),
                            torch.zeros(4, dtype=torch.bool), [Rollout(prompt="p", completion="c")] * 4, logp)

    def scores():
        return Scores({"r": [RewardResult(0.0)] * 4}, [0.0] * 4, {}, {"r": "outcome"}, {"r": 1.0})

    b0, b1 = batch(5, 0), batch(3, 100)
    out, _, _ = assemble([(b0, scores(), Credit(None, None, None)), (b1, scores(), Credit(None, None, None))],
                         [(1, 1), (0, 0)], 2, pad_id=-1)
    assert out.sampler_logp is not None and out.sampler_logp.dtype == torch.float64
    # float64 reference: the kept rows in the order assemble puts them (round 0 first), padded with 0 like the mask
    want = torch.zeros(4, 5, dtype=torch.float64)
    want[0:2] = b0.sampler_logp[0:2]
    want[2:4, :3] = b1.sampler_logp[2:4]
    torch.testing.assert_close(out.sampler_logp, want, rtol=0, atol=0)
    # row alignment: each row's log-probs belong to the same completion
    assert out.completion_ids[2, :3].tolist() == b1.completion_ids[2].tolist()
