"""`grpo-plugins eval` end to end on the tiny model (two model folders on one plot, a third-party
voting reward, a step reward for PRM voting, the real math reward's statuses), and the trainer's
periodic evaluation computing the same metrics without touching the training RNG."""

import itertools
import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from grpo_plugins import Reward, RewardResult
from grpo_plugins.cli import build_cli
from grpo_plugins.manager import PluginManager
from helpers_runs import ChunkSteps, plugin_source, tiny_run_config


class FirstChar(Reward):
    """Correct when the completion starts with a digit; votes by the first character's kind."""

    name = "first_char"

    def score(self, samples):
        return [RewardResult(float(s.text[:1].isdigit()), info={"status": "digit" if s.text[:1].isdigit() else "other",
                                                                "first": s.text[:1]}) for s in samples]

    def answer_key(self, sample, result):
        return result.info["first"] or None

    def same_answer(self, a, b):
        return a.isdigit() == b.isdigit() and a.isalpha() == b.isalpha()


def _config(tmp_path, tiny_dir, **extra):
    # ChunkSteps: every 4 characters are a step, scored by their share of digits (the step reward for PRM voting)
    (tmp_path / "votes.py").write_text(plugin_source(FirstChar, ChunkSteps))
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", [
        "first_char", {"name": "math", "weight": 0.0}, {"name": "chunk_steps", "weight": 0.0}], {
        "data": {"eval": str(tiny_dir / "test.jsonl")}, "train": {"seed": 0},
        "log": {"progress": False, "tensorboard": False}, "checkpoint": {"every": 0}, "eval": {"reward": "first_char"}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"plugin_files": ["votes.py"], **cfg, **extra}))
    return path


def _brute_pass(n, c, k):
    return float(np.mean([max(s) for s in itertools.combinations([1] * c + [0] * (n - c), k)]))


def test_eval_two_models_writes_json_png_and_table(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    after = tmp_path / "after"
    shutil.copytree(tiny_dir / "model", after)
    res = CliRunner().invoke(build_cli(PluginManager(load_entrypoints=False)),
                             ["eval", str(cfg), "--model", str(tiny_dir / "model"), "--model", str(after),
                              "--samples", "6", "--k", "1,2,4,6", "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert (tmp_path / "ev" / "passk.png").read_bytes()[:4] == b"\x89PNG"
    assert [m["model"] for m in report["models"]] == [str(tiny_dir / "model"), str(after)]
    assert report["k"] == [1, 2, 4, 6] and report["samples"] == 6
    for m in report["models"]:
        assert m["prompts"] == 8 and m["vote_reward"] == "first_char" and m["step_reward"] == "chunk_steps"
        counts = m["correct_per_prompt"]
        for k in (1, 2, 4, 6):  # the plumbing keeps the estimator exact
            assert m[f"pass@{k}"]["mean"] == pytest.approx(np.mean([_brute_pass(6, c, k) for c in counts]), abs=1e-12)
            assert m[f"pass@{k}"]["lo"] <= m[f"pass@{k}"]["mean"] <= m[f"pass@{k}"]["hi"]
            for name in (f"maj@{k}", f"prm_maj@{k}/min", f"prm_maj@{k}/product", f"best_of@{k}/last"):
                assert 0.0 <= m[name]["mean"] <= 1.0, name
        assert m["maj@1"]["mean"] == pytest.approx(m["pass@1"]["mean"], abs=1e-12)
        assert [m[f"pass@{k}"]["mean"] for k in (1, 2, 4, 6)] == sorted(m[f"pass@{k}"]["mean"] for k in (1, 2, 4, 6))
        # the real math reward on random-weight output: every status share reported, summing to 1
        shares = m["rewards"]["math"]["status"]
        assert set(shares) <= {"correct", "incorrect", "no_answer", "unparseable", "timeout"}
        assert sum(shares.values()) == pytest.approx(1.0)
        assert sum(m["rewards"]["first_char"]["status"].values()) == pytest.approx(1.0)
        assert 0.0 <= m["greedy"]["mean"] <= 1.0
    # the same weights with the same seed give the same numbers: sampling is seeded per model
    one, two = report["models"]
    assert one["correct_per_prompt"] == two["correct_per_prompt"] and one["maj@4"] == two["maj@4"]
    diff = report["differences"][0]
    assert diff["model"] == str(after) and diff["minus"] == str(tiny_dir / "model")
    assert diff["pass@4"] == diff["maj@6"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    assert "pass@k" in res.output and "maj@k" in res.output and "PRM-weighted" in res.output
    assert str(after) in res.output


def test_eval_rejects_k_above_samples_and_bad_k(tmp_path, tiny_dir):
    cfg = _config(tmp_path, tiny_dir)
    cli = build_cli(PluginManager(load_entrypoints=False))
    res = CliRunner().invoke(cli, ["eval", str(cfg), "--samples", "4", "--k", "1,8"])
    assert res.exit_code == 1 and "--k: 8 needs --samples >= 8" in res.output
    res = CliRunner().invoke(cli, ["eval", str(cfg), "--k", "1,x"])
    assert res.exit_code == 2 and "comma-separated" in res.output
    bad = _config(tmp_path, tiny_dir, eval={"samples": 4, "k": [1, 8]})
    res = CliRunner().invoke(cli, ["eval", str(bad)])
    assert res.exit_code == 1 and "eval.k" in res.output and "eval.samples >= 8" in res.output


def test_periodic_eval_logs_pass_and_maj_without_changing_training(tmp_path, tiny_dir):
    cli = build_cli(PluginManager(load_entrypoints=False))
    runs = {}
    for name, ev in (("plain", {"every": 1, "reward": "first_char"}),
                     ("sampled", {"every": 1, "reward": "first_char", "samples": 4, "k": [1, 4]})):
        d = tmp_path / name
        d.mkdir()
        cfg = _config(d, tiny_dir, eval=ev)
        res = CliRunner().invoke(cli, ["train", str(cfg)])
        assert res.exit_code == 0, res.output
        runs[name] = d / "run"
    curve = json.loads((runs["sampled"] / "eval.json").read_text())["curve"]
    assert [c["step"] for c in curve] == [1, 2]
    for key in ("eval/pass@1", "eval/pass@4", "eval/maj@4", "eval/prm_maj@4/min", "eval/best_of@4/min",
                "eval/rewards/math/mean", "eval/accuracy"):
        assert key in curve[0], key
    assert curve[0]["eval/maj@1"] == pytest.approx(curve[0]["eval/pass@1"])
    # sampling during evaluation draws from its own RNG: training sees the same numbers either way
    plain = [json.loads(x) for x in (runs["plain"] / "metrics.jsonl").read_text().splitlines()]
    sampled = [json.loads(x) for x in (runs["sampled"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in plain] == [r["reward"] for r in sampled]
    assert [r["loss"] for r in plain] == [r["loss"] for r in sampled]
