"""The trusted side of a sandboxed run: it starts the candidate (through a box that knows how to
isolate it), caps output while streaming, enforces the wall clock and decides the verdict. It runs
in a process the candidate cannot signal, trace or write to (root in the container; the host
process for the local backend).

Test code never runs where the candidate runs. ``assert``, ``unittest`` and ``pytest`` tests run in
a trusted tester process under a uid of its own (``tester.py``), which calls into the candidate
over a pipe pair; ``call`` expected values and ``stdio`` expected outputs stay here. The
candidate's values always come back as type-tagged JSON decoded into plain builtins (no pickle in
that direction, never the candidate's ``__eq__``). Stdlib only: it is copied into the sandbox image.
"""

from __future__ import annotations

import os
import time

from .asserts import split_tests
from .compare import ProtocolError, decode, same, stdout_matches
from .process import ProcessRun, classify

LIMIT_DEFAULTS = {"wall_s": 10.0, "cpu_s": 5.0, "memory_mb": 1024, "pids": 64, "output_bytes": 8 << 20, "disk_mb": 256}
LIMIT_STATUSES = ("timeout", "memory_limit", "output_limit", "process_limit", "disk_limit")
STATUSES = ("passed", "failed", "runtime_error", "timeout", "memory_limit", "output_limit", "process_limit",
            "disk_limit", "compile_error", "no_tests", "sandbox_error")
MAX_TESTS = 100_000  # outcomes one tester may report
# C++: compiled once per program, under limits of its own, by the image's g++
COMPILE = {"wall_s": 30.0, "cpu_s": 20.0, "memory_mb": 1024, "binary_bytes": 64 << 20}
COMPILE_CMD = "g++ -O2 -std=c++17 -pipe -x c++ -o /tmp/.prog - 1>&2 && cat /tmp/.prog"
COMPILE_ERROR_LINES = 20
# the candidate's whole environment: nothing of the host's (tokens, paths) leaks in
CANDIDATE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                 "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MALLOC_ARENA_MAX": "2"}


def merge_limits(*layers: dict | None) -> dict:
    """Defaults overlaid by each non-empty layer; unknown keys are rejected."""
    out = dict(LIMIT_DEFAULTS)
    for layer in layers:
        for k, v in (layer or {}).items():
            if k not in LIMIT_DEFAULTS:
                raise ValueError(f"unknown limit {k!r}; valid limits: {', '.join(LIMIT_DEFAULTS)}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"limit {k!r} must be a positive number, got {v!r}")
            out[k] = v
    return out


def run_job(job: dict, box) -> dict:
    """Run one job {code, language?, tests?, stdin?, limits?} in ``box``; return the verdict record."""
    t0 = time.monotonic()
    limits = merge_limits(job.get("limits"))
    deadline = t0 + float(limits["wall_s"])
    tests = job.get("tests")
    result = {"status": "sandbox_error", "passed": 0, "total": 0, "stdout": "", "stderr": "", "exit_code": None,
              "per_test": []}
    box.runs = []
    oom0 = box.oom_kills()
    try:
        # no reset first: every run ends with one (and a box starts clean), and a failed reset
        # makes this a sandbox_error, which retires the box
        program = ("script", job["code"], {})
        if job.get("language", "python") == "cpp":
            program, deadline = _compile_cpp(job, box, limits, result)
        if program is None:
            pass  # compile_error, already in the result
        elif tests is None:
            _run_script(job, program, box, limits, deadline, result)
        elif tests["kind"] == "stdio":
            _run_stdio(program, tests, box, limits, deadline, result)
        elif tests["kind"] == "call":
            _run_calls(job, tests, box, limits, deadline, result)
        else:
            _run_tester(job, tests, box, limits, deadline, result)
    except ProtocolError as exc:
        result.update(status="failed", error=f"harness protocol violated by the candidate: {exc}")
        for t in result["per_test"]:
            t["passed"] = False
        result["passed"] = 0
    except Exception as exc:  # a harness bug or a broken box: never a pass
        if _oom_since(box, oom0):  # the run's memory ran out and the OOM killer took a helper (the zygote)
            result.update(status="memory_limit", error=f"OOM kill in the run's cgroup ({type(exc).__name__}: {exc})",
                          passed=0)
            for t in result["per_test"]:
                t["passed"] = False
        else:
            result.update(status="sandbox_error", error=f"{type(exc).__name__}: {exc}", passed=0)
    finally:
        for run in box.runs:
            if not run.finished:
                try:
                    run.finish(box)
                except Exception as exc:
                    result.update(status="sandbox_error", error=f"kill failed: {exc}", passed=0)
        box.runs.clear()
        try:
            box.reset()
        except Exception as exc:
            result.update(status="sandbox_error", error=f"cleanup failed: {exc}", passed=0)
    result["duration_s"] = round(time.monotonic() - t0, 4)
    return result


def _oom_since(box, before: int) -> bool:
    try:
        return box.oom_kills() > before
    except Exception:
        return False


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _start(box, program, limits, deadline, stdin=None) -> ProcessRun:
    mode, code, extra = program
    return ProcessRun(box, mode, code, limits, deadline, stdin=stdin, extra=extra)


def _run_script(job, program, box, limits, deadline, result):
    run = _start(box, program, limits, deadline, stdin=job.get("stdin"))
    end = run.finish(box)
    status = classify(end["exit_code"], end["violation"], bytes(run.stderr), box)
    result.update(status=status, stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"],
                  total=1, passed=int(status == "passed"),
                  per_test=[{"status": status, "passed": status == "passed"}])


def _compile_cpp(job, box, limits, result):
    """Compile once, as the candidate's uid, under the compile limits; the binary comes back on
    stdout and runs from memory for every case. (None, deadline) on a compile error."""
    lim = {**limits, "cpu_s": COMPILE["cpu_s"], "memory_mb": max(limits["memory_mb"], COMPILE["memory_mb"]),
           "output_bytes": COMPILE["binary_bytes"], "pids": max(limits["pids"], 16)}
    t0 = time.monotonic()
    run = ProcessRun(box, "exec", "", lim, t0 + COMPILE["wall_s"], stdin=job["code"],
                     extra={"argv": ["/bin/sh", "-c", COMPILE_CMD]})
    end = run.finish(box)
    box.reset()
    status = classify(end["exit_code"], end["violation"], bytes(run.stderr), box)
    result["compile_s"] = round(time.monotonic() - t0, 3)
    if status != "passed" or not run.stdout:
        lines = _text(run.stderr).splitlines()
        why = "" if status in ("passed", "runtime_error") else f" (the compiler hit the {status} limit)"
        result.update(status="compile_error", stderr=_text(run.stderr), exit_code=end["exit_code"],
                      total=len((job.get("tests") or {}).get("cases", [None])),
                      error="compile error" + why + ":\n" + "\n".join(lines[:COMPILE_ERROR_LINES]))
        return None, 0.0
    return ("exec", "", {"argv": ["prog"], "binary": bytes(run.stdout)}), time.monotonic() + float(limits["wall_s"])


def _run_stdio(program, tests, box, limits, deadline, result):
    tol = tests.get("float_tol")
    cases = tests["cases"]
    result["total"] = len(cases)
    status = "passed"
    for i, case in enumerate(cases):
        run = _start(box, program, limits, deadline, stdin=case.get("stdin", ""))
        end = run.finish(box)
        box.reset()  # a fresh work dir for every case
        st = classify(end["exit_code"], end["violation"], bytes(run.stderr), box)
        if st == "passed" and not stdout_matches(_text(run.stdout), case["stdout"], tol):
            st = "failed"
        result["per_test"].append({"status": st, "passed": st == "passed"})
        result.update(stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"])
        if st != "passed":
            status = st if status == "passed" else status
            if st in LIMIT_STATUSES:
                break  # a limit hit means a broken program; do not spend the wall clock on the rest
    result["passed"] = sum(t["passed"] for t in result["per_test"])
    result["status"] = "passed" if result["passed"] == len(cases) else (status if status != "passed" else "failed")


def _verdict_from_tests(result, n_tests, status, error):
    """Status of a run whose per-test entries are known; ``status`` is a limit or load failure, if any."""
    result["passed"] = sum(1 for t in result["per_test"] if t["passed"])
    if status is None:
        errs = [t.get("error", "") for t in result["per_test"]]
        if n_tests == 0 and not result["per_test"]:
            status = "no_tests"  # nothing collected is never a pass (binary rewards included)
        elif result["passed"] == n_tests and len(result["per_test"]) == n_tests:
            status = "passed"
        elif any("MemoryError" in e for e in errs):
            status = "memory_limit"
        elif any(errs) and all(not t["passed"] and t.get("error") for t in result["per_test"] if not t["passed"]) \
                and all(t["status"] == "runtime_error" for t in result["per_test"] if not t["passed"]):
            status = "runtime_error"
        else:
            status = "failed"
    elif status == "runtime_error" and "MemoryError" in error:
        status = "memory_limit"
    if status != "passed":
        result["passed"] = min(result["passed"], n_tests)
    if error:
        result["error"] = error[-1000:]
    result["status"] = status


def _run_calls(job, tests, box, limits, deadline, result):
    """Call-based tests: the harness sends argument lists and compares the tagged results here."""
    items = [{"args": c["args"], "expected": [c["expected"], *c.get("alternatives", [])]} for c in tests["cases"]]
    n_tests = len(items)
    result["total"] = n_tests
    run = ProcessRun(box, "call", job["code"], limits, deadline,
                     extra={"fn_name": tests["fn_name"], "class_name": tests.get("class_name")})
    status, error = None, ""
    first = run.next_message()
    if first is None or "ready" not in first:
        error = str((first or {}).get("load_error", ""))
        status = "runtime_error" if first is not None else None
    else:
        for seq, item in enumerate(items):
            run.send({"i": seq, "args": item["args"]})
            msg = run.next_message()
            if msg is None:  # the process ended or hit a limit mid-test
                break
            if msg.get("i") != seq or ("value" not in msg and "error" not in msg):
                raise ProtocolError(f"expected the answer to request {seq}")
            if "error" in msg:
                ok, err = False, str(msg["error"])
            else:
                got = decode(msg["value"])
                ok, err = any(same(got, e, tests.get("float_tol"), json_mode=True) for e in item["expected"]), ""
            entry = {"passed": ok, "status": "passed" if ok else ("runtime_error" if err else "failed")}
            if err:
                entry["error"] = err[:500]
            result["per_test"].append(entry)
    end = run.finish(box)
    result.update(stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"])
    if end["violation"]:
        status = end["violation"]
    elif len(result["per_test"]) != n_tests and status is None:
        # the runner stopped answering: a crash, os._exit, or a killed parent -- never a pass
        status = classify(end["exit_code"], end["violation"], bytes(run.stderr), box, error or "ended early")
        if status == "passed":
            status = "runtime_error"
    _verdict_from_tests(result, n_tests, status, error)


TESTER_STATUS = {"passed": "passed", "failed": "failed", "error": "runtime_error", "skipped": "skipped"}


def _run_tester(job, tests, box, limits, deadline, result):
    """assert / unittest / pytest: the test code runs in the trusted tester process (its own uid),
    which calls into the candidate's process over a pipe pair; the tester reports each outcome here."""
    kind = tests["kind"]
    n_tests = sum(1 for it in split_tests(tests["code"]) if it["test"]) if kind == "assert" else None
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    try:
        cand = ProcessRun(box, "serve", job["code"], limits, deadline, extra_fds=(req_r, ans_w))
        tester = ProcessRun(box, "tester", tests["code"], limits, deadline, role="tester",
                            extra={"kind": kind, "entry_point": tests.get("entry_point")}, extra_fds=(req_w, ans_r))
    finally:
        for fd in (req_r, req_w, ans_r, ans_w):
            os.close(fd)
    tester.peers = [cand]
    done = None
    while done is None:
        msg = tester.next_message()
        if msg is None:
            break
        if "total" in msg and type(msg["total"]) is int and kind != "assert":
            n_tests = msg["total"]
        elif "test" in msg:
            st = TESTER_STATUS.get(msg.get("status"), "runtime_error")
            if st == "skipped":
                continue
            entry = {"test": str(msg["test"]), "passed": st == "passed", "status": st}
            if msg.get("error"):
                entry["error"] = str(msg["error"])[:1500]
            result["per_test"].append(entry)
            if len(result["per_test"]) > MAX_TESTS:
                break
        elif "done" in msg:
            done = msg
    end_t = tester.finish(box)
    load = [m for m in cand._messages if "load_error" in m]
    end_c = cand.finish(box)
    if n_tests is None:
        n_tests = len(result["per_test"]) if done is not None else max(len(result["per_test"]), 1)
    result["total"] = n_tests
    result.update(stdout=_text(cand.stdout), stderr=_text(cand.stderr), exit_code=end_c["exit_code"])
    status, error = None, ""
    if load:
        status, error = "runtime_error", str(load[0]["load_error"])
    elif end_c["violation"] or end_t["violation"]:
        status = end_c["violation"] or end_t["violation"]
    elif done is None or str(done.get("error", "")).startswith("candidate process"):
        # the candidate stopped answering mid-test: a crash, os._exit, a limit, or a killed parent
        error = str((done or {}).get("error", "ended early"))
        status = classify(end_c["exit_code"], end_c["violation"], bytes(cand.stderr), box, error)
        if status == "passed":
            status = "runtime_error"
    elif any("CandidateGone" in t.get("error", "") for t in result["per_test"] if not t["passed"]):
        # the candidate died while a test waited on it: a limit that killed it (the hard CPU rlimit
        # of a program that ignores SIGXCPU, a self-stop) is the verdict, not the tester's error
        st = classify(end_c["exit_code"], end_c["violation"], bytes(cand.stderr), box)
        status = st if st in LIMIT_STATUSES else None
    elif str(done.get("error", "")).startswith("sandbox:"):
        status, error = "sandbox_error", str(done["error"])
    elif done.get("error"):
        status, error = "failed", str(done["error"])  # the test module itself raised
    _verdict_from_tests(result, n_tests, status, error)
