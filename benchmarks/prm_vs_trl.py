"""PRM training throughput and peak memory: grpo_prm.train against TRL's PRMTrainer on the same
tiny model and data, each run in its own process; plus PRM scoring throughput (steps/s).

    python benchmarks/prm_vs_trl.py --trl-path .bench/trl-1.13

TRL removed PRMTrainer after 1.13.0 (huggingface/trl#7133). Install that version beside the
project's own TRL without touching it:

    pip install --no-deps --target .bench/trl-1.13 trl==1.13.0
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import status_mb

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_records(n: int, seed: int) -> list[dict]:
    """TRL-format multi-step arithmetic chains; a step is wrong with probability 0.3, later steps too."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = rng.randint(1, 99)
        steps, labels, ok = [], [], True
        for _ in range(rng.randint(2, 10)):
            op, x = rng.choice("+-*"), rng.randint(1, 9)
            right = {"+": value + x, "-": value - x, "*": value * x}[op]
            good = rng.random() > 0.3
            result = right if good else right + rng.choice([-2, -1, 1, 2])
            steps.append(f"{value} {op} {x} = {result}")
            ok = ok and good
            labels.append(ok)
            value = result
        out.append({"prompt": f"Apply the operations in order, starting from {steps[0].split()[0]}.\n",
                    "completions": steps, "labels": labels})
    return out


def setup(work: Path, a) -> None:
    """Build the tiny PRM and the train/eval data once, shared by both trainers."""
    from grpo_prm.model import StepFormat
    from grpo_prm.tiny import build_tiny_prm

    build_tiny_prm(work / "init", hidden_size=a.hidden, layers=a.layers, heads=4, seed=0,
                   step_format=StepFormat(split="newline", separator="\n"))
    for name, n, seed in (("train", a.examples, 0), ("eval", a.eval_examples, 1)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in make_records(n, seed)))


def worker_ours(work: Path, a) -> dict:
    """Train with grpo_prm.train; then score the held-out set to measure steps/s."""
    from grpo_prm.data import load_examples
    from grpo_prm.model import ProcessRewardModel
    from grpo_prm.train import PRMTrainOptions, train_prm

    train = load_examples(work / "train.jsonl", separator="\n")
    rss0 = status_mb("VmRSS")
    opts = PRMTrainOptions(epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.lr, max_length=a.max_length,
                           labels="hard", seed=0, group_by_length=not a.no_group_by_length)
    m = train_prm(work / "init", work / "ours", train, opts, eval_examples=[])
    peak = peak_rss_mib()
    held = load_examples(work / "eval.jsonl", separator="\n")
    prm = ProcessRewardModel.load(work / "ours", max_length=a.max_length)
    items = [(e.prompt, e.completion, e.spans) for e in held]
    t0 = time.perf_counter()
    prm.score(items, batch_size=64)
    dt = time.perf_counter() - t0
    return {"tokens": m["train/tokens"], "seconds": m["train/seconds"], "peak_rss_mib": peak,
            "train_rss_delta_mib": peak - rss0, "loss_last": m["train/loss_last"],
            "score_steps_per_s": sum(len(e.spans) for e in held) / dt}


def worker_trl(work: Path, a) -> dict:
    """Train with TRL's PRMTrainer (TokenClassification loss on 0/1 step labels)."""
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    try:
        from trl.experimental.prm import PRMConfig, PRMTrainer
    except ImportError:
        from trl import PRMConfig, PRMTrainer

    records = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    model = AutoModelForTokenClassification.from_pretrained(work / "init", num_labels=2)
    tok = AutoTokenizer.from_pretrained(work / "init")
    args = PRMConfig(output_dir=str(work / "trl_out"), per_device_train_batch_size=a.batch_size,
                     num_train_epochs=a.epochs, learning_rate=a.lr, max_length=a.max_length, step_separator="\n",
                     logging_steps=10**9, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=not a.cuda,
                     dataloader_num_workers=0, seed=0, lr_scheduler_type="constant", warmup_steps=0,
                     max_grad_norm=1.0, weight_decay=0.0)
    trainer = PRMTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tok)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * a.epochs
    rss0 = status_mb("VmRSS")
    t0 = time.perf_counter()
    out = trainer.train()
    dt = time.perf_counter() - t0
    peak = peak_rss_mib()
    return {"tokens": tokens, "seconds": dt, "peak_rss_mib": peak, "train_rss_delta_mib": peak - rss0,
            "loss_last": out.training_loss}


def run_worker(kind: str, work: Path, a) -> dict:
    """One measurement in a fresh process, so peak memory is that trainer's alone."""
    cmd = [sys.executable, __file__, "--worker", kind, "--work", str(work), *a.passthrough]
    env = None
    if kind == "trl" and a.trl_path:
        import os

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(a.trl_path).resolve()),
                                                             os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--eval-examples", type=int, default=500)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-group-by-length", action="store_true", help="ablation: random batches, as TRL makes")
    p.add_argument("--trl-path", default=None, help="directory holding trl<=1.13 (PRMTrainer), put first on sys.path")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.passthrough = [f"--epochs={a.epochs}", f"--batch-size={a.batch_size}", f"--lr={a.lr}",
                     f"--max-length={a.max_length}", f"--threads={a.threads}"] + (
        ["--no-group-by-length"] if a.no_group_by_length else [])

    import torch

    a.cuda = torch.cuda.is_available()
    if a.worker:
        torch.set_num_threads(a.threads)
        torch.manual_seed(0)
        result = (worker_ours if a.worker == "ours" else worker_trl)(Path(a.work), a)
        if a.cuda:
            result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup(work, a)
        runs = {"ours": [], "trl": []}
        for _ in range(a.repeats):  # interleaved, so drifting machine load hits both alike
            for kind in ("ours", "trl"):
                runs[kind].append(run_worker(kind, work, a))
    summary = {}
    for kind, rs in runs.items():
        # on a shared machine the fastest run is the least disturbed one; the median is shown too
        summary[kind] = {"tokens_per_s": max(r["tokens"] / r["seconds"] for r in rs),
                         "tokens_per_s_median": statistics.median(r["tokens"] / r["seconds"] for r in rs),
                         "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rs),
                         "train_rss_delta_mib": statistics.median(r["train_rss_delta_mib"] for r in rs),
                         "tokens": rs[0]["tokens"], "runs": rs}
    summary["ours"]["score_steps_per_s"] = max(r["score_steps_per_s"] for r in runs["ours"])
    speedup = summary["ours"]["tokens_per_s"] / summary["trl"]["tokens_per_s"]
    summary["speedup"] = speedup
    summary["settings"] = {k: getattr(a, k) for k in ("examples", "epochs", "batch_size", "lr", "max_length",
                                                      "hidden", "layers", "threads", "repeats")}
    print("| trainer | tokens/s (best) | tokens/s (median) | peak RSS (MiB) | RSS growth in training (MiB) |\n"
          "|---|---|---|---|---|")
    for kind, label in (("ours", "grpo_prm.train"), ("trl", "TRL PRMTrainer")):
        s = summary[kind]
        print(f"| {label} | {s['tokens_per_s']:,.0f} | {s['tokens_per_s_median']:,.0f} | {s['peak_rss_mib']:,.0f} | "
              f"{s['train_rss_delta_mib']:,.0f} |")
    print(f"\nspeedup (best runs) {speedup:.2f}x; PRM scoring {summary['ours']['score_steps_per_s']:,.0f} steps/s")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
