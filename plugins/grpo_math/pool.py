"""A pool of sympy worker processes with a hard time bound per check.

A check that runs past its bound has its worker killed (SIGKILL, so C-level hangs end too) and
replaced. No signals are used in the calling process, so the bound holds from any thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection, wait

from .worker import BOOT

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MAX_START_FAILURES = 3


class WorkerStartError(RuntimeError):
    """Worker processes die before they are ready (broken Python environment, too small a memory cap)."""


class _Worker:
    def __init__(self, memory_mb: int):
        # a file, not a pipe: a chatty worker must never block on a full stderr pipe
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, PACKAGE_DIR, str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, close_fds=True,
        )
        self.tx = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.rx = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.ready = False
        self.task: int | None = None
        self.started = 0.0

    def kill(self) -> str:
        """Kill the process; return what it wrote to stderr (for start-up errors)."""
        self.proc.kill()
        self.proc.wait()
        for c in (self.tx, self.rx):
            c.close()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")[-2000:]
        self.stderr.close()
        return err


class CheckPool:
    """Runs (gold, pred, options) checks in worker processes; each check gets ``timeout`` seconds."""

    def __init__(self, size: int, timeout: float, memory_mb: int):
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.size, self.timeout, self.memory_mb = size, timeout, memory_mb
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0  # workers killed after a timeout or a crash
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)

    def run(self, tasks: list[tuple[str, str, tuple]]) -> list[tuple[str, str | None]]:
        """(status, detail) per task: correct | incorrect | unparseable | timeout | memory."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the math check pool is closed")
            return self._run(tasks)

    def _run(self, tasks):
        results: list[tuple[str, str | None] | None] = [None] * len(tasks)
        queue = deque(range(len(tasks)))
        start_failures = 0
        while queue or any(w.task is not None for w in self._workers):
            while len(self._workers) < min(self.size, len(queue) + self._busy()):
                self._workers.append(_Worker(self.memory_mb))
            for w in self._workers:
                if w.ready and w.task is None and queue:
                    i = queue.popleft()
                    try:
                        w.tx.send((i, *tasks[i]))
                    except OSError:
                        queue.appendleft(i)
                        continue
                    w.task, w.started = i, time.monotonic()
            busy = [w for w in self._workers if w.task is not None]
            wait_for = min((w.started + self.timeout for w in busy), default=time.monotonic() + 1.0)
            ready = wait([w.rx for w in self._workers], max(0.0, wait_for - time.monotonic()))
            for w in [w for w in self._workers if w.rx in ready]:
                try:
                    msg = w.rx.recv()
                except (EOFError, OSError):
                    if not w.ready:
                        start_failures += 1
                        err = self._replace(w)
                        if start_failures >= MAX_START_FAILURES:
                            raise WorkerStartError(f"math workers exit before they are ready:\n{err}") from None
                        continue
                    if w.task is not None:
                        results[w.task] = ("memory" if w.proc.poll() == 3 else "timeout", "worker process died")
                    self._replace(w)
                    continue
                if msg[0] == "ready":
                    w.ready = True
                    start_failures = 0
                    continue
                task_id, status, detail = msg
                results[task_id] = (status, detail)
                w.task = None
                if status == "memory":
                    self._replace(w)
            now = time.monotonic()
            for w in [w for w in self._workers if w.task is not None and now - w.started >= self.timeout]:
                results[w.task] = ("timeout", f"no result within {self.timeout:g}s; worker killed")
                self._replace(w)
        return results  # type: ignore[return-value]

    def _busy(self) -> int:
        return sum(w.task is not None for w in self._workers)

    def _replace(self, w: _Worker) -> str:
        # the replacement starts on the next loop turn, importing sympy while other checks run
        err = w.kill()
        self._workers.remove(w)
        self.replaced += 1
        return err

    def close(self) -> None:
        """Kill every worker; later run() calls raise."""
        with self._lock:
            self._closed = True
            _kill_all(self._workers)


def _kill_all(workers: list[_Worker]) -> None:
    while workers:
        workers.pop().kill()
