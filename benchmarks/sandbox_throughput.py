"""Sandbox throughput: programs/s and latency percentiles for trivial programs and for 100
function-with-asserts problems, on the warm docker pool, beside a `docker run`-per-program
baseline (same isolation flags), the local bubblewrap backend and a bare subprocess (no isolation).

    python3 benchmarks/sandbox_throughput.py [--parallel 2] [--trivial 200] [--docker-run 40]

Every setup runs the same programs with `--parallel` workers; latency is per program, as a worker
sees it. The docker pool is warmed before timing (a training run pays that once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from grpo_code.backends import create_backend  # noqa: E402
from grpo_sandbox.engine import start_engine  # noqa: E402

TEMPLATES = [
    ("def f(x):\n    return x * {k} + 1", lambda k, x: x * k + 1),
    ("def f(x):\n    return sum(range(x + {k}))", lambda k, x: sum(range(x + k))),
    ("def f(x):\n    s = str(x * {k})\n    return s[::-1]", lambda k, x: str(x * k)[::-1]),
    ("def f(x):\n    return sorted([x, {k}, x - {k}])", lambda k, x: sorted([x, k, x - k])),
    ("def f(x):\n    return [i for i in range(x) if i % {k} == 0]", lambda k, x: [i for i in range(x) if i % k == 0]),
    ("def f(x):\n    a, b = 0, 1\n    for _ in range(x + {k}):\n        a, b = b, a + b\n    return a",
     lambda k, x: _fib(x + k)),
    ("def f(x):\n    return {{i: i * {k} for i in range(x % 5)}}", lambda k, x: {i: i * k for i in range(x % 5)}),
    ("def f(x):\n    return all(x % d for d in range(2, int(x ** 0.5) + 1)) and x > {k} - {k} + 1",
     lambda k, x: all(x % d for d in range(2, int(x ** 0.5) + 1)) and x > 1),
    ("def f(x):\n    return 'ab' * (x % {k})", lambda k, x: "ab" * (x % k)),
    ("def f(x):\n    return max([x, {k}, 7]) - min([x, {k}, 7])", lambda k, x: max([x, k, 7]) - min([x, k, 7])),
]


def _fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def problems(n: int = 100) -> list[tuple[str, str]]:
    """n (solution, asserts) pairs, MBPP-shaped: one function, three asserts each."""
    out = []
    for i in range(n):
        src, ref = TEMPLATES[i % len(TEMPLATES)]
        k = 2 + i // len(TEMPLATES)
        asserts = "".join(f"assert f({x}) == {ref(k, x)!r}\n" for x in (3, 10, 17))
        out.append((src.format(k=k), asserts))
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in milliseconds."""
    s = sorted(values)
    return 1000 * s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def _proc_cpu(pid: str) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


def _container_cpu(cid: str) -> float:
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",):
        if os.path.exists(path):
            return int(open(path).read()) / 1e9
    path = f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"  # cgroup v2
    for line in open(path):
        if line.startswith("usage_usec"):
            return int(line.split()[1]) / 1e6
    return 0.0


def pool_cpu(pool) -> float:
    """CPU seconds used so far by the pool's containers, the engine's daemons and this process."""
    import resource

    daemons = [p for p in os.listdir("/proc") if p.isdigit() and _comm(p) in
               ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    conts = [c.container.id for cs in pool._idle.values() for c in cs]
    return sum(_proc_cpu(p) for p in daemons) + sum(_container_cpu(c) for c in conts) + ru.ru_utime + ru.ru_stime


def _comm(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def timed(fn, items, parallel):
    """Run fn over items with `parallel` workers; (wall seconds, per-item latencies, results)."""
    def one(item):
        t = time.perf_counter()
        r = fn(item)
        return time.perf_counter() - t, r

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        res = list(ex.map(one, items))
    return time.perf_counter() - t0, [r[0] for r in res], [r[1] for r in res]


# the interpreter and flags the sandboxes use, so the baseline is the process-start floor (a
# virtualenv's site-packages can make `python -I` several times slower to start)
BARE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DOCKER_RUN_FLAGS = ["--rm", "-i", "--network", "none", "--read-only", "--tmpfs", "/work:size=256m,mode=1777",
                    "--tmpfs", "/tmp:size=256m,mode=1777", "--memory", "1376m", "--memory-swap", "1376m",
                    "--pids-limit", "72", "--cpus", "1", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "--user", "10001:10001", "--log-driver", "none"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--trivial", type=int, default=200, help="trivial programs per setup")
    ap.add_argument("--docker-run", type=int, default=40, help="programs for the docker-run baseline (slow)")
    args = ap.parse_args()

    reason = start_engine()
    if reason:
        sys.exit(f"docker engine unavailable: {reason}")
    pool = create_backend("docker", parallel=args.parallel)
    pool.warm()
    local = create_backend("local", parallel=args.parallel)
    image = pool.image
    probs = problems(100)
    workloads = {
        "trivial": [("print(1)", None)] * args.trivial,
        "100 asserts problems": probs,
    }

    def via_backend(b):
        def run(item):
            code, asserts = item
            job = {"code": code}
            if asserts:
                job["tests"] = {"kind": "assert", "entry_point": "f", "code": asserts}
            v = b.run(job)
            return v["status"] == "passed"
        return run

    def bare(item):
        code, asserts = item
        p = subprocess.run([BARE_PYTHON, "-I", "-S", "-c", code + "\n" + (asserts or "")], capture_output=True)
        return p.returncode == 0

    def docker_run(item):
        code, asserts = item
        p = subprocess.run(["docker", "run", *DOCKER_RUN_FLAGS, image, "python3", "-I", "-S", "-c",
                            code + "\n" + (asserts or "")], capture_output=True)
        return p.returncode == 0

    pool_fn = via_backend(pool)
    setups = [("docker pool (warm)", pool_fn, None), ("local (bubblewrap)", via_backend(local), None),
              ("docker run per program", docker_run, args.docker_run), ("bare subprocess (no isolation)", bare, None)]
    rows = []
    for wname, items in workloads.items():
        for sname, fn, cap in setups:
            its = items[:cap] if cap else items
            timed(fn, its[: 2 * args.parallel], args.parallel)  # warm caches, not counted
            cpu0 = pool_cpu(pool) if fn is pool_fn else None
            wall, lat, ok = timed(fn, its, args.parallel)
            # CPU per program counts every process involved, so it does not depend on what else
            # the machine is doing (the wall-clock rates do)
            cpu_ms = 1000 * (pool_cpu(pool) - cpu0) / len(its) if cpu0 is not None else None
            rows.append((wname, sname, len(its), sum(ok), len(its) / wall, pct(lat, 50), pct(lat, 99), cpu_ms))
            print(f"{wname:22} {sname:32} n={len(its):4} ok={sum(ok):4} {len(its) / wall:7.1f}/s "
                  f"p50 {pct(lat, 50):6.0f} ms  p99 {pct(lat, 99):6.0f} ms"
                  + (f"  cpu {cpu_ms:.1f} ms/program" if cpu_ms else ""), file=sys.stderr)
    pool.close()

    print(f"\nparallel={args.parallel}, cpus={os.cpu_count()}, load average at the end: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| workload | setup | programs | passed | programs/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for w, s, n, ok, rate, p50, p99, _ in rows:
        print(f"| {w} | {s} | {n} | {ok} | {rate:.1f} | {p50:.0f} | {p99:.0f} |")
    bare_p = {w: (p50, p99) for w, s, n, ok, rate, p50, p99, _ in rows if s.startswith("bare")}
    print("\noverhead over a bare subprocess (p50 / p99 ms):")
    for w, s, n, ok, rate, p50, p99, _ in rows:
        if not s.startswith("bare"):
            print(f"- {w}, {s}: {p50 - bare_p[w][0]:.0f} / {p99 - bare_p[w][1]:.0f}")
    for w, s, n, ok, rate, p50, p99, cpu_ms in rows:
        if cpu_ms:
            print(f"- {w}, {s}: {cpu_ms:.1f} CPU ms per program (containers + engine + host), "
                  f"so about {1000 * (os.cpu_count() or 1) / cpu_ms:.0f} programs/s if the cores were idle")


if __name__ == "__main__":
    main()
