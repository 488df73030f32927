"""The process-supervision options of the train section (issue 24), against float64 references:
process_scale (one scale for outcome and process credit), advantage_terms (process-only), the
process std floor, which reward's variance makes a group informative under dynamic sampling,
continuations charged to the rollout budget, and ``prover: policy``."""

from __future__ import annotations

import os
import random

import pytest
import torch

from grpo_plugins import OptionsError, PluginManager
from grpo_plugins.errors import SettingError
from grpo_plugins.grpo import advantages as A
from grpo_plugins.grpo.config import TrainConfig
from grpo_plugins.grpo.trainer import GRPOTrainer
from grpo_progress.reward import POLICY_ENV, ProgressReward
from helpers_runs import Constant, DigitShare, DigitSteps, RewardPlugin, private_manager, tiny_run_config

# --- float64 references ----------------------------------------------------------------------


def ref_mean_abs(outcome, process, mask):
    """(mean |outcome| per masked token, mean |process| per masked token), plain Python."""
    n = so = sp = 0.0
    for i, row in enumerate(mask):
        for t, m in enumerate(row):
            if m:
                n += 1
                so += abs(outcome[i]) if outcome is not None else 0.0
                sp += abs(process[i][t])
    return so / max(n, 1), sp / max(n, 1)


def random_credit(seed, G=4, groups=3, T=6, outcome_zero=False):
    rng = random.Random(seed)
    B = G * groups
    r = torch.tensor([0.0 if outcome_zero else rng.choice([0.0, 1.0, rng.uniform(-1, 2)]) for _ in range(B)],
                     dtype=torch.float64)
    process = torch.tensor([[rng.uniform(-3, 3) for _ in range(T)] for _ in range(B)], dtype=torch.float64)
    mask = torch.tensor([[int(t < rng.randint(1, T)) for t in range(T)] for _ in range(B)])
    return r, process, mask


# --- 1. process_scale ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_match_gives_the_process_term_the_outcome_terms_mean_abs(seed, scale):
    G = 4
    r, process, mask = random_credit(seed, G)
    credit = A.Credit(r, A.outcome_credit(r, G, scale, 1e-4), process)
    t = A.advantage_terms(credit, mask, scale, 1e-4, process_scale="match")
    outcome = A.outcome_advantages(r, G, scale, 1e-4).tolist()  # the trained outcome term, batch std included
    o_ref, p_ref = ref_mean_abs(outcome, process.tolist(), mask.tolist())
    assert t.outcome_mean_abs == pytest.approx(o_ref, rel=1e-12) and t.process_mean_abs == pytest.approx(p_ref, rel=1e-12)
    assert t.scale == pytest.approx(o_ref / p_ref, rel=1e-12)
    scaled = [[p * o_ref / p_ref for p in row] for row in process.tolist()]
    assert ref_mean_abs(outcome, scaled, mask.tolist())[1] == pytest.approx(o_ref, rel=1e-12)
    want = torch.tensor([[(outcome[i] + scaled[i][k]) * mask[i][k] for k in range(mask.shape[1])]
                         for i in range(len(outcome))], dtype=torch.float32)
    got = A.token_advantages(credit, mask, scale, 1e-4, process_scale="match")
    assert torch.allclose(got, want, atol=1e-6, rtol=1e-6)


def test_an_all_zero_outcome_term_drops_the_process_term():
    """c = 0 when no group has outcome signal: the limit of the rule, not the unscaled process term."""
    r, process, mask = random_credit(0, outcome_zero=True)
    credit = A.Credit(r, A.outcome_credit(r, 4), process)
    t = A.advantage_terms(credit, mask, process_scale="match")
    assert t.scale == 0.0 and t.outcome_mean_abs == 0.0 and t.process_mean_abs > 0
    assert A.token_advantages(credit, mask, process_scale="match").abs().sum() == 0


def test_an_all_zero_process_term_leaves_c_at_one():
    r, _, mask = random_credit(1)
    credit = A.Credit(r, A.outcome_credit(r, 4), torch.zeros(mask.shape, dtype=torch.float64))
    assert A.advantage_terms(credit, mask, process_scale="match").scale == 1.0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_none_and_outcome_only_are_todays_advantages_bitwise(scale):
    r, process, mask = random_credit(2)
    today = A.combine(A.outcome_advantages(r, 4, scale, 1e-4), process, mask)
    credit = A.Credit(r, A.outcome_credit(r, 4, scale, 1e-4), process)
    assert torch.equal(A.token_advantages(credit, mask, scale, 1e-4, process_scale="none"), today)
    only = A.Credit(r, A.outcome_credit(r, 4, scale, 1e-4), None)  # no step reward: match changes nothing
    assert torch.equal(A.token_advantages(only, mask, scale, 1e-4, process_scale="match"),
                       A.combine(A.outcome_advantages(r, 4, scale, 1e-4), None, mask))


def test_match_over_processes_uses_the_summed_mean_abs():
    """Two processes' halves scaled with the all-reduced sums equal the whole batch scaled at once."""
    r, process, mask = random_credit(3, groups=4)
    whole = A.advantage_terms(A.Credit(r, A.outcome_credit(r, 4), process), mask, process_scale="match")
    halves = [slice(0, 8), slice(8, 16)]
    sums = sum(A.mean_abs_sums(A.outcome_credit(r[h], 4), process[h], mask[h]) for h in halves)
    for h in halves:
        part = A.advantage_terms(A.Credit(r[h], A.outcome_credit(r[h], 4), process[h]), mask[h],
                                 process_scale="match", all_sum=lambda _: sums)
        assert part.scale == pytest.approx(whole.scale, rel=1e-12)
        assert torch.allclose(part.process, whole.process[h], rtol=1e-12)


# --- 2. advantage_terms: process_only -------------------------------------------------------


@pytest.mark.parametrize("process_scale", ["match", "none"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_process_only_trains_the_process_term_alone_unscaled(scale, process_scale):
    """DeepSeekMath's process supervision: A_{i,t} = process term, c = 1 (no outcome term to match)."""
    r, process, mask = random_credit(5)
    credit = A.Credit(r, A.outcome_credit(r, 4, scale, 1e-4), process)
    t = A.advantage_terms(credit, mask, scale, 1e-4, process_scale=process_scale, terms="process_only")
    assert t.outcome is None and t.scale == 1.0 and t.outcome_mean_abs == 0.0
    assert t.process_mean_abs == pytest.approx(ref_mean_abs(None, process.tolist(), mask.tolist())[1], rel=1e-12)
    want = torch.tensor([[p * m for p, m in zip(prow, mrow)] for prow, mrow in zip(process.tolist(), mask.tolist())],
                        dtype=torch.float32)
    got = A.token_advantages(credit, mask, scale, 1e-4, process_scale=process_scale, terms="process_only")
    assert torch.equal(got, want)


def test_process_only_with_step_rewards_trains_only_their_credit(tiny_dir, tmp_path):
    trainer = GRPOTrainer(config(tiny_dir, tmp_path / "run", advantage_terms="process_only"), make_manager()[0])
    batch, _, credit, _, _ = trainer._sample_batch()
    mask = trainer._loss_mask(batch)
    assert credit.outcome is not None and credit.outcome.abs().sum() > 0  # scored, but not trained
    adv = trainer._advantages(credit, mask)
    assert torch.allclose(adv, (credit.process * mask).float(), atol=1e-7, rtol=0)
    assert trainer.train_step()["adv/process_scale"] == 1.0


def test_process_only_without_a_step_reward_is_a_setting_error(tiny_dir, tmp_path):
    with pytest.raises(SettingError, match=r"^train.advantage_terms: process_only needs a step reward"):
        GRPOTrainer(config(tiny_dir, tmp_path / "run", rewards=("digit_share",), advantage_terms="process_only"),
                    make_manager()[0])


# --- 3. process_std_floor -------------------------------------------------------------------


def ref_process(ends, values, G, T, floor, eps=1e-4, reduce="sum"):
    """Plain-Python process advantages: r~ = (r - group mean) / max(std, floor), or / (std + eps) without a floor."""
    out = [[0.0] * T for _ in ends]
    for g in range(0, len(ends), G):
        vals = [v for i in range(g, g + G) for v in values[i]]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
        denom = std + eps if floor is None else max(std, floor)
        for i in range(g, g + G):
            count = [0] * T
            for end, v in zip(ends[i], values[i]):
                for t in range(min(end, T - 1) + 1):
                    out[i][t] += (v - mean) / denom
                    count[t] += 1
            if reduce == "mean":
                out[i] = [x / max(c, 1) for x, c in zip(out[i], count)]
    return out


def random_steps(seed, G=4, groups=3, T=10, spread=1.0):
    rng = random.Random(seed)
    ends, values = [], []
    for _ in range(G * groups):
        k = rng.randint(0, 4)
        ends.append(sorted(rng.sample(range(T + 3), k)))  # some past the end: cut off at the last token
        values.append([0.5 + spread * rng.uniform(-1, 1) for _ in range(k)])
    return ends, values


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("floor", [None, 0.1, 0.5, 3.0])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_the_std_floor_matches_the_float64_reference(seed, floor, reduce):
    ends, values = random_steps(seed)
    got = A.process_advantages(ends, values, 4, 10, 1e-4, reduce, floor)
    want = torch.tensor(ref_process(ends, values, 4, 10, floor, reduce=reduce), dtype=torch.float64)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_floor_only_acts_on_groups_whose_std_is_below_it():
    ends, values = random_steps(7, spread=2.0)  # every group's std is well above 0.1
    assert torch.allclose(A.process_advantages(ends, values, 4, 10, 0.0, floor=0.1),
                          A.process_advantages(ends, values, 4, 10, 0.0), rtol=1e-12, atol=0)


def test_near_constant_prm_scores_stay_small_under_the_floor():
    """0.5 +- 0.001 (a PRM that cannot tell the completions apart): today's eps makes that unit-size."""
    ends = [[1], [1], [1], [1]]
    values = [[0.501], [0.499], [0.501], [0.499]]
    floored = A.process_advantages(ends, values, 4, 3, floor=0.1)
    assert floored.abs().max() <= 0.01 + 1e-12
    assert floored[0, 0] == pytest.approx(0.001 / 0.1, rel=1e-9) and floored[0, 2] == 0
    assert A.process_advantages(ends, values, 4, 3).abs().max() > 0.7  # std + eps: noise becomes signal


def test_the_trainer_normalises_step_rewards_with_the_floor(tiny_dir, tmp_path):
    for floor in (0.1, 5.0, None):
        trainer = GRPOTrainer(config(tiny_dir, tmp_path / f"run{floor}", process_std_floor=floor), make_manager()[0])
        batch, scores, credit, _, _ = trainer._sample_batch()
        want = A.process_credit(scores.results["digit_steps"], batch.rollouts, trainer.tokenizer, 4,
                                batch.completion_ids.shape[1], 1e-4, "sum", floor) * scores.weights["digit_steps"]
        assert torch.equal(credit.process, want)


# --- 4. dynamic_sampling_reward -------------------------------------------------------------


def ref_group_norm(values, G, eps=1e-4):
    """Plain-Python (r - group mean) / (unbiased group std + eps); 0 for a group of equal values."""
    out = []
    for g in range(0, len(values), G):
        vals = values[g:g + G]
        mean = sum(vals) / G
        std = (sum((v - mean) ** 2 for v in vals) / (G - 1)) ** 0.5
        out += [(v - mean) / (std + eps) for v in vals]
    return out


def test_constant_outcome_with_varying_step_reward_drops_and_refills_groups(tiny_dir, tmp_path):
    """Default ``outcome``: the step reward's variance is no signal, so every round's groups are set aside
    and the last ones fill the batch; choosing the step reward keeps groups it varies in."""
    ds = {"dynamic_sampling": True, "dynamic_sampling_rounds": 2}
    rewards = ("constant", "digit_steps")
    trainer = GRPOTrainer(config(tiny_dir, tmp_path / "a", rewards, **ds), make_manager()[0])
    m = trainer.train_step()
    assert m["dynamic_sampling/rounds"] == 3 and m["dynamic_sampling/filled_groups"] == 4
    assert m["num_rollouts"] == trainer.num_rollouts > 4 * 4
    steps = GRPOTrainer(config(tiny_dir, tmp_path / "b", rewards, dynamic_sampling_reward="digit_steps", **ds),
                        make_manager()[0])
    assert steps.train_step()["dynamic_sampling/filled_groups"] < 4


def _signal_of(trainer):
    batch, scores, credit, _, _ = trainer._sample_batch()
    return batch, scores, credit, trainer._loss_mask(batch), trainer._signal(scores, batch, credit)


def test_the_signal_is_the_chosen_rewards_own_term(tiny_dir, tmp_path):
    rewards = ("digit_share", "constant", "digit_steps")
    outcome = GRPOTrainer(config(tiny_dir, tmp_path / "o", rewards), make_manager()[0])
    batch, scores, credit, mask, signal = _signal_of(outcome)
    assert torch.equal(signal, A.combine(credit.outcome, None, mask)) and signal.abs().sum() > 0

    share = GRPOTrainer(config(tiny_dir, tmp_path / "s", rewards, dynamic_sampling_reward="digit_share"),
                        make_manager()[0])
    batch, scores, credit, mask, signal = _signal_of(share)
    own = ref_group_norm([r.value for r in scores.results["digit_share"]], 4)
    want = torch.tensor([[o * m for m in row] for o, row in zip(own, mask.tolist())], dtype=torch.float32)
    assert torch.allclose(signal, want, atol=1e-6, rtol=1e-6)

    steps = GRPOTrainer(config(tiny_dir, tmp_path / "p", rewards, dynamic_sampling_reward="digit_steps"),
                        make_manager()[0])
    batch, scores, credit, mask, signal = _signal_of(steps)
    own = A.process_credit(scores.results["digit_steps"], batch.rollouts, steps.tokenizer, 4, mask.shape[1],
                           1e-4, "sum", 0.1)
    assert torch.equal(signal, A.combine(None, own, mask))


def test_process_only_reads_the_trained_advantage(tiny_dir, tmp_path):
    trainer = GRPOTrainer(config(tiny_dir, tmp_path / "run", advantage_terms="process_only"), make_manager()[0])
    batch, scores, credit, mask, signal = _signal_of(trainer)
    assert credit.outcome is not None
    assert torch.equal(signal, A.combine(None, credit.process, mask))


# --- 5. continuations charged ---------------------------------------------------------------


class CostlySteps(DigitSteps):
    """DigitSteps that says it sampled 2 continuations per step (as the progress reward's info does)."""

    name = "costly_steps"

    def score(self, samples):
        out = super().score(samples)
        for r in out:
            r.info["continuations"] = 2 * len(r.steps)
        return out


def costly_manager():
    return private_manager(DigitShare, Constant, DigitSteps, CostlySteps)


def test_continuations_charged_sums_info_over_every_reward():
    from grpo_plugins import RewardResult
    from grpo_plugins.grpo.metrics import continuations_charged

    results = {"a": [RewardResult(1.0, info={"continuations": 3}), RewardResult(0.0)],
               "b": [RewardResult(1.0, info={"continuations": 4.0}), RewardResult(0.0, info={"continuations": "x"}),
                     RewardResult(0.0, info={"continuations": True}), RewardResult(0.0, info={"continuations": None})]}
    assert continuations_charged(results) == 7


def test_continuations_count_as_rollouts_and_resume(tiny_dir, tmp_path):
    cfg = config(tiny_dir, tmp_path / "run", ("digit_share", "costly_steps"), steps=2)
    cfg = cfg.model_copy(update={"checkpoint": cfg.checkpoint.model_copy(update={"every": 1})})
    manager, plugin = costly_manager()
    trainer = GRPOTrainer(cfg, manager)
    plugin_groups, charged = [], 0
    for _ in range(2):
        m = trainer.train_step()
        batch = plugin.batches[-1]
        charged += sum(2 * len(r.steps["costly_steps"]) for r in batch)
        plugin_groups.append([r.group for r in batch])
        assert m["rollouts/continuations"] == trainer.num_continuations == charged
        assert m["num_rollouts"] == trainer.num_rollouts == 16 * trainer.step + charged
    assert charged > 0
    assert plugin_groups == [[i // 4 for i in range(16)], [4 + i // 4 for i in range(16)]]  # as uncharged runs
    trainer.save()
    again = GRPOTrainer(cfg, costly_manager()[0])
    again._resume(tmp_path / "run" / "checkpoint-2")
    assert (again.num_rollouts, again.num_continuations) == (trainer.num_rollouts, charged)


def test_max_rollouts_counts_the_continuations(tiny_dir, tmp_path):
    cfg = config(tiny_dir, tmp_path / "run", ("digit_share", "costly_steps"), steps=5, max_rollouts=17)
    trainer = GRPOTrainer(cfg, costly_manager()[0])
    trainer.train()
    assert trainer.step == 1 and trainer.num_rollouts > 17  # 16 rollouts + their continuations
    plain = GRPOTrainer(config(tiny_dir, tmp_path / "plain", steps=1), make_manager()[0])
    assert "rollouts/continuations" not in plain.train_step() and plain.num_continuations == 0


# --- 6. prover: policy ----------------------------------------------------------------------


def unset_policy(monkeypatch):
    """No $GRPO_PLUGINS_POLICY for this test, and whatever a trainer sets in it undone afterwards."""
    monkeypatch.setenv(POLICY_ENV, "")
    monkeypatch.delenv(POLICY_ENV)


class FakeProver:
    """Records the directory it was asked to load; never loads anything."""

    def __init__(self, path, device=None, temperature=1.0, max_length=1024):
        self.path = path


@pytest.fixture
def fake_prover(monkeypatch):
    import grpo_progress.prover

    monkeypatch.setattr(grpo_progress.prover, "Prover", FakeProver)
    unset_policy(monkeypatch)


def test_prover_policy_is_read_from_the_environment_when_it_first_loads(fake_prover, monkeypatch):
    r = ProgressReward({})
    assert r.options.prover == "policy"
    monkeypatch.setenv(POLICY_ENV, "/runs/x/sft")  # after the reward was built: read on first use
    assert r._generator().path == "/runs/x/sft"
    monkeypatch.setenv(POLICY_ENV, "/elsewhere")
    assert ProgressReward({"prover": "/my/prover"})._generator().path == "/my/prover"


def test_prover_policy_without_a_training_run_is_one_clear_line(fake_prover):
    with pytest.raises(OptionsError) as exc:
        ProgressReward({})._generator()
    assert exc.value.problems == [("prover", exc.value.problems[0][1])]
    line = str(exc.value).splitlines()[-1].strip()
    assert line.startswith("progress.prover: policy means the training run's starting policy")
    assert POLICY_ENV in line and "give the prover's directory" in line


def test_the_trainer_names_its_starting_policy(tiny_dir, tmp_path, monkeypatch):
    unset_policy(monkeypatch)
    run = tmp_path / "run"
    sft = {"data": str(tiny_dir / "sft.jsonl"), "steps": 1, "batch_size": 8}
    cfg = TrainConfig.model_validate(tiny_run_config(tiny_dir, run, ("digit_share",), defaults=DEFAULTS, sft=sft))
    trainer = GRPOTrainer(cfg, make_manager()[0])
    assert os.environ[POLICY_ENV] == str((tiny_dir / "model").resolve())  # before the host exists
    trainer.train()
    assert os.environ[POLICY_ENV] == str((run / "sft").resolve()) and (run / "sft" / "config.json").exists()
    resumed = GRPOTrainer(cfg, make_manager()[0])
    assert os.environ[POLICY_ENV] == str((tiny_dir / "model").resolve())
    resumed.train()  # resumes the finished run: the warm-up model is the starting policy again
    assert os.environ[POLICY_ENV] == str((run / "sft").resolve())


def test_a_progress_run_loads_the_policy_as_prover_and_charges_its_continuations(tiny_dir, tmp_path, monkeypatch):
    """End to end on the tiny model: prover policy = model.name_or_path, continuations in num_rollouts."""
    unset_policy(monkeypatch)
    manager = PluginManager(allow=["math", "progress"])
    manager.register(RewardPlugin(DigitShare), name="process_options_rewards")
    progress = {"name": "progress", "options": {"n": 1, "max_new_tokens": 4, "max_steps": 2, "device": "cpu",
                                                "split": "newline", "outcome_options": {"workers": 1}}}
    cfg = config(tiny_dir, tmp_path / "run", ("digit_share", progress))
    trainer = GRPOTrainer(cfg, manager)
    m = trainer.train_step()
    prover = trainer.host.rewards["progress"]._prover
    assert prover is not None and prover.model.config.name_or_path == str((tiny_dir / "model").resolve())
    assert m["rollouts/continuations"] == trainer.num_continuations > 0
    assert trainer.num_rollouts == 16 + trainer.num_continuations
    trainer.host.close()


def test_train_config_takes_the_options_and_rejects_bad_values():
    base = {"model": {"name_or_path": "m"}, "data": {"train": "t.jsonl"}, "rewards": [{"name": "math"}]}
    assert TrainConfig.model_validate(base).train.process_scale == "match"
    assert TrainConfig.model_validate({**base, "train": {"process_scale": "none"}}).train.process_scale == "none"
    with pytest.raises(ValueError, match="process_scale"):
        TrainConfig.model_validate({**base, "train": {"process_scale": "sometimes"}})
    assert TrainConfig.model_validate(base).train.process_std_floor == 0.1
    assert TrainConfig.model_validate({**base, "train": {"process_std_floor": None}}).train.process_std_floor is None
    with pytest.raises(ValueError, match="process_std_floor"):
        TrainConfig.model_validate({**base, "train": {"process_std_floor": 0}})
    assert TrainConfig.model_validate(base).train.dynamic_sampling_reward == "outcome"
    assert TrainConfig.model_validate({**base, "train": {"dynamic_sampling_reward": "math"}})
    with pytest.raises(ValueError, match=r"train.dynamic_sampling_reward: 'maths' is not a reward label .*'math'"):
        TrainConfig.model_validate({**base, "train": {"dynamic_sampling_reward": "maths"}})
    assert TrainConfig.model_validate(base).train.advantage_terms == "both"
    only = TrainConfig.model_validate({**base, "train": {"advantage_terms": "process_only"}})
    assert only.train.advantage_terms == "process_only"
    with pytest.raises(ValueError, match="advantage_terms"):
        TrainConfig.model_validate({**base, "train": {"advantage_terms": "outcome_only"}})


# --- the trainer -----------------------------------------------------------------------------


DEFAULTS = {"rollout": {"temperature": 1.5},
            "train": {"steps": 1, "prompts_per_step": 4, "seed": 0, "torch_threads": 1},
            "log": {"progress": False, "tensorboard": False}, "checkpoint": {"every": 0}}


def config(tiny_dir, run_dir, rewards=("digit_share", "digit_steps"), **train) -> TrainConfig:
    return TrainConfig.model_validate(tiny_run_config(tiny_dir, run_dir, rewards, defaults=DEFAULTS, train=train))


def make_manager():
    return private_manager(DigitShare, Constant, DigitSteps)


def test_the_trainer_matches_the_terms_and_logs_c(tiny_dir, tmp_path):
    mgr, _ = make_manager()
    trainer = GRPOTrainer(config(tiny_dir, tmp_path / "run"), mgr)
    batch, scores, credit, _, _ = trainer._sample_batch()
    mask = trainer._loss_mask(batch)
    terms = trainer._terms(credit, mask)
    o_ref, p_ref = ref_mean_abs(credit.outcome.tolist(), credit.process.tolist(), mask.tolist())
    assert terms.scale == pytest.approx(o_ref / p_ref, rel=1e-12) and 0 < terms.scale
    m = trainer.train_step()
    assert {"adv/process_scale", "adv/outcome_mean_abs", "adv/process_mean_abs"} <= set(m)
    assert m["adv/outcome_mean_abs"] > 0 and m["adv/process_scale"] > 0
    plain = GRPOTrainer(config(tiny_dir, tmp_path / "plain", rewards=("digit_share",)), make_manager()[0])
    assert "adv/process_scale" not in plain.train_step()  # outcome only: no new metric, today's advantages
