"""Our rewards inside a real ``trl.GRPOTrainer``: two training steps on a tiny local model, and the
rewards TRL logged for each completion equal what ``grpo-plugins score`` gives for the same rows."""

import json
import math

import pytest

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from click.testing import CliRunner  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from grpo_plugins import as_async_trl_reward_func, as_trl_reward_func  # noqa: E402
from grpo_plugins.cli import cli  # noqa: E402
from grpo_plugins.manager import PluginManager  # noqa: E402

# no_answer differs from incorrect so that a random model's completions give more than one value
MATH = {"extraction": "any", "no_answer": -0.5, "workers": 1}
FORMAT = {"mode": "search", "pattern": r"[0-9]"}


class Capture(TrainerCallback):
    """Copies TRL's per-completion log (prompt, completion, rewards per function) after each step."""

    def __init__(self):
        self.trainer = None
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        logs = self.trainer._logs
        self.steps.append({"prompt": list(logs["prompt"]), "completion": list(logs["completion"]),
                           "rewards": {k: list(v) for k, v in logs["rewards"].items()}})


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_lm_dir):
    return tiny_lm_dir


def _score_cli(tmp_path, rows):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["score", "--reward", "math", "--reward", "format", "--input", str(inp), "--output", str(out)]
    for k, v in MATH.items():
        args += ["--option", f"math.{k}={json.dumps(v)}"]
    for k, v in FORMAT.items():
        args += ["--option", f"format.{k}={json.dumps(v)}"]
    res = CliRunner().invoke(cli, args, obj={"manager": PluginManager(allow=["math", "format"])})
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_two_real_grpo_steps_log_our_rewards(tiny_model_dir, tmp_path, use_async):
    from transformers import AutoTokenizer

    export = as_async_trl_reward_func if use_async else as_trl_reward_func
    manager = PluginManager(allow=["math", "format"])
    math_fn = export("math", manager=manager, **MATH)
    format_fn = export("format", manager=manager, **FORMAT)
    gold = {f"{a}+{b}=": str(a + b) for a, b in [(1, 2), (3, 4), (2, 2), (5, 1)]}
    data = datasets.Dataset.from_list([{"prompt": p, "answer": a} for p, a in gold.items()])
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, num_generations=4,
        max_completion_length=6, max_steps=2, learning_rate=1e-3, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, seed=0, temperature=1.0, disable_tqdm=True,
        dataloader_num_workers=0)
    cap = Capture()
    trainer = trl.GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[math_fn, format_fn], args=args,
                              train_dataset=data, processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
                              callbacks=[cap])
    cap.trainer = trainer
    trainer.train()

    assert len(cap.steps) == 2
    checked = 0
    for step in cap.steps:
        rows = [{"prompt": p, "completion": c, "answer": gold[p]} for p, c in zip(step["prompt"], step["completion"])]
        scored = _score_cli(tmp_path, rows)
        for name in ("math", "format"):
            logged = step["rewards"][name]
            assert len(logged) == len(rows) == 4
            for got, row in zip(logged, scored):
                want = row["rewards"][name]
                assert (math.isnan(got) and want is None) or got == pytest.approx(want), (name, row)
                checked += 1
    assert checked == 16
    # TRL's own step metrics: the mean of the logged rewards, and our status counts through log_metric
    history = [h for h in trainer.state.log_history if "rewards/math/mean" in h]
    assert len(history) == 2
    for h, step in zip(history, cap.steps):
        vals = [v for v in step["rewards"]["math"] if not math.isnan(v)]
        assert h["rewards/math/mean"] == pytest.approx(sum(vals) / len(vals), abs=1e-6)
        counted = sum(h.get(f"math/{s}", 0.0) for s in ("correct", "incorrect", "no_answer", "unparseable", "timeout"))
        assert counted == pytest.approx(4.0)
