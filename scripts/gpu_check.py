"""The GPU check's driver (scripts/gpu-check.sh runs it): phases of short GRPO runs on ONE GPU, each
run in its own process under the phase's time budget, then a one-page summary (summary.json and
summary.txt in OUT_DIR) that names every phase run, failed or skipped and why.

    python scripts/gpu_check.py all OUT_DIR [--device cuda|cpu] [--phases a,b] [--budget SECONDS]
    python scripts/gpu_check.py run SPEC.json     # one run (what a phase launches)
    python scripts/gpu_check.py trl SPEC.json     # TRL's GRPOTrainer on the same settings

Phases (PHASES): matrix (Llama and Qwen2 x sample / generate / vllm backends, LoRA, gradient
checkpointing, beta > 0, micro-batching, num_iterations 2), fsdp2 and zero3 (single-process
``accelerate launch`` with the repo's configs, beta > 0 and micro-batching, a checkpoint saved through
the engine), multi_eos (a model whose generation config lists two EOS ids), resume (save at step 2,
resume: the same step-3 metrics as the uninterrupted run), train (``train()`` end to end with
evaluation and dynamic sampling), learn (fixed seeds, reward must rise by a margin), trl (TRL on the
same settings, for the timing table). On CUDA a missing vllm or deepspeed fails its phases; with
``--device cpu`` (a dry run of this script, small models) the CUDA-only phases are skipped, saying so.

Models are built on disk (no hub) over the demo's character tokenizer. The reward is the share of
the digit 7 in a completion, which a policy learns within a few steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ARCHS = ("llama", "qwen2")
BUDGET_S = 510  # the whole check, under the 9 minutes it promises (gpu-check.sh's timeout is 540 s)
CPU_SLOWER = 3  # --device cpu: phase budgets (GPU seconds) stretched by this much
LEARN_MARGIN = 0.02  # reward share of 7s: mean of the last 4 steps minus the first 4
SECOND_EOS = "\n"  # multi_eos: the generation config's second stop token


@dataclass
class Phase:
    """One phase: its time budget, what it needs (cuda, vllm, deepspeed) and its runs."""

    name: str
    budget_s: int
    needs: tuple[str, ...] = ()
    runs: list[dict] = field(default_factory=list)


def small() -> bool:
    """The CPU dry run: small models and batches (GPU_CHECK_SMALL=1)."""
    return os.environ.get("GPU_CHECK_SMALL") == "1"


def build_models(root: Path) -> dict[str, Path]:
    """A Llama and a Qwen2 model (bf16 checkpoints, as real ones ship), a two-EOS copy, and the data."""
    import torch
    import transformers as tf

    from grpo_plugins.grpo import tiny

    data = tiny.build(root / "data", n_train=512, n_eval=16, n_sft=8, hidden_size=16, layers=1, heads=1)
    tok = tiny.build_tokenizer()
    common = dict(vocab_size=len(tok), hidden_size=64 if small() else 512, intermediate_size=192 if small() else 1536,
                  num_hidden_layers=2 if small() else 6,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out = {"data": data}
    for arch in ARCHS:
        d = root / arch
        if not (d / "config.json").exists():
            torch.manual_seed(0)
            cls, cfg = (tf.LlamaForCausalLM, tf.LlamaConfig) if arch == "llama" else (tf.Qwen2ForCausalLM, tf.Qwen2Config)
            model = cls(cfg(**common)).to(torch.bfloat16)
            model.save_pretrained(d)
            tok.save_pretrained(d)
        out[arch] = d
    two = root / "llama-two-eos"  # the tokenizer's EOS plus a second one in generation_config.json
    if not (two / "config.json").exists():
        shutil.copytree(out["llama"], two)
        gen = json.loads((two / "generation_config.json").read_text()) if (two / "generation_config.json").exists() else {}
        gen["eos_token_id"] = [tok.eos_token_id, tok.convert_tokens_to_ids(SECOND_EOS)]
        (two / "generation_config.json").write_text(json.dumps(gen))
    out["llama-two-eos"] = two
    return out


def run(arch="llama", backend="sample", lora=False, gc=False, launch="single", **extra) -> dict:
    """One run's spec: the model and engine, plus TrainConfig overrides (beta, micro_batch_size, ...)."""
    name = "-".join([arch, backend, "lora" if lora else "full", "gc" if gc else "nogc", launch]
                    + [f"{k}{v}".replace(".", "p") for k, v in sorted(extra.items()) if k not in ("mode", "train", "eval", "tag")])
    if "tag" in extra:
        name += "-" + extra["tag"]
    return dict(arch=arch, backend=backend, lora=lora, gc=gc, launch=launch, name=name, **extra)


def phases(device: str) -> list[Phase]:
    """Every phase and its runs (vllm runs are listed here; ``plan`` drops them on the CPU)."""
    mb = 4 if small() else 16  # rows per micro-batch: 2 or 4 micro-batches per update
    matrix = []
    for arch in ARCHS:
        matrix += [run(arch, "sample"), run(arch, "sample", lora=True, gc=True, beta=0.04),
                   run(arch, "generate", micro_batch_size=mb), run(arch, "generate", lora=True, gc=True),
                   run(arch, "vllm", lora=arch == "qwen2", beta=0.04 if arch == "llama" else 0.0)]
    matrix.append(run("qwen2", "sample", gc=True, beta=0.04, micro_batch_size=mb, num_iterations=2))
    sharded = dict(beta=0.04, micro_batch_size=mb, save=True)
    return [
        Phase("matrix", 150, runs=matrix),
        Phase("fsdp2", 50, ("cuda",), [run("qwen2", "sample", gc=True, launch="fsdp2", **sharded),
                                       run("llama", "generate", lora=True, launch="fsdp2", tag="lora")]),
        Phase("zero3", 50, ("cuda", "deepspeed"), [run("llama", "sample", launch="zero3", **sharded)]),
        Phase("multi_eos", 35, runs=[run("llama-two-eos", b) for b in ("sample", "generate", "vllm")]),
        Phase("resume", 50, runs=[run("llama", "sample", beta=0.04, mode="resume", tag="resume")]),
        Phase("train", 50, runs=[run("llama", "sample", mode="train", tag="e2e")]),
        Phase("learn", 50, runs=[run("llama", "sample", steps=12, mode="steps", tag="learn")]),
        Phase("trl", 60, ("cuda",), [run("llama", "sample", mode="trl", tag="trl")]),
    ]


def plan(device: str, wanted: list[str] | None, have: dict[str, bool]) -> list[tuple[Phase, str | None, str | None]]:
    """(phase, skip reason, failure reason) per phase: CUDA-only phases skip on the CPU dry run; on CUDA a
    missing vllm or deepspeed is a failure, never a skip."""
    out = []
    for ph in phases(device):
        if wanted is not None and ph.name not in wanted:
            out.append((ph, "not in --phases", None))
            continue
        vllm_runs = [r for r in ph.runs if r["backend"] == "vllm"]
        if device == "cpu":
            if "cuda" in ph.needs:
                out.append((ph, "needs CUDA (--device cpu dry run)", None))
                continue
            ph.runs = [r for r in ph.runs if r["backend"] != "vllm"]  # vLLM needs CUDA: said in the summary
            out.append((ph, None, None))
            continue
        missing = [n for n in ph.needs if n != "cuda" and not have[n]]
        if vllm_runs and not have["vllm"]:
            missing.append("vllm")
        out.append((ph, None, f"{', '.join(missing)} not installed" if missing else None))
    return out


def train_config(spec: dict, paths: dict, run_dir: Path) -> dict:
    """The TrainConfig dict of one run (the same settings as the TRL comparison)."""
    t = small()
    cfg = {
        "model": {"name_or_path": str(paths[spec["arch"]]), "gradient_checkpointing": spec["gc"],
                  "lora": {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
                  if spec["lora"] else None},
        "data": {"train": str(paths["data"] / "train.jsonl")},
        "rollout": {"backend": spec["backend"], "num_generations": 4 if t else 8, "max_new_tokens": 16 if t else 48,
                    "temperature": 1.0, "vllm": {"gpu_memory_utilization": 0.25}},
        "train": {"steps": spec.get("steps", 3 if spec.get("mode") == "resume" else 4), "prompts_per_step": 2 if t else 8,
                  "learning_rate": 3e-4 if spec["lora"] else 5e-5, "beta": spec.get("beta", 0.0), "bf16": "auto",
                  "seed": 0, "num_iterations": spec.get("num_iterations", 1),
                  "micro_batch_size": spec.get("micro_batch_size")},  # bf16 auto = bf16 autocast on CUDA
        "rewards": [{"name": "sevens"}],
        "log": {"run_dir": str(run_dir), "tensorboard": False, "progress": False, "samples": 0},
        "checkpoint": {"every": 2 if spec.get("mode") == "resume" else 0, "keep": 3},
    }
    if spec.get("tag") == "learn":
        cfg["train"]["learning_rate"] = 1e-2 if t else 2e-4
    if spec.get("mode") == "train":  # evaluation before, at step 2 and after; DAPO dynamic sampling
        cfg["data"].update(eval=str(paths["data"] / "test.jsonl"), eval_size=8)
        cfg["eval"] = {"every": 2, "reward": "sevens", "threshold": 0.1, "max_new_tokens": cfg["rollout"]["max_new_tokens"]}
        cfg["train"].update(dynamic_sampling=True)
    return cfg


def _manager():
    from grpo_plugins import PluginManager, Reward, RewardResult, hookimpl

    class Sevens(Reward):
        """Share of the digit 7 in the completion."""

        name = "sevens"

        def score(self, samples):
            return [RewardResult(s.text.count("7") / max(len(s.text), 1)) for s in samples]

    class Plugin:
        @hookimpl
        def register_rewards(self, register):
            register(Sevens)

    manager = PluginManager(load_entrypoints=False)
    manager.register(Plugin(), name="gpu_check")
    return manager


def _metrics(run_dir: Path) -> dict[int, dict]:
    """metrics.jsonl by step; a resumed run's own lines come last, so they win."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "step" in row:
            out[int(row["step"])] = row
    return out


def run_one(spec_file: str) -> None:
    """Train one configuration; write its per-step numbers and checks to spec['out'].rankN.json."""
    import torch

    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.generation import completion_mask, stop_ids
    from grpo_plugins.grpo.trainer import GRPOTrainer

    spec = json.loads(Path(spec_file).read_text())
    cfg = TrainConfig.model_validate(spec["config"])
    trainer = GRPOTrainer(cfg, _manager())
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stops = stop_ids(trainer.tokenizer, trainer.policy)
    checks = {"mask_ok": True, "stop_ids": stops, "ended_at": {str(s): 0 for s in stops}}
    real_generate = trainer.generate

    def checked(rows, **kw):  # every backend's mask must equal the id rule's for the same ids
        batch = real_generate(rows, **kw)
        again, trunc = completion_mask(batch.completion_ids, stops)
        checks["mask_ok"] &= bool(torch.equal(again, batch.mask) and torch.equal(trunc, batch.truncated))
        last = (batch.mask.sum(1) - 1).clamp(min=0)
        for i, n in enumerate(last.tolist()):
            tok = int(batch.completion_ids[i, n])
            if str(tok) in checks["ended_at"] and not bool(batch.truncated[i]):
                checks["ended_at"][str(tok)] += 1
        return batch

    trainer.generate = checked
    steps = []
    result = {"name": spec["name"], "rank": trainer.rank, "engine": trainer.engine}
    if spec.get("mode") in ("train", "resume"):  # train() itself: resume, evaluation, dynamic sampling, export
        t0 = time.perf_counter()
        final = trainer.train()
        result["train_s"] = time.perf_counter() - t0
        result["final"] = {k: v for k, v in final.items() if isinstance(v, (int, float))}
        rows = _metrics(Path(cfg.log.run_dir))
        steps = [{"loss": r["loss"], "reward": r["reward"], "time": r.get("step_time", float("nan")),
                  "gen_tokens_per_s": r.get("tokens_per_second", float("nan"))} for _, r in sorted(rows.items())]
        result["metrics"] = {str(k): v for k, v in rows.items()}
        ev = Path(cfg.log.run_dir) / "eval.json"
        result["eval"] = sorted(json.loads(ev.read_text())) if ev.exists() else []  # before, curve, after
        result["dynamic_sampling_rounds"] = [r.get("dynamic_sampling/rounds") for _, r in sorted(rows.items())]
    else:
        trainer.reset_reference()  # what train() does first: with beta > 0 the reference model (LoRA: adapters off)
        for _ in range(cfg.train.steps):
            sync()
            t0 = time.perf_counter()
            m = trainer.train_step()
            sync()
            steps.append({"loss": m["loss"], "reward": m["reward"], "time": time.perf_counter() - t0,
                          "gen_tokens_per_s": m["tokens_per_second"]})
        if spec.get("save"):
            trainer.save()  # the engine's state-dict path, for real
            result["checkpoint"] = True
    result.update(steps=steps, peak_mem_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan"),
                  **checks)
    Path(f"{spec['out']}.rank{trainer.rank}.json").write_text(json.dumps(result))


def run_trl(spec_file: str) -> None:
    """TRL's GRPOTrainer on the same model, data, reward and settings: step time and peak memory."""
    import torch
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    spec = json.loads(Path(spec_file).read_text())
    c = spec["config"]
    ds = load_dataset("json", data_files=c["data"]["train"], split="train")

    def sevens(completions, **kw):
        return [t.count("7") / max(len(t), 1) for t in completions]

    args = GRPOConfig(output_dir=spec["out"] + ".trl", per_device_train_batch_size=64, num_generations=8,
                      max_completion_length=48, learning_rate=c["train"]["learning_rate"], beta=0.0, bf16=True,
                      max_steps=c["train"]["steps"], logging_steps=1, report_to=[], save_strategy="no",
                      gradient_checkpointing=spec["gc"], seed=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=c["model"]["name_or_path"], reward_funcs=sevens, args=args, train_dataset=ds)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    Path(spec["out"] + ".rank0.json").write_text(json.dumps({
        "name": spec["name"], "trl": True, "step_time": total / max(len(logs), 1),
        "steps": [{"loss": h["loss"], "reward": h.get("reward") or 0.0, "time": total / max(len(logs), 1),
                   "gen_tokens_per_s": float("nan")} for h in logs],
        "mask_ok": True, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30}))


def command(spec: dict, spec_file: Path, repo: Path) -> list[str]:
    """The process one spec runs in: this script, or ``accelerate launch`` with one process."""
    me = str(Path(__file__).resolve())
    verb = "trl" if spec.get("mode") == "trl" else "run"
    if spec["launch"] == "single":
        return [sys.executable, me, verb, str(spec_file)]
    cfg = repo / f"configs/accelerate-{spec['launch']}.yaml"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--num_processes", "1",
            me, verb, str(spec_file)]


def judge(phase: str, spec: dict, res: dict, extra: dict | None = None) -> list[str]:
    """What went wrong in one finished run (empty: every assertion held)."""
    st = res["steps"]
    losses = [s["loss"] for s in st]
    rewards = [s["reward"] for s in st]
    problems = []
    if not st:
        problems.append("no steps")
    if not all(math.isfinite(v) for v in losses):
        problems.append(f"non-finite loss {losses}")
    if not res["mask_ok"]:
        problems.append("a backend's mask disagrees with the id rule")
    if spec["launch"] != "single" and res.get("engine") != spec["launch"]:
        problems.append(f"engine {res.get('engine')!r}, not {spec['launch']}")
    if phase == "multi_eos":
        if len(res["stop_ids"]) != 2:
            problems.append(f"stop ids {res['stop_ids']}: the generation config's second EOS is not used")
        elif res["ended_at"][str(res["stop_ids"][1])] == 0:
            problems.append("no completion ended at the second EOS")
    if phase == "train":
        if res.get("eval") != ["after", "before", "curve"]:
            problems.append(f"eval.json holds {res.get('eval')}, not before, curve (every 2 steps) and after")
        if None in res["dynamic_sampling_rounds"] or not res["dynamic_sampling_rounds"]:
            problems.append("a step without dynamic_sampling/ metrics")
    if phase == "learn" and len(rewards) >= 8:
        rise = sum(rewards[-4:]) / 4 - sum(rewards[:4]) / 4
        if not rise >= LEARN_MARGIN:
            problems.append(f"reward rose {rise:.4f} < margin {LEARN_MARGIN} ({['%.3f' % r for r in rewards]})")
    if phase == "resume" and extra is not None:
        a, b = extra["uninterrupted"], extra["resumed"]
        keys = sorted(k for k in a if isinstance(a[k], float) and k in b and not any(
            w in k for w in ("time", "second", "mem", "elapsed")))
        bad = [k for k in keys if not math.isclose(a[k], b[k], rel_tol=1e-5, abs_tol=1e-7)]
        if not keys or bad:
            problems.append(f"step-3 metrics differ after resume: {[(k, a[k], b[k]) for k in bad] or 'none compared'}")
    return problems


def _launch(spec: dict, out: Path, repo: Path, timeout: float, env: dict) -> tuple[int, str, dict | None]:
    spec_file = out / f"{spec['name']}.spec.json"
    spec_file.write_text(json.dumps(spec))
    if spec["launch"] == "fsdp2":
        from grpo_plugins.grpo.vllm import free_port

        # accelerate turns FSDP on for one process only when it sees a torch.distributed rank (LOCAL_RANK
        # set: MULTI_GPU); without it one GPU is plain single-process training. DeepSpeed needs none
        # (a rank here turns it off on the CPU), and the judge fails a run whose engine is not the one asked
        env = {**env, "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    try:
        p = subprocess.run(command(spec, spec_file, repo), capture_output=True, text=True, timeout=max(timeout, 1), env=env)
        code, tail = p.returncode, (p.stdout + p.stderr)[-1500:]
    except subprocess.TimeoutExpired as e:
        code, tail = 124, f"over the phase budget ({timeout:.0f} s left)\n{(e.stderr or b'')[-800:]!r}"
    f = Path(spec["out"] + ".rank0.json")
    return code, tail, json.loads(f.read_text()) if code == 0 and f.exists() else None


def run_phase(ph: Phase, paths: dict, out: Path, repo: Path, deadline: float, env: dict) -> tuple[list[dict], list[str]]:
    """Run a phase's specs within its budget (and the overall deadline); (table rows, failures)."""
    end = min(time.monotonic() + ph.budget_s * (CPU_SLOWER if small() else 1), deadline)
    rows, failures = [], []
    for spec in ph.runs:
        run_dir = out / "runs" / spec["name"]
        spec = {**spec, "config": train_config(spec, paths, run_dir), "out": str(out / spec["name"])}
        t0 = time.monotonic()
        code, tail, res = _launch(spec, out, repo, end - t0, env)
        extra = None
        if res is not None and spec.get("mode") == "resume":
            # the same run resumed from its step-2 checkpoint must repeat step 3 exactly
            again = out / "runs" / (spec["name"] + "-again")
            shutil.rmtree(again, ignore_errors=True)
            shutil.copytree(run_dir, again, ignore=shutil.ignore_patterns("checkpoint-3", "final"))
            spec2 = {**spec, "name": spec["name"] + "-again", "config": train_config(spec, paths, again),
                     "out": str(out / (spec["name"] + "-again"))}
            code, tail, res2 = _launch(spec2, out, repo, end - time.monotonic(), env)
            if res2 is not None:
                extra = {"uninterrupted": res["metrics"]["3"], "resumed": res2["metrics"]["3"]}
            res = res2 and res
        if res is None:
            failures.append(f"{ph.name}/{spec['name']}: exit {code}")
            print(f"FAIL {ph.name}/{spec['name']} (exit {code})\n{tail}", flush=True)
            continue
        problems = judge(ph.name, spec, res, extra)
        st = res["steps"]
        times = sorted(s["time"] for s in st[1:]) or [float("nan")]
        rows.append({"phase": ph.name, "run": spec["name"], "step_time_s": times[len(times) // 2],
                     "gen_tokens_per_s": sorted(s["gen_tokens_per_s"] for s in st)[len(st) // 2] if st else float("nan"),
                     "peak_gib": res["peak_mem_gib"], "reward_first": st[0]["reward"] if st else None,
                     "reward_last": st[-1]["reward"] if st else None, "wall_s": round(time.monotonic() - t0, 1),
                     "checks": "; ".join(problems) or "ok"})
        failures += [f"{ph.name}/{spec['name']}: {p}" for p in problems]
        print(f"{'ok  ' if not problems else 'FAIL'} {ph.name}/{spec['name']}  {time.monotonic() - t0:.0f}s", flush=True)
    return rows, failures


def summary_text(s: dict) -> str:
    """The one-page text summary (summary.txt)."""
    lines = [f"gpu-check on {s['device']} ({s['gpu']}): {s['verdict']} in {s['wall_s']:.0f} s "
             f"(budget {s['budget_s']} s)", ""]
    for p in s["phases"]:
        why = f": {p['reason']}" if p.get("reason") else ""
        lines.append(f"  {p['status']:7} {p['name']:10} {p.get('wall_s', 0):5.0f} s / {p['budget_s']} s{why}")
    lines += ["", "| phase | run | step s | gen tok/s | peak GiB | reward first -> last | checks |",
              "|---|---|---|---|---|---|---|"]
    for r in s["runs"]:
        lines.append(f"| {r['phase']} | {r['run']} | {r['step_time_s']:.2f} | {r['gen_tokens_per_s']:.0f} | "
                     f"{r['peak_gib']:.2f} | {(r['reward_first'] or 0):.3f} -> {(r['reward_last'] or 0):.3f} | {r['checks']} |")
    lines += [""] + [f"FAIL {f}" for f in s["failures"]]
    return "\n".join(lines) + "\n"


def check_all(out_dir: str, device: str = "cuda", wanted: list[str] | None = None, budget: float = BUDGET_S) -> int:
    """Run the phases; write summary.json / summary.txt; 0 when every phase that ran held."""
    import importlib.util

    import torch

    start = time.monotonic()
    deadline = start + budget * (CPU_SLOWER if device == "cpu" else 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    if device == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", GPU_CHECK_SMALL="1")
        os.environ["GPU_CHECK_SMALL"] = "1"
    elif not torch.cuda.is_available():
        print("gpu-check: FAIL: no CUDA device (torch.cuda.is_available() is False); --device cpu is the dry run")
        return 1
    have = {n: importlib.util.find_spec(n) is not None for n in ("vllm", "deepspeed")}
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "no GPU"
    print(f"device: {device} ({gpu}); vllm: {have['vllm']}; deepspeed: {have['deepspeed']}", flush=True)
    paths = build_models(out / "models")
    summary = {"device": device, "gpu": gpu, "budget_s": budget, "have": have, "phases": [], "runs": [], "failures": []}
    for ph, skip, fail in plan(device, wanted, have):
        entry = {"name": ph.name, "budget_s": ph.budget_s}
        if skip is None and fail is None and time.monotonic() >= deadline:
            fail = "the overall budget was spent before it started"
        if skip is not None or fail is not None:
            entry.update(status="skipped" if skip else "FAILED", reason=skip or fail)
            if fail:
                summary["failures"].append(f"{ph.name}: {fail}")
            print(f"{entry['status']} {ph.name}: {entry['reason']}", flush=True)
        else:
            t0 = time.monotonic()
            rows, failures = run_phase(ph, paths, out, repo, deadline, env)
            entry.update(wall_s=round(time.monotonic() - t0, 1), status="FAILED" if failures else "ok",
                         reason=("vllm runs dropped: vLLM needs CUDA" if device == "cpu" and ph.name in ("matrix", "multi_eos")
                                 else None))
            summary["runs"] += rows
            summary["failures"] += failures
        summary["phases"].append(entry)
    summary["wall_s"] = time.monotonic() - start
    summary["verdict"] = "FAIL" if summary["failures"] else "PASS"
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = summary_text(summary)
    (out / "summary.txt").write_text(text)
    print("\n" + text, flush=True)
    return 1 if summary["failures"] else 0


def main(argv: list[str]) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="gpu_check.py")
    sub = ap.add_subparsers(dest="verb", required=True)
    a = sub.add_parser("all")
    a.add_argument("out_dir")
    a.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    a.add_argument("--phases", help="comma-separated subset of: " + ", ".join(p.name for p in phases("cuda")))
    a.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check")
    for verb in ("run", "trl"):
        sub.add_parser(verb).add_argument("spec")
    args = ap.parse_args(argv)
    if args.verb == "all":
        wanted = args.phases.split(",") if args.phases else None
        unknown = set(wanted or ()) - {p.name for p in phases("cuda")}
        if unknown:
            ap.error(f"unknown phase(s) {sorted(unknown)}")
        return check_all(args.out_dir, args.device, wanted, args.budget)
    (run_one if args.verb == "run" else run_trl)(args.spec)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
