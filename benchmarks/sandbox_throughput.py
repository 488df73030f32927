"""Sandbox throughput: programs/s and latency percentiles for trivial programs, HumanEval-style
function-with-asserts problems, unittest and pytest problems and C++ stdio problems (compile
included), on the warm docker pool and the local bubblewrap backend, beside `docker run` per
program (same isolation flags), `docker exec` into one running container, and a bare subprocess
(no isolation); plus the per-call cost of the trust boundary (tester <-> candidate round trip).

    python3 benchmarks/sandbox_throughput.py [--parallel 2] [--trivial 200] [--docker-run 40] [--repeats 3]

Every setup runs the same programs with `--parallel` workers; latency is per program, as a worker
sees it. The docker pool is warmed before timing (a training run pays that once). The baselines
run the same test code in the same process as the program (no trust boundary).
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
from grpo_plugins import get_plugin_manager  # noqa: E402
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


def unittest_problems(n: int) -> list[tuple[str, str]]:
    """n (solution, TestCase module) pairs: three test methods each."""
    out = []
    for src, asserts in problems(n):
        lines = [a[len("assert "):] for a in asserts.splitlines()]
        body = "".join(f"    def test_{i}(self):\n        self.assertTrue({ln})\n" for i, ln in enumerate(lines))
        out.append((src, "import unittest\nclass TestCases(unittest.TestCase):\n" + body))
    return out


def pytest_problems(n: int) -> list[tuple[str, str]]:
    """n (solution, pytest file) pairs: three test functions each, importing solution."""
    out = []
    for src, asserts in problems(n):
        body = "".join(f"def test_{i}():\n    {ln}\n" for i, ln in enumerate(asserts.splitlines()))
        out.append((src, "from solution import f\n" + body))
    return out


CPP = ("#include <cstdio>\nint main() {{ long long a, b; if (scanf(\"%lld %lld\", &a, &b) != 2) return 1; "
       "printf(\"%lld\\n\", a * {k} + b); }}\n")


def cpp_problems(n: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """n (C++ source, [(stdin, stdout)] x 3) problems."""
    return [(CPP.format(k=k), [(f"{a} {b}\n", f"{a * k + b}\n") for a, b in ((1, 2), (5, -3), (10**9, 7))])
            for k in range(2, n + 2)]


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


def boundary_cost(pool, reps: int = 5) -> dict:
    """Milliseconds per test call across the trust boundary: one run with 1 call vs one with 2001."""
    def run(n):
        code = f"for i in range({n}):\n    assert f(i) == 2 * i\n"
        job = {"code": "def f(x):\n    return 2 * x", "tests": {"kind": "assert", "code": code}}
        t = time.perf_counter()
        v = pool.run(job)
        assert v["status"] == "passed", v
        return time.perf_counter() - t

    small, big = [], []
    for _ in range(reps):  # interleaved, so machine load hits both alike
        small.append(run(1))
        big.append(run(2001))
    diffs = sorted((b - s) / 2000 * 1000 for s, b in zip(small, big))
    return {"best_ms": diffs[0], "median_ms": diffs[len(diffs) // 2]}


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
                    "--tmpfs", "/tmp:size=256m,mode=1777,exec", "--memory", "1376m", "--memory-swap", "1376m",
                    "--pids-limit", "72", "--cpus", "1", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "--user", "10001:10001", "--log-driver", "none"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--trivial", type=int, default=200, help="trivial programs per setup")
    ap.add_argument("--docker-run", type=int, default=40, help="programs for the docker run / exec baselines")
    ap.add_argument("--pytest", type=int, default=30, help="pytest problems")
    ap.add_argument("--cpp", type=int, default=10, help="C++ problems")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every setup")
    ap.add_argument("--cli", type=int, default=1000, help="trivial programs through `sandbox exec` end to end")
    args = ap.parse_args()

    reason = start_engine()
    if reason:
        sys.exit(f"docker engine unavailable: {reason}")
    manager = get_plugin_manager()  # a script, not a plugin: the installed plugins' backends
    pool = create_backend("docker", manager, parallel=args.parallel)
    pool.warm()
    local = create_backend("local", manager, parallel=args.parallel)
    image = pool.image
    probs = problems(100)
    workloads = {
        "trivial": [("trivial", "print(1)", None)] * args.trivial,
        "100 HumanEval-style (3 asserts)": [("assert", c, t) for c, t in probs],
        "100 unittest (3 tests)": [("unittest", c, t) for c, t in unittest_problems(100)],
        f"{args.pytest} pytest (3 tests)": [("pytest", c, t) for c, t in pytest_problems(args.pytest)],
        f"{args.cpp} C++ stdio (3 cases, compile incl.)": [("cpp", c, t) for c, t in cpp_problems(args.cpp)],
    }

    def via_backend(b):
        def run(item):
            kind, code, tests = item
            job = {"code": code}
            if kind == "cpp":
                job["language"] = "cpp"
                job["tests"] = {"kind": "stdio", "cases": [{"stdin": i, "stdout": o} for i, o in tests]}
            elif kind == "assert":
                job["tests"] = {"kind": "assert", "entry_point": "f", "code": tests}
            elif kind in ("unittest", "pytest"):
                job["tests"] = {"kind": kind, "code": tests}
            v = b.run(job)
            return v["status"] == "passed"
        return run

    def command(item, python):
        """argv of one program (with its tests, in-process) for the baselines."""
        kind, code, tests = item
        if kind == "cpp":
            checks = " && ".join(f'[ "$(printf "%s" "${{{2 * i + 2}}}" | /tmp/p$$)" = "$(printf "%s" "${{{2 * i + 3}}}")" ]'
                                 for i in range(len(tests)))
            script = f'printf "%s" "$1" | g++ -O2 -std=c++17 -x c++ -o /tmp/p$$ - && {checks}; r=$?; rm -f /tmp/p$$; exit $r'
            return ["sh", "-c", script, "sh", code, *[x for case in tests for x in case]]
        if kind == "unittest":
            src = code + "\n" + tests + "\nimport sys\nsys.exit(not unittest.main(exit=False).result.wasSuccessful())\n"
            return [python, "-I", "-S", "-c", src]
        if kind == "pytest":
            src = ("import os, sys, tempfile\nd = tempfile.mkdtemp()\n"
                   f"open(os.path.join(d, 'solution.py'), 'w').write({code!r})\n"
                   f"open(os.path.join(d, 'test_s.py'), 'w').write({tests!r})\n"
                   "sys.path.insert(0, d)\nimport pytest\n"
                   "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', d]))\n")
            return [python, "-I", "-c", src]
        return [python, "-I", "-S", "-c", code + "\n" + (tests or "")]

    def bare(item):
        return subprocess.run(command(item, BARE_PYTHON), capture_output=True).returncode == 0

    def docker_run(item):
        p = subprocess.run(["docker", "run", *DOCKER_RUN_FLAGS, image, *command(item, "python3")],
                           capture_output=True)
        return p.returncode == 0

    exec_box = subprocess.run(["docker", "run", "-d", *[f for f in DOCKER_RUN_FLAGS if f != "-i"], image,
                               "sleep", "infinity"], capture_output=True, text=True, check=True).stdout.strip()

    def docker_exec(item):
        p = subprocess.run(["docker", "exec", exec_box, *command(item, "python3")], capture_output=True)
        return p.returncode == 0

    pool_fn = via_backend(pool)
    setups = [("docker pool (warm)", pool_fn, None), ("local (bubblewrap)", via_backend(local), None),
              ("docker run per program", docker_run, args.docker_run),
              ("docker exec (one container)", docker_exec, args.docker_run),
              ("bare subprocess (no isolation)", bare, None)]
    # repeats interleave the setups, so a burst of load elsewhere on the machine hits all of them
    runs: dict[tuple[str, str], list[tuple]] = {}
    for rep in range(args.repeats):
        for wname, items in workloads.items():
            for sname, fn, cap in setups:
                its = items[:cap] if cap else items
                if rep == 0:
                    timed(fn, its[: 2 * args.parallel], args.parallel)  # warm caches, not counted
                cpu0 = pool_cpu(pool) if fn is pool_fn else None
                wall, lat, ok = timed(fn, its, args.parallel)
                # CPU per program counts every process involved, so it depends less on what else
                # the machine is doing than the wall-clock rates do
                cpu_ms = 1000 * (pool_cpu(pool) - cpu0) / len(its) if cpu0 is not None else None
                runs.setdefault((wname, sname), []).append(
                    (len(its), sum(ok), len(its) / wall, pct(lat, 50), pct(lat, 99), cpu_ms))
                print(f"[{rep + 1}/{args.repeats}] {wname:22} {sname:32} n={len(its):4} ok={sum(ok):4} "
                      f"{len(its) / wall:7.1f}/s p50 {pct(lat, 50):6.0f} ms  p99 {pct(lat, 99):6.0f} ms"
                      + (f"  cpu {cpu_ms:.1f} ms/program" if cpu_ms else ""), file=sys.stderr)
    subprocess.run(["docker", "rm", "-f", exec_box], capture_output=True)
    per_call = boundary_cost(pool)
    pool.close()
    local.close()
    cli = [cli_rate(args.cli, args.parallel) for _ in range(args.repeats)]

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    print(f"\nparallel={args.parallel}, cpus={os.cpu_count()}, repeats={args.repeats} (interleaved), "
          f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| workload | setup | programs | passed | programs/s best | median | x bare (median) | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    bare = {w: r for (w, s), r in runs.items() if s.startswith("bare")}
    for (w, s), rs in runs.items():
        rates = [r[2] for r in rs]
        ratio = med(rates) / med([r[2] for r in bare[w]])
        print(f"| {w} | {s} | {rs[0][0]} | {min(r[1] for r in rs)} | {max(rates):.1f} | {med(rates):.1f} | "
              f"{ratio:.2f} | {med([r[3] for r in rs]):.0f} | {med([r[4] for r in rs]):.0f} |")
    print("\noverhead over a bare subprocess, medians over repeats (p50 / p99 ms):")
    for (w, s), rs in runs.items():
        if not s.startswith("bare"):
            b = bare[w]
            print(f"- {w}, {s}: {med([r[3] for r in rs]) - med([r[3] for r in b]):.0f} / "
                  f"{med([r[4] for r in rs]) - med([r[4] for r in b]):.0f}")
    print(f"\ntrust boundary: {per_call['median_ms'] * 1000:.0f} us per test call (median of 5 interleaved "
          f"pairs; best {per_call['best_ms'] * 1000:.0f} us), tester -> candidate -> tester, decoded")
    print(f"\n`grpo-plugins sandbox exec --backend docker --parallel {args.parallel}`, {args.cli} trivial "
          f"programs end to end (CLI start, pool start, runs, output): {med(cli):.1f} programs/s median, "
          f"{max(cli):.1f} best of {len(cli)}")
    for (w, s), rs in runs.items():
        cpu = [r[5] for r in rs if r[5] and r[5] > 0]  # a container retired mid-measure reads negative
        if cpu:
            c = med(cpu)
            print(f"- {w}, {s}: {c:.1f} CPU ms per program (containers + engine + host, median), "
                  f"so about {1000 * (os.cpu_count() or 1) / c:.0f} programs/s if the cores were idle")


def cli_rate(n: int, parallel: int) -> float:
    """Programs/s of `grpo-plugins sandbox exec` on n trivial programs, start-up included."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        with open(inp, "w") as fh:
            fh.writelines(json.dumps({"code": f"print({i})"}) + "\n" for i in range(n))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grpo_plugins", "sandbox", "exec", "--input", inp, "--output", out,
                        "--backend", "docker", "--parallel", str(parallel)], check=True, capture_output=True)
        wall = time.perf_counter() - t
        with open(out) as fh:
            assert sum(json.loads(ln)["status"] == "passed" for ln in fh) == n
    return n / wall


if __name__ == "__main__":
    main()
