"""One candidate process under the harness: it streams stdout/stderr with a cap, exchanges
requests and answers with the runner over two pipes (never blocking on either), enforces the wall
clock, and maps how the process ended to a status. Stdlib only (copied into the sandbox image)."""

from __future__ import annotations

import json
import marshal
import os
import re
import select
import signal
import time

from .compare import ProtocolError

MAX_RESULT_LINE = 4 << 20  # a single result message larger than this is a protocol violation
STDERR_KEEP = 8192  # bytes of stderr returned; the rest is counted against the cap but dropped


def wait_fds(rfds: list[int], wfds: list[int], timeout: float) -> tuple[list[int], list[int]]:
    """Readable and writable fds within ``timeout`` seconds. poll, not select: a host process
    (a trainer with many files open) can hold fd numbers above select's 1024 limit."""
    p = select.poll()
    for fd in rfds:
        p.register(fd, select.POLLIN)
    for fd in wfds:
        p.register(fd, select.POLLOUT | (select.POLLIN if fd in rfds else 0))
    r, w = [], []
    for fd, ev in p.poll(max(0.0, timeout) * 1000):
        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR) and fd in rfds:
            r.append(fd)
        if ev & (select.POLLOUT | select.POLLHUP | select.POLLERR) and fd in wfds:
            w.append(fd)
    return r, w


class ProcessRun:
    """One candidate process: streams stdout/stderr with a cap, exchanges runner messages, times out."""

    def __init__(self, box, mode: str, code: str, limits: dict, deadline: float, stdin: str | None = None,
                 extra: dict | None = None, role: str = "candidate", extra_fds: tuple = ()):
        self.limits, self.deadline, self.role = limits, deadline, role
        self.stdout, self.stderr = bytearray(), bytearray()
        self.out_total = 0
        self.err_total = 0
        self._err_tail = b""
        self.violation: str | None = None  # output_limit / timeout / memory_limit
        self._res_buf = bytearray()
        self._messages: list[dict] = []
        self.peers: list[ProcessRun] = []  # other processes of the run whose output is pumped meanwhile
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self._oom0 = box.oom_kills()
        self.proc = box.spawn([cmd_r, res_w, *extra_fds], limits, role)
        self.finished = False
        box.runs.append(self)  # run_job kills whatever did not finish (an exception mid-run)
        os.close(cmd_r)
        os.close(res_w)
        self._out = bytearray()  # frames for the runner, written as the pipe accepts them
        os.set_blocking(self.cmd_w, False)
        header = {"mode": mode, "code": code, "limits": box.runner_limits(limits, role), **(extra or {})}
        self.send(header)
        self._stdin = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
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
        """Move bytes for this run and its peers once; False when this run is done or a limit hit."""
        runs = [self, *[p for p in self.peers if not p.finished]]
        if any(r.violation for r in runs) or not self._fds:
            return False
        left = min(self.deadline, until or self.deadline) - time.monotonic()
        if left <= 0:
            if time.monotonic() >= self.deadline:
                self.violation = "timeout"
            return False
        rmap, wmap = {}, {}
        for run in runs:
            if run._stdin_fd is not None:
                wmap[run._stdin_fd] = (run, "stdin")
            if run._out:
                wmap[run.cmd_w] = (run, "cmd")
            for fd in run._fds:
                rmap[fd] = (run, "io")
            if run._pidfd is not None and not run._exited:
                rmap[run._pidfd] = (run, "pid")
        r, w = wait_fds(list(rmap), list(wmap), min(left, 1.0 if self._pidfd is not None else 0.02))
        moved = False
        for fd in r:
            run, what = rmap[fd]
            if what == "pid":
                run._exited = True
            else:
                run._read(fd)
                moved = True
        for fd in w:
            run, what = wmap[fd]
            moved = True
            if what == "cmd":
                run._flush_out()
            else:
                run._write_stdin()
        if self._exited and not moved:
            return False  # the runner is gone and nothing more is flowing
        return not any(run.violation for run in runs)

    def _write_stdin(self):
        try:
            n = os.write(self._stdin_fd, self._stdin[:65536])
            self._stdin = self._stdin[n:]
        except OSError:
            self._stdin = b""
        if not self._stdin:
            self._close_stdin()

    def _read(self, fd):
        kind = self._fds[fd]
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            del self._fds[fd]
            return
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

    def _split_messages(self):
        while b"\n" in self._res_buf:
            line, _, rest = bytes(self._res_buf).partition(b"\n")
            self._res_buf = bytearray(rest)
            try:
                msg = json.loads(line)
            except ValueError:
                raise ProtocolError("result line is not JSON") from None
            except RecursionError:
                raise ProtocolError("result line nested too deep") from None
            if type(msg) is not dict:
                raise ProtocolError("result line is not an object")
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
                    wait_fds([self._pidfd], [], left)  # wakes the moment the runner exits
                else:
                    time.sleep(0.002)
        finally:
            box.kill(self.proc, self.role)
            if self._pidfd is not None:
                os.close(self._pidfd)
        if box.oom_kills() > self._oom0:
            # an OOM kill anywhere in the run's cgroup decides, whatever came after it (a parent
            # that waited out its killed children, a wall clock spent waiting for them)
            self.violation = "memory_limit"
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
        if sig == signal.SIGSYS:
            # the local backend's seccomp filter ends a process that sends itself a stop signal (as
            # pid 1 of its namespace it could not stop): under plain execution it would wait forever
            return "timeout"
        if sig in (signal.SIGABRT, signal.SIGSEGV) and "instance of 'std::bad_alloc'" in text:
            # an uncaught C++ std::bad_alloc ends in abort(); as pid 1 of a namespace (local) the
            # SIGABRT is ignored and glibc's abort falls through to a fault
            return "memory_limit"
        if sig == signal.SIGKILL:
            # the harness kills only after recording a violation and OOM kills are counted by the
            # box, so an unexplained SIGKILL is the hard CPU rlimit (SIGXCPU was ignored)
            return "timeout"
        return "runtime_error"
    if "MemoryError" in text or "Cannot allocate memory" in text or "std::bad_alloc" in text:
        return "memory_limit"  # malloc, mmap (ENOMEM under the address-space cap), C++ new
    if "No space left on device" in text or "[Errno 28]" in text or "Disk quota exceeded" in text or \
            "File too large" in text:
        return "disk_limit"
    if re.search(r"(BlockingIOError|OSError|RuntimeError).*(Resource temporarily unavailable|can't start new thread)",
                 text):
        return "process_limit"
    if exit_code not in (0, None) or error_text:
        return "runtime_error"
    return "passed"
