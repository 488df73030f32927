"""What the rescore cache saves: ``rescore`` of a stored run with an empty cache against the same
``rescore`` with the unchanged ``math`` reward (every row a cache hit).

    python benchmarks/rescore_cache.py [--rows 100000] [--repeats 3] [--json OUT]

The run dir is synthetic and deterministic (seed 0), written to a temp dir: ``config.yaml`` with the
``math`` reward and ``samples.jsonl`` rows as the trainer writes them (grpo_plugins/grpo/metrics.py
``sample_rows``: the gold column, prompt, completion, rewards, reward, advantage, status, provenance).
Completions mix the statuses a training run sees: correct and wrong boxed answers, answers in words,
fractions against decimal golds, a few symbolic answers (the worker pool decides those) and no answer.
Fresh and cached runs are interleaved (fresh, cached, fresh, cached, ...) so the machine's load
falls on both alike; each fresh run starts from a deleted cache, each cached run reads the cache
the first fresh run filled. Reported: best and median seconds of each and cached/fresh (target < 5%).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from grpo_plugins.host import RewardHost
from grpo_plugins.rescore import rescore
from grpo_plugins.rewards import RewardConfig

TARGET = 0.05


def completion(rng: random.Random, a: int, b: int) -> tuple[str, str, str]:
    """(gold, completion, status) for one rollout of "what is a/b?"-style questions."""
    kind = rng.random()
    if kind < 0.45:
        gold = str(a + b)
        ans = gold if rng.random() < 0.7 else str(a + b + rng.choice([-10, -1, 1, 10]))
        text = f"We add {a} and {b}, carrying where needed.\nSo the answer is $\\boxed{{{ans}}}$."
        return gold, text, "correct" if ans == gold else "incorrect"
    if kind < 0.65:
        gold = str(a * b)
        ans = gold if rng.random() < 0.6 else str(a * b + rng.randint(1, 9))
        return gold, f"{a} times {b}: {a}*{b} = {ans}. The final answer is {ans}.", (
            "correct" if ans == gold else "incorrect")
    if kind < 0.8:
        gold = f"{a / 4:g}"
        ok = rng.random() < 0.7
        ans = f"\\frac{{{a}}}{{4}}" if ok else f"\\frac{{{a + 1}}}{{4}}"
        return gold, f"Split {a} into 4 equal parts: $\\boxed{{{ans}}}$", "correct" if ok else "incorrect"
    if kind < 0.85:
        gold = f"{a}\\sqrt{{2}}"
        ok = rng.random() < 0.5
        ans = f"\\sqrt{{{2 * a * a}}}" if ok else f"\\sqrt{{{2 * a * a + 1}}}"
        return gold, f"The diagonal is $\\boxed{{{ans}}}$.", "correct" if ok else "incorrect"
    gold = str(a - b)
    return gold, "Let me think about these two numbers... I am not sure how to go on.", "no_answer"


def write_run(run_dir: Path, rows: int, seed: int = 0) -> None:
    """``config.yaml`` + ``samples.jsonl`` of ``rows`` scored rollouts (groups of 8 per prompt)."""
    config = {"rewards": [{"name": "math", "weight": 1.0}]}
    with RewardHost([RewardConfig(**config["rewards"][0])]) as host:
        provenance = host.provenance
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "reward_provenance": provenance}))
    rng = random.Random(seed)
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rows):
            if i % 8 == 0:
                a, b = rng.randint(10, 999), rng.randint(10, 999)
            gold, text, status = completion(rng, a, b)
            value = 1.0 if status == "correct" else 0.0
            fh.write(json.dumps({"answer": gold, "prompt": f"Question {i // 8}: work with {a} and {b}.",
                                 "completion": text, "rewards": {"math": value}, "reward": value,
                                 "advantage": 0.0, "status": {"math": status}, "provenance": provenance,
                                 "step": 1 + i // 1024}) + "\n")


def timed(run_dir: Path, cache: Path) -> tuple[float, object]:
    """Seconds of one ``rescore`` of ``run_dir`` with ``cache``, and its report."""
    t0 = time.perf_counter()
    report = rescore(run_dir, "math", {}, cache=cache)
    return time.perf_counter() - t0, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="stored rows (default 10^5)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh and cached runs each, interleaved")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write_run(run_dir, args.rows)
        filled = run_dir / "filled.sqlite"
        fresh, cached = [], []
        for i in range(args.repeats):
            empty = filled if i == 0 else run_dir / f"empty{i}.sqlite"  # a new file: nothing cached
            secs, report = timed(run_dir, empty)
            assert report.scored == args.rows and report.cached == 0, report.as_dict()
            fresh.append(secs)
            secs, hit = timed(run_dir, filled)
            assert hit.cached == args.rows and hit.scored == 0, hit.as_dict()
            cached.append(secs)
    # the cache gives the verifier's verdicts, and those are the stored ones (the generator knows each status)
    assert hit.statuses == report.statuses and hit.changed == report.changed == [], (report.changed[:3], hit.changed[:3])
    out = {"rows": args.rows, "repeats": args.repeats, "fresh_s": fresh, "cached_s": cached,
           "fresh_best_s": min(fresh), "fresh_median_s": statistics.median(fresh),
           "cached_best_s": min(cached), "cached_median_s": statistics.median(cached),
           "ratio_best": min(cached) / min(fresh),
           "ratio_median": statistics.median(cached) / statistics.median(fresh),
           "changed": len(report.changed), "statuses": {k: v[1] for k, v in report.statuses.items()}}
    print(f"rescore 'math' of {args.rows} rows, {args.repeats} interleaved repeats each")
    print(f"fresh (empty cache): best {out['fresh_best_s']:.3f} s, median {out['fresh_median_s']:.3f} s "
          f"({args.rows / out['fresh_best_s']:.0f} rows/s)")
    print(f"cached (all hits):   best {out['cached_best_s']:.3f} s, median {out['cached_median_s']:.3f} s "
          f"({args.rows / out['cached_best_s']:.0f} rows/s)")
    print(f"ratio cached/fresh: best {out['ratio_best']:.2%}, median {out['ratio_median']:.2%} "
          f"(target < {TARGET:.0%}); verdicts changed vs stored: {out['changed']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
