"""Replay buffer at scale: the segment-file buffer (grpo_plugins.replay) against the single-file
buffer it replaced (commit 657cd7f, run from a temp module in the same run), with 1 KB records.

Per size N: a buffer filled with N records, then ``--repeats`` rounds, each of: appends below
capacity (the buffer opened with a capacity above its size, so nothing is evicted) and appends at
capacity (opened with capacity N, so every append evicts), one fsync per record and in batches of
``--batch``, both at size N; then open time and peak RSS of a fresh process opening the full buffer,
and the time to draw ``--sample`` random records. Every measurement runs in its own worker process;
the two buffers and the two kinds of round alternate, so load on a shared machine hits them alike.
The table gives the median (best in brackets).

    python benchmarks/replay_scale.py --sizes 10000 100000 1000000 --out docs/benchmarks/replay-results.json

The old buffer rewrites its whole file on every append at capacity, so its at-capacity phases stop
after ``--old-seconds`` (at least one operation). Disk use: about 2.3 GB at N = 10^6 (both buffers);
everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "657cd7f"


_TEXT = "".join(random.Random(0).choice("abcdefghij klmnop, 0123456789") for _ in range(1 << 16))


def record(i: int) -> dict:
    """A ~1 KB labelled rollout (the JSON line is ~1.1 KB with provenance), unique per ``i``."""
    at = (i * 7919) % (len(_TEXT) - 900)
    text = _TEXT[at : at + 900]
    return {"prompt": f"Problem {i}: what is {i} + {i % 97}?", "completion": text,
            "steps": [[0, 300, 1.0], [300, 600, 0.5], [600, 900, 0.0]], "hard": [1.0, 1.0, 0.0], "outcome": False}


def load_impl(name: str, tmp: Path):
    if name == "new":
        from grpo_plugins import replay
        return replay
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:grpo_plugins/cycle/replay.py"],
                         check=True, capture_output=True, text=True).stdout
    path = tmp / "old_replay.py"
    path.write_text(src.replace("from ..io import fsync_dir", "from grpo_plugins.io import fsync_dir"))
    sys.path.insert(0, str(tmp))
    import old_replay
    return old_replay


# --- worker side: one measurement per process -----------------------------------------------------

def open_buffer(impl, root: str, capacity: int):
    return impl.ReplayBuffer(root, capacity=capacity)


def worker(a) -> dict:
    from procmem import reset_peak, status_mb

    tmp = Path(a.dir)
    impl = load_impl(a.impl, tmp)
    if a.task == "open":
        base = reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        buf = open_buffer(impl, a.root, a.n)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = status_mb("VmHWM")
        assert len(buf) == a.n, (len(buf), a.n)
        t0 = time.perf_counter()
        if a.impl == "new":
            got = buf.sample(a.sample, seed=a.seed)
        else:
            got = random.Random(a.seed).sample(buf.records(), a.sample)
        sample_s = time.perf_counter() - t0
        assert len(got) == a.sample and all("completion" in e.record for e in got)
        buf.close()
        return {"open_s": seconds, "open_cpu_s": cpu, "peak_rss_mb": peak, "base_rss_mb": base, "sample_s": sample_s}
    at_capacity = a.task == "at"
    buf = open_buffer(impl, a.root, a.n if a.task in ("fill", "at") else a.n * 2)
    start = a.start
    if a.task == "fill":  # untimed set-up: batches of 1000 up to `upto`
        t0 = time.perf_counter()
        for s in range(start, a.upto, 1000):
            buf.extend([record(i) for i in range(s, min(s + 1000, a.upto))])
        buf.close()
        return {"fill_s": time.perf_counter() - t0}
    assert len(buf) >= a.n, (len(buf), a.n, a.task)  # the old buffer evicts on its first append, not at open
    singles, t_single = 0, 0.0
    budget = a.old_seconds if a.impl == "old" and at_capacity else float("inf")
    recs = [record(i) for i in range(start, start + a.singles)]
    for r in recs:
        t0 = time.perf_counter()
        assert buf.append(r)
        t_single += time.perf_counter() - t0
        singles += 1
        if t_single >= budget:
            break
    start += a.singles
    batches, t_batch = 0, 0.0
    for b in range(a.batches):
        recs = [record(i) for i in range(start + b * a.batch, start + (b + 1) * a.batch)]
        t0 = time.perf_counter()
        assert buf.extend(recs) == a.batch
        t_batch += time.perf_counter() - t0
        batches += 1
        if t_batch >= budget:
            break
    assert len(buf) == a.n if at_capacity else len(buf) > a.n  # exact capacity; nothing evicted below it
    buf.close()
    return {"single_per_s": singles / t_single, "batched_per_s": batches * a.batch / t_batch, "singles": singles,
            "batches": batches}


# --- driver side ------------------------------------------------------------------------------------

def run_worker(task: str, impl: str, root: Path, n: int, tmp: Path, a, **kw) -> dict:
    args = [sys.executable, __file__, "--worker", task, "--impl", impl, "--root", str(root), "--n", str(n),
            "--dir", str(tmp), "--singles", str(a.singles), "--batches", str(a.batches), "--batch", str(a.batch),
            "--sample", str(a.sample), "--old-seconds", str(a.old_seconds)]
    for k, v in kw.items():
        args += [f"--{k}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "benchmarks")})
    if out.returncode:
        raise RuntimeError(f"worker {task} {impl} n={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def progress(msg: str) -> None:
    print(f"[replay_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_size(n: int, a, tmp: Path) -> dict:
    impls = ["new", "old"]
    per_round = a.singles + a.batches * a.batch
    if per_round >= n:
        raise SystemExit(f"--sizes {n}: too small for rounds of {per_round} appends")
    roots = {i: tmp / f"{i}-{n}" for i in impls}
    res: dict = {i: {"below": [], "at": [], "open": []} for i in impls}
    try:
        for i in impls:
            progress(f"n={n} {i}: filling to {n}")
            res[i]["fill_s"] = run_worker("fill", i, roots[i], n, tmp, a, start=0, upto=n)["fill_s"]
        nxt = 10**9  # fresh records for every round
        for r in range(a.repeats):
            for kind in ("below", "at"):
                for i in impls:
                    progress(f"n={n} {i}: {kind} capacity, round {r + 1}")
                    res[i][kind].append(run_worker(kind, i, roots[i], n, tmp, a, start=nxt))
                nxt += per_round
        for r in range(a.repeats):
            for i in impls:
                progress(f"n={n} {i}: open, round {r + 1}")
                res[i]["open"].append(run_worker("open", i, roots[i], n, tmp, a, seed=r))
        for i in impls:
            res[i]["disk_mb"] = sum(p.stat().st_size for p in roots[i].rglob("*") if p.is_file()) / 2**20
    finally:
        for p in roots.values():
            shutil.rmtree(p, ignore_errors=True)
    return res


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def med_best(values: list[float], best=max) -> str:
    return f"{_num(statistics.median(values))} ({_num(best(values))})"


def table(results: dict) -> str:
    rows = ["| N | buffer | single below /s | single at cap /s | below/at | batched below /s | batched at cap /s "
            "| below/at | open s | open peak RSS MB | sample s | disk MB |", "|" + "---|" * 12]
    for n, res in results.items():
        for i in ("new", "old"):
            r = res[i]
            sb = [x["single_per_s"] for x in r["below"]]
            sa = [x["single_per_s"] for x in r["at"]]
            bb = [x["batched_per_s"] for x in r["below"]]
            ba = [x["batched_per_s"] for x in r["at"]]
            op = [x["open_s"] for x in r["open"]]
            rss = [x["peak_rss_mb"] for x in r["open"]]
            smp = [x["sample_s"] for x in r["open"]]
            rows.append(f"| {int(n):,} | {i} | {med_best(sb)} | {med_best(sa)} | "
                        f"{statistics.median(sb) / statistics.median(sa):.2f}x | {med_best(bb)} | {med_best(ba)} | "
                        f"{statistics.median(bb) / statistics.median(ba):.2f}x | {med_best(op, min)} | "
                        f"{med_best(rss, min)} | {med_best(smp, min)} | {r['disk_mb']:,.0f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--singles", type=int, default=200, help="single-record appends per round")
    p.add_argument("--batches", type=int, default=3, help="batched appends per round")
    p.add_argument("--batch", type=int, default=1000, help="records per batched append")
    p.add_argument("--sample", type=int, default=1000, help="records drawn at random after opening")
    p.add_argument("--old-seconds", type=float, default=10.0, help="time cap of the old buffer's at-capacity phases")
    p.add_argument("--dir", default=None, help="work directory (default: a temp dir, removed at the end)")
    p.add_argument("--out", default=None, help="write the raw results as JSON here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--impl", default="new", help=argparse.SUPPRESS)
    p.add_argument("--root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--upto", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--render", default=None, help="print the table of a results file and exit")
    a = p.parse_args()
    if a.render:
        render(a.render)
        return
    if a.worker:
        a.task = a.worker
        print(json.dumps(worker(a)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="replay-scale-", dir=a.dir))
    results = {}
    try:
        for n in a.sizes:
            results[n] = bench_size(n, a, tmp)
            if a.out:
                Path(a.out).write_text(json.dumps({"argv": sys.argv, "results": results}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(results))


def render(path: str) -> None:
    """Print the table of a results file written by ``--out``."""
    data = json.loads(Path(path).read_text())
    print(table({int(n): r for n, r in data["results"].items()}))


if __name__ == "__main__":
    main()
