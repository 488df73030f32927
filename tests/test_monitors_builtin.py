"""The per-sample and length built-in monitors (length_drift, disagreement, inconsistency,
format_collapse): each on a synthetic series that must fire and one that must not, on per-step
batches as the trainer gives them and on shares recorded in metrics.jsonl, and silent with their
defaults on the recorded trainer demo."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins import PluginManager, RewardResult
from grpo_plugins.monitors import MonitorHost

DATA = Path(__file__).parent / "data" / "monitors"
BUILTIN = ["length_drift", "disagreement", "inconsistency", "format_collapse"]


def host(*configs) -> MonitorHost:
    return MonitorHost(list(configs), PluginManager(load_entrypoints=True, allow=["monitors"]))


def shares(start, end, n=40, noise=0.03, seed=0):
    """A noisy linear share series from ``start`` to ``end``, clipped to [0, 1]."""
    rng = random.Random(seed)
    return [min(1.0, max(0.0, start + (end - start) * i / (n - 1) + rng.uniform(-noise, noise))) for i in range(n)]


def count_of(share, n=64):
    return round(share * n)


def format_batch(share, n=64):
    bad = count_of(share, n)
    return {"results": {"math": [RewardResult(0.0, info={"status": "no_answer"}) for _ in range(bad)]
                        + [RewardResult(1.0, info={"status": "correct"}) for _ in range(n - bad)]}}


def disagreement_batch(share, n=64):
    bad = count_of(share, n)
    a = [RewardResult(1.0) for _ in range(n)]
    b = [RewardResult(0.0 if i % n < bad else 1.0) for i in range(n)]
    # spread the disagreeing rows so the evenly spaced sample sees the share
    order = sorted(range(n), key=lambda i: (i * 37) % n)
    return {"results": {"math": a, "math_verify": [b[j] for j in order]}}


def prm_batch(share, n=64):
    bad = count_of(share, n)
    prm = [RewardResult(steps=[(0, 3, 0.9), (3, 6, 0.2 if i < bad else 0.8)]) for i in range(n)]
    steps = [RewardResult(steps=[(0, 3, 1.0), (3, 6, 1.0)]) for _ in range(n)]
    return {"results": {"prm": prm, "math_steps": steps}, "granularity": {"prm": "step", "math_steps": "step"}}


def inconsistency_batch(share, n=64):
    bad = count_of(share, n)
    return {"results": {"math_steps": [RewardResult(steps=[], info={"answer_agrees": i >= bad}) for i in range(n)]
                        + [RewardResult(steps=[], info={"answer_agrees": None})] * 8}}


def run(config, make, series):
    rows = [{"step": i + 1} for i in range(len(series))]
    return host(config).replay(rows, {i + 1: make(x) for i, x in enumerate(series)})


CASES = [({"name": "format_collapse"}, format_batch),
         ({"name": "disagreement"}, disagreement_batch),
         ({"name": "disagreement", "options": {"pair": ["prm", "math_steps"]}}, prm_batch),
         ({"name": "inconsistency"}, inconsistency_batch)]


@pytest.mark.parametrize("config, make", CASES)
def test_a_rising_share_fires_once(config, make):
    alerts = run(config, make, shares(0.05, 0.6))
    assert len(alerts) == 1
    a = alerts[0]
    assert a.monitor == config["name"] and a.step is not None and 0.15 <= a.value <= 0.6
    assert "rose from" in a.message


@pytest.mark.parametrize("config, make", CASES)
@pytest.mark.parametrize("series", [shares(0.3, 0.3), shares(0.5, 0.05), shares(0.05, 0.15),
                                    [0.05] * 30 + [0.9] * 2 + [0.05] * 8])  # flat, falling, small, a spike
def test_a_share_that_does_not_rise_for_long_is_silent(config, make, series):
    assert run(config, make, series) == []


def test_the_share_is_recorded_and_an_offline_replay_reads_it_back():
    series = shares(0.05, 0.6)
    h = host({"name": "format_collapse"})
    rows = [{"step": i + 1} for i in range(40)]
    live = h.replay(rows, {i + 1: format_batch(x) for i, x in enumerate(series)})
    recorded = [r["monitors/format_collapse/share"] for r in h.history]
    assert recorded == pytest.approx([count_of(x) / 64 for x in series], abs=1e-12)
    # a run's metrics.jsonl rows, no samples: the same alert at the same step
    offline = host({"name": "format_collapse"}).replay([dict(r) for r in h.history])
    assert [(a.step, a.value) for a in offline] == [(a.step, a.value) for a in live]


def test_the_share_rise_matches_a_float64_reference():
    series = shares(0.05, 0.6)
    a = run({"name": "format_collapse"}, format_batch, series)[0]
    got = [count_of(x) / 64 for x in series][: a.step]
    assert a.step < 30  # judged from 6 steps after the start, not only once 20 have passed
    assert a.value == pytest.approx(statistics.fmean(got[10:][-20:]) - statistics.fmean(got[:10]), rel=1e-12)


def test_disagreement_samples_at_most_sample_size_rows():
    h = host({"name": "disagreement", "options": {"sample_size": 8, "min_samples": 1}})
    h.replay([{"step": 1}], {1: disagreement_batch(0.5)})
    assert h.history[-1]["monitors/disagreement/share"] in {i / 8 for i in range(9)}


def test_rewards_a_run_lacks_leave_the_share_monitors_silent():
    rows = [{"step": i + 1} for i in range(40)]
    h = host(*({"name": n} for n in BUILTIN[1:]))
    assert h.replay(rows, {i + 1: {"results": {"format": [RewardResult(1.0)] * 8}} for i in range(40)}) == []
    assert not any(k.startswith("monitors/") for r in h.history for k in r)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=30, max_size=60))
def test_a_share_that_never_exceeds_its_start_by_min_rise_never_fires(values):
    cap = statistics.fmean(values[:10]) + 0.149
    series = [min(v, cap) for v in values]
    rows = [{"step": i + 1, "monitors/format_collapse/share": x} for i, x in enumerate(series)]
    assert host({"name": "format_collapse"}).replay(rows) == []


# --- length_drift ------------------------------------------------------------------------------


def length_rows(lengths, rewards):
    return [{"step": i + 1, "completions/mean_length": x, "reward": r} for i, (x, r) in enumerate(zip(lengths, rewards))]


def test_length_drift_fires_when_length_doubles_as_the_reward_rises():
    alerts = host({"name": "length_drift"}).replay(length_rows(shares(0.2, 0.9), shares(0.2, 0.8, seed=1)))
    assert len(alerts) == 1 and alerts[0].value >= 0.5 and "rose" in alerts[0].message


def test_length_drift_also_fires_when_length_collapses():
    lengths = [100 * x for x in shares(0.9, 0.2)]
    alerts = host({"name": "length_drift"}).replay(length_rows(lengths, shares(0.2, 0.8, seed=1)))
    assert len(alerts) == 1 and alerts[0].value <= -0.5


@pytest.mark.parametrize("lengths, rewards", [
    (shares(0.2, 0.9), shares(0.5, 0.5, seed=1)),    # longer, reward flat
    (shares(0.2, 0.9), shares(0.8, 0.2, seed=1)),    # longer, reward falling
    (shares(0.4, 0.5), shares(0.2, 0.8, seed=1)),    # reward up, length +25% only
])
def test_length_drift_is_silent_without_both_trends(lengths, rewards):
    assert host({"name": "length_drift"}).replay(length_rows(lengths, rewards)) == []


@pytest.mark.parametrize("name", ["demo1", "demo3"])
def test_defaults_are_silent_on_the_recorded_trainer_demo(name):
    rows = [json.loads(x) for x in (DATA / f"{name}.jsonl").read_text().splitlines()]
    assert len(rows) == 80 and "completions/mean_length" in rows[0]
    assert host(*({"name": n} for n in BUILTIN)).replay(rows) == []


# --- the docs' plugin example ------------------------------------------------------------------


def doc_plugin() -> str:
    """The complete plugin file of docs/monitors.md ("Writing a monitor plugin"), as the doc shows it."""
    doc = (Path(__file__).parent.parent / "docs" / "monitors.md").read_text()
    section = doc[doc.index("## Writing a monitor plugin"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_docs_plugin_is_under_30_lines_and_fires_through_the_cli(tmp_path):
    from click.testing import CliRunner

    from grpo_plugins.cli import build_cli

    code = doc_plugin()
    assert len(code.strip().splitlines()) < 30
    (tmp_path / "long_answers.py").write_text(code)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "completions/mean_length": 60.0 * s}) + "\n"
                                               for s in (1, 2, 3, 4)))
    manager = PluginManager(load_entrypoints=False)
    res = CliRunner().invoke(build_cli(manager), ["--plugin", str(tmp_path / "long_answers.py"), "monitor", str(run),
                                                  "--monitor", "long_answers"], obj={"manager": manager})
    assert res.exit_code == 1, res.output
    row = res.output.splitlines()[1].split()
    assert row[:4] == ["long_answers", "FIRED", "4", "240"]  # 240 > 200, its default max_length
    assert (run / "monitors.png").exists()
