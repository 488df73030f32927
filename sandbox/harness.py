"""The trusted side of a sandboxed run: it starts the candidate (through a box that knows how to
isolate it), feeds tests one at a time, caps output while streaming, enforces the wall clock and
decides the verdict. It runs in a process the candidate cannot signal, trace or write to (root in
the container while the candidate is uid 10001; the host process for the local backend).

Expected values never enter the candidate's process: call-based expected values, stdio expected
outputs and the literal side of ``assert f(x) == literal`` stay here, and the candidate's values
come back as type-tagged JSON that is decoded into plain builtins and compared here (no pickle,
never the candidate's ``__eq__``). Stdlib only, because it is copied into the sandbox image.
"""

from __future__ import annotations

import time

from .asserts import assert_items
from .compare import ProtocolError, apply_compare, check_holds, decode, same, stdout_matches, truthy
from .process import ProcessRun, classify

LIMIT_DEFAULTS = {"wall_s": 10.0, "cpu_s": 5.0, "memory_mb": 1024, "pids": 64, "output_bytes": 8 << 20, "disk_mb": 256}
STATUSES = ("passed", "failed", "runtime_error", "timeout", "memory_limit", "output_limit", "process_limit",
            "disk_limit", "sandbox_error")
MAX_CHECKS = 100_000  # asserts one test statement may report (a loop over cases)
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
    """Run one job {code, tests?, stdin?, limits?} in ``box``; return the verdict record."""
    t0 = time.monotonic()
    limits = merge_limits(job.get("limits"))
    deadline = t0 + float(limits["wall_s"])
    tests = job.get("tests")
    result = {"status": "sandbox_error", "passed": 0, "total": 0, "stdout": "", "stderr": "", "exit_code": None,
              "per_test": []}
    box.runs = []
    try:
        # no reset first: every run ends with one (and a box starts clean), and a failed reset
        # makes this a sandbox_error, which retires the box
        if tests is None:
            _run_script(job, box, limits, deadline, result)
        elif tests["kind"] == "stdio":
            _run_stdio(job, tests, box, limits, deadline, result)
        else:
            _run_calls(job, tests, box, limits, deadline, result)
    except ProtocolError as exc:
        result.update(status="failed", error=f"harness protocol violated by the candidate: {exc}")
        for t in result["per_test"]:
            t["passed"] = False
        result["passed"] = 0
    except Exception as exc:  # a harness bug or a broken box: never a pass
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


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _run_script(job, box, limits, deadline, result):
    run = ProcessRun(box, "script", job["code"], limits, deadline, stdin=job.get("stdin"))
    end = run.finish(box)
    status = classify(end["exit_code"], end["violation"], bytes(run.stderr), box)
    result.update(status=status, stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"],
                  total=1, passed=int(status == "passed"),
                  per_test=[{"status": status, "passed": status == "passed"}])


def _run_stdio(job, tests, box, limits, deadline, result):
    tol = tests.get("float_tol")
    cases = tests["cases"]
    result["total"] = len(cases)
    status = "passed"
    for i, case in enumerate(cases):
        run = ProcessRun(box, "script", job["code"], limits, deadline, stdin=case.get("stdin", ""))
        end = run.finish(box)
        box.reset()  # a fresh work dir for every case
        st = classify(end["exit_code"], end["violation"], bytes(run.stderr), box)
        if st == "passed" and not stdout_matches(_text(run.stdout), case["stdout"], tol):
            st = "failed"
        result["per_test"].append({"status": st, "passed": st == "passed"})
        result.update(stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"])
        if st != "passed":
            status = st if status == "passed" else status
            if st in ("timeout", "memory_limit", "output_limit", "process_limit", "disk_limit"):
                break  # a limit hit means a broken program; do not spend the wall clock on the rest
    result["passed"] = sum(t["passed"] for t in result["per_test"])
    result["status"] = "passed" if result["passed"] == len(cases) else (status if status != "passed" else "failed")


def _run_calls(job, tests, box, limits, deadline, result):
    if tests["kind"] == "assert":
        items = assert_items(tests["code"])
        extra = {"entry_point": tests.get("entry_point")}
    else:
        items = [{"args": c["args"], "expected": [c["expected"], *c.get("alternatives", [])]} for c in tests["cases"]]
        extra = {"fn_name": tests["fn_name"], "class_name": tests.get("class_name")}
    n_tests = sum(1 for it in items if "stmt" not in it or it["checks"])
    result["total"] = n_tests
    run = ProcessRun(box, tests["kind"], job["code"], limits, deadline, extra=extra)
    status, error = None, ""
    first = run.next_message()
    if first is None or "ready" not in first:
        error = (first or {}).get("load_error", "")
        status = "runtime_error" if first is not None else None
    else:
        seq = 0
        for item in items:
            ok, err = _check_item(run, item, tests, seq)
            seq += len(item.get("operands", [None]))
            if ok is None:  # the process ended or hit a limit mid-test
                break
            if "stmt" in item and not item["checks"]:  # setup: imports, helpers
                if not ok:
                    error = err
                    status = "runtime_error"
                    break
                continue
            entry = {"passed": ok, "status": "passed" if ok else ("runtime_error" if err else "failed")}
            if err:
                entry["error"] = err[:500]
            if "src" in item:
                entry["test"] = item["src"]
            result["per_test"].append(entry)
    end = run.finish(box)
    result.update(stdout=_text(run.stdout), stderr=_text(run.stderr), exit_code=end["exit_code"])
    if len(result["per_test"]) != n_tests and status is None:
        # the runner stopped answering: a limit, a crash, os._exit, or a killed parent -- never a pass
        status = classify(end["exit_code"], end["violation"], bytes(run.stderr), box, error or "ended early")
        if status == "passed":
            status = "runtime_error"
    elif end["violation"]:
        status = end["violation"]  # e.g. output flood after the last answer
    result["passed"] = sum(1 for t in result["per_test"] if t["passed"])
    if status is None:
        errs = [t.get("error", "") for t in result["per_test"]]
        if result["passed"] == n_tests:
            status = "passed"
        elif any("MemoryError" in e for e in errs):
            status = "memory_limit"
        elif any(errs) and all(not t["passed"] and t.get("error") for t in result["per_test"] if not t["passed"]):
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


def _check_item(run: ProcessRun, item: dict, tests: dict, seq: int):
    """Evaluate one test item; (passed, error) or (None, '') when the runner is gone."""
    if "stmt" in item:
        run.send({"i": seq, "stmt": item["stmt"]})
        held, seen = True, 0
        while True:
            msg = run.next_message()
            if msg is None:
                return None, ""
            if msg.get("i") != seq:
                raise ProtocolError(f"expected the answer to request {seq}")
            if "check" not in msg:
                break
            if not item["checks"]:
                raise ProtocolError("a check from a statement without asserts")
            seen += 1
            if seen > MAX_CHECKS:
                raise ProtocolError("too many checks")
            op, a, b = msg["check"]
            held = held and check_holds(op, decode(a), None if b is None else decode(b))
        if "error" in msg:
            return False, msg["error"]
        if "value" not in msg:
            raise ProtocolError(f"expected the answer to request {seq}")
        # a statement with asserts passes only if it reached at least one and all of them held
        return (held and seen > 0) if item["checks"] else True, ""
    if "args" in item:
        run.send({"i": seq, "args": item["args"]})
        msg = _answer(run, seq)
        if msg is None:
            return None, ""
        if "error" in msg:
            return False, msg["error"]
        got = decode(msg["value"])
        return any(same(got, e, tests.get("float_tol"), json_mode=True) for e in item["expected"]), ""
    values = []
    for k, operand in enumerate(item["operands"]):
        if "literal" in operand:
            values.append(operand["literal"])
            continue
        run.send({"i": seq + k, "expr": operand["expr"]})
        msg = _answer(run, seq + k)
        if msg is None:
            return None, ""
        if "error" in msg:
            return False, msg["error"]
        values.append(decode(msg["value"]))
    if "truth" in item:
        return truthy(values[0]) is item["truth"], ""
    return apply_compare(item["compare"], values[0], values[1]), ""


def _answer(run: ProcessRun, i: int) -> dict | None:
    msg = run.next_message()
    if msg is None:
        return None
    if msg.get("i") != i or ("value" not in msg and "error" not in msg):
        raise ProtocolError(f"expected the answer to request {i}")
    return msg
