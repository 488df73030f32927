"""grpo-plugins' GRPOTrainer vs TRL's GRPOTrainer under identical settings, in one script.

    pip install -e ".[bench]"          # trl
    python benchmarks/trainer_vs_trl.py [--steps 10] [--hidden 256] [--layers 4]

Builds one tiny Llama-style model (character tokenizer) on disk, then trains it in two fresh
processes, one per trainer, with the same settings: G=8 completions for each of 4 prompts per step,
64 new tokens, beta=0.04 (so both load a reference model), loss_type dapo, lr 1e-5 constant, AdamW
(0.9, 0.999), grad clip 1.0, one micro-batch of 32, float32 on CPU / bf16 on CUDA, and the same
reward with variance (the share of digits in the completion). Both run with gradient checkpointing
on (TRL's default) and off; grpo-plugins also runs without checkpointing in micro-batches of 8
(length-sorted, padding trimmed), its memory-saving alternative, and once with its lean decoder
off (rollouts through the model's own forward) to show what that decoder buys. Prints median seconds per optimizer
step (after warm-up steps), completion tokens per second and peak memory (RSS growth during training
on CPU, peak allocated on CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import reset_peak, status_mb

G, PROMPTS, NEW_TOKENS, BETA, LR = 8, 4, 64, 0.04, 1e-5


def digit_share(prompts, completions, **kwargs):
    """Share of digit characters in each completion: varies within every group."""
    return [sum(c.isdigit() for c in text) / max(len(text), 1) for text in completions]


def build(out: Path, hidden: int, layers: int) -> None:
    from grpo_plugins.grpo import tiny

    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(tokenizer, hidden_size=hidden, layers=layers, heads=max(1, hidden // 64), seed=0)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    rows = tiny.build_data(n_train=256, n_eval=1, n_sft=1, carry_slip=0.0, seed=0)["train"]
    with open(out / "train.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"prompt": r["prompt"], "answer": r["answer"]}) + "\n")


def _reset_peak() -> None:
    """Start measuring: reset the CUDA peak and the process's RSS high-water mark; note the RSS now."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _START["rss_mb"] = reset_peak()


_START: dict[str, float] = {}


def _peak() -> dict:
    import torch

    out = {"peak_rss_mb": status_mb("VmHWM"), "start_rss_mb": _START.get("rss_mb", float("nan"))}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_ours(d: Path, steps: int, gc: bool, micro: int | None = None, lean: bool = True) -> dict:
    import torch

    from grpo_plugins import PluginManager, function_reward, hookimpl
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer

    class Plugin:
        @hookimpl
        def register_rewards(self, register):
            register(function_reward(digit_share))

    manager = PluginManager(load_entrypoints=False)
    manager.register(Plugin(), name="bench")
    cfg = TrainConfig.model_validate({
        "model": {"name_or_path": str(d / "model"), "gradient_checkpointing": gc},
        "data": {"train": str(d / "train.jsonl"), "chat_template": False},
        "rollout": {"num_generations": G, "max_new_tokens": NEW_TOKENS, "temperature": 1.0, "lean": lean},
        "train": {"steps": steps, "prompts_per_step": PROMPTS, "learning_rate": LR, "beta": BETA, "micro_batch_size": micro,
                  "loss_type": "dapo", "adam_betas": [0.9, 0.999], "max_grad_norm": 1.0, "seed": 0},
        "log": {"run_dir": str(d / "ours-run"), "progress": False, "tensorboard": False, "samples": 0},
        "checkpoint": {"every": 0},
        "rewards": [{"name": "digit_share"}],
    })
    trainer = GRPOTrainer(cfg, manager)
    trainer.reset_reference()
    _reset_peak()
    times, tokens, phases = [], [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        m = trainer.train_step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        tokens.append(m["completions/mean_length"] * G * PROMPTS)
        phases.append({k: m[k] for k in ("time/generate", "time/score", "time/train")})
    return {"times": times, "tokens": tokens, "phases": phases, **_peak()}


def run_trl(d: Path, steps: int, gc: bool) -> dict:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    cuda = torch.cuda.is_available()
    times, tokens = [], []

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            _reset_peak()

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                tokens.append(logs["completions/mean_length"] * G * PROMPTS)

    args = GRPOConfig(
        output_dir=str(d / "trl-run"), per_device_train_batch_size=G * PROMPTS, gradient_accumulation_steps=1,
        num_generations=G, max_completion_length=NEW_TOKENS, temperature=1.0, beta=BETA, loss_type="dapo",
        learning_rate=LR, lr_scheduler_type="constant", adam_beta1=0.9, adam_beta2=0.999, max_grad_norm=1.0,
        max_steps=steps, logging_steps=1, save_strategy="no", report_to="none", seed=0, use_cpu=not cuda,
        bf16=cuda, disable_tqdm=True, gradient_checkpointing=gc)
    model = AutoModelForCausalLM.from_pretrained(d / "model")
    tok = AutoTokenizer.from_pretrained(d / "model")
    ds = load_dataset("json", data_files=str(d / "train.jsonl"), split="train")
    trainer = GRPOTrainer(model=model, reward_funcs=[digit_share], args=args, train_dataset=ds,
                          processing_class=tok, callbacks=[Timer()])
    trainer.train()
    return {"times": times, "tokens": tokens, **_peak()}


def summarise(name: str, r: dict, warmup: int) -> dict:
    t = r["times"][warmup:] or r["times"]
    tok = r["tokens"][warmup:] or r["tokens"]
    med = statistics.median(t)
    return {"trainer": name, "median_s_per_step": med, "tokens_per_s": statistics.mean(tok) / med,
            "mean_completion_tokens": statistics.mean(tok) / (G * PROMPTS), "peak_rss_mb": r["peak_rss_mb"],
            "rss_growth_mb": r["peak_rss_mb"] - r["start_rss_mb"],
            "peak_cuda_mb": r.get("peak_cuda_mb")}


# (label, worker, gradient checkpointing, micro-batch size, lean decoder): like-for-like pairs first
VARIANTS = [
    ("grpo-plugins", "ours", True, None, True),
    ("TRL GRPOTrainer", "trl", True, None, False),
    ("grpo-plugins", "ours", False, None, True),
    ("TRL GRPOTrainer", "trl", False, None, False),
    ("grpo-plugins", "ours", False, 8, True),
    ("grpo-plugins, model's forward", "ours", False, None, False),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the median")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="only the first pair (TRL's default: checkpointing on)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run the variants this many times, interleaved; report each one's fastest median "
                         "(on a shared machine the slower runs measure the neighbours)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads in every worker (default: torch's)")
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--gc", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--micro", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--lean", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        if a.worker == "ours":
            r = run_ours(Path(a.dir), a.steps, bool(a.gc), a.micro or None, bool(a.lean))
        else:
            r = run_trl(Path(a.dir), a.steps, bool(a.gc))
        print("RESULT " + json.dumps(r), flush=True)
        return
    variants = VARIANTS[:2] if a.quick else VARIANTS
    best: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        build(d, a.hidden, a.layers)
        for k, (label, worker, gc, micro, lean) in [(k, v) for _ in range(a.repeats) for k, v in enumerate(variants)]:
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            cmd = [sys.executable, __file__, "--worker", worker, "--dir", str(d), "--steps", str(a.steps),
                   "--gc", str(int(gc)), "--micro", str(micro or 0), "--lean", str(int(lean))]
            cmd += ["--threads", str(a.threads)] if a.threads else []
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if p.returncode or line is None:
                sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
                raise SystemExit(f"{label} failed (exit {p.returncode})")
            row = {**summarise(label, json.loads(line[7:]), a.warmup), "gradient_checkpointing": gc,
                   "micro_batch": micro or G * PROMPTS, "lean_decoder": lean and worker == "ours"}
            if k not in best or row["median_s_per_step"] < best[k]["median_s_per_step"]:
                best[k] = row
    rows = [best[k] for k in sorted(best)]
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; G={G}, {PROMPTS} prompts/step, {NEW_TOKENS} new tokens, beta={BETA}, "
          f"hidden={a.hidden}, layers={a.layers}, threads={a.threads or 'default'}, "
          f"{a.steps} steps (median of the last {a.steps - a.warmup}), best of {a.repeats} interleaved run(s)")
    mem = "peak CUDA MB |" if cuda else "peak RSS MB | RSS growth in training MB |"
    print(f"| trainer | rollout decoder | grad. checkpointing | micro-batch | s/step (median) | completion tokens/s | {mem}")
    print("|---|---|---|---|---|---|---|" + ("" if cuda else "---|"))
    for r in rows:
        m = f"{r['peak_cuda_mb']:.0f}" if cuda else f"{r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f}"
        decoder = "lean" if r["lean_decoder"] else ("model forward" if r["trainer"].startswith("grpo") else "generate()")
        print(f"| {r['trainer']} | {decoder} | {'on' if r['gradient_checkpointing'] else 'off'} | {r['micro_batch']} | "
              f"{r['median_s_per_step']:.3f} | {r['tokens_per_s']:.0f} | {m} |")
    pairs = [(0, 1, "checkpointing on, like for like"), (2, 3, "checkpointing off, like for like"),
             (4, 1, "micro-batches of 8 without checkpointing vs TRL's default (checkpointing on)")]
    for i, j, what in pairs:
        if i < len(rows) and j < len(rows):
            print(f"step time ratio ours / TRL, {what}: {rows[i]['median_s_per_step'] / rows[j]['median_s_per_step']:.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
