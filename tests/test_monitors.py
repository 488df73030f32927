"""Monitors: the register_monitors hook, the host (alerts.jsonl, actions, error boundary, config
problems as one line), the built-in divergence and dominance monitors on synthetic metric series
(each must fire on one and stay silent on another) and on the recorded trainer demo, and a tiny
training run that a monitor checkpoints and stops."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins import PluginManager, SettingError, hookimpl
from grpo_plugins.cli import build_cli
from grpo_plugins.monitors import Monitor, MonitorHost, MonitorOptions, strongest_action
from grpo_monitors.divergence import trend
from helpers_runs import DigitShare, plugin_source, tiny_run_config

DATA = Path(__file__).parent / "data" / "monitors"


class Tripwire(Monitor):
    """Alerts at every step from ``at_step`` on (a stand-in for a monitor that found something)."""

    name = "tripwire"

    class Options(MonitorOptions):
        at_step: int = 1

    def observe(self, batch):
        if batch.step >= self.options.at_step:
            return [self.alert(f"tripped at step {batch.step}", value=float(batch.step), severity="critical")]
        return []


class Broken(Monitor):
    name = "broken"

    def observe(self, batch):
        raise ZeroDivisionError("oops")


class Plugin:
    @hookimpl
    def register_monitors(self, register):
        register(Tripwire)
        register(Broken)


def manager(builtins: bool = False) -> PluginManager:
    m = PluginManager(load_entrypoints=builtins, allow=["monitors"] if builtins else None)
    m.register(Plugin(), name="tests")
    return m


# --- the hook and the host ------------------------------------------------------------------


def test_hook_register_monitors():
    host = MonitorHost([{"name": "tripwire", "options": {"at_step": 2}, "action": "checkpoint"}], manager())
    assert host.observe(1, {"reward": 0.5}) == []
    alerts = host.observe(2, {"reward": 0.6})
    assert [(a.monitor, a.step, a.action, a.severity, a.value) for a in alerts] == [
        ("tripwire", 2, "checkpoint", "critical", 2.0)]
    assert [r["step"] for r in host.history] == [1, 2]  # every step's metrics, for trend monitors
    assert "tripped at step 2" in alerts[0].line() and alerts[0].line().startswith("alert step 2 [critical] tripwire")


def test_builtins_register_through_the_entry_point_group():
    from grpo_plugins.monitors import monitor_registry

    reg = monitor_registry(manager(builtins=True))
    assert {k: v.plugin for k, v in reg.monitors.items() if v.plugin == "monitors"} == {
        name: "monitors" for name in ("divergence", "dominance", "length_drift", "disagreement", "inconsistency",
                                      "format_collapse")}


def test_alerts_jsonl_is_written_and_cut_back_on_resume(tmp_path):
    host = MonitorHost([{"name": "tripwire"}, {"name": "tripwire", "label": "late", "options": {"at_step": 3}}], manager())
    host.start(tmp_path, 0)
    for step in (1, 2, 3):
        host.observe(step, {"reward": 0.0})
    rows = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(r["step"], r["monitor"]) for r in rows] == [(1, "tripwire"), (2, "tripwire"), (3, "tripwire"), (3, "late")]
    assert set(rows[0]) == {"monitor", "severity", "message", "value", "step", "action"}
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward": s / 10}) + "\n" for s in (1, 2, 3)))
    resumed = MonitorHost([{"name": "tripwire"}], manager())
    resumed.start(tmp_path, 2)  # a resume from checkpoint-2 drops what steps after it wrote
    assert [r["step"] for r in resumed.history] == [1, 2]
    assert [json.loads(x)["step"] for x in (tmp_path / "alerts.jsonl").read_text().splitlines()] == [1, 2]


def test_a_failing_monitor_is_an_error_alert_that_only_warns():
    host = MonitorHost([{"name": "broken", "action": "stop"}, {"name": "tripwire", "action": "stop"}], manager())
    alerts = host.observe(1, {})
    assert [(a.monitor, a.severity, a.action) for a in alerts] == [("broken", "error", "warn"),
                                                                   ("tripwire", "critical", "stop")]
    assert alerts[0].message == "monitor failed: ZeroDivisionError: oops"
    assert strongest_action(alerts) == "stop" and strongest_action(alerts[:1]) == "warn" and strongest_action([]) == "warn"


def test_a_monitor_returning_no_alert_objects_is_named():
    class Sloppy(Monitor):
        name = "sloppy"

        def observe(self, batch):
            return ["something is off"]

    m = PluginManager(load_entrypoints=False)

    class P:
        @hookimpl
        def register_monitors(self, register):
            register(Sloppy)

    m.register(P())
    (alert,) = MonitorHost([{"name": "sloppy"}], m).observe(4, {})
    assert alert.severity == "error" and "returned str, expected Alert" in alert.message


@pytest.mark.parametrize("entry, key, words", [
    ({"name": "tripwyre"}, "monitors[0].name", "unknown monitor 'tripwyre'; did you mean 'tripwire'?"),
    ({"name": "tripwire", "options": {"at_stp": 2}}, "monitors[0].options.at_stp", "unknown option; valid options: at_step"),
    ({"name": "tripwire", "options": {"at_step": "soon"}}, "monitors[0].options.at_step", "valid integer"),
])
def test_bad_monitor_config_is_one_line_naming_the_key(entry, key, words):
    with pytest.raises(SettingError) as err:
        MonitorHost([entry], manager())
    assert str(err.value).startswith(f"{key}: ") and words in str(err.value) and "\n" not in str(err.value)


def test_a_repeated_label_and_a_name_two_plugins_register_are_named():
    with pytest.raises(SettingError, match=r"^monitors\[1\]\.label: label 'tripwire' repeats monitors\[0\]; set label:"):
        MonitorHost([{"name": "tripwire"}, {"name": "tripwire", "options": {"at_step": 3}}], manager())
    m = manager()
    m.register(Plugin(), name="copycat")
    with pytest.raises(SettingError, match="monitor name 'tripwire' is registered by several plugins: tests, copycat"):
        MonitorHost([{"name": "tripwire"}], m)


def test_no_monitor_plugin_loaded_says_where_to_look():
    with pytest.raises(SettingError, match=r"available monitors: \(none: no monitor plugin is loaded; check plugins:"):
        MonitorHost([{"name": "divergence"}], PluginManager(load_entrypoints=False))


def test_bad_action_is_rejected_by_the_config_model():
    from grpo_plugins.grpo.config import TrainConfig

    with pytest.raises(Exception, match="monitors.0.action"):
        TrainConfig.model_validate({"monitors": [{"name": "tripwire", "action": "panic"}]})


# --- divergence -----------------------------------------------------------------------------


def rows_from(**series) -> list[dict]:
    """Metrics rows from named series: ``math=[...]`` is rewards/math/mean, ``steps_=[...]`` a step reward."""
    n = len(next(iter(series.values())))
    out = []
    for i in range(n):
        row = {"step": i + 1}
        for name, values in series.items():
            if name.endswith("_"):
                row[f"rewards/{name[:-1]}/mean"] = values[i]
                row[f"rewards/{name[:-1]}/step_mean"] = values[i]
            else:
                row[f"rewards/{name}/mean"] = values[i]
        row["reward"] = sum(v[i] for v in series.values())
        out.append(row)
    return out


def noisy(start, end, n=40, noise=0.03, seed=0):
    rng = random.Random(seed)
    return [start + (end - start) * i / (n - 1) + rng.uniform(-noise, noise) for i in range(n)]


def replay(rows, *configs, m=None):
    return MonitorHost(list(configs), m or manager(builtins=True)).replay(rows)


def test_divergence_fires_once_when_the_step_reward_rises_as_accuracy_falls():
    # the negative control's shape: step reward 0.44 -> 0.62 while the outcome falls 0.42 -> 0.18
    rows = rows_from(math=noisy(0.42, 0.18), checked_=noisy(0.44, 0.62, seed=1))
    alerts = replay(rows, {"name": "divergence"})
    assert len(alerts) == 1, [a.line() for a in alerts]  # once per episode, not every step after
    a = alerts[0]
    assert a.monitor == "divergence" and 20 <= a.step <= 30 and a.value < -0.05
    assert "rewards/checked/step_mean rose" in a.message and "rewards/math/mean fell" in a.message
    assert "'checked'" in a.message


@pytest.mark.parametrize("case", ["both_rise", "outcome_falls_alone", "one_noisy_step", "too_short"])
def test_divergence_stays_silent_without_a_sustained_opposite_trend(case):
    series = {
        "both_rise": dict(math=noisy(0.3, 0.6), checked_=noisy(0.4, 0.7, seed=1)),
        "outcome_falls_alone": dict(math=noisy(0.6, 0.3), checked_=noisy(0.5, 0.5, seed=1)),
        "one_noisy_step": dict(math=[0.5] * 39 + [0.1], checked_=[0.5] * 39 + [0.9]),
        "too_short": dict(math=noisy(0.42, 0.18, n=19), checked_=noisy(0.44, 0.62, n=19, seed=1)),
    }[case]
    assert replay(rows_from(**series), {"name": "divergence"}) == []


def test_divergence_watches_what_it_is_told():
    rows = rows_from(math=noisy(0.6, 0.3), format=noisy(0.5, 0.8, seed=2))  # their sum stays flat
    assert [a.message.split(" rose")[0] for a in replay(rows, {"name": "divergence"})] == ["rewards/format/mean"]
    assert replay(rows, {"name": "divergence", "options": {"watch": ["reward"]}}) == []  # the sum barely moves
    assert replay(rows, {"name": "divergence", "options": {"outcome": "format", "watch": ["math"]}}) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 0.05), min_size=20, max_size=30), st.lists(st.floats(0, 1), min_size=30, max_size=30))
def test_divergence_never_fires_while_the_outcome_does_not_fall(rises, other):
    outcome = list(itertools.accumulate(rises))  # non-decreasing, whatever the component does
    rows = rows_from(math=outcome, checked_=sorted(other)[:len(outcome)])
    assert replay(rows, {"name": "divergence"}) == []


def test_trend_matches_a_float64_reference():
    rng = np.random.default_rng(3)
    steps = list(range(5, 25))
    values = list(np.linspace(0.2, 0.5, 20) + rng.normal(0, 0.05, 20))
    p_up, change, start, end = trend(steps, values, "up")
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20)]
    slope = float(np.median([(values[j] - values[i]) / (steps[j] - steps[i]) for i, j in pairs]))  # Theil-Sen
    assert change == pytest.approx(slope * 19, rel=1e-12) and end - start == pytest.approx(change, rel=1e-12)
    # Mann-Kendall's S and its normal approximation (no ties): the exact p scipy gives is close to it
    s = sum(np.sign(values[j] - values[i]) for i, j in pairs)
    z = (s - 1) / np.sqrt(20 * 19 * 45 / 18)
    from math import erfc, sqrt

    assert p_up == pytest.approx(0.5 * erfc(z / sqrt(2)), abs=2e-3) and p_up < 0.01
    p_down, *_ = trend(steps, values, "down")
    assert p_down > 0.99
    assert trend(steps, [0.5] * 20, "up")[0] == 1.0  # a constant series has no trend


# --- dominance ------------------------------------------------------------------------------


def adv_rows(process, outcome=None, scale=None):
    outcome = outcome or [0.1] * len(process)
    return [{"step": i + 1, "adv/process_mean_abs": p, "adv/outcome_mean_abs": o,
             **({} if scale is None else {"adv/process_scale": scale})} for i, (p, o) in enumerate(zip(process, outcome))]


def test_dominance_fires_when_process_credit_swamps_outcome_credit():
    alerts = replay(adv_rows([0.4] * 8), {"name": "dominance"})
    assert [(a.monitor, a.step, a.value) for a in alerts] == [("dominance", 5, pytest.approx(4.0))]
    assert "4x outcome credit" in alerts[0].message and "steps 1-5" in alerts[0].message
    # it re-arms once the ratio falls back
    rows = adv_rows([0.4] * 5 + [0.1] * 5 + [0.4] * 5)
    assert [a.step for a in replay(rows, {"name": "dominance"})] == [5, 13]


@pytest.mark.parametrize("case", ["matched", "one_spike", "below_factor", "no_process_term"])
def test_dominance_stays_silent_when_credit_is_balanced(case):
    rows = {
        "matched": adv_rows([0.4] * 8, scale=0.25),  # process_scale: match brought it to the outcome's size
        "one_spike": adv_rows([0.1, 0.1, 5.0, 0.1, 0.1, 0.1]),  # one step is noise: the median decides
        "below_factor": adv_rows([0.29] * 8),
        "no_process_term": [{"step": s, "reward": 0.5} for s in range(1, 9)],
    }[case]
    assert replay(rows, {"name": "dominance"}) == []
    if case == "matched":  # before the scale it is 4x
        assert len(replay(rows, {"name": "dominance", "options": {"as_trained": False}})) == 1


def test_dominance_counts_an_all_zero_outcome_term_as_swamped():
    rows = adv_rows([0.2] * 5, outcome=[0.0] * 5)
    (alert,) = replay(rows, {"name": "dominance"})
    assert alert.value == float("inf") and "infx" in alert.message


# --- the trainer demo, and a tiny run -------------------------------------------------------


@pytest.mark.parametrize("run", ["demo1", "demo3"])
def test_defaults_are_silent_on_the_recorded_trainer_demo(run):
    # configs/demo.yaml's 80 steps (math + format), two recorded runs: metrics.jsonl cut to the reward columns
    rows = [json.loads(x) for x in (DATA / f"{run}.jsonl").read_text().splitlines()]
    assert len(rows) == 80 and "rewards/math/mean" in rows[0]
    assert replay(rows, {"name": "divergence"}, {"name": "dominance"}) == []


TRIPWIRE_FILE = """
from grpo_plugins import hookimpl
from grpo_plugins.monitors import Monitor, MonitorOptions


class Tripwire(Monitor):
    name = "tripwire"

    class Options(MonitorOptions):
        at_step: int = 1

    def observe(self, batch):
        if batch.step == self.options.at_step:
            seen = f"{len(batch.samples)} samples, {len(batch.advantages)} advantages, {batch.granularity}"
            return [self.alert(f"reward {batch.metrics['reward']:.3f} looks too good ({seen})",
                               value=batch.metrics["reward"])]


@hookimpl
def register_monitors(register):
    register(Tripwire)
"""


def _run_config(tmp_path, tiny_dir, monitors, **sections):
    (tmp_path / "digits.py").write_text(plugin_source(DigitShare))
    (tmp_path / "tripwire.py").write_text(TRIPWIRE_FILE)
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", ["digit_share"], {
        "train": {"steps": 4}, "log": {"progress": False, "tensorboard": False}, "checkpoint": {"every": 0, "keep": 4}},
        **sections)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"plugins": [], "plugin_files": ["digits.py", "tripwire.py"], **cfg,
                                    "monitors": monitors}, sort_keys=False))
    return path


def _cli():
    return build_cli(PluginManager(load_entrypoints=False))


def test_checkpoint_and_stop_actions_end_a_tiny_run(tmp_path, tiny_dir):
    cfg = _run_config(tmp_path, tiny_dir, [
        {"name": "tripwire", "label": "early", "options": {"at_step": 1}, "action": "checkpoint"},
        {"name": "tripwire", "label": "hacked", "options": {"at_step": 2}, "action": "stop"}])
    res = CliRunner().invoke(_cli(), ["train", str(cfg)])
    assert res.exit_code == 1, res.output
    run = tmp_path / "run"
    error = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and error[0].startswith("Error: monitor 'hacked' stopped the run at step 2: reward ")
    assert f"checkpoint saved: {run / 'checkpoint-2'}" in error[0]
    assert "(8 samples, 8 advantages, {'digit_share': 'outcome'})" in error[0]  # the scored batch, 2 prompts x 4
    assert "alert step 1 [warning] early: reward" in res.output and "(action: checkpoint)" in res.output
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]  # every: 0
    assert (run / "latest").read_text().strip() == "checkpoint-2"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["alerts/count"]) for r in metrics] == [(1, 1), (2, 1)]
    alerts = [json.loads(x) for x in (run / "alerts.jsonl").read_text().splitlines()]
    assert [(a["step"], a["monitor"], a["action"]) for a in alerts] == [(1, "early", "checkpoint"), (2, "hacked", "stop")]
    assert alerts[1]["value"] == pytest.approx(metrics[1]["reward"])
    assert not (run / "final").exists()  # stopped: no export
    # what the message says works: the same command with the action set to warn resumes at step 2
    cfg.write_text(cfg.read_text().replace("action: stop", "action: warn"))
    res = CliRunner().invoke(_cli(), ["train", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output and (run / "final").is_dir()
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["alerts/count"]) for r in metrics] == [(1, 1), (2, 1), (3, 0), (4, 0)]
    assert len((run / "alerts.jsonl").read_text().splitlines()) == 2  # kept across the resume


def test_check_reports_an_unknown_monitor_as_one_line_with_its_key_and_line(tmp_path, tiny_dir):
    cfg = _run_config(tmp_path, tiny_dir, [{"name": "tripwire"}, {"name": "tripwier", "action": "stop"}])
    res = CliRunner().invoke(_cli(), ["check", str(cfg)])
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if "monitors" in x]
    line_no = cfg.read_text().splitlines().index("- name: tripwier") + 1
    assert lines == [f"{cfg}:{line_no}: monitors[1].name: unknown monitor 'tripwier'; did you mean 'tripwire'? "
                     f"available monitors: tripwire"], res.output
