"""The cycle's ``label.source: math_steps``: kept rollouts get step labels from the verifier (no
continuations), cut with the PRM's step format, and the records read as PRM training data."""

from __future__ import annotations

import json

from grpo_plugins import get_plugin_manager
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
