"""``grpo-plugins audit``: a reward measured on labelled cases, against a second reward, JSON or text."""

from __future__ import annotations

import json
import os

import pytest

import grpo_math_verify.reward as mv_reward
from grpo_plugins import PluginManager, Reward
from grpo_plugins.audit import accepted, load_cases
from grpo_plugins.io import InputError
from grpo_plugins.rewards import RewardResult
from helpers_runs import Explode, plugin_source, run_cli

# (completion, answer, expected, category): the verdicts of `math` on these are known
CASES = [
    ("so \\boxed{4}", "4", True, "box"),              # correct, accepted
    ("so \\boxed{5}", "4", False, "box"),             # wrong, rejected
    ("I think 2+2 makes 4", "4", True, "bare"),       # correct, accepted (last number)
    ("it is 4 or maybe 5", "4", True, "bare"),        # correct but the last number is 5: a false negative
    ("the value is 8/2", "9/2", False, "bare"),       # wrong, rejected
    ("we get $x = 3$, after 4 steps", "4", False, "bare"),  # wrong, but the last number is 4: a false positive
]

class Steps(Reward):
    name = "steps"
    granularity = "step"

    def score(self, samples):
        return [RewardResult(None, steps=[(0, 1, 1.0)]) for _ in samples]


PLUGIN = plugin_source(Explode, Steps)


@pytest.fixture
def cases_file(tmp_path):
    p = tmp_path / "labelled.jsonl"
    p.write_text("".join(json.dumps({"id": i, "completion": c, "answer": a, "expected": y, "category": cat}) + "\n"
                         for i, (c, a, y, cat) in enumerate(CASES)))
    return p


def test_audit_counts_accuracy_false_positives_and_negatives(cases_file):
    out = run_cli("audit", "--reward", "math", "--cases", str(cases_file), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    s = report["rewards"]["math"]
    assert (s["cases"], s["false_positives"], s["false_negatives"], s["errors"]) == (6, 1, 1, 0)
    assert s["accuracy"] == round(4 / 6, 4) and s["mean_ms"] > 0
    assert report["by_category"]["box"]["math"]["accuracy"] == 1.0
    assert report["by_category"]["bare"]["math"]["false_positives"] == 1
    wrong = {d["id"] for d in report["disagreements"]}
    assert wrong == {3, 5}
    assert {d["line"] for d in report["disagreements"]} == {4, 6}


def test_audit_against_math_verify_lists_where_they_differ(cases_file):
    out = run_cli("audit", "--reward", "math", "--against", "math_verify", "--cases", str(cases_file), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["rewards"]) == {"math", "math_verify"}
    assert report["rewards"]["math_verify"]["cases"] == 6
    # every listed case is one where a reward is wrong or the two disagree
    for d in report["disagreements"]:
        verdicts = {d["math"]["accepted"], d["math_verify"]["accepted"]}
        assert len(verdicts) == 2 or verdicts != {d["expected"]}
    assert {3, 5} <= {d["id"] for d in report["disagreements"]}


def test_audit_text_report_has_both_tables_and_the_disagreements(cases_file):
    out = run_cli("audit", "--reward", "math", "--cases", str(cases_file), "--option", "math.extraction=marked")
    assert out.returncode == 0, out.stderr
    assert "| math | 6 |" in out.stdout and "by category:" in out.stdout and "| bare | math |" in out.stdout
    # marked extraction refuses the three bare answers: the two correct ones become false negatives
    assert "| math | 6 | 0.667 | 0 | 2 |" in out.stdout
    assert "disagreements (2):" in out.stdout


def test_gold_column_option_points_every_reward_at_it(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"completion": "\\boxed{7}", "gold": "7", "expected": True}) + "\n")
    out = run_cli("audit", "--reward", "math", "--against", "math_verify", "--cases", str(p), "--gold-column", "gold",
                  "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rewards"]["math"]["accuracy"] == 1.0 and report["rewards"]["math_verify"]["accuracy"] == 1.0


@pytest.mark.parametrize("line, message", [
    ({"completion": "x", "answer": "1", "expected": "yes"}, "c.jsonl:2: field 'expected' must be true/false"),
    ({"completion": "x", "answer": "1"}, "c.jsonl:2: missing field 'expected'"),
])
def test_bad_labels_name_file_line_and_field(tmp_path, line, message):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"completion": "x", "answer": "1", "expected": 1}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        load_cases(str(p))
    out = run_cli("audit", "--reward", "math", "--cases", str(p))
    assert out.returncode == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_a_reward_that_raises_or_scores_steps_is_a_named_error(tmp_path, cases_file):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(PLUGIN)
    out = run_cli("--plugin", str(plugin), "audit", "--reward", "explode", "--cases", str(cases_file))
    assert out.returncode == 1 and "explode" in out.stderr and "kaboom" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("--plugin", str(plugin), "audit", "--reward", "steps", "--cases", str(cases_file))
    assert out.returncode == 1 and "outcome reward" in out.stderr
    out = run_cli("audit", "--reward", "nope", "--cases", str(cases_file))
    assert out.returncode == 1 and "unknown reward 'nope'" in out.stderr and "math_verify" in out.stderr


def test_verdict_of_a_reward_without_statuses_is_its_value():
    assert accepted(RewardResult(1.0)) and not accepted(RewardResult(0.0)) and not accepted(RewardResult(None))
    assert not accepted(RewardResult(float("nan")))
    assert not accepted(RewardResult(1.0, info={"status": "incorrect"}))


def test_math_verify_reward_reports_statuses_and_never_raises():
    r = mv_reward.MathVerifyReward()
    from grpo_plugins import Sample

    res = r.score([Sample("q", "\\boxed{\\frac{1}{2}}", columns={"answer": "0.5"}),
                   Sample("q", "\\boxed{3}", columns={"answer": "4"}),
                   Sample("q", "no numbers here", columns={"answer": "4"}),
                   Sample("q", "\\boxed{" * 2000, columns={"answer": "4"})])
    assert [x.info["status"] for x in res][:3] == ["correct", "incorrect", "no_answer"]
    assert res[3].info["status"] in ("incorrect", "no_answer", "error")
    assert [x.value for x in res][:3] == [1.0, 0.0, 0.0]


def test_missing_math_verify_library_is_a_one_line_fix(monkeypatch):
    monkeypatch.setattr(mv_reward, "available", lambda: False)
    import grpo_math_verify

    monkeypatch.setattr(grpo_math_verify, "available", lambda: False)
    manager = PluginManager()
    info = {p["name"]: p for p in manager.plugins_info()}
    assert info["math_verify"]["errors"] == []
    assert info["math_verify"]["library"] == "missing: " + mv_reward.INSTALL_HINT
    with pytest.raises(ValueError, match=r"^math-verify is not installed; run: pip install 'grpo-plugins\[math_verify\]'$"):
        mv_reward.MathVerifyReward()


def test_missing_math_verify_through_the_cli_prints_the_fix(tmp_path, cases_file):
    # a sitecustomize that hides the library from this one subprocess
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'math_verify' or name.startswith('math_verify.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = run_cli("plugins", env=env)
    assert out.returncode == 0, out.stderr
    entry = next(p for p in json.loads(out.stdout) if p["name"] == "math_verify")
    assert entry["library"].startswith("missing: math-verify is not installed") and entry["errors"] == []
    out = run_cli("audit", "--reward", "math", "--against", "math_verify", "--cases", str(cases_file), env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "pip install 'grpo-plugins[math_verify]'" in out.stderr
