"""The pool's worker processes: a zygote imports sympy once and forks a ready worker per request.

pool.py starts the zygote as ``python -c BOOT`` with a Unix socket whose fd it passes. For each one-byte
request the zygote forks a child, which answers (task id, gold, pred, options) messages on its
own pair of pipes; the zygote sends the child's pid and pipe ends back over the socket
(SCM_RIGHTS). A replacement worker is therefore ready in milliseconds, not in the second that
importing sympy takes, which keeps the per-check bound when workers are killed often.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection

# Runs in a fresh interpreter. It makes grpo_math importable without running its __init__
# (which imports the host), so the zygote starts in the time sympy takes to import.
BOOT = (
    "import sys, types\n"
    "pkg = types.ModuleType('grpo_math'); pkg.__path__ = [sys.argv[1]]\n"
    "sys.modules['grpo_math'] = pkg\n"
    "from grpo_math.worker import zygote\n"
    "zygote(int(sys.argv[2]), int(sys.argv[3]))\n"
)


WARM_UP = [("(x+1)^2", "x^2+2x+1"), ("1", "\\sin^2 x+\\cos^2 x"), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
           ("2x+4y-3=0", "y=-\\frac{x}{2}+\\frac{3}{4}"), ("\\log(8)", "3\\log(2)"), ("\\pi/4", "\\arctan(1)")]


def _exit_with_parent() -> None:
    # A worker stuck in a long check never sees its pipe close; a watchdog ends it when its parent
    # is gone. (PR_SET_PDEATHSIG would fire when the spawning *thread* ends, which the host's
    # per-batch threads do all the time.)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def zygote(memory_mb: int, fd: int) -> None:
    """Import sympy, then fork one worker per request byte on socket ``fd`` until it closes."""
    sock = socket.socket(fileno=fd)
    os.dup2(2, 1)  # stray prints must never reach a channel
    _exit_with_parent()
    import sympy  # noqa: F401 - imported once here; every forked worker has it

    from .equivalence import CheckOptions, check

    # first calls into sympy build caches and tables; do them once here so every fork inherits them
    for gold, pred in WARM_UP:
        try:
            check(gold, pred, CheckOptions(), sympy_ok=True)
        except Exception:  # noqa: BLE001 - warming is best effort
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed workers
    sock.sendall(b"R")
    while True:
        try:
            if not sock.recv(1):
                return
        except OSError:
            return
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.close(task_w)
                os.close(result_r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                serve(Connection(task_r, writable=False), Connection(result_w, readable=False), memory_mb)
            finally:
                os._exit(0)
        os.close(task_r)
        os.close(result_w)
        try:
            socket.send_fds(sock, [pid.to_bytes(8, "little")], [task_w, result_r])
        except OSError:
            return
        finally:
            os.close(task_w)
            os.close(result_r)


def serve(rx: Connection, tx: Connection, memory_mb: int) -> None:
    """Answer checks until the task pipe closes; a MemoryError is reported and ends the worker."""
    from .equivalence import CheckOptions, check

    _exit_with_parent()
    if memory_mb > 0:
        limit = memory_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    tx.send(("ready", os.getpid()))
    while True:
        try:
            task_id, gold, pred, opts = rx.recv()
        except (EOFError, OSError):
            return
        try:
            tx.send((task_id, check(gold, pred, CheckOptions(*opts), sympy_ok=True), None))
        except MemoryError:
            tx.send((task_id, "memory", f"over the {memory_mb} MB memory cap"))
            os._exit(3)
        except Exception as exc:  # noqa: BLE001 - any sympy failure means the answer cannot be read
            tx.send((task_id, "unparseable", f"{type(exc).__name__}: {exc}"[:300]))
