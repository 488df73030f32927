"""`grpo-plugins cycle` killed (SIGKILL) inside its label and buffer phases resumes to the same run as
one never killed: the same labels, buffer records and counts, PRM and report values (timings aside)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grpo_plugins.replay import read_buffer
from helpers_runs import MATH_REWARD, prm_reward, tiny_cycle_config

# Kills itself with SIGKILL at the named points, once each: a marker file records that a point fired.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from grpo_plugins import replay
    from grpo_plugins.cycle import runner

    faults = [f for f in os.environ.get("CYCLE_FAULTS", "").split(",") if f]
    marks = Path(os.environ["CYCLE_FAULT_DIR"])

    def fire(point):
        if point in faults and not (marks / point).exists():
            (marks / point).write_text("fired")
            print(f"FAULT {point}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    real_label, real_extend = runner.label_rollouts, replay.ReplayBuffer.extend

    def label_rollouts(*a, **kw):  # continuations sampled and graded, labels not yet written
        out = real_label(*a, **kw)
        fire(f"label-{runner_cycle[0]}")
        return out

    def extend(self, records, cycle=None, policy_step=None, tag=None):
        out = real_extend(self, records, cycle, policy_step, tag)
        if tag is not None:  # the buffer phase's batch is stored (and its evictions), buffer.json not yet
            fire(f"buffer-{cycle}")
        return out

    runner_cycle = [0]
    real_phase = runner.Cycle.label

    def label(self, k):
        runner_cycle[0] = k
        return real_phase(self, k)

    runner.label_rollouts, replay.ReplayBuffer.extend, runner.Cycle.label = label_rollouts, extend, label
    from grpo_plugins.cli import main
    main(sys.argv[1:])
""")


def write_config(tmp: Path) -> Path:
    return tiny_cycle_config(tmp, [
        MATH_REWARD,
        # grades continuations by their shape, so the labels show which continuations were sampled
        {"name": "format", "label": "shape", "weight": 0.0, "options": {"pattern": "[02468]", "mode": "search"}},
        # the tiny policy writes near-random characters: a capital letter starts a step, so rollouts have several
        prm_reward(tmp, split="step_prefix", step_pattern="[A-Z]"),
    ], train={"seed": 3}, label={"reward": "shape", "continuations": 3, "max_rollouts": 4, "budget": 36},
        buffer={"capacity": 5, "eviction": "random"})


def run_cycle(tmp: Path, faults: str = "", max_runs: int = 6) -> list[str]:
    """Run the cycle to the end, restarting it after each kill; returns the faults that fired."""
    config = write_config(tmp)
    marks = tmp / "marks"
    marks.mkdir(exist_ok=True)
    env = {**os.environ, "GRPO_PLUGINS_LOAD": "math,format,prm", "PYTHONUNBUFFERED": "1",
           "CYCLE_FAULTS": faults, "CYCLE_FAULT_DIR": str(marks)}
    fired = []
    for _ in range(max_runs):
        out = subprocess.run([sys.executable, "-c", DRIVER, "cycle", str(config)], cwd=tmp, capture_output=True,
                             text=True, env=env)
        if out.returncode == 0:
            return fired
        assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
        fired += [line.split()[1] for line in out.stderr.splitlines() if line.startswith("FAULT ")]
    raise AssertionError(f"no clean finish after {max_runs} runs; fired {fired}")


TIMING = ("seconds", "/seconds", "_per_s", "/time")


def untimed(obj):
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not any(k == t or k.endswith(t) for t in TIMING)}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def snapshot(run: Path) -> dict:
    out = {"report": untimed(json.loads((run / "report.json").read_text())),
           "buffer": [(e.seq, e.cycle, e.policy_step, e.record) for e in read_buffer(run / "buffer")]}
    for k in (0, 1):
        d = run / "cycles" / str(k)
        out[f"labels-{k}"] = (d / "labels.jsonl").read_text()
        out[f"label_stats-{k}"] = json.loads((d / "label_stats.json").read_text())
        out[f"buffer-{k}"] = json.loads((d / "buffer.json").read_text())
        out[f"retrain-{k}"] = untimed(json.loads((d / "retrain.json").read_text()))
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    assert run_cycle(tmp) == []
    return snapshot(tmp / "run")


def test_kills_in_the_label_and_buffer_phases_resume_to_the_uninterrupted_run(tmp_path, uninterrupted):
    fired = run_cycle(tmp_path, "buffer-0,label-1,buffer-1")
    assert fired == ["buffer-0", "label-1", "buffer-1"]
    got = snapshot(tmp_path / "run")
    # the counts of a buffer phase killed after its commit are the commit's, not a rerun's 0
    assert [got[f"buffer-{k}"] for k in (0, 1)] == [uninterrupted[f"buffer-{k}"] for k in (0, 1)]
    assert got["buffer-0"]["added"] > 0
    for key in uninterrupted:
        assert got[key] == uninterrupted[key], key
    # timing.json holds the attempt that finished, not the sum of the killed one and the rerun
    timing = json.loads((tmp_path / "run/cycles/1/timing.json").read_text())
    assert set(timing) == {"grpo", "label", "buffer", "retrain", "evaluate", "reference"}


def test_the_labels_depend_on_the_sampled_continuations(uninterrupted):
    # the check above is only as strong as the labels are sensitive: some soft labels are strictly
    # between 0 and 1, so new random continuations on a resume would change them
    soft = [v for k in (0, 1) for line in uninterrupted[f"labels-{k}"].splitlines()
            for _, _, v in json.loads(line)["steps"][:-1]]
    assert soft and any(0 < v < 1 for v in soft) and len(set(soft)) > 1
