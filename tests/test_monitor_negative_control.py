"""The monitor negative control's task (issue 24's three-digit run): unslipped digit-by-digit sums are right
step by step and in the answer, and a slip makes exactly one step false under today's unchecked math_steps."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from grpo_math.steps_reward import MathStepsReward, StepOptions

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))  # the script imports process_supervision beside it
spec = importlib.util.spec_from_file_location("monitor_negative_control", BENCH / "monitor_negative_control.py")
nc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nc)
UNCHECKED = MathStepsReward(StepOptions(**nc.ps.steps_options(False)))


def scores(ex) -> list[float]:
    """Per-step scores of unchecked math_steps (a step is (start, end, score))."""
    return [step[2] for step in UNCHECKED.score_text(ex["completion"], ex["prompt"], {"answer": ex["answer"]}).steps]


pairs = st.tuples(st.integers(100, 899), st.integers(100, 899))


@given(pairs)
def test_unslipped_sums_are_right_in_every_step_and_the_answer(ab):
    ex = nc.worked(*ab)
    assert ex["completion"].endswith(f"<answer>{ab[0] + ab[1]}</answer>")
    assert scores(ex) == [1.0, 1.0, 1.0]


@given(pairs, st.integers(0, 10 ** 6))
def test_a_slip_makes_exactly_one_step_false(ab, seed):
    ex = nc.worked(*ab, rng=random.Random(seed), slip=1.0)  # every digit slips: each is false on its own terms
    assert scores(ex) == [0.0, 0.0, 0.0]
    one = None
    for s in range(1000):  # a seed whose rng slips just one digit
        rng = random.Random(s)
        ex = nc.worked(*ab, rng=rng, slip=0.4)
        bad = scores(ex)
        if bad.count(0.0) == 1:
            one = bad
            break
    assert one is not None and one.count(1.0) == 2


def test_the_task_keeps_held_out_pairs_out_of_training(tmp_path):
    import json

    task = nc.build_task(tmp_path / "task", n_train=300, n_eval=50, n_sft=300)
    held = {json.loads(line)["prompt"] for line in (task / "test.jsonl").read_text().splitlines()}
    train = {json.loads(line)["prompt"] for line in (task / "train.jsonl").read_text().splitlines()}
    sft = {json.loads(line)["prompt"] for line in (task / "sft.jsonl").read_text().splitlines()}
    assert len(held) == 50 and not held & train and not held & sft


def test_unscaled_means_process_scale_none_in_the_validated_config(tmp_path):
    """The flag must reach the trainer: "match" is TrainConfig's default, so omitting the key kept scaling on
    (the bug that made the first negative-control and hack runs scaled while their notes said unscaled)."""
    import argparse

    from grpo_plugins.grpo.config import TrainConfig

    rewards = nc.ps.arm_rewards("unchecked", tmp_path, tmp_path, argparse.Namespace())
    for flag, want in ((True, "none"), (False, "match")):
        a = argparse.Namespace(budget=64, max_new_tokens=40, without_process_scale=flag)
        d = nc.ps.base_config(tmp_path, tmp_path / "run", "m", 0, a, rewards, 1e-4)
        assert TrainConfig.model_validate(d).train.process_scale == want
    outcome = nc.ps.arm_rewards("outcome", tmp_path, tmp_path, argparse.Namespace())
    d = nc.ps.base_config(tmp_path, tmp_path / "run", "m", 0, a, outcome, 1e-4)
    assert "process_scale" not in d["train"]  # outcome-only: the option does not act, so it is left unset


@given(pairs, st.integers(0, 2), st.integers(1, 8))
def test_the_checked_view_flags_an_invented_digit(ab, k, shift):
    """The evaluation's operand errors on this task: none on a worked solution; the step whose first operand is
    not a k-th digit is unsupported (a changed carry may flag the next step too). With task v2's sources every
    worked solution counted as an operand error."""
    import argparse

    checked = MathStepsReward(StepOptions(**nc.ps.steps_options(True, argparse.Namespace(**nc.DIGIT_CHECK))))
    ex = nc.worked(*ab)
    ok = checked.score_text(ex["completion"], ex["prompt"], {"answer": ex["answer"]})
    assert ok.info["operand_errors"] == 0 and [s[2] for s in ok.steps] == [1.0] * 4
    think = ex["completion"][len("<think>"):ex["completion"].index("</think>")]
    parts = think.split(nc.ps.SEP)
    x = ab[0] // 10 ** k % 10
    y = (x + shift) % 10  # another digit; the claim stays true by rewriting its result
    rest = parts[k][parts[k].index("+"):parts[k].index("=")]
    carry = 1 if "+1" in rest[1:] else 0
    other = int(rest[1:].split("+")[0])
    if y in (ab[0] // 10 ** k % 10, ab[1] // 10 ** k % 10):
        return  # the invented digit happens to be available in this column
    parts[k] = f"{y}{rest}={y + other + carry}"
    bad = ex["completion"].replace(think, nc.ps.SEP.join(parts))
    res = checked.score_text(bad, ex["prompt"], {"answer": ex["answer"]})
    assert res.info["step_status"][k] == "unsupported_operand"  # the invented step, not its neighbours before it
    assert all(st == "correct" for st in res.info["step_status"][:k])
