"""The `math` reward against Hugging Face math-verify on the same labelled checks.

    pip install -e '.[bench]'        # math-verify
    python benchmarks/math_vs_mathverify.py [--workload 1000] [--cores N]

Two sets: the labelled test cases (tests/test_math_cases.py: every category, both directions) and
a generated GRPO-like workload (integer, fraction and radical answers in the formats models write,
half of them wrong). For each system and set it prints accuracy, false positives (wrong answers
accepted), false negatives, median / mean / p99 / max seconds per check (one check at a time,
gold already parsed, as in a GRPO group), and checks per second with all cores.

math-verify runs as its README shows: ``verify(parse(gold), parse(completion))`` with its default
settings; a plain gold is given as ``\\boxed{gold}`` so that its boxed extraction finds it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def labelled_set() -> list[tuple[str, str, bool]]:
    """(gold, completion, equal) from the test suite's labelled cases."""
    from test_math_cases import CASES

    return [(str(g), c, eq) for _, g, c, eq in CASES]


def workload(n: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    """A GRPO-like mix: integers (most common), fractions, radicals; half right, half wrong."""
    rng = random.Random(seed)
    wrap = [
        lambda a: f"<think>\nAdd the parts, then check.\n</think>\n<answer>\n{a}\n</answer>",
        lambda a: f"<think>Add the parts.</think><answer>{a}</answer>",
        lambda a: f"Step 1: compute. Step 2: simplify.\nThe final answer is $\\boxed{{{a}}}$.",
        lambda a: f"We combine the terms and find the answer is ${a}$.",
    ]
    out = []
    for i in range(n):
        right = rng.random() < 0.5
        kind = rng.random()
        if kind < 0.6:
            g = rng.randint(-50, 5000)
            gold, pred = str(g), str(g if right else g + rng.choice([-1, 1, 10, -10, 100]))
        elif kind < 0.85:
            a, b = rng.randint(1, 30), rng.randint(2, 30)
            while math.gcd(a, b) != 1:
                b += 1
            k = rng.randint(2, 4)
            gold = f"\\frac{{{a}}}{{{b}}}"
            pred = rng.choice([f"\\frac{{{k * a}}}{{{k * b}}}", f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}"]) if right \
                else rng.choice([f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a + 1}}}{{{b}}}"])
        else:
            a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11])
            gold = f"{a}\\sqrt{{{b}}}"
            short = f"{a}\\sqrt{b}" if b < 10 else f"{a}\\sqrt{{{b}}}"  # \sqrt10 would be contested
            pred = rng.choice([f"\\sqrt{{{a * a * b}}}", short]) if right else f"\\sqrt{{{a * a * b + 1}}}"
        out.append((gold, wrap[i % len(wrap)](pred), right))
    return out


# --- the two systems -----------------------------------------------------------------------------

def ours_checker(timeout: float, workers: int | None = None):
    from grpo_math.equivalence import check  # noqa: F401 - imported before timing
    from grpo_math.extract import extract_gold
    from grpo_math.parse import ParseError, parse_answer
    from grpo_math.reward import MathReward
    from grpo_plugins import Sample

    reward = MathReward({"timeout": timeout, **({"workers": workers} if workers else {})})

    def prepare(gold):
        try:
            parse_answer(extract_gold(gold))
        except ParseError:
            pass
        return gold

    def one(gold, completion) -> bool:
        return reward.score([Sample(None, completion, columns={"answer": gold})])[0].info["status"] == "correct"

    def batch(cases, size=256) -> list[bool]:
        out = []
        for s in range(0, len(cases), size):
            res = reward.score([Sample(None, c, columns={"answer": g}) for g, c, _ in cases[s:s + size]])
            out += [r.info["status"] == "correct" for r in res]
        return out

    return reward, prepare, one, batch


def mv_gold(gold: str):
    from math_verify import parse

    return parse(gold if "\\boxed" in gold else f"\\boxed{{{gold}}}")


def mv_one(parsed_gold, completion: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parsed_gold, parse(completion)))
    except Exception:  # noqa: BLE001 - count a crash as "not verified", as TRL does
        return False


def _mv_task(case) -> bool:
    gold, completion = case
    return mv_one(mv_gold(gold), completion)


# --- measurement -------------------------------------------------------------------------------

def summarise(name: str, labels: list[bool], verdicts: list[bool], times: list[float], throughput: float) -> dict:
    n = len(labels)
    times = sorted(times)
    return {
        "system": name,
        "accuracy": sum(v == y for v, y in zip(verdicts, labels)) / n,
        "false_pos": sum(v and not y for v, y in zip(verdicts, labels)),
        "false_neg": sum(y and not v for v, y in zip(verdicts, labels)),
        "median_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * statistics.fmean(times),
        "p99_ms": 1000 * times[min(n - 1, int(0.99 * n))],
        "max_ms": 1000 * times[-1],
        "checks_per_s": throughput,
    }


def run_ours(cases, timeout, cores):
    from grpo_math.parse import parse_answer

    reward, prepare, one, batch = ours_checker(timeout, cores)
    one("\\frac{x}{2}", "\\boxed{0.5x}")  # start the workers before timing (as math-verify imports first)
    parse_answer.cache_clear()
    for g, _, _ in cases:
        prepare(g)
    verdicts, times = [], []
    for g, c, _ in cases:
        t = time.perf_counter()
        verdicts.append(one(g, c))
        times.append(time.perf_counter() - t)
    reward.close()
    # throughput: a fresh reward (empty caches), batches of 256 as a GRPO step sends them
    parse_answer.cache_clear()
    reward, _, one, batch = ours_checker(timeout, cores)
    one("\\frac{x}{2}", "\\boxed{0.5x}")
    t = time.perf_counter()
    batch(cases)
    throughput = len(cases) / (time.perf_counter() - t)
    reward.close()
    return verdicts, times, throughput


def run_mathverify(cases, cores):
    golds = {g: mv_gold(g) for g, _, _ in cases}
    mv_one(golds[cases[0][0]], cases[0][1])
    verdicts, times = [], []
    for g, c, _ in cases:
        t = time.perf_counter()
        verdicts.append(mv_one(golds[g], c))
        times.append(time.perf_counter() - t)
    with mp.get_context("fork").Pool(cores) as pool:
        pool.map(_mv_task, [(cases[0][0], cases[0][1])] * cores)  # warm every worker
        t = time.perf_counter()
        pool.map(_mv_task, [(g, c) for g, c, _ in cases], chunksize=8)
        throughput = len(cases) / (time.perf_counter() - t)
    return verdicts, times, throughput


def table(rows: list[dict]) -> str:
    head = ("| set | system | accuracy | false pos | false neg | median ms | mean ms | p99 ms | max ms "
            "| checks/s (all cores) |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['set']} | {r['system']} | {100 * r['accuracy']:.1f}% | {r['false_pos']} "
                     f"| {r['false_neg']} | "
                     f"{r['median_ms']:.3f} | {r['mean_ms']:.3f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
                     f"{r['checks_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", type=int, default=1000, help="generated GRPO-like checks (default 1000)")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="processes for the throughput run")
    ap.add_argument("--timeout", type=float, default=3.0, help="our per-check bound in seconds (the default)")
    args = ap.parse_args(argv)
    try:
        import math_verify  # noqa: F401
    except ImportError:
        print("math-verify is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    sets = {"labelled": labelled_set(), "workload": workload(args.workload)}
    rows, over_bound = [], 0
    for set_name, cases in sets.items():
        labels = [eq for _, _, eq in cases]
        v, t, tp = run_ours(cases, args.timeout, args.cores)
        over_bound += sum(x > args.timeout + 0.5 for x in t)  # bound plus the kill-and-answer slack
        rows.append({"set": f"{set_name} ({len(cases)})", **summarise("math (this plugin)", labels, v, t, tp)})
        v, t, tp = run_mathverify(cases, args.cores)
        rows.append({"set": f"{set_name} ({len(cases)})", **summarise("math-verify", labels, v, t, tp)})
        print(f"{set_name}: done", file=sys.stderr)
    print(table(rows))
    print(f"\nchecks over the {args.timeout:g} s bound (+0.5 s to kill and answer): {over_bound}; "
          f"cores: {args.cores}; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
