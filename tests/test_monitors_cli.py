"""``grpo-plugins monitor RUN_DIR`` (verdict table, PNG, exit status), monitors in ``grpo-plugins
plugins``, and the alerts section of the eval report."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from grpo_plugins import PluginManager
from grpo_plugins.cli import build_cli
from grpo_plugins.grpo.eval_report import MAX_ALERT_LINES, format_table, run_alerts
from grpo_plugins.io import dumps


def cli_run(*args):
    manager = PluginManager(load_entrypoints=True, allow=["monitors"])
    return CliRunner().invoke(build_cli(manager), list(args), obj={"manager": manager}, catch_exceptions=False)


def write_run(path, n=40, no_answer=lambda i: 0.05, monitors=None, samples_per_step=8):
    """A run dir: metrics.jsonl (flat rewards) and samples.jsonl with math statuses, optionally a config."""
    path.mkdir()
    rng = random.Random(0)
    metrics, samples = [], []
    for i in range(n):
        step = i + 1
        metrics.append({"step": step, "reward": 0.5 + rng.uniform(-0.02, 0.02), "rewards/math/mean": 0.5,
                        "completions/mean_length": 20.0 + rng.uniform(-1, 1)})
        bad = round(no_answer(i) * samples_per_step)
        for j in range(samples_per_step):
            status = "no_answer" if j < bad else "correct"
            samples.append({"step": step, "completion": "x", "rewards": {"math": float(status == "correct")},
                            "status": {"math": status}})
    (path / "metrics.jsonl").write_text("".join(dumps(r) + "\n" for r in metrics))
    (path / "samples.jsonl").write_text("".join(dumps(r) + "\n" for r in samples))
    if monitors is not None:
        (path / "config.yaml").write_text(json.dumps({"monitors": monitors}))  # JSON is YAML
    return path


def test_a_silent_run_exits_0_with_a_row_per_monitor(tmp_path):
    run = write_run(tmp_path / "run")
    res = cli_run("monitor", str(run))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["monitor", "fired", "first", "step", "value", "message"]
    names = {ln.split()[0] for ln in lines[1:-1]}
    assert names == {"divergence", "dominance", "length_drift", "disagreement", "inconsistency", "format_collapse"}
    assert "0 of 6 monitors fired over 40 steps" in lines[-1]
    assert not (run / "monitors.png").exists()


def test_a_collapsing_format_fires_from_samples_exits_1_and_plots(tmp_path):
    run = write_run(tmp_path / "run", no_answer=lambda i: 0.0 if i < 10 else min(1.0, (i - 10) / 20))
    res = cli_run("monitor", str(run), "--monitor", "format_collapse", "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.output)
    [v] = out["verdicts"]
    assert v["monitor"] == "format_collapse" and v["fired"] and 10 < v["first_step"] <= 30 and v["value"] >= 0.15
    assert (run / "monitors.png").stat().st_size > 1000 and out["png"] == str(run / "monitors.png")


def test_the_runs_own_monitors_are_used_and_bad_entries_are_one_line(tmp_path):
    run = write_run(tmp_path / "run", monitors=[{"name": "length_drift", "label": "len"}])
    res = cli_run("monitor", str(run))
    assert res.exit_code == 0 and res.output.splitlines()[1].split() == ["len", "no"]
    bad = write_run(tmp_path / "bad", monitors=[{"name": "lenght_drift"}])
    res = CliRunner().invoke(build_cli(PluginManager(load_entrypoints=True, allow=["monitors"])), ["monitor", str(bad)])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "monitors[0].name: unknown monitor 'lenght_drift'; did you mean 'length_drift'?" in res.output


def test_a_dir_without_metrics_is_one_line(tmp_path):
    res = CliRunner().invoke(build_cli(PluginManager(load_entrypoints=False)), ["monitor", str(tmp_path)])
    assert res.exit_code == 1 and "metrics.jsonl: no metrics rows" in res.output


def test_plugins_lists_each_plugins_monitors():
    res = cli_run("plugins")
    info = {r["name"]: r for r in json.loads(res.output)}
    assert info["monitors"]["monitors"] == ["disagreement", "divergence", "dominance", "format_collapse",
                                            "inconsistency", "length_drift"]


def report(alerts):
    model = {"model": "final", "greedy": {"mean": 0.9, "lo": 0.85, "hi": 0.95}, "rewards": {}, "seconds": 1.0,
             "pass@1": {"mean": 0.9, "lo": 0.85, "hi": 0.95}}
    return {"k": [1], "models": [model], "differences": [], "alerts": alerts}


def test_the_eval_report_lists_the_runs_alerts(tmp_path):
    assert "monitor alerts" not in format_table(report([]))
    assert run_alerts(tmp_path) == []
    rows = [{"monitor": "divergence", "message": "rose", "severity": "warning", "value": 0.1, "step": s,
             "action": "stop" if s == 3 else "warn"} for s in range(1, MAX_ALERT_LINES + 4)]
    (tmp_path / "alerts.jsonl").write_text("".join(dumps(r) + "\n" for r in rows))
    text = format_table(report(run_alerts(tmp_path))).splitlines()
    start = text.index(f"monitor alerts during training (RUN_DIR/alerts.jsonl): {len(rows)} from divergence")
    assert text[start + 1] == "  step 1 [warning] divergence: rose"
    assert text[start + 3] == "  step 3 [warning] divergence: rose (action: stop)"
    assert text[-1] == "  ... and 3 more" and len(text) == start + 1 + MAX_ALERT_LINES + 1
