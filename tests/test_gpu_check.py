"""scripts/gpu_check.py without a GPU: which phases run, fail or skip (and why), what each judges, and
a dry run (``--device cpu``) of the learn and resume phases writing the summary."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses resolve string annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("gpu_check", None)


def _plan(gc, device, have, wanted=None):
    return {ph.name: (skip, fail, ph) for ph, skip, fail in gc.plan(device, wanted, have)}


def test_on_cuda_missing_vllm_or_deepspeed_fails_the_phases_that_need_them(gc):
    p = _plan(gc, "cuda", {"vllm": False, "deepspeed": False})
    assert p["zero3"][:2] == (None, "deepspeed not installed")
    assert p["matrix"][:2] == (None, "vllm not installed") and p["multi_eos"][1] == "vllm not installed"
    assert p["fsdp2"][:2] == (None, None) and p["resume"][:2] == (None, None)  # single-process FSDP2: one GPU is enough
    assert all(skip is None for skip, _, _ in p.values())  # nothing is skipped on CUDA


def test_the_cpu_dry_run_skips_cuda_phases_and_vllm_runs_saying_so(gc):
    p = _plan(gc, "cpu", {"vllm": True, "deepspeed": True})
    for name in ("fsdp2", "zero3", "trl"):
        assert p[name][0] == "needs CUDA (--device cpu dry run)"
    assert p["matrix"][:2] == (None, None)
    assert not [r for r in p["matrix"][2].runs if r["backend"] == "vllm"]
    assert _plan(gc, "cpu", {"vllm": True, "deepspeed": True}, ["learn"])["resume"][0] == "not in --phases"


def test_the_matrix_covers_what_the_issue_lists(gc):
    ph = {p.name: p for p in gc.phases("cuda")}
    runs = ph["matrix"].runs
    assert {r["arch"] for r in runs} == {"llama", "qwen2"}
    assert {r["backend"] for r in runs} == {"sample", "generate", "vllm"}
    assert any(r.get("beta", 0) > 0 for r in runs) and any(r.get("micro_batch_size") for r in runs)
    assert any(r.get("num_iterations") == 2 for r in runs) and any(r["lora"] and r["gc"] for r in runs)
    assert {r["launch"] for r in ph["fsdp2"].runs + ph["zero3"].runs} == {"fsdp2", "zero3"}
    assert sum(p.budget_s for p in ph.values()) <= gc.BUDGET_S < 540  # gpu-check.sh's backstop: 9 minutes


def test_sharded_runs_launch_one_process_with_the_repo_config(gc, tmp_path):
    spec = gc.run("llama", "sample", launch="zero3")
    cmd = gc.command(spec, tmp_path / "s.json", Path("/repo"))
    assert cmd[cmd.index("--num_processes") + 1] == "1"
    assert cmd[cmd.index("--config_file") + 1] == "/repo/configs/accelerate-zero3.yaml"


def _res(rewards, **kw):
    return {"steps": [{"loss": 0.1, "reward": r, "time": 1.0, "gen_tokens_per_s": 1.0} for r in rewards],
            "mask_ok": True, "stop_ids": [2], "ended_at": {"2": 1}, **kw}


def test_judge_learn_margin_resume_identity_multi_eos_and_engine(gc):
    single = gc.run("llama", "sample")
    assert gc.judge("learn", single, _res([0.0] * 4 + [0.1] * 4)) == []
    assert "margin" in gc.judge("learn", single, _res([0.0] * 4 + [0.01] * 4))[0]
    a = {"loss": 0.5, "reward": 0.25, "step_time": 1.0}
    assert gc.judge("resume", single, _res([0.1]), {"uninterrupted": a, "resumed": {**a, "step_time": 9.0}}) == []
    assert "differ" in gc.judge("resume", single, _res([0.1]), {"uninterrupted": a, "resumed": {**a, "loss": 0.5001}})[0]
    assert "second EOS" in gc.judge("multi_eos", single, _res([0.1]))[0]
    two = _res([0.1], stop_ids=[2, 97], ended_at={"2": 3, "97": 0})
    assert gc.judge("multi_eos", single, two) == ["no completion ended at the second EOS"]
    assert "engine" in gc.judge("zero3", gc.run(launch="zero3"), _res([0.1], engine="single"))[0]
    assert "non-finite" in gc.judge("matrix", single, {**_res([0.1]), "steps": [{"loss": float("nan"), "reward": 0,
                                                                                 "time": 1, "gen_tokens_per_s": 1}]})[0]


def test_dry_run_writes_the_summary(tmp_path):
    out = tmp_path / "gc"
    p = subprocess.run([sys.executable, str(SCRIPT), "all", str(out), "--device", "cpu", "--phases", "learn,resume,zero3"],
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    status = {ph["name"]: (ph["status"], ph.get("reason")) for ph in s["phases"]}
    assert status["learn"] == ("ok", None) and status["resume"] == ("ok", None)
    assert status["zero3"] == ("skipped", "needs CUDA (--device cpu dry run)")
    assert status["matrix"] == ("skipped", "not in --phases")
    assert s["verdict"] == "PASS" and not s["failures"]
    text = (out / "summary.txt").read_text()
    assert "gpu-check on cpu" in text and "skipped fsdp2" in text and "| learn |" in text
