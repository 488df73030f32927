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

import ast
import json
import marshal
import math
import os
import re
import secrets
import select
import signal
import time

LIMIT_DEFAULTS = {"wall_s": 10.0, "cpu_s": 5.0, "memory_mb": 1024, "pids": 64, "output_bytes": 8 << 20, "disk_mb": 256}
STATUSES = ("passed", "failed", "runtime_error", "timeout", "memory_limit", "output_limit", "process_limit",
            "disk_limit", "sandbox_error")
MAX_RESULT_LINE = 4 << 20  # a single result message larger than this is a protocol violation
# the candidate's whole environment: nothing of the host's (tokens, paths) leaks in
CANDIDATE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                 "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MALLOC_ARENA_MAX": "2"}
STDERR_KEEP = 8192  # bytes of stderr returned; the rest is counted against the cap but dropped


class ProtocolError(Exception):
    """The candidate side sent something the runner never would: tampering."""


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


# --- values across the boundary -----------------------------------------------------------------


def decode(tagged):
    """Rebuild a builtin value from the runner's tagged JSON; opaque objects become an Opaque marker."""
    if not isinstance(tagged, dict) or "t" not in tagged:
        raise ProtocolError("malformed value")
    t, v = tagged["t"], tagged.get("v")
    if t == "none":
        return None
    if t == "bool" and type(v) is bool:
        return v
    if t == "int":
        if "hex" in tagged and type(tagged["hex"]) is str:
            return int(tagged["hex"], 16)
        return v if type(v) is int else _bad(t)
    if t == "str" and type(v) is str:
        return v
    if t == "float":
        return float(v)
    if t == "complex":
        return complex(float(v[0]), float(v[1]))
    if t == "bytes":
        return bytes.fromhex(v)
    if t in ("list", "tuple", "set", "frozenset"):
        items = [decode(x) for x in v]
        if t in ("set", "frozenset"):
            items = [Opaque("unhashable") if isinstance(x, (list, dict, set)) else x for x in items]
            try:
                return set(items) if t == "set" else frozenset(items)
            except TypeError:
                return Opaque("unhashable set")
        return items if t == "list" else tuple(items)
    if t == "dict":
        try:
            return {decode(k): decode(val) for k, val in v}
        except TypeError:
            return Opaque("unhashable key")
    if t == "object":
        return Opaque(str(tagged.get("type", "?")))
    return _bad(t)


def _bad(t):
    raise ProtocolError(f"malformed value of tag {t!r}")


class Opaque:
    """A value of a non-builtin type from the candidate: it equals nothing, not even itself."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self.type_name} object>"


def same(got, expected, tol: float | None = None, json_mode: bool = False) -> bool:
    """Type-strict equality on decoded builtins: bool is never a number, str never bytes; ints and
    floats compare by value (optionally within ``tol``); in json_mode a tuple may match a list,
    because JSON has no tuples."""
    if isinstance(got, Opaque) or isinstance(expected, Opaque):
        return False
    tg, te = type(got), type(expected)
    if tg is bool or te is bool:
        return tg is te and got == expected
    if tg in (int, float) and te in (int, float):
        if tol is not None and (tg is float or te is float):
            if math.isnan(got) or math.isnan(expected):
                return False
            return abs(got - expected) <= tol * max(1.0, abs(expected))
        return got == expected
    if tg in (list, tuple) and te in (list, tuple) and (tg is te or json_mode):
        return len(got) == len(expected) and all(same(a, b, tol, json_mode) for a, b in zip(got, expected))
    if tg is not te:
        return False
    if tg is dict:
        return got.keys() == expected.keys() and all(same(got[k], expected[k], tol, json_mode) for k in got)
    return got == expected  # str, bytes, complex, None, set, frozenset: builtins only at this point


# --- the assert test format ---------------------------------------------------------------------

_COMPARE_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _literal(node):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def assert_items(test_code: str) -> list[dict]:
    """Split assert-style test code into steps the harness can check outside the candidate.

    Each ``assert`` becomes one test: a comparison's operands are evaluated one at a time in the
    candidate (literal operands never leave the harness) and the operator is applied here; a bare
    ``assert e`` / ``assert not e`` checks truthiness of e's builtin value here. Other statements
    (imports, helpers, HumanEval's ``def check(candidate)`` body setup) run in the candidate.
    """
    tree = ast.parse(test_code)
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            body.extend(node.body)  # HumanEval: the runner binds `candidate` to the entry point
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id == "check":
            continue
        else:
            body.append(node)
    items = []
    for node in body:
        if isinstance(node, ast.Assert):
            items.extend(_assert_parts(node.test))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_metadata(node):
            continue
        else:
            items.append({"stmt": ast.unparse(node), "check": None})
    return items


def _is_metadata(node) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == "METADATA" for t in targets)


def _assert_parts(test) -> list[dict]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [p for v in test.values for p in _assert_parts(v)]
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _COMPARE_OPS:
        operands = []
        for side in (test.left, test.comparators[0]):
            ok, value = _literal(side)
            operands.append({"literal": value} if ok else {"expr": ast.unparse(side)})
        return [{"compare": _COMPARE_OPS[type(test.ops[0])], "operands": operands, "src": ast.unparse(test)}]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return [{"truth": False, "operands": [{"expr": ast.unparse(test.operand)}], "src": ast.unparse(test)}]
    return [{"truth": True, "operands": [{"expr": ast.unparse(test)}], "src": ast.unparse(test)}]


def apply_compare(op: str, a, b) -> bool:
    """Apply a comparison to two decoded builtin values; opaque values and type errors fail."""
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        return False
    if op == "==":
        return same(a, b)
    if op == "!=":
        return not same(a, b)
    if op in ("is", "is not"):
        if b is None or type(b) is bool:
            hit = type(a) is type(b) and a == b
        elif a is None or type(a) is bool:
            hit = type(a) is type(b) and a == b
        else:
            return False  # identity of other values cannot cross a process boundary
        return hit if op == "is" else not hit
    try:
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        if op == ">=":
            return bool(a >= b)
        if op == "in":
            return any(same(a, x) for x in b) if isinstance(b, (list, tuple, set, frozenset)) else bool(a in b)
        if op == "not in":
            return not (any(same(a, x) for x in b) if isinstance(b, (list, tuple, set, frozenset)) else a in b)
    except TypeError:
        return False
    return False


def truthy(v) -> bool:
    """Truthiness of a decoded builtin value; an opaque object is neither true nor false."""
    return False if isinstance(v, Opaque) else bool(v)


# --- stdio comparison ---------------------------------------------------------------------------


def stdout_matches(got: str, expected: str, tol: float | None = None) -> bool:
    """Whitespace-tolerant line compare: tokens per line, trailing blank lines ignored, optional float tolerance."""
    def lines(s):
        out = [ln.split() for ln in s.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    a, b = lines(got), lines(expected)
    if len(a) != len(b):
        return False
    for la, lb in zip(a, b):
        if len(la) != len(lb):
            return False
        for ta, tb in zip(la, lb):
            if ta == tb:
                continue
            if tol is None:
                return False
            try:
                fa, fb = float(ta), float(tb)
            except ValueError:
                return False
            if not (abs(fa - fb) <= tol * max(1.0, abs(fb))):
                return False
    return True


# --- running one process ------------------------------------------------------------------------


class ProcessRun:
    """One candidate process: streams stdout/stderr with a cap, exchanges runner messages, times out."""

    def __init__(self, box, mode: str, code: str, limits: dict, deadline: float, stdin: str | None = None,
                 extra: dict | None = None):
        self.limits, self.deadline = limits, deadline
        self.nonce = secrets.token_hex(16)
        self.stdout, self.stderr = bytearray(), bytearray()
        self.out_total = 0
        self.err_total = 0
        self._err_tail = b""
        self.violation: str | None = None  # output_limit / timeout / protocol
        self._res_buf = bytearray()
        self._messages: list[dict] = []
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self._oom0 = box.oom_kills()
        self.proc = box.spawn(cmd_r, res_w, limits)
        self.finished = False
        box.runs.append(self)  # run_job kills whatever did not finish (an exception mid-run)
        os.close(cmd_r)
        os.close(res_w)
        self._out = bytearray()  # frames for the runner, written as the pipe accepts them
        os.set_blocking(self.cmd_w, False)
        header = {"nonce": self.nonce, "mode": mode, "code": code, "limits": box.runner_limits(limits), **(extra or {})}
        self.send(header)
        self._stdin = (stdin or "").encode()
        self._stdin_fd = self.proc.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._fds = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err", self.res_r: "res"}
        self._exited = False
        try:
            # readable once the runner exits, so a daemon child holding the pipes cannot stall us
            self._pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        if not self._stdin:
            self._close_stdin()

    def send(self, msg: dict) -> None:
        """Queue one request for the runner (length-prefixed marshal: the trusted direction)."""
        data = marshal.dumps(msg, 4)
        self._out += len(data).to_bytes(4, "big") + data
        self._flush_out()

    def _flush_out(self) -> None:
        # never block on the runner: a candidate that stops reading must still meet the wall clock
        while self._out and self.cmd_w is not None:
            try:
                n = os.write(self.cmd_w, self._out[:65536])
            except BlockingIOError:
                return
            except OSError:  # the runner is gone; the read side notices
                self._out.clear()
                return
            del self._out[:n]

    def _close_stdin(self):
        if self._stdin_fd is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self._stdin_fd = None

    def next_message(self) -> dict | None:
        """Pump I/O until the runner sends a message (returned) or exits or a limit is hit (None)."""
        while not self._messages:
            if not self._pump():
                return None
        return self._messages.pop(0)

    def _pump(self, until: float | None = None) -> bool:
        if self.violation or not self._fds:
            return False
        left = min(self.deadline, until or self.deadline) - time.monotonic()
        if left <= 0:
            if time.monotonic() >= self.deadline:
                self.violation = "timeout"
            return False
        wfds = [self._stdin_fd] if self._stdin_fd is not None else []
        if self._out:
            wfds.append(self.cmd_w)
        rfds = list(self._fds) + ([self._pidfd] if self._pidfd is not None and not self._exited else [])
        r, w, _ = select.select(rfds, wfds, [], min(left, 1.0 if self._pidfd is not None else 0.02))
        if self._pidfd is not None and self._pidfd in r:
            self._exited = True
            r.remove(self._pidfd)
        if self._exited and not r and not w:
            return False  # the runner is gone and nothing more is flowing
        if self._out and self.cmd_w in w:
            self._flush_out()
            w.remove(self.cmd_w)
        if w:
            try:
                n = os.write(self._stdin_fd, self._stdin[:65536])
                self._stdin = self._stdin[n:]
            except OSError:
                self._stdin = b""
            if not self._stdin:
                self._close_stdin()
        for fd in r:
            kind = self._fds[fd]
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                del self._fds[fd]
                continue
            if kind == "out":
                self.out_total += len(chunk)
                keep = self.limits["output_bytes"] - len(self.stdout)
                self.stdout += chunk[:max(keep, 0)]
                if self.out_total > self.limits["output_bytes"]:
                    self.violation = "output_limit"
            elif kind == "err":
                self.err_total += len(chunk)
                # keep the head and the tail: the tail has the traceback that names a limit
                if len(self.stderr) < STDERR_KEEP:
                    self.stderr += chunk[:STDERR_KEEP - len(self.stderr)]
                else:
                    self._err_tail = (self._err_tail + chunk)[-STDERR_KEEP:]
                if self.err_total > self.limits["output_bytes"]:
                    self.violation = "output_limit"
            else:
                self._res_buf += chunk
                self._split_messages()
        return not self.violation

    def _split_messages(self):
        while b"\n" in self._res_buf:
            line, _, rest = bytes(self._res_buf).partition(b"\n")
            self._res_buf = bytearray(rest)
            try:
                msg = json.loads(line)
            except ValueError:
                raise ProtocolError("result line is not JSON") from None
            if not isinstance(msg, dict) or msg.get("nonce") != self.nonce:
                raise ProtocolError("result without the run's nonce")
            self._messages.append(msg)
        if len(self._res_buf) > MAX_RESULT_LINE:
            raise ProtocolError("result line too large")

    def finish(self, box) -> dict:
        """Wait for exit (draining output) within the deadline, then kill the whole tree; exit facts."""
        self.finished = True
        try:
            self.send({"end": True})
            try:
                while self._fds and self.proc.poll() is None and self._pump():
                    self._messages.clear()
                # the runner has exited (or a limit hit): take what is already in the pipes,
                # briefly, then the tree goes, daemons included
                drain_until = min(self.deadline, time.monotonic() + 0.1)
                while not self.violation and self._fds and time.monotonic() < drain_until and \
                        self._pump(drain_until):
                    self._messages.clear()
            except ProtocolError:
                pass  # answers after the last test do not count; the verdict is already decided
            while self.proc.poll() is None and not self.violation:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    self.violation = "timeout"
                    break
                if self._pidfd is not None:
                    select.select([self._pidfd], [], [], left)  # wakes the moment the runner exits
                else:
                    time.sleep(0.002)
        finally:
            box.kill(self.proc)
            if self._pidfd is not None:
                os.close(self._pidfd)
        if not self.violation and box.oom_kills() > self._oom0:
            self.violation = "memory_limit"  # any process of the tree, even one the program waited out
        if self._err_tail:
            self.stderr += b"\n[... stderr truncated ...]\n" + self._err_tail
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        self._close_stdin()
        return {"exit_code": self.proc.returncode, "violation": self.violation}


def classify(exit_code: int | None, violation: str | None, stderr: bytes, box, error_text: str = "") -> str:
    """Map how a process ended to a status; signals from rlimits and errors in stderr name the limit."""
    if violation:
        return violation
    text = stderr.decode("utf-8", "replace") + "\n" + error_text
    if exit_code is not None and exit_code < 0:
        sig = -exit_code
        if sig == signal.SIGXCPU:
            return "timeout"
        if sig == signal.SIGXFSZ:
            return "disk_limit"
        if sig == signal.SIGKILL:
            # the harness kills only after recording a violation and OOM kills are counted by the
            # box, so an unexplained SIGKILL is the hard CPU rlimit (SIGXCPU was ignored)
            return "timeout"
        return "runtime_error"
    if "MemoryError" in text:
        return "memory_limit"
    if "No space left on device" in text or "[Errno 28]" in text or "Disk quota exceeded" in text or \
            "File too large" in text:
        return "disk_limit"
    if re.search(r"(BlockingIOError|OSError|RuntimeError).*(Resource temporarily unavailable|can't start new thread)",
                 text):
        return "process_limit"
    if exit_code not in (0, None) or error_text:
        return "runtime_error"
    return "passed"


# --- one job ------------------------------------------------------------------------------------


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
    n_tests = sum(1 for it in items if "stmt" not in it)
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
            if "stmt" in item:
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
        msg = _answer(run, seq)
        return (None, "") if msg is None else ("error" not in msg, msg.get("error", ""))
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
        return truthy(values[0]) == item["truth"], ""
    return apply_compare(item["compare"], values[0], values[1]), ""


def _answer(run: ProcessRun, i: int) -> dict | None:
    msg = run.next_message()
    if msg is None:
        return None
    if msg.get("i") != i or ("value" not in msg and "error" not in msg):
        raise ProtocolError(f"expected the answer to request {i}")
    return msg
