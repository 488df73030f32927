"""The cycle's ``label.source: math_steps``: kept rollouts get step labels from the verifier (no
continuations), cut with the PRM's step format, and the records read as PRM training data. Any other
step reward, named by label or name, labels steps the same way (the core names no reward)."""

from __future__ import annotations

import json

import pytest

from grpo_plugins import (PluginManager, Reward, RewardOptions, RewardResult, SettingError, get_plugin_manager,
                          hookimpl)
from grpo_plugins.cycle.config import CycleConfig
from grpo_plugins.cycle.runner import Cycle
from grpo_plugins.io import read_jsonl
from grpo_plugins.replay import ReplayBuffer
from grpo_prm.data import from_rollout


def test_math_steps_labels_the_kept_rollouts(tmp_path):
    cfg = CycleConfig.model_validate({
        "rewards": [{"name": "math"}],
        "label": {"source": "math_steps", "split": "tag", "tag": ", ", "max_rollouts": 10},
        "log": {"run_dir": str(tmp_path / "run")},
    })
    cycle = Cycle(cfg, get_plugin_manager(), log=lambda s: None)
    kept = [
        ("<think>7+5=12, 2+4+1=7</think><answer>72</answer>", "72"),  # both steps right, answer right
        ("<think>7+5=13, 2+4+1=7</think><answer>73</answer>", "72"),  # first step slips
        ("<think>no sums here</think><answer>5</answer>", "72"),  # nothing to check: no record
    ]
    with ReplayBuffer(cycle.cycle_dir(0) / "rollouts", capacity=100) as buf:
        buf.extend(({"prompt": "27+45=?\n", "completion": c, "columns": {"answer": a}, "reward": None}
                    for c, a in kept), cycle=0, policy_step=1)
    cycle.label(0)
    records = sorted(read_jsonl(cycle.cycle_dir(0) / "labels.jsonl"), key=lambda r: r["completion"])
    stats = json.loads((cycle.cycle_dir(0) / "label_stats.json").read_text())
    assert stats["source"] == "math_steps" and stats["continuations"] == 0
    assert stats["labelled"] == 2 and stats["skipped_no_steps"] == 1
    good, slipped = records[0], records[1]
    assert good["completion"].startswith("<think>7+5=12")
    assert [v for _, _, v in good["steps"]] == [1.0, 1.0] and good["outcome"] is True
    assert [v for _, _, v in slipped["steps"]] == [0.0, 1.0] and slipped["outcome"] is False
    assert slipped["hard"] == [0.0, 1.0] and slipped["answer"] == "72"
    # the spans are the step format's, so the PRM reads its scores where the labels were put
    fmt = cycle.step_format()
    assert [tuple(s[:2]) for s in good["steps"]] == fmt.spans(good["completion"])
    ex = from_rollout(slipped)
    assert ex.labels == [0.0, 1.0] and ex.completion[slice(*ex.spans[0])] == "<think>7+5=13"


class Halves(Reward):
    """A toy step reward: steps cut at ", ", valued 1.0 (has "ok"), 0.0 (has "no") or None (neither)."""

    name = "halves"
    granularity = "step"

    class Options(RewardOptions):
        bad_value: float | None = None  # a value to give "??" steps (outside [0, 1] in a test)

    def score(self, samples):
        out = []
        for s in samples:
            steps, start = [], 0
            for part in s.text.split(", "):
                v = 1.0 if "ok" in part else 0.0 if "no" in part else self.options.bad_value if "??" in part else None
                steps.append((start, start + len(part), v))
                start += len(part) + 2
            out.append(RewardResult(steps=steps))
        return out


def toy_cycle(tmp_path, source, rewards, kept):
    m = PluginManager(allow=["math"])

    class Toys:
        @hookimpl
        def register_rewards(self, register):
            register(Halves)

    m.register(Toys(), name="toys")
    cfg = CycleConfig.model_validate({"rewards": rewards, "label": {"source": source, "reward": "math"},
                                      "log": {"run_dir": str(tmp_path / "run")}})
    cycle = Cycle(cfg, m, log=lambda s: None)
    with ReplayBuffer(cycle.cycle_dir(0) / "rollouts", capacity=100) as buf:
        buf.extend(({"prompt": "q", "completion": c, "columns": {"answer": "1"}, "reward": None} for c in kept),
                   cycle=0, policy_step=1)
    return cycle


def test_any_step_reward_named_by_label_labels_steps_from_its_values(tmp_path):
    cycle = toy_cycle(tmp_path, "mine", [{"name": "math"}, {"name": "halves", "label": "mine"}],
                      ["ok, no, meh <answer>1</answer>", "meh, meh"])
    cycle.label(0)
    records = read_jsonl(cycle.cycle_dir(0) / "labels.jsonl")
    stats = json.loads((cycle.cycle_dir(0) / "label_stats.json").read_text())
    assert stats["source"] == "mine" and stats["labelled"] == 1 and stats["skipped_no_steps"] == 1
    (rec,) = records
    assert rec["steps"] == [[0, 2, 1.0], [4, 6, 0.0]] and rec["hard"] == [1.0, 0.0]  # None: no label
    assert rec["outcome"] is True and from_rollout(rec).labels == [1.0, 0.0]


def test_label_source_by_reward_name_when_not_configured(tmp_path):
    cycle = toy_cycle(tmp_path, "halves", [{"name": "math"}], ["no, ok"])
    cycle.label(0)
    assert read_jsonl(cycle.cycle_dir(0) / "labels.jsonl")[0]["steps"] == [[0, 2, 0.0], [4, 6, 1.0]]


def test_a_step_value_outside_0_1_is_not_a_label(tmp_path):
    cycle = toy_cycle(tmp_path, "halves", [{"name": "math"}, {"name": "halves", "options": {"bad_value": 2.0}}],
                      ["ok, ??"])
    with pytest.raises(SettingError, match=r"label.source: reward 'halves' gave step value 2.0"):
        cycle.label(0)


def test_a_bad_label_source_stops_the_run_before_the_grpo_phase(tmp_path):
    for source, match in (("nope", "neither 'math_shepherd' nor a configured or registered reward"),
                          ("math", "reward 'math' is not a step reward")):
        cycle = toy_cycle(tmp_path, source, [{"name": "math"}], [])
        with pytest.raises(SettingError, match=match):
            cycle.run()
        assert not cycle.state_path.exists()
