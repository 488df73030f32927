"""`grpo-plugins cycle`: a run killed in the middle of a phase resumes at that phase and finishes,
with no duplicated buffer records or GRPO steps; a third-party plugin retrains through on_cycle_end."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


from grpo_plugins.replay import read_buffer
from helpers_runs import MATH_REWARD, prm_reward, tiny_cycle_config

OBSERVER = textwrap.dedent("""
    import json
    from grpo_plugins import hookimpl

    @hookimpl
    def on_cycle_end(context):
        # a third-party reward model would retrain here; it sees the same buffer and rewards as the PRM
        with open(context.run_dir / "observer.jsonl", "a") as f:
            f.write(json.dumps({"cycle": context.cycle, "buffer": str(context.buffer_dir),
                                "rewards": sorted(context.rewards)}) + "\\n")
        return {"observer/called": 1}
""")


def write_config(tmp: Path) -> Path:
    (tmp / "observer.py").write_text(OBSERVER)
    return tiny_cycle_config(
        tmp, [MATH_REWARD, prm_reward(tmp, split="tag", tag=", ")], plugin_files=["observer.py"],
        label={"reward": "math", "continuations": 2, "max_rollouts": 4, "split": "tag", "tag": ", "})


def cycle_cmd(config):
    return [sys.executable, "-m", "grpo_plugins", "cycle", str(config)]


def test_cycle_killed_mid_phase_resumes_there_and_finishes(tmp_path):
    config = write_config(tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "GRPO_PLUGINS_LOAD": "math,format,prm", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cycle_cmd(config), cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("cycle 1: label started"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])
    assert json.loads((run / "cycle_state.json").read_text()) == {"cycle": 1, "phase": "label"}
    assert not (run / "cycles/1/labels.jsonl").exists()

    done = subprocess.run(cycle_cmd(config), cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    phases = [line for line in done.stderr.splitlines() if line.startswith(("cycle ", "resuming"))]
    assert phases[0] == "resuming at cycle 1, phase label"
    assert [p.split(":")[1].split()[0] for p in phases if p.endswith("started")] == [
        "label", "buffer", "retrain", "evaluate", "reference"]
    assert json.loads((run / "cycle_state.json").read_text()) == {"cycle": 2, "phase": "grpo"}

    report = json.loads((run / "report.json").read_text())
    assert [c["cycle"] for c in report["cycles"]] == [0, 1]
    assert (run / "report.png").stat().st_size > 0
    # one GRPO step per cycle, each logged once: the resumed run did not redo cycle 0 or 1's steps
    steps = [json.loads(line)["step"] for line in (run / "policy/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    entries = read_buffer(run / "buffer")
    assert len({e.key for e in entries}) == len(entries)
    for k in (0, 1):
        labelled = (run / f"cycles/{k}/labels.jsonl").read_text().splitlines()
        assert len([e for e in entries if e.cycle == k]) <= len(labelled)
        assert all(e.policy_step == k + 1 for e in entries if e.cycle == k)
    assert os.readlink(run / "prm/current") == "cycle-1"
    assert (run / "prm/cycle-1/DONE").exists()
    observed = [json.loads(line) for line in (run / "observer.jsonl").read_text().splitlines()]
    assert [o["cycle"] for o in observed] == [0, 1]  # the third-party plugin took part in every retrain, once each
    assert all(o["rewards"] == ["math", "prm"] for o in observed)  # the run's live rewards, by label
    assert report["cycles"][1]["observer/called"] == 1
