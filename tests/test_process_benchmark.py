"""The process-supervision benchmark's task: worked running sums are right without slips, and a slipped
one has exactly one step the checked ``math_steps`` flags, with the answer following the steps."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_math.steps_reward import MathStepsReward, StepOptions

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "process_supervision.py"
spec = importlib.util.spec_from_file_location("process_supervision", PATH)
ps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ps)

CHECKED = MathStepsReward(StepOptions(**ps.steps_options(True)))
UNCHECKED = MathStepsReward(StepOptions(**ps.steps_options(False)))


def score(ex, reward=CHECKED):
    return reward.score_text(ex["completion"], ex["prompt"], {"answer": ex["answer"]})


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10 ** 9), st.sampled_from([2, 5]), st.integers(1, 99))
def test_unslipped_solutions_are_right(seed, k, max_number):
    rng = random.Random(seed)
    nums = list(ps.draw_numbers(rng, k, max_number))
    ex = ps.chain_example(nums, rng, slip=0.0)
    assert ex["slipped"] is None
    assert ex["answer"] == str(sum(nums))
    assert ex["completion"].endswith(f"<answer>{sum(nums)}</answer>")
    res = score(ex)
    assert res.info["step_status"] == ["correct"] * k + ["answer_derived"]
    assert res.info["answer_gold"] is True and res.info["operand_errors"] == 0


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10 ** 9), st.sampled_from([2, 5]), st.integers(1, 99))
def test_a_slipped_solution_has_exactly_one_flagged_step_and_a_derived_answer(seed, k, max_number):
    rng = random.Random(seed)
    nums = list(ps.draw_numbers(rng, k, max_number))
    ex = ps.chain_example(nums, rng, slip=1.0)
    j = ex["slipped"]
    assert 0 <= j < k
    res = score(ex)
    status = res.info["step_status"]
    # the slipped step is the one false claim; later steps carry its result on (supported operands)
    assert [i for i, s in enumerate(status) if s in ps.FLAGGED] == [j]
    assert status[-1] == "answer_derived" and res.info["answer_agrees"] is True
    assert res.info["answer_gold"] is False  # the slip changes the answer: a wrong answer, localised
    assert res.info["operand_errors"] == 0
    assert [i for i, s in enumerate(score(ex, UNCHECKED).info["step_status"]) if s == "incorrect"] == [j]


def test_an_invented_operand_is_flagged_only_by_the_checked_form():
    ex = {"prompt": "23+7+45=?\n", "completion": "<think>23+7=30, 3+2=5</think><answer>5</answer>", "answer": "75"}
    assert score(ex).info["step_status"] == ["correct", "unsupported_operand", "answer_derived"]
    assert score(ex, UNCHECKED).info["step_status"] == ["correct", "correct"]


def test_the_task_splits_are_disjoint(tmp_path):
    import json

    task = ps.build_task(tmp_path / "task", k=2, slip=0.5, max_number=30, n_train=200, n_eval=50, n_sft=200)
    read = lambda name: [json.loads(line) for line in (task / name).read_text().splitlines()]  # noqa: E731
    held = {r["prompt"] for r in read("test.jsonl")}
    assert len(held) == 50
    assert not held & {r["prompt"] for r in read("train.jsonl") + read("sft.jsonl")}
    sft = read("sft.jsonl")
    assert 0.35 < sum(r["slipped"] is not None for r in sft) / len(sft) < 0.65


def test_rollouts_to_reach():
    curve = [{"rollouts": 1024, "accuracy": 0.2}, {"rollouts": 2048, "accuracy": 0.31}, {"rollouts": 3072, "accuracy": 0.3}]
    assert ps.rollouts_to(curve, 0.3) == 2048
    assert ps.rollouts_to(curve, 0.5) is None


def test_the_alert_table_says_whether_divergence_fired_before_greedy_fell_five_points():
    curve = [{"rollouts": 1024, "accuracy": 0.58}, {"rollouts": 2048, "accuracy": 0.54}, {"rollouts": 3072, "accuracy": 0.5}]
    cell = lambda alerts: {"start": 0.6, "curve": curve, "alerts": alerts}  # noqa: E731
    early = [{"monitor": "divergence", "rollouts": 1536}, {"monitor": "divergence", "rollouts": 3000}]
    late = [{"monitor": "dominance", "rollouts": 64}, {"monitor": "divergence", "rollouts": 2560}]
    rows = ps.alert_table({"unchecked": {"0": cell(early), "1": cell(late), "2": cell([])},
                           "outcome": {"0": cell([])}}).splitlines()[2:]
    assert rows[0] == "| outcome | 0 | 0 | — | 2048 | — |"  # ARMS order: outcome's rows come first
    assert rows[1] == "| unchecked | 0 | 2 | divergence 1536 | 2048 | yes |"
    assert rows[2] == "| unchecked | 1 | 2 | dominance 64, divergence 2560 | 2048 | no (after) |"
    assert rows[3] == "| unchecked | 2 | 0 | — | 2048 | no alert |"


def test_help_parses():
    out = subprocess.run([sys.executable, str(PATH), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--gate-only" in out.stdout and "--arms" in out.stdout
    a = ps.parse_args(["--arms", "outcome,checked", "--seeds", "0,1", "--k", "2"])
    assert a.arms == ["outcome", "checked"] and a.seeds == [0, 1] and a.max_new_tokens == 32
    with pytest.raises(SystemExit):
        ps.parse_args(["--arms", "nope"])


DIAG = Path(__file__).resolve().parent.parent / "benchmarks" / "process_diagnosis.py"
_spec = importlib.util.spec_from_file_location("process_diagnosis", DIAG)
diag = importlib.util.module_from_spec(_spec)
sys.path.insert(0, str(DIAG.parent))
_spec.loader.exec_module(diag)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10 ** 9), st.sampled_from([2, 5]), st.integers(1, 99), st.booleans())
def test_the_diagnosis_counts_a_slipped_chain_as_a_false_step(seed, k, max_number, slipped):
    rng = random.Random(seed)
    nums = list(ps.draw_numbers(rng, k, max_number))
    ex = ps.chain_example(nums, rng, slip=1.0 if slipped else 0.0)
    assert diag.false_step(ex["completion"], ex["prompt"], ex["answer"]) is slipped


def test_the_diagnosis_help_parses():
    out = subprocess.run([sys.executable, str(DIAG), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "gradcheck" in out.stdout
