"""A TRL user's first hour (issue 15): each mistake is one line naming the key, `check` is the dry run
of `train`, logs work without a terminal, runs are reproducible and checkpoints load with from_pretrained."""

import json
import math
import os
import stat

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from click.testing import CliRunner

from grpo_plugins import Reward, RewardError, RewardResult, hookimpl
from grpo_plugins.cli import build_cli
from grpo_plugins.host import RewardHost
from grpo_plugins.manager import PluginManager
from grpo_plugins.rewards import Sample
from helpers_runs import DigitSteps, plugin_source, tiny_run_config


class Picky(Reward):
    name = "picky"

    def score(self, samples):
        return [RewardResult(float("nan")) for s in samples]


class Gold(Reward):
    name = "gold"

    def required_columns(self):
        return ["answer"]

    def score(self, samples):
        return [RewardResult(float(s.columns["answer"] in s.text)) for s in samples]


PLUGIN = plugin_source(Gold, DigitSteps, Picky)


def _manager():
    return PluginManager(load_entrypoints=False)


def _invoke(args, env=None):
    m = _manager()
    return CliRunner().invoke(build_cli(m), args, obj={"manager": m}, env=env)


def _config(tmp_path, tiny_dir, rewards=({"name": "gold"},), **sections):
    (tmp_path / "rewards.py").write_text(PLUGIN)
    cfg = {"plugin_files": ["rewards.py"], **tiny_run_config(
        tiny_dir, tmp_path / "run", rewards, {"log": {"tensorboard": False}, "checkpoint": {"every": 2}}, **sections)}
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _error_lines(res):
    return [x for x in res.output.splitlines() if x.strip()]


# --- 4 / 6 / 13: check is the dry run; paths, model, hub, columns, bad rows ------------------------


def test_check_names_the_key_of_a_missing_file_and_takes_overrides(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    res = _invoke(["check", str(cfg), "data.eval=nope.jsonl", "sft.data=sft-nope.jsonl", "sft.steps=1"])
    assert res.exit_code == 1
    out = res.output
    assert "override 'data.eval=nope.jsonl': data.eval: nope.jsonl: file not found" in out
    assert "override 'sft.data=sft-nope.jsonl': sft.data: sft-nope.jsonl: file not found" in out
    assert "Traceback" not in out
    assert _invoke(["check", str(cfg)]).exit_code == 0


def test_check_model_dir_typo_and_offline_hub_fail_fast_in_one_line(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, model={"name_or_path": "./models/qwen-typo"})
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 1 and "model.name_or_path: ./models/qwen-typo: folder not found" in res.output
    assert len(_error_lines(res)) == 2  # the problem and the summary: no traceback
    res = _invoke(["check", str(cfg), "model.name_or_path=Org/no-such-model", "data.train=org/no-such-data"],
                  env={"HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 1
    assert "model.name_or_path: 'Org/no-such-model' is not a local path and not in the hub cache, and the hub is " \
           "off (HF_HUB_OFFLINE is set)" in res.output
    assert "data.train: 'org/no-such-data' is not a local path" in res.output
    saved = tmp_path / "saved_ds"
    saved.mkdir()
    res = _invoke(["check", str(cfg), f"model.name_or_path={tiny_dir / 'model'}", f"data.train={saved}"])
    assert res.exit_code == 1 and f"data.train: {saved}: not a data file or a saved dataset folder" in res.output
    assert len(_error_lines(res)) == 2


def test_check_reports_each_bad_row_with_file_line_and_field(tmp_path, tiny_dir):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join([
        json.dumps({"prompt": "1+1=?", "answer": "2"}),
        '{"prompt": "2+2=?", "answer": ',            # 2: broken JSON
        json.dumps(["a", "list"]),                    # 3: not an object
        json.dumps({"question": "3+3=?", "answer": "6"}),  # 4: no prompt
        json.dumps({"prompt": "4+4=?"}),              # 5: no answer (the gold reward requires it)
        json.dumps({"prompt": 7, "answer": "1"}),     # 6: prompt of the wrong type
    ]) + "\n")
    cfg = _config(tmp_path, tiny_dir, data={"train": str(data), "chat_template": False})
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 1
    out = res.output
    assert f"{data}:2: invalid JSON at column" in out
    assert f"{data}:3: expected a JSON object, got a JSON list" in out
    assert f"{data}:4: prompt: missing (data.prompt_column)" in out
    assert f"{data}:5: answer: missing (reward 'gold' needs it)" in out
    assert f"{data}:6: prompt: expected a string or a list of {{role, content}} messages, got int" in out
    assert f"{data}:1:" not in out
    # train runs the same checks and stops before it writes anything to the run dir
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 1 and f"{data}:5: answer: missing (reward 'gold' needs it)" in res.output
    assert not (tmp_path / "run").exists()


def test_builtin_rewards_declare_their_columns():
    from grpo_code.reward import CodeReward
    from grpo_math.reward import MathReward

    assert MathReward().required_columns() == ["answer"]
    assert MathReward({"answer_column": "solution"}).required_columns() == ["solution"]
    assert CodeReward().required_columns() == ["tests"]
    assert CodeReward({"tests": {"kind": "assert", "code": "assert f() == 1", "entry_point": "f"}}).required_columns() == []


# --- 5: overrides blamed as overrides; did-you-mean; TRL names --------------------------------------


def test_override_typo_is_blamed_on_the_override_with_a_suggestion(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    res = _invoke(["check", str(cfg), "train.step=3"])
    assert res.exit_code == 1
    assert "override 'train.step=3': train.step: unknown key (did you mean steps?)" in res.output
    assert "base.yaml:" not in res.output.split("override")[0]


@pytest.mark.parametrize("key,value,hint", [
    ("max_completion_length", 64, "TRL's max_completion_length is rollout.max_new_tokens here"),
    ("max_steps", 10, "TRL's max_steps is train.steps here"),
    ("per_device_train_batch_size", 8, "TRL's per_device_train_batch_size is train.prompts_per_step here"),
    ("output_dir", "out", "TRL's output_dir is log.run_dir here"),
    ("num_generations", 8, "TRL's num_generations is rollout.num_generations here"),
    ("learning_rate", 1e-5, "TRL's learning_rate is train.learning_rate here"),
    ("beta", 0.04, "TRL's beta is train.beta here"),
])
def test_trl_names_map_to_ours_in_the_hint(tmp_path, tiny_dir, key, value, hint):
    cfg = _config(tmp_path, tiny_dir)
    data = yaml.safe_load(cfg.read_text())
    data[key] = value
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 1
    [line] = [x for x in res.output.splitlines() if f": {key}: unknown key" in x]
    assert line.startswith(f"{cfg}:") and hint in line  # a key in the file: blamed on its line


def test_unknown_reward_and_key_in_another_section_get_suggestions(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "gld"}])
    res = _invoke(["check", str(cfg), "train.max_new_tokens=4"])
    assert "unknown reward 'gld'; did you mean 'gold'?" in res.output
    assert "train.max_new_tokens: unknown key (did you mean rollout.max_new_tokens or eval.max_new_tokens?)" \
        in res.output


def test_fractional_number_message_says_got_once(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    res = _invoke(["check", str(cfg), "train.steps=2.5"])
    assert "got a number with a fractional part (2.5)" in res.output and "got 2.5" not in res.output


# --- 7: score names the input line -----------------------------------------------------------------


def test_score_names_the_line_of_a_row_without_the_gold_column(tmp_path):
    (tmp_path / "rewards.py").write_text(PLUGIN)
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"completion": "4", "answer": "4"}) + "\n\n" + json.dumps({"completion": "4"}) + "\n"
                   + json.dumps({"completion": "5", "answer": "5"}) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["--plugin", str(tmp_path / "rewards.py"), "score", "--reward", "gold", "--input", str(inp),
            "--output", str(out)]
    res = _invoke(args)
    assert res.exit_code == 1 and f"Error: {inp}:3: answer: missing (reward 'gold' needs it)" in res.output
    assert not out.exists()  # decided: under on_error=raise one bad row means no output
    res = _invoke(args + ["--on-error", "nan"])
    assert res.exit_code == 0, res.output
    assert f"warning: {inp}:3: answer: missing (reward 'gold' needs it); scored by on_error=nan" in res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["rewards"]["gold"] for r in rows] == [1.0, None, 1.0]
    assert rows[1]["info"]["gold"]["status"] == "error"


# --- 14: the host validates reward values ----------------------------------------------------------


class Returns(Reward):
    name = "returns"
    value = None

    def score(self, samples):
        return [RewardResult(1.0) if s.columns["bad"] is None else type(self).value(s.columns["bad"])
                for s in samples]


class ReturnsPlugin:
    @hookimpl
    def register_rewards(self, register):
        register(Returns)


@pytest.mark.parametrize("bad,expect", [
    (RewardResult(float("nan")), "value is nan, expected a finite float or None"),
    (RewardResult(float("inf")), "value is inf, expected a finite float or None"),
    (RewardResult(float("-inf")), "value is -inf, expected a finite float or None"),
    (RewardResult("0.75"), "value is str '0.75', expected a finite float or None"),
    (0.5, "result is float, expected RewardResult (wrap it: RewardResult(0.5))"),
])
def test_bad_values_are_errors_naming_plugin_reward_and_sample(bad, expect):
    m = _manager()
    m.register(ReturnsPlugin(), name="returns_plugin")
    Returns.value = staticmethod(lambda b: b)
    samples = [Sample("p", "c", columns={"bad": None}), Sample("p", "c", columns={"bad": bad})]
    with RewardHost([{"name": "returns"}], manager=m) as host:
        with pytest.raises(RewardError) as ei:
            host.score(samples)
    assert str(ei.value).startswith("reward 'returns' (plugin 'returns_plugin') failed on sample 1: ")
    assert expect in str(ei.value)
    if isinstance(bad, RewardResult):  # on_error applies to the bad sample only
        with RewardHost([{"name": "returns", "on_error": "zero"}], manager=m) as host:
            scores = host.score(samples)
        assert [r.value for r in scores.results["returns"]] == [1.0, 0.0]
        assert scores.metrics["rewards/returns/errors"] == 1.0
        assert scores.totals == [1.0, 0.0] and all(math.isfinite(t) for t in scores.totals)


# --- 8 / 9: logs without a terminal; the samples table ---------------------------------------------


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    from grpo_plugins.grpo.metrics import MetricsLogger

    log = MetricsLogger(tmp_path, total_steps=7, tensorboard=False, progress=True, every=3)
    for step in range(1, 8):
        log.log(step, {"reward": 0.5, "kl": 0.001, "completions/mean_length": 12.0, "step_time": 0.25})
    log.close()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("step ")]
    assert lines == [f"step {s}/7  reward 0.5  kl 0.001  length 12  step_time 0.25s" for s in (3, 6, 7)]


def test_samples_table_shows_the_prompt_tail_and_each_reward():
    from grpo_plugins.grpo.metrics import sample_table

    prompt = "You are a careful solver. Think step by step before answering. What is 17+25?"
    table = sample_table(1, [{"prompt": prompt, "completion": "42", "rewards": {"math": 1.0, "format": None},
                              "reward": 1.0, "advantage": 0.5}])
    row = table.splitlines()[2]
    assert "What is 17+25?" in row and "You are" not in row
    assert "format" in table.splitlines()[1] and "math" in table.splitlines()[1]
    assert " n/a " in row and "|          1 |" in row


# --- 10 / 11 / 12 / 15: a step-only run end to end: JSON, metrics, config.yaml, resume, checkpoints ---


def test_step_only_run_resume_rules_and_loadable_checkpoints(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "digit_steps"}],
                  data={"train": str(tiny_dir / "train.jsonl"), "eval": str(tiny_dir / "test.jsonl"),
                        "eval_size": 4, "chat_template": False})
    run = tmp_path / "run"
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "warning: no outcome reward; held-out accuracy uses step reward 'digit_steps'" in res.output
    summary = json.loads(res.output[res.output.index("{"):res.output.index("}") + 1])  # valid JSON: no NaN
    assert summary["reward"] is None
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert r["rewards/digit_steps/not_applicable"] == 0.0  # it scored steps: it applied
        assert r["frac_reward_zero_std"] < 1.0 or r["advantages/mean_abs"] == 0.0
        for key in ("completions/mean_terminated_length", "clip_ratio/low_min", "clip_ratio/high_max"):
            assert isinstance(r[key], float), key
    assert stat.S_IMODE(os.stat(run / "eval.json").st_mode) == stat.S_IMODE(os.stat(run / "metrics.jsonl").st_mode)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["train"]["learning_rate"] == 1e-3 and resolved["rollout"]["num_generations"] == 4
    # a TRL user loads a checkpoint with from_pretrained
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = run / "checkpoint-2"
    assert (run / "latest").read_text().strip() == "checkpoint-2"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    AutoTokenizer.from_pretrained(ckpt)
    assert (ckpt / "optimizer.pt").exists() and not (ckpt / "model.pt").exists()
    from safetensors.torch import load_file

    final = load_file(run / "final" / "model.safetensors")
    assert all(v.equal(model.state_dict()[k]) for k, v in final.items())
    # the same command again: finished, says so, changes nothing
    before = (run / "eval.json").read_text()
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 0 and "run already finished at step 2" in res.output
    assert (run / "eval.json").read_text() == before
    # changed settings stop a resume with a diff, unless --force
    res = _invoke(["train", str(cfg), "train.learning_rate=0.01", "rollout.num_generations=2"])
    assert res.exit_code == 1
    assert "train.learning_rate: 0.001 -> 0.01" in res.output and "rollout.num_generations: 4 -> 2" in res.output
    assert "--force" in res.output
    # train.steps is one a resume may change
    res = _invoke(["train", str(cfg), "train.steps=3"])
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    res = _invoke(["train", str(cfg), "train.steps=3", "train.learning_rate=0.002", "--force"])
    assert res.exit_code == 0 and "run already finished at step 3" in res.output


def test_old_checkpoints_step_n_layout_still_resumes(tmp_path, tiny_dir):
    import shutil

    cfg = _config(tmp_path, tiny_dir, train={"steps": 2, "prompts_per_step": 2, "learning_rate": 1e-3})
    run = tmp_path / "run"
    assert _invoke(["train", str(cfg), "train.steps=1", "checkpoint.every=1"]).exit_code == 0
    # rewrite the run dir into the layout of earlier versions: checkpoints/step-1/model.pt
    import torch
    from transformers import AutoModelForCausalLM

    old = run / "checkpoints" / "step-1"
    old.parent.mkdir()
    shutil.move(run / "checkpoint-1", old)
    (run / "latest").unlink()
    (old.parent / "latest").write_text("step-1\n")
    torch.save(AutoModelForCausalLM.from_pretrained(old).state_dict(), old / "model.pt")  # what old runs saved
    for f in old.glob("*.safetensors"):
        f.unlink()
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 0, res.output
    assert f"resumed from {old} (step 1)" in res.output and (run / "checkpoint-2").is_dir()


def test_plot_ticks_are_whole_steps(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grpo_plugins.grpo.plot import plot_run

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward": s / 3}) + "\n" for s in (1, 2, 3)))
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig: figs.append(fig))
    plot_run(tmp_path, tmp_path / "c.png", ["reward"])
    ticks = figs[0].axes[0].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)


def test_wandb_in_report_to_without_wandb_is_one_line(tmp_path, tiny_dir):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed: the offline-mode test covers it")
    cfg = _config(tmp_path, tiny_dir, log={"run_dir": str(tmp_path / "run"), "report_to": ["tensorboard", "wandb"]})
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 1 and "log.report_to: wandb is not installed (pip install wandb" in res.output


def test_trl_names_are_real_trl_fields_and_all_in_the_docs_table():
    import dataclasses
    from pathlib import Path

    import trl

    from grpo_plugins.suggest import TRL_NAMES

    fields = {f.name for cls in (trl.GRPOConfig, trl.ModelConfig) for f in dataclasses.fields(cls)}
    older = {"max_prompt_length"}  # removed from GRPOConfig in recent TRL; still in older configs
    assert [k for k in TRL_NAMES if k not in fields | older] == []
    table = (Path(__file__).parents[1] / "docs" / "trl-names.md").read_text()
    for trl_name, (ours, _) in TRL_NAMES.items():
        assert f"| `{trl_name}` | `{ours}` |" in table


def test_wandb_offline_logs_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from grpo_plugins.grpo.metrics import MetricsLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    log = MetricsLogger(tmp_path / "run", 2, tensorboard=False, progress=False, wandb=True, config={"seed": 7})
    log.log(1, {"reward": 0.25, "kl": float("nan")})
    log.log(2, {"reward": 0.8125})
    log.close()
    [data] = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    import time

    deadline = time.monotonic() + 60  # wandb's writer is a separate process; on a loaded machine it lags
    while b"0.8125" not in data.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    raw = data.read_bytes()
    assert b"reward" in raw and b"0.8125" in raw and b"seed" in raw


def test_a_finished_cycle_says_so_and_runs_nothing(tmp_path):
    from pathlib import Path

    from grpo_plugins.config import load_run_config
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle

    demo = Path(__file__).parents[1] / "configs" / "cycle-demo.yaml"
    cfg, manager = load_run_config(demo, [f"log.run_dir={tmp_path}"], model=CycleConfig)
    (tmp_path / "cycle_state.json").write_text(json.dumps({"cycle": cfg.cycle.cycles, "phase": "grpo"}))
    (tmp_path / "report.json").write_text(json.dumps({"cycles": [{"cycle": 2}]}))
    said = []
    assert Cycle(cfg, manager, log=said.append).run() == {"cycles": [{"cycle": 2}]}
    assert said == ["all 3 cycles already finished; nothing to do (raise cycle.cycles to continue, "
                    "or use a new log.run_dir)"]


# --- property tests: the row scan and the value check never miss or invent a problem ---------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=6)
_row = st.one_of(_json, st.fixed_dictionaries({"prompt": st.text(max_size=5)}, optional={"answer": _json}),
                 st.fixed_dictionaries({}, optional={"prompt": _json, "answer": _json}))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, max_size=12), torn=st.integers(min_value=-1, max_value=11))
def test_scan_reports_exactly_the_bad_lines(tmp_path_factory, rows, torn):
    from grpo_plugins.grpo.preflight import MAX_ROW_PROBLEMS, NO_ROWS, scan_jsonl

    path = tmp_path_factory.mktemp("scan") / "d.jsonl"
    lines = [json.dumps(r) for r in rows]
    if 0 <= torn < len(lines):
        lines[torn] = lines[torn][:-1] + "\x00{"  # a line no JSON parser accepts
    path.write_text("".join(x + "\n" for x in lines))
    found = scan_jsonl(path, {"answer": "reward 'math'"}, "prompt")
    objects = [r for n, r in enumerate(rows) if n != torn and isinstance(r, dict)]
    # a column no object row has is one line for the file (issue 29 item 6), not a line per row
    nowhere = {c for c in ("prompt", "answer") if objects and all(r.get(c) is None for r in objects)}
    assert {x.split("'")[1] for x in found if ": no row has a " in x} == nowhere
    bad = set()
    for n, r in enumerate(rows, 1):
        ok_prompt = isinstance(r, dict) and (isinstance(r.get("prompt"), str) or (
            isinstance(r.get("prompt"), list) and r["prompt"] and all(isinstance(m, dict) and "content" in m
                                                                      for m in r["prompt"])))
        if "prompt" in nowhere and isinstance(r, dict) and r.get("prompt") is None:
            ok_prompt = True
        if n - 1 == torn or not ok_prompt or (r.get("answer") is None and "answer" not in nowhere):
            bad.add(n)
    if not [x for x in lines if x.strip()]:
        assert found == [f"{path}: {NO_ROWS}"]
        return
    named = {int(x.split(":")[1]) for x in found if not x.endswith("more bad rows") and ": no row has a " not in x}
    assert named <= bad and (named == bad or len(found) > MAX_ROW_PROBLEMS)


@settings(max_examples=200, deadline=None)
@given(v=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**6, 10**6) | st.none())
def test_value_check_accepts_exactly_finite_numbers_and_none(v):
    from grpo_plugins.host import _bad_value

    ok = v is None or math.isfinite(float(v))
    assert (_bad_value(RewardResult(v)) == "") == ok
    assert (_bad_value(RewardResult(steps=[(0, 1, 0.5), (1, 2, v if v is not None else 0.0)])) == "") == \
        (v is None or ok)


def test_a_reward_failing_in_training_names_the_data_row(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "picky"}], train={"steps": 1})
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 1
    [line] = [x for x in res.output.splitlines() if x.startswith("Error:")]
    rows = [json.loads(x) for x in (tiny_dir / "train.jsonl").read_text().splitlines()]
    import re

    # issue 29 item 10 (test_item10_train_names_the_row_as_file_line): file:line as score says it, not a 0-based row
    m = re.fullmatch(r"Error: reward 'picky' \(plugin 'rewards'\) failed on sample 0: (\S+):(\d+), "
                     r"completion 0: value is nan, expected a finite float or None \(not applicable\)", line)
    from grpo_plugins.grpo.data import PromptSampler

    first = PromptSampler(len(rows), seed=0).indices(2)[0]  # the step's first prompt: the trainer's own draw
    assert m and m.group(1) == str(tiny_dir / "train.jsonl") and int(m.group(2)) == first + 1  # no blank lines


# --- issue 29: the second pass -------------------------------------------------------------------


def _no_traceback(res):
    """The command ended through click (an ``Error:`` line), not with an uncaught exception."""
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output, res.output


@pytest.mark.parametrize("content", ["", "\n\n   \n"], ids=["empty", "blank-lines"])
@pytest.mark.parametrize("key", ["data.train", "data.eval"])
def test_empty_data_is_one_line_naming_file_and_setting_at_check_and_train(tmp_path, tiny_dir, content, key):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    cfg = _config(tmp_path, tiny_dir, data={key.split(".")[1]: str(empty)})
    for cmd in ("check", "train"):
        res = _invoke([cmd, str(cfg)])
        assert res.exit_code == 1, res.output
        _no_traceback(res)
        hits = [x for x in _error_lines(res) if "no rows" in x]
        assert len(hits) == 1 and f"{key}: {empty}: no rows" in hits[0], res.output
    assert not (tmp_path / "run").exists()


def test_empty_data_file_fails_in_one_line_where_no_preflight_runs(tmp_path):
    from grpo_plugins.grpo.data import load_rows
    from grpo_plugins.io import InputError

    (tmp_path / "e.jsonl").write_text("\n \n")
    with pytest.raises(InputError, match=r"e\.jsonl: no rows"):
        load_rows(str(tmp_path / "e.jsonl"))


def test_item3_mistyped_absolute_model_path_is_one_line_at_check_and_train(tmp_path, tiny_dir):
    typo = tiny_dir / "modle"  # under tiny.dir, as a demo config's model path is
    cfg = _config(tmp_path, tiny_dir, tiny={"dir": str(tiny_dir)}, model={"name_or_path": str(typo)})
    for cmd in ("check", "train"):
        res = _invoke([cmd, str(cfg)])
        assert res.exit_code == 1, res.output
        _no_traceback(res)
        assert f"model.name_or_path: {typo}: folder not found" in res.output
        assert "OSError" not in res.output and "Repo id" not in res.output
    # before the demo is built, only the files the build writes are excused
    fresh = tmp_path / "not-built"
    res = _invoke(["check", str(cfg), f"tiny.dir={fresh}", f"model.name_or_path={fresh / 'modle'}",
                   f"data.train={fresh / 'train.jsonl'}"])
    assert res.exit_code == 1 and f"model.name_or_path: {fresh / 'modle'}: folder not found" in res.output
    assert "data.train" not in res.output
    assert not (tmp_path / "run").exists()


def test_item6_a_column_no_row_has_is_one_line_naming_the_columns_and_the_setting(tmp_path, tiny_dir):
    (tmp_path / "opts.py").write_text(COLUMN_PLUGIN)
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1=?", "solution": str(i + 1)}) + "\n" for i in range(50)))
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "golden"}], data={"train": str(data), "eval": str(data)},
                  plugin_files=["rewards.py", "opts.py"])
    for cmd in ("check", "train"):
        res = _invoke([cmd, str(cfg)])
        assert res.exit_code == 1, res.output
        _no_traceback(res)
        lines = [x for x in _error_lines(res) if str(data) in x]
        assert len(lines) == 4 and not any("more bad rows" in x for x in lines), res.output  # 2 columns x 2 keys
        for key in ("data.train", "data.eval"):
            assert f"{key}: {data}: no row has a 'prompt' column (set data.prompt_column); " \
                   f"the file's columns: question, solution" in res.output
            assert f"{key}: {data}: no row has a 'answer' column (set reward 'golden' option answer_column); " \
                   f"the file's columns: question, solution" in res.output
    res = _invoke(["check", str(cfg), "data.prompt_column=question", "rewards.0.options.answer_column=solution"])
    assert res.exit_code == 0, res.output
    # a column some rows have keeps the file:line lines
    data.write_text(json.dumps({"prompt": "1+1=?", "answer": "2"}) + "\n" + json.dumps({"prompt": "2+2=?"}) + "\n")
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 1 and f"{data}:2: answer: missing (reward 'golden' needs it)" in res.output


def test_item7_eval_needs_no_training_data_and_sft_data_is_unread_at_zero_steps(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, sft={"steps": 0, "data": str(tmp_path / "nope.jsonl")})
    res = _invoke(["check", str(cfg)])
    assert res.exit_code == 0, res.output
    res = _invoke(["check", str(cfg), "sft.steps=1"])
    assert res.exit_code == 1 and "sft.data: " in res.output and "file not found" in res.output
    raw = yaml.safe_load(cfg.read_text())
    raw["data"] = {"eval": str(tiny_dir / "test.jsonl"), "chat_template": False}
    raw["eval"] = {"samples": 2, "k": [1, 2]}
    raw["rollout"]["max_new_tokens"] = 4
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = _invoke(["eval", str(cfg), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ev" / "eval.json").exists()
    for cmd in ("check", "train"):  # training still needs it, in one line
        res = _invoke([cmd, str(cfg)])
        assert res.exit_code == 1 and "data.train: required for training (set data.train)" in res.output, res.output
        _no_traceback(res)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_item8_score_output_honours_the_umask_and_stays_atomic(tmp_path, umask):
    (tmp_path / "rewards.py").write_text(PLUGIN)
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"completion": "4", "answer": "4"}) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    args = ["--plugin", str(tmp_path / "rewards.py"), "score", "--reward", "gold", "--input", str(inp),
            "--output", str(out)]
    old = os.umask(umask)
    try:
        res = _invoke(args)
        bad = _invoke(args[:-2] + ["--output", str(out), "--option", "gold.nope=1"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert bad.exit_code != 0 and json.loads(out.read_text())["rewards"]["gold"] == 1.0  # the failed run kept it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "rewards.py"]  # no temp left


COLUMN_PLUGIN = '''
from pydantic import Field
from grpo_plugins import Reward, RewardOptions, RewardResult, hookimpl


class Golden(Reward):
    name = "golden"

    class Options(RewardOptions):
        answer_column: str = Field("answer")

    def required_columns(self):
        return [self.options.answer_column]

    def score(self, samples):
        return [RewardResult(float(s.columns[self.options.answer_column] in s.text)) for s in samples]


class Tested(Reward):
    name = "tested"

    class Options(RewardOptions):
        tests_column: str = Field("tests")

    def required_columns(self):
        return [self.options.tests_column]

    def score(self, samples):
        return [RewardResult(float(s.columns[self.options.tests_column] in s.text)) for s in samples]


@hookimpl
def register_rewards(register):
    register(Golden)
    register(Tested)
'''


def _audit(tmp_path, *args):
    (tmp_path / "opts.py").write_text(COLUMN_PLUGIN)
    return _invoke(["--plugin", str(tmp_path / "opts.py"), "audit", "--cases", str(tmp_path / "cases.jsonl"), *args])


def test_item9_audit_checks_required_columns_and_gold_column_names_the_rewards_option(tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"completion": "4", "solution": "4", "expected": True}) + "\n"
                     + json.dumps({"completion": "5", "solution": "4", "expected": False}) + "\n")
    res = _audit(tmp_path, "--reward", "golden")
    assert res.exit_code == 1
    _no_traceback(res)
    assert _error_lines(res) == [f"Error: {cases}: no case has a 'answer' column (reward 'golden' reads it; set "
                                 f"--gold-column or --option golden.answer_column=COLUMN); the file's columns: "
                                 f"completion, expected, solution"]
    res = _audit(tmp_path, "--reward", "golden", "--gold-column", "solution")
    assert res.exit_code == 0 and "| golden | 2 | 1.000 |" in res.output, res.output
    # decided: an error naming the reward's own option, not a guess at which column option is the gold one
    res = _audit(tmp_path, "--reward", "tested", "--gold-column", "solution")
    assert res.exit_code == 1
    assert _error_lines(res) == ["Error: --gold-column sets answer_column, and reward 'tested' has no such option; "
                                 "set its own with --option tested.tests_column=solution"]
    res = _audit(tmp_path, "--reward", "tested", "--option", "tested.tests_column=solution")
    assert res.exit_code == 0 and "| tested | 2 | 1.000 |" in res.output, res.output
    # a column only some cases lack names the first line
    cases.write_text(json.dumps({"completion": "4", "answer": "4", "expected": True}) + "\n"
                     + json.dumps({"completion": "5", "expected": False}) + "\n")
    res = _audit(tmp_path, "--reward", "golden")
    assert res.exit_code == 1 and f"Error: {cases}:2: answer: missing (reward 'golden' needs it)" in res.output


def test_item10_score_says_scored_n_once_off_a_terminal(tmp_path):
    (tmp_path / "rewards.py").write_text(PLUGIN)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"completion": "4", "answer": "4"}) + "\n" for _ in range(3)))
    res = _invoke(["--plugin", str(tmp_path / "rewards.py"), "score", "--reward", "gold", "--input", str(inp),
                   "--output", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    assert [x for x in _error_lines(res) if x.startswith("scored")] == [f"scored 3 samples -> {tmp_path / 'out.jsonl'}"]


def test_item10_invalid_json_message_is_whole_at_score_and_check(tmp_path, tiny_dir):
    (tmp_path / "rewards.py").write_text(PLUGIN)
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"prompt": "1+1=?", "completion": "a\tb", "answer": "2"}\n')  # a raw tab inside a string
    whole = "invalid JSON at column 37: Invalid control character (a raw tab or newline inside a string: " \
            "write it as \\t or \\n)"
    res = _invoke(["--plugin", str(tmp_path / "rewards.py"), "score", "--reward", "gold", "--input", str(bad),
                   "--output", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 1 and _error_lines(res) == [f"Error: {bad}:1: {whole}"], res.output
    res = _invoke(["check", str(_config(tmp_path, tiny_dir, data={"train": str(bad)}))])
    assert res.exit_code == 1 and f"{bad}:1: {whole}" in res.output and " at\n" not in res.output, res.output


def test_item10_train_names_the_row_as_file_line(tmp_path):
    from grpo_plugins.grpo.data import row_location

    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a"}\n\n   \n{"prompt": "b"}\n')
    assert [row_location(str(data), i) for i in (0, 1)] == [f"{data}:1", f"{data}:4"]
    assert row_location("org/hub-data", 3) == "org/hub-data row 3 (0-based)"


def test_item4_a_plugins_allowlist_typo_is_a_check_problem_on_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("GRPO_PLUGINS_LOAD", raising=False)
    cfg = tmp_path / "rewards.yaml"
    cfg.write_text("plugins:\n  - format\n  - maht\nrewards:\n  - name: format\n")
    m = PluginManager()  # entry points load: the allowlist is about installed plugins
    res = CliRunner().invoke(build_cli(m), ["check", str(cfg)], obj={"manager": m})
    assert res.exit_code == 1, res.output
    _no_traceback(res)
    [line] = [x for x in _error_lines(res) if "maht" in x]  # a problem, not also a warning
    assert line.startswith(f"{cfg}:3: plugins[1]: 'maht' is on the plugins: allowlist but no installed "
                           "distribution declares it in entry-point group 'grpo_plugins'; did you mean 'math'? ")
    cfg.write_text("plugins: [format]\nrewards:\n  - name: format\n")
    res = CliRunner().invoke(build_cli(m), ["check", str(cfg)], obj={"manager": m})
    assert res.exit_code == 0 and res.output.strip() == f"{cfg}: ok", res.output


def test_item10_verl_extra_keys_of_rewards_that_do_not_apply_leave_the_means_alone(tmp_path, monkeypatch):
    import numpy as np

    from grpo_plugins import verl

    monkeypatch.delenv(verl.CONFIG_ENV, raising=False)
    cfg = tmp_path / "verl.yaml"
    cfg.write_text(yaml.safe_dump({"plugins": ["math", "format"], "rewards": [{"name": "math", "options": {"workers": 1}}],
                                   "data_sources": {"fmt": [{"name": "format", "label": "fmt_only"}]}}))
    rows = verl.compute_score(data_sources=["gsm", "gsm", "fmt"], solution_strs=["\\boxed{4}", "\\boxed{5}", "x"],
                              ground_truths=["4", "4", "1"], extra_infos=None, config=str(cfg))
    assert [r["score"] for r in rows] == [1.0, 0.0, 0.0]  # veRL's reward tensor needs a number: none_score
    # veRL's validation means: np.mean of each key per data_source (verl/trainer/ppo/metric_utils.py)
    means = {(ds, k): float(np.mean([r[k] for r, d in zip(rows, ["gsm", "gsm", "fmt"]) if d == ds]))
             for ds in ("gsm", "fmt") for k in ("math", "fmt_only")}
    assert means[("gsm", "math")] == 0.5 and means[("fmt", "fmt_only")] == 0.0
    assert math.isnan(means[("gsm", "fmt_only")]) and math.isnan(means[("fmt", "math")])  # undefined, not 0.0


def test_item10_a_dataset_smaller_than_a_step_warns_once(tmp_path, tiny_dir):
    rows = [json.loads(x) for x in (tiny_dir / "train.jsonl").read_text().splitlines()][:3]
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "digit_steps"}], data={"train": str(small)},
                  train={"steps": 2, "prompts_per_step": 8}, rollout={"num_generations": 2, "max_new_tokens": 4})
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 0, res.output
    assert [x for x in res.output.splitlines() if "prompts_per_step" in x] == [
        "warning: data.train has 3 row(s), fewer than train.prompts_per_step (8): every step draws some prompts "
        "more than once; add rows or lower train.prompts_per_step"]
    res = _invoke(["train", str(cfg), "train.prompts_per_step=3", f"log.run_dir={tmp_path / 'run3'}"])
    assert res.exit_code == 0 and "prompts_per_step" not in res.output, res.output


def test_item10_library_progress_bars_stay_out_of_a_log_file(tmp_path, tiny_dir, monkeypatch):
    import datasets
    from transformers.utils import logging as hf_logging

    for var in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(var, "")  # recorded, so teardown restores the variable's absence
        monkeypatch.delenv(var)
    _enable_library_bars()
    try:
        data = tmp_path / "fresh.jsonl"  # a new file: datasets generates its split (a bar) on first load
        data.write_text((tiny_dir / "train.jsonl").read_text())
        cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "digit_steps"}], data={"train": str(data)},
                      train={"steps": 1}, rollout={"num_generations": 2, "max_new_tokens": 4})
        res = _invoke(["train", str(cfg)])  # CliRunner's stderr is not a terminal, as a log file is not
        assert res.exit_code == 0, res.output
        for bar in ("Generating train split", "Loading weights", "Writing model shards", "it/s]"):
            assert bar not in res.output, res.output
        assert not datasets.is_progress_bar_enabled() and not hf_logging.is_progress_bar_enabled()
        assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"  # for worker processes and later imports
    finally:
        _enable_library_bars()


def _enable_library_bars() -> None:
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    with warnings.catch_warnings():  # datasets warns when an earlier CLI call's variable outranks it
        warnings.simplefilter("ignore")
        datasets.enable_progress_bars()
    hf_logging.enable_progress_bar()


def test_item10_audit_off_a_terminal_prints_a_periodic_line_not_one_per_check(tmp_path, capsys):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"completion": str(i), "answer": str(i % 2), "expected": i % 2 == 1}) + "\n"
                             for i in range(12)))
    res = _audit(tmp_path, "--reward", "golden")
    assert res.exit_code == 0, res.output
    assert [x for x in res.output.splitlines() if x.startswith("audit:")] == ["audit: 12/12 checks"]
    # a slow audit: one line each time every_s has passed, and the last
    from grpo_plugins.audit import progress_bar

    ticks = iter(range(0, 100, 4))  # 4 seconds a check
    update, close = progress_bar(6, every_s=10.0, clock=lambda: next(ticks))
    for _ in range(6):
        update(1)
    close()
    assert capsys.readouterr().err.splitlines() == ["audit: 3/6 checks", "audit: 6/6 checks"]


def test_item10_a_run_that_failed_at_step_1_is_rerun_afresh_with_changed_settings(tmp_path, tiny_dir):
    # decided: the run dir a step-1 failure leaves (config.yaml, empty logs, no checkpoint) is not deleted
    # (it may be a folder the user made); the rerun must not trip on it: no resume, no settings diff
    cfg = _config(tmp_path, tiny_dir, rewards=[{"name": "picky"}], train={"steps": 1})
    run = tmp_path / "run"
    res = _invoke(["train", str(cfg)])
    assert res.exit_code == 1 and "reward 'picky'" in res.output
    assert not (run / "latest").exists() and not list(run.glob("checkpoint-*"))
    res = _invoke(["train", str(cfg), "rewards.0.name=digit_steps", "train.learning_rate=0.01"])
    assert res.exit_code == 0, res.output
    assert "settings differ" not in res.output and "resum" not in res.output.lower()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["rewards"][0]["name"] == "digit_steps" and resolved["train"]["learning_rate"] == 0.01
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert {json.loads(x)["step"] for x in (run / "samples.jsonl").read_text().splitlines()} <= {1}
    assert (run / "final" / "model.safetensors").exists()
