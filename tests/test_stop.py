"""Ctrl-C and SIGTERM in every long phase (grpo_plugins/stop.py): the controller itself, then the CLI
as a user runs it: a subprocess, a signal once a phase's progress line appears, the message, the exit
code and the rerun. GRPO's exact resume is tested in the checkpoint tests; here the rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from grpo_plugins import stop
from helpers_runs import MATH_REWARD, prm_reward, tiny_cycle_config, tiny_run_config

pytest.importorskip("transformers")


# --- the controller ------------------------------------------------------------------------------


def test_first_signal_sets_the_flag_second_raises_and_handlers_come_back(capsys):
    before = {sig: signal.getsignal(sig) for sig in stop.SIGNALS}
    restore = stop.install()
    inner = stop.install()  # nested (the trainer inside the CLI): the same handlers, one flag
    try:
        assert signal.getsignal(signal.SIGTERM) == stop.controller._handle
        stop.check()  # nothing asked yet
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs in the main thread at the next bytecode
        assert stop.requested() and stop.controller.exit_code() == 143
        assert capsys.readouterr().err.strip() == stop.MESSAGE
        with pytest.raises(stop.StopRequested):
            stop.check()
        inner()
        assert stop.requested(), "the inner restore keeps the outer install's flag and handlers"
        with pytest.raises(KeyboardInterrupt) as exc:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        assert not isinstance(exc.value, stop.StopRequested)  # the second signal stops at once
    finally:
        restore()
    assert {sig: signal.getsignal(sig) for sig in stop.SIGNALS} == before
    assert not stop.requested()  # the last restore forgets the stop: a later phase runs
    stop.check()


def test_an_ignored_sigint_still_gets_the_handler():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a job started with `cmd &` from a script
    try:
        restore = stop.install()
        try:
            assert stop.controller.exit_code() == 130 and not stop.requested()  # a fresh install: no flag
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.requested() and stop.controller.exit_code() == 130
        finally:
            restore()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def stopping():
    """The controller installed for one test (restored after); ``stopping()`` sends this process SIGTERM."""
    restore = stop.install()

    def send():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)

    try:
        yield send
    finally:
        restore()


def test_a_stopped_tiny_build_leaves_no_folder(tmp_path, stopping, capsys):
    from grpo_plugins.grpo import tiny

    stopping()
    with pytest.raises(stop.StopRequested):
        tiny.build(tmp_path / "t", n_train=4, n_eval=2, n_sft=4, hidden_size=16, layers=1, heads=2)
    assert list(tmp_path.iterdir()) == []  # neither the build nor its .tmp-PID folder


def test_prm_training_stops_between_steps_before_saving(tmp_path, stopping, capsys):
    from grpo_prm.data import from_trl
    from grpo_prm.tiny import build_tiny_prm
    from grpo_prm.train import PRMTrainOptions, train_prm

    init = build_tiny_prm(tmp_path / "init", hidden_size=16, layers=1, heads=2)
    examples = [from_trl({"prompt": "go\n", "completions": ["ok x", "no x"], "labels": [True, False]}, "\n\n")] * 16
    logged = []

    def log(m):
        logged.append(m["prm/step"])
        if m["prm/step"] == 1:
            stopping()

    with pytest.raises(stop.StopRequested):
        train_prm(init, tmp_path / "out", examples, PRMTrainOptions(epochs=4, batch_size=2, device="cpu"), log=log)
    assert logged == [0, 1] and not (tmp_path / "out").exists()


# --- through the CLI -----------------------------------------------------------------------------


def run_until(args, marker: str, sig: int, ignore_sigint: bool = False, timeout: float = 240):
    """Start ``grpo-plugins ARGS``, send ``sig`` once a line containing ``marker`` appears; (rc, output)."""
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    proc = subprocess.Popen([sys.executable, "-m", "grpo_plugins", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=preexec)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                proc.send_signal(sig)
                break
        else:
            raise AssertionError(f"{marker!r} never appeared:\n{''.join(lines)}")
        rest, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + rest


def run(args, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "grpo_plugins", *args], capture_output=True, text=True,
                          timeout=timeout)


def write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_warm_up_stops_on_an_ignored_sigint_and_the_rerun_restarts_it(tiny_dir, tmp_path):
    # issue 29: a background job (SIGINT ignored) never stopped in the warm-up
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", [MATH_REWARD], train={"steps": 1},
                          sft={"data": str(tiny_dir / "sft.jsonl"), "steps": 20000, "batch_size": 2},
                          log={"progress": False})
    config = write(tmp_path / "run.yaml", cfg)
    rc, out = run_until(["train", config], "supervised warm-up:", signal.SIGINT, ignore_sigint=True)
    assert rc == 130, out
    assert stop.MESSAGE in out and "stopped at a safe point by SIGINT; resume with the same command" in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "sft").exists() and not list((tmp_path / "run").glob("checkpoint-*"))
    done = run(["train", config, "sft.steps=3"])  # no saved warm-up: the rerun runs it from the start
    assert done.returncode == 0, done.stderr
    assert "supervised warm-up: 3 steps" in done.stdout + done.stderr
    assert (tmp_path / "run" / "final").is_dir()


def test_grpo_stops_on_sigterm_after_the_step_with_a_checkpoint_and_resumes(tiny_dir, tmp_path):
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", [MATH_REWARD], train={"steps": 500},
                          log={"progress": True, "every": 1})
    config = write(tmp_path / "run.yaml", cfg)
    rc, out = run_until(["train", config], "step 1/", signal.SIGTERM)
    assert rc == 143, out
    assert stop.MESSAGE in out and "stopped at a safe point by SIGTERM" in out and "Traceback" not in out, out
    (ckpt,) = (tmp_path / "run").glob("checkpoint-*")
    step = int(ckpt.name.split("-")[1])
    assert f"interrupted: saving a checkpoint at step {step}" in out
    done = run(["train", config, f"train.steps={step + 1}"])
    assert done.returncode == 0, done.stderr
    assert f"resumed from {ckpt} (step {step})" in done.stdout + done.stderr
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["step"] > step] == [step + 1]


def test_eval_command_stops_on_sigint_between_batches(tiny_dir, tmp_path):
    cfg = tiny_run_config(tiny_dir, tmp_path / "run", [MATH_REWARD], data={"eval": str(tiny_dir / "test.jsonl")},
                          eval={"batch_size": 1}, rollout={"num_generations": 4, "max_new_tokens": 16})
    config = write(tmp_path / "run.yaml", cfg)
    rc, out = run_until(["eval", config, "--samples", "8", "--k", "1,8"], "prompts", signal.SIGINT)
    assert rc == 130, out
    assert stop.MESSAGE in out and "stopped at a safe point by SIGINT; nothing was written" in out, out
    assert "8/8 prompts" not in out and not (tmp_path / "run" / "eval" / "eval.json").exists()


def test_cycle_grpo_phase_stops_on_sigint_and_the_rerun_resumes_its_checkpoint(tmp_path):
    config = tiny_cycle_config(tmp_path, [MATH_REWARD, prm_reward(tmp_path)], cycle={"cycles": 1, "steps_per_cycle": 200},
                               log={"progress": True, "every": 1})
    rc, out = run_until(["cycle", str(config)], "step 1/", signal.SIGINT)
    assert rc == 130, out
    assert stop.MESSAGE in out and "stopped at a safe point by SIGINT; resume with the same command" in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "cycle_state.json").exists(), "still in cycle 0's first phase"
    (ckpt,) = (tmp_path / "run" / "policy").glob("checkpoint-*")
    step = int(ckpt.name.split("-")[1])
    done = run(["cycle", str(config), f"cycle.steps_per_cycle={step + 1}"])
    assert done.returncode == 0, done.stderr
    assert f"resumed from {ckpt} (step {step})" in done.stdout + done.stderr
    assert json.loads((tmp_path / "run" / "cycle_state.json").read_text()) == {"cycle": 1, "phase": "grpo"}
