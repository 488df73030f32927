"""A pool of sympy worker processes with a hard time bound per check, shared by many threads.

A check that runs past its bound has its worker killed (SIGKILL, so C-level hangs end too) and
replaced. No signals are used in the calling process, so the bound holds from any thread. Calls
from several threads run at the same time: each call borrows idle workers (starting new ones
when none is idle) and gives them back when it ends, so one thread's pathological check never
queues another thread's checks behind it. A killed worker's replacement is started at once, so
the next borrower usually finds it warm.
"""

from __future__ import annotations

import os
import signal
import socket
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
BURST = 4  # at most size * BURST workers exist at once (several threads each borrowing up to size)


class WorkerStartError(RuntimeError):
    """Worker processes die before they are ready (broken Python environment, too small a memory cap)."""


class _Zygote:
    """The process that imports sympy once and forks workers on request (see worker.py)."""

    def __init__(self, memory_mb: int):
        self.stderr = tempfile.TemporaryFile()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, PACKAGE_DIR, str(memory_mb), str(theirs.fileno())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr, pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.ready = False

    def fork(self) -> tuple[int, int, int]:
        """(pid, task fd, result fd) of a new worker; WorkerStartError when the zygote is gone."""
        with self.lock:
            try:
                if not self.ready:
                    if self.sock.recv(1) != b"R":
                        raise OSError("zygote exited")
                    self.ready = True
                self.sock.sendall(b"F")
                msg, fds, _, _ = socket.recv_fds(self.sock, 8, 2)
                if len(fds) != 2:
                    raise OSError("zygote sent no worker")
            except OSError:
                raise WorkerStartError(f"math worker zygote exits before it is ready:\n{self.close()}") from None
        return int.from_bytes(msg, "little"), fds[0], fds[1]

    def close(self) -> str:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")[-2000:]
        self.stderr.close()
        return err


class _Worker:
    def __init__(self, zygote: _Zygote):
        self.pid, task_fd, result_fd = zygote.fork()
        self.tx = Connection(task_fd, readable=False)
        self.rx = Connection(result_fd, writable=False)
        self.ready = False
        self.task: int | None = None
        self.started = 0.0
        self.dead = False

    def kill(self) -> str:
        """Kill the process (the zygote reaps it)."""
        if self.dead:
            return ""
        self.dead = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for c in (self.tx, self.rx):
            c.close()
        return ""


class CheckPool:
    """Runs (gold, pred, options) checks in worker processes; each check gets ``timeout`` seconds."""

    def __init__(self, size: int, timeout: float, memory_mb: int):
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.size, self.timeout, self.memory_mb = size, timeout, memory_mb
        self._idle: list[_Worker] = []  # warm (or warming) workers no call holds
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0  # workers killed after a timeout or a crash
        self._zygote: _Zygote | None = None
        self._finalizer = weakref.finalize(self, _kill_all, self._all, self.__dict__)

    # --- borrowing ------------------------------------------------------------------------------
    def _borrow(self) -> _Worker | None:
        """An idle worker (a ready one first), a new one, or None when the burst cap is reached."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the math check pool is closed")
            if self._idle:
                ready = [w for w in self._idle if w.ready]
                w = ready[-1] if ready else self._idle[-1]
                self._idle.remove(w)
                return w
            if len(self._all) >= self.size * BURST:
                return None
            w = self._new_worker()
            self._all.add(w)
            return w

    def _new_worker(self) -> _Worker:
        # under self._lock
        if self._zygote is None:
            self._zygote = _Zygote(self.memory_mb)
        try:
            return _Worker(self._zygote)
        except WorkerStartError:
            self._zygote = None
            raise

    def _give_back(self, w: _Worker) -> None:
        with self._lock:
            if self._closed or w.dead or w.task is not None or len(self._idle) >= self.size:
                self._all.discard(w)
                w.kill()
            else:
                self._idle.append(w)

    def _discard(self, w: _Worker) -> str:
        """Kill a worker and start its replacement in the idle set, so no later call waits for it."""
        err = w.kill()
        with self._lock:
            self._all.discard(w)
            self.replaced += 1
            if not self._closed and len(self._idle) < self.size and len(self._all) < self.size * BURST:
                spare = self._new_worker()
                self._all.add(spare)
                self._idle.append(spare)
        return err

    # --- running --------------------------------------------------------------------------------
    def run(self, tasks: list[tuple[str, str, tuple]]) -> list[tuple[str, str | None]]:
        """(status, detail) per task: correct | incorrect | unparseable | timeout | memory."""
        mine: list[_Worker] = []
        try:
            return self._run(tasks, mine)
        finally:
            for w in mine:
                self._give_back(w)

    def _run(self, tasks, mine: list[_Worker]):
        results: list[tuple[str, str | None] | None] = [None] * len(tasks)
        queue = deque(range(len(tasks)))
        start_failures = 0
        while queue or any(w.task is not None for w in mine):
            while len(mine) < min(self.size, len(queue) + self._busy(mine)):
                w = self._borrow()
                if w is None:
                    break
                mine.append(w)
            for w in mine:
                if w.ready and w.task is None and queue:
                    i = queue.popleft()
                    try:
                        w.tx.send((i, *tasks[i]))
                    except OSError:
                        queue.appendleft(i)
                        continue
                    w.task, w.started = i, time.monotonic()
            busy = [w for w in mine if w.task is not None]
            wait_for = min((w.started + self.timeout for w in busy), default=time.monotonic() + 1.0)
            ready = wait([w.rx for w in mine], max(0.0, wait_for - time.monotonic())) if mine else \
                time.sleep(0.05) or []
            for w in [w for w in mine if w.rx in ready]:
                try:
                    msg = w.rx.recv()
                except (EOFError, OSError):
                    mine.remove(w)
                    if not w.ready:
                        start_failures += 1
                        self._discard(w)
                        if start_failures >= MAX_START_FAILURES:
                            raise WorkerStartError("math workers exit before they are ready") from None
                        continue
                    if w.task is not None:
                        results[w.task] = ("timeout", "worker process died")
                    self._discard(w)
                    continue
                if msg[0] == "ready":
                    w.ready = True
                    start_failures = 0
                    continue
                task_id, status, detail = msg
                results[task_id] = (status, detail)
                w.task = None
                if status == "memory":
                    mine.remove(w)
                    self._discard(w)
            if not queue:  # nothing left to send: idle workers go back at once for other calls to use
                for w in [w for w in mine if w.task is None and w.ready]:
                    mine.remove(w)
                    self._give_back(w)
            now = time.monotonic()
            for w in [w for w in mine if w.task is not None and now - w.started >= self.timeout]:
                results[w.task] = ("timeout", f"no result within {self.timeout:g}s; worker killed")
                mine.remove(w)
                self._discard(w)
        return results  # type: ignore[return-value]

    @staticmethod
    def _busy(mine: list[_Worker]) -> int:
        return sum(w.task is not None for w in mine)

    @property
    def workers(self) -> int:
        """Worker processes alive now (idle and borrowed)."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """Kill every worker; later run() calls raise."""
        with self._lock:
            self._closed = True
            self._idle.clear()
            _kill_all(self._all, self.__dict__)


def _kill_all(workers: set[_Worker], state: dict) -> None:
    while workers:
        workers.pop().kill()
    zygote = state.get("_zygote")
    if zygote is not None:
        state["_zygote"] = None
        zygote.close()
