"""`grpo-plugins train` and `plot` from the command line, and `check` with the trainer's config model."""

import json

import yaml
from click.testing import CliRunner

from grpo_plugins.cli import build_cli
from grpo_plugins.manager import PluginManager
from helpers_runs import DigitShare, plugin_source, tiny_run_config


def _config(tmp_path, tiny_dir, **extra):
    (tmp_path / "digits.py").write_text(plugin_source(DigitShare))
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", ["digit_share", {"name": "format", "weight": 0.5}], {
        "train": {"steps": 3}, "log": {"progress": False}, "checkpoint": {"every": 2}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"plugins": ["format"], "plugin_files": ["digits.py"], **cfg, **extra}))
    return path


def _cli():
    return build_cli(PluginManager(load_entrypoints=False))


def test_train_with_overrides_then_plot(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    runner = CliRunner()
    res = runner.invoke(_cli(), ["train", str(cfg), "train.steps=2", "rollout.temperature=0.9"],
                        obj={"manager": PluginManager(load_entrypoints=False)})
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # the override won over train.steps: 3
    for key in ("reward", "reward_std", "rewards/digit_share/mean", "rewards/format/std", "kl", "entropy",
                "completions/mean_length", "clip_ratio/region_mean", "frac_reward_zero_std", "step_time"):
        assert key in rows[0], key
    assert list((tmp_path / "run" / "tb").iterdir())  # TensorBoard events
    assert (tmp_path / "run" / "latest").read_text().strip() == "checkpoint-2"
    res = runner.invoke(_cli(), ["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_train_reports_config_errors_with_lines(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir, train={"steps": 1, "loss_typ": "dapo"})
    res = CliRunner().invoke(_cli(), ["train", str(cfg)])
    assert res.exit_code == 1
    assert "train.loss_typ" in res.output and "unknown key" in res.output


def test_check_accepts_trainer_sections_and_rejects_typos(tmp_path, tiny_dir):
    good = _config(tmp_path, tiny_dir)
    res = CliRunner().invoke(_cli(), ["check", str(good)])
    assert res.exit_code == 0, res.output
    bad = _config(tmp_path, tiny_dir, rollout={"num_generation": 4})
    res = CliRunner().invoke(_cli(), ["check", str(bad)])
    assert res.exit_code == 1 and "rollout.num_generation" in res.output
