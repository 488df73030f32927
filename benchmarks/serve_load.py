"""Reward-server load and ``score`` memory.

Load: requests/s and p50/p99 latency of batches of 64 rows at 1, 8 and 32 concurrent clients, for
the ``format`` and ``math`` rewards, through ``grpo-plugins serve`` on loopback (its own process)
driven by aiohttp clients in another process (the client OpenRLHF and slime use: one
``ClientSession``, ``session.post(url, json=...)``, keep-alive), beside the same batches given to a
RewardHost in this process by the same number of threads. The ratio server/in-process is what
HTTP, JSON and the admission queue cost.
Server and in-process runs are interleaved, ``--repeats`` times each; best and median are reported.

Memory: peak RSS of ``grpo-plugins score --reward format`` on 10^4, 10^5 and 10^6 rows.

    python3 benchmarks/serve_load.py [--seconds 2] [--repeats 3] [--rows 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grpo_plugins import RewardHost
from grpo_plugins.manager import PluginManager
from grpo_plugins.rewards import sample_from_record

REWARDS = {
    "format": [{"name": "format"}],
    "math": [{"name": "math"}],
}


def rows(n: int, seed: int) -> list[dict]:
    """Completions in the think/answer format; answers right, wrong, fractions and decimals mixed."""
    out = []
    for i in range(n):
        k = seed * 1000 + i
        a, b = k % 97 + 1, k % 13 + 2
        forms = [f"{a + b}", f"\\frac{{{a * 2}}}{{2}} + {b}", f"{a + b}.0", f"{a + b + 1}", f"\\boxed{{{a + b}}}"]
        out.append({"prompt": f"{a}+{b}=", "completion": f"<think>adding</think><answer>{forms[k % 5]}</answer>",
                    "answer": str(a + b)})
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def drive(clients: int, seconds: float, call) -> dict:
    """``clients`` threads call ``call(batch)`` back to back for ``seconds``; rps and latency in ms."""
    lat: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(w):
        batch = rows(64, w)
        state = {}
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            ok = call(batch, state)
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat.append(dt)
                else:
                    errors[0] += 1
        state.get("close", lambda: None)()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"rps": len(lat) / wall, "p50": percentile(lat, 0.5) * 1e3, "p99": percentile(lat, 0.99) * 1e3,
            "n": len(lat), "errors": errors[0]}


CLIENT = """
import asyncio, json, sys, time
import aiohttp
sys.path.insert(0, sys.argv[4])
from serve_load import rows

async def main(url, clients, seconds):
    lat, errors = [], 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def worker(w):
            nonlocal errors
            batch = {"rows": rows(64, w)}
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                async with session.post(url + "/score", json=batch) as resp:
                    await resp.read()
                    if resp.status == 200:
                        lat.append(time.perf_counter() - t0)
                    else:
                        errors += 1
        t0 = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.monotonic() - t0
    print(json.dumps({"lat": lat, "wall": wall, "errors": errors}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def drive_http(url: str, clients: int, seconds: float) -> dict:
    """aiohttp clients in a separate process, so the load generator does not share this GIL."""
    r = subprocess.run([sys.executable, "-c", CLIENT, url, str(clients), str(seconds), str(Path(__file__).parent)],
                       capture_output=True, text=True, check=True)
    d = json.loads(r.stdout)
    lat = d["lat"] or [float("nan")]
    return {"rps": len(d["lat"]) / d["wall"], "p50": percentile(lat, 0.5) * 1e3, "p99": percentile(lat, 0.99) * 1e3,
            "n": len(d["lat"]), "errors": d["errors"]}


def start_server(reward: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    import yaml

    cfg = tmp / f"{reward}.yaml"
    cfg.write_text(yaml.safe_dump({"plugins": ["math", "format"], "rewards": REWARDS[reward],
                                   "serve": {"max_concurrency": 4, "max_queue": 128}}))
    proc = subprocess.Popen([sys.executable, "-m", "grpo_plugins", "serve", str(cfg), "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    m = re.search(r"on (http://\S+)", proc.stderr.readline())
    assert m, "server did not start"
    return proc, m.group(1)


def load(args) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for reward in REWARDS:
            proc, url = start_server(reward, Path(tmp))
            host = RewardHost(REWARDS[reward], PluginManager(allow=["math", "format"]))
            try:
                def in_process(batch, state):
                    host.score([sample_from_record(r) for r in batch])
                    return True

                drive_http(url, 4, 1.0)  # warm both: worker pools, caches
                drive(4, 1.0, in_process)
                for clients in args.clients:
                    runs = {"server": [], "in_process": []}
                    for _ in range(args.repeats):
                        runs["server"].append(drive_http(url, clients, args.seconds))
                        runs["in_process"].append(drive(clients, args.seconds, in_process))
                    row = {"reward": reward, "clients": clients}
                    for mode, rs in runs.items():
                        row[mode] = {"rps_best": max(r["rps"] for r in rs),
                                     "rps_median": statistics.median(r["rps"] for r in rs),
                                     "p50_ms_median": statistics.median(r["p50"] for r in rs),
                                     "p99_ms_median": statistics.median(r["p99"] for r in rs),
                                     "errors": sum(r["errors"] for r in rs)}
                    row["ratio_median"] = row["server"]["rps_median"] / row["in_process"]["rps_median"]
                    out.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                host.close()
                proc.terminate()
                proc.wait(60)
    return out


PEAK = """
import resource, sys
from grpo_plugins.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(args) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            inp, res_path = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
            with inp.open("w") as fh:
                for k in range(0, n, 1000):
                    fh.write("".join(json.dumps(r) + "\n" for r in rows(min(1000, n - k), k)))
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-c", PEAK, "score", "--reward", "format", "--input", str(inp),
                                "--output", str(res_path)], capture_output=True, text=True,
                               env={**os.environ, "GRPO_PLUGINS_LOAD": "format"})
            assert r.returncode == 0, r.stderr[-2000:]
            row = {"rows": n, "input_mb": inp.stat().st_size / 2**20, "peak_rss_mb": int(r.stdout.split()[-1]) / 1024,
                   "seconds": time.monotonic() - t0}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    ap.add_argument("--rows", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    print(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}), flush=True)
    if not args.skip_load:
        load_rows = load(args)
        print("\n| reward | clients | server req/s (best / median) | p50 / p99 ms | in-process req/s (best / median) "
              "| p50 / p99 ms | server / in-process |")
        print("|---|---|---|---|---|---|---|")
        for r in load_rows:
            s, h = r["server"], r["in_process"]
            print(f"| {r['reward']} | {r['clients']} | {s['rps_best']:.1f} / {s['rps_median']:.1f} | "
                  f"{s['p50_ms_median']:.1f} / {s['p99_ms_median']:.1f} | {h['rps_best']:.1f} / {h['rps_median']:.1f} | "
                  f"{h['p50_ms_median']:.1f} / {h['p99_ms_median']:.1f} | {r['ratio_median']:.2f} |")
        errs = sum(r["server"]["errors"] for r in load_rows)
        print(f"\nnon-200 answers from the server: {errs}")
    if not args.skip_memory:
        mem = memory(args)
        print("\n| rows | input MB | peak RSS MB | seconds |")
        print("|---|---|---|---|")
        for r in mem:
            print(f"| {r['rows']:,} | {r['input_mb']:.1f} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
