"""What monitoring costs a training step: the six built-in monitors' seconds per step against the step.

    python benchmarks/monitor_overhead.py [RUN_DIR] [--repeats 5]

The monitors replay a recorded trainer-demo run (RUN_DIR/metrics.jsonl, default the recorded
``configs/demo.yaml`` run in tests/data/monitors), each step with a scored batch of the demo's size
(16 prompts x 8 completions: ``math`` statuses, a ``math_verify`` verdict, a ``math_steps`` answer
verdict, so every per-sample monitor does its work). Reported: the monitors' mean and worst ms per
step (best of ``repeats`` whole replays) and, with a RUN_DIR, their share of its mean step time
(time/generate + time/score + time/train).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from grpo_plugins import PluginManager, RewardResult
from grpo_plugins.monitors import MonitorHost

ROOT = Path(__file__).resolve().parent.parent
ALL = [{"name": n} for n in ("divergence", "dominance", "length_drift", "disagreement", "inconsistency",
                             "format_collapse")]


def batch(rng: random.Random, n: int = 128) -> dict:
    """A demo-sized scored batch for the per-sample monitors."""
    math = [RewardResult(float(ok), info={"status": "correct" if ok else rng.choice(["incorrect", "no_answer"])})
            for ok in (rng.random() < 0.8 for _ in range(n))]
    verify = [RewardResult(r.value if rng.random() < 0.97 else 1 - r.value) for r in math]
    steps = [RewardResult(steps=[(0, 5, 1.0), (5, 9, 1.0)], info={"answer_agrees": rng.random() < 0.95})
             for _ in range(n)]
    return {"results": {"math": math, "math_verify": verify, "math_steps": steps},
            "granularity": {"math": "outcome", "math_verify": "outcome", "math_steps": "step"}}


def replay_seconds(rows: list[dict], batches: dict) -> list[float]:
    """Seconds of each step's observe() for a fresh host over ``rows``."""
    host = MonitorHost(ALL, PluginManager(load_entrypoints=True, allow=["monitors"]))
    out = []
    for r in rows:
        metrics = {k: v for k, v in r.items() if k != "step"}
        t0 = time.perf_counter()
        host.observe(int(r["step"]), metrics, **batches[r["step"]])
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?", help="a trainer run dir (its metrics.jsonl and step times)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.run_dir) / "metrics.jsonl" if args.run_dir else ROOT / "tests/data/monitors/demo1.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rng = random.Random(0)
    batches = {r["step"]: batch(rng) for r in rows}
    best = min((replay_seconds(rows, batches) for _ in range(args.repeats)), key=sum)
    mean_ms, worst_ms = 1e3 * statistics.fmean(best), 1e3 * max(best)
    print(f"{len(rows)} steps from {path}; 6 monitors, 128 completions a step")
    print(f"monitors: {mean_ms:.2f} ms a step (worst step {worst_ms:.2f} ms; best of {args.repeats} replays)")
    steps = [r["time/generate"] + r["time/score"] + r["time/train"] for r in rows if "time/train" in r]
    if steps:
        step_ms = 1e3 * statistics.fmean(steps)
        print(f"step: {step_ms:.0f} ms mean; monitoring {mean_ms / step_ms:.3%} of it "
              f"(worst step {worst_ms / step_ms:.3%})")


if __name__ == "__main__":
    main()
