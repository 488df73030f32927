"""The `math` reward against Hugging Face math-verify on the public graders' labelled corpus.

    pip install -e '.[math_verify]'      # math-verify
    python benchmarks/math_vs_mathverify.py [--suite NAME] [--repeats 3] [--json out.json]

The corpus (benchmarks/data/math_grader_corpus.jsonl, built by import_grader_corpus.py) holds the
test cases of Math-Verify and lighteval with their labels exactly as those suites assert them,
the cases of Math-Verify's issue threads, and our own labelled cases. For each system it prints
accuracy, false positives (a wrong answer paid), false negatives, exceptions and the mean / max
time per check, overall, per source suite and per category (one check at a time, as a GRPO
group sends them; the repeats are interleaved and the best and median means are reported).

Systems:
- ``math`` (this plugin): the reward with default options plus the options a case names;
- ``math-verify (tests' config)``: ``verify(parse(gold, targets), parse(pred, targets), ...)`` with the
  extraction targets, precision and flags the case's own test passes (how its suite asserts it);
- ``math-verify (defaults)``: ``verify(parse(gold), parse(pred))`` as its README shows;
- ``math-verify (gold in \\boxed{})``: the same with a plain gold wrapped in ``\\boxed{}`` (as veRL calls it).

Our checks run cold (parse cache and verdict cache cleared before each one), so no case is cheaper
because an earlier suite held the same pair. ``--threads N`` adds the concurrency check: N threads
share one ``math`` reward and each sends batches holding a check that only ends when its worker is
killed; it reports the slowest call against the bound (timeout plus the documented slack).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "benchmarks" / "data" / "math_grader_corpus.jsonl"
IMPORTED = ("math-verify", "lighteval", "math-verify-issues")


def load(path: Path = CORPUS) -> list[dict]:
    """The labelled corpus, one dict per case."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- the systems --------------------------------------------------------------------------------

class Ours:
    """The `math` reward, one instance per distinct option set, one sample per call."""

    name = "math (this plugin)"

    def __init__(self, cold: bool = True):
        from grpo_math.parse import parse_answer
        from grpo_math.reward import MathReward
        from grpo_plugins import Sample

        self._cls, self._sample, self._rewards = MathReward, Sample, {}
        self.cold, self._clear = cold, parse_answer.cache_clear

    def reward(self, options: dict):
        key = json.dumps(options, sort_keys=True)
        if key not in self._rewards:
            self._rewards[key] = self._cls(options)
        return self._rewards[key]

    def check(self, case: dict) -> bool:
        reward = self.reward(case["options"])
        if self.cold:  # no cached parse or verdict: every check pays its full cost, as math-verify does
            self._clear()
            reward._cache.clear()
        r = reward.score([self._sample(None, case["completion"],
                                                             columns={"answer": case["gold"]})])[0]
        if r.info["status"] == "error":
            raise RuntimeError(r.info.get("detail", "error"))
        return r.info["status"] == "correct"

    def close(self):
        for r in self._rewards.values():
            r.close()


class MathVerify:
    """math-verify with the case's own test settings, its defaults, or its defaults with a boxed gold."""

    NAMES = {"config": "math-verify (tests' config)", "default": "math-verify (defaults)",
             "boxed": "math-verify (gold in \\boxed{}, as veRL)"}

    def __init__(self, how: str):
        import math_verify

        self.mv, self.how, self.name = math_verify, how, self.NAMES[how]

    def check(self, case: dict) -> bool:
        mv, gold = self.mv, str(case["gold"])
        if self.how == "boxed" and "\\boxed" not in gold:
            gold = f"\\boxed{{{gold}}}"
        if self.how != "config":
            return bool(mv.verify(mv.parse(gold), mv.parse(case["completion"])))
        cfg = case["config"]
        targets = []
        for t in cfg.get("match_types", ["latex", "expr"]):
            if t == "latex":
                targets.append(mv.LatexExtractionConfig(boxed_match_priority=0))
            elif t == "expr":
                targets.append(mv.ExprExtractionConfig())
            elif t == "NativeLetters":
                targets.append(mv.StringExtractionConfig())
        return bool(mv.verify(mv.parse(gold, targets), mv.parse(case["completion"], targets),
                              float_rounding=cfg.get("precision", 6), strict=cfg.get("strict", True),
                              allow_set_relation_comp=cfg.get("allow_set_relation_comp", False)))

    def close(self):
        pass


def run(system, cases: list[dict]) -> tuple[list[bool], list[float], list[str]]:
    """Verdicts, seconds per check and exceptions (an exception counts as 'not verified')."""
    verdicts, times, errors = [], [], []
    for c in cases:
        t = time.perf_counter()
        try:
            v = system.check(c)
        except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
            v = False
            errors.append(f"{c['id']}: {type(exc).__name__}: {exc}"[:200])
        times.append(time.perf_counter() - t)
        verdicts.append(v)
    return verdicts, times, errors


def summary(cases, verdicts, times) -> dict:
    n = len(cases)
    return {"n": n, "accuracy": sum(v == c["expected"] for v, c in zip(verdicts, cases)) / n,
            "false_pos": sum(v and not c["expected"] for v, c in zip(verdicts, cases)),
            "false_neg": sum(c["expected"] and not v for v, c in zip(verdicts, cases)),
            "mean_ms": 1000 * statistics.fmean(times), "max_ms": 1000 * max(times)}


def groups(cases: list[dict]) -> dict[str, list[int]]:
    """Row indices of every reported group: all, imported, each suite, each category."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cases):
        out["all"].append(i)
        if c["suite"] in IMPORTED:
            out["imported (math-verify + lighteval + issues)"].append(i)
        out[f"suite: {c['suite']}"].append(i)
        out[f"category: {c['category']}"].append(i)
    return out


def concurrency(threads: int, timeout: float, rounds: int = 3) -> dict:
    """Slowest call when ``threads`` threads share one reward, each batch holding a pathological check."""
    import threading

    from grpo_math.reward import MathReward
    from grpo_plugins import Sample

    reward = MathReward({"timeout": timeout})
    reward.score([Sample(None, "\\boxed{\\sin^2 x+\\cos^2 x}", columns={"answer": "1"})])
    spent: list[float] = []
    statuses: list[str] = []
    lock = threading.Lock()

    def run(k):
        for r in range(rounds):
            batch = [Sample(None, "\\boxed{2^{2^{2^{2^{2^{2}}}}}}", columns={"answer": "5"}),
                     Sample(None, f"\\boxed{{(x+{k + r})^2}}", columns={"answer": f"x^2+{2 * (k + r)}x+{(k + r) ** 2}"}),
                     Sample(None, f"\\boxed{{{k}}}", columns={"answer": str(k)})]
            t = time.perf_counter()
            res = reward.score(batch)
            with lock:
                spent.append(time.perf_counter() - t)
                statuses.extend(x.info["status"] for x in res)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    reward.close()
    return {"threads": threads, "timeout_s": timeout, "calls": len(spent), "max_call_s": max(spent),
            "median_call_s": statistics.median(spent), "statuses": {s: statuses.count(s) for s in set(statuses)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--suite", action="append", help="only these suites (repeatable)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats (default 3)")
    ap.add_argument("--ours-only", action="store_true", help="skip math-verify (quick accuracy check)")
    ap.add_argument("--disagreements", action="store_true", help="print every case our reward gets wrong")
    ap.add_argument("--json", dest="json_out", help="also write the rows as JSON here")
    ap.add_argument("--threads", type=int, default=0, help="also run the concurrency check with N threads")
    ap.add_argument("--timeout", type=float, default=3.0, help="our per-check bound for --threads (default 3)")
    args = ap.parse_args(argv)
    cases = [c for c in load(Path(args.corpus)) if not args.suite or c["suite"] in args.suite]
    systems = [Ours()]
    if not args.ours_only:
        try:
            systems += [MathVerify("config"), MathVerify("default"), MathVerify("boxed")]
        except ImportError:
            print("math-verify is not installed: pip install -e '.[math_verify]'", file=sys.stderr)
            return 2
    for s in systems:  # warm-up: imports, worker start, parser tables
        run(s, cases[:5])
    results = {s.name: {"verdicts": None, "means": [], "times": None, "errors": []} for s in systems}
    for rep in range(args.repeats):
        for s in systems:
            v, t, e = run(s, cases)
            r = results[s.name]
            r["verdicts"] = r["verdicts"] or v
            r["means"].append(statistics.fmean(t))
            r["times"] = t if r["times"] is None else [min(a, b) for a, b in zip(r["times"], t)]
            r["errors"] = r["errors"] or e
        print(f"repeat {rep + 1}/{args.repeats} done", file=sys.stderr)
    for s in systems:
        s.close()
    rows = []
    for gname, idx in groups(cases).items():
        sub = [cases[i] for i in idx]
        for s in systems:
            r = results[s.name]
            row = {"group": gname, "system": s.name,
                   **summary(sub, [r["verdicts"][i] for i in idx], [r["times"][i] for i in idx])}
            rows.append(row)
    print("| group | system | n | accuracy | false pos | false neg | mean ms (best of repeats) | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['group']} | {r['system']} | {r['n']} | {r['accuracy']:.3f} | {r['false_pos']} "
              f"| {r['false_neg']} | {r['mean_ms']:.2f} | {r['max_ms']:.0f} |")
    print()
    for s in systems:
        r = results[s.name]
        print(f"{s.name}: exceptions {len(r['errors'])}; mean ms per check over the whole corpus: best "
              f"{1000 * min(r['means']):.2f}, median {1000 * statistics.median(r['means']):.2f}")
        for e in r["errors"][:10]:
            print(f"    {e}")
    if args.disagreements:
        v = results[systems[0].name]["verdicts"]
        for c, got in zip(cases, v):
            if got != c["expected"]:
                print(f"WRONG [{c['suite']}/{c['category']} #{c['id']}] expected {c['expected']}: "
                      f"gold={c['gold']!r} completion={c['completion'][-160:]!r} options={c['options']}")
    conc = None
    if args.threads:
        conc = concurrency(args.threads, args.timeout)
        print(f"\nconcurrency: {conc['threads']} threads share one math reward (timeout {conc['timeout_s']:g} s), "
              f"{conc['calls']} calls of 3 checks each holding one that only ends when its worker is killed: "
              f"slowest call {conc['max_call_s']:.2f} s, median {conc['median_call_s']:.2f} s; statuses "
              f"{conc['statuses']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows, "concurrency": conc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
