"""The pool worker: imports sympy once, then answers (task id, gold, pred, options) messages.

Started by pool.py as ``python -c BOOT``; it reads tasks on stdin and writes results on the
original stdout, both as multiprocessing Connection frames.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from multiprocessing.connection import Connection

# Runs in a fresh interpreter. It makes grpo_math importable without running its __init__
# (which imports the host), so a replacement worker starts in the time sympy takes to import.
BOOT = (
    "import sys, types\n"
    "pkg = types.ModuleType('grpo_math'); pkg.__path__ = [sys.argv[1]]\n"
    "sys.modules['grpo_math'] = pkg\n"
    "from grpo_math.worker import main\n"
    "main(int(sys.argv[2]))\n"
)


def _exit_with_parent() -> None:
    # A worker stuck in a long check never sees stdin close; a watchdog ends it when its parent
    # is gone. (PR_SET_PDEATHSIG would fire when the spawning *thread* ends, which the host's
    # per-batch threads do all the time.)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(memory_mb: int) -> None:
    """Serve checks until stdin closes; a MemoryError is reported and ends the worker."""
    rx = Connection(os.dup(0), writable=False)
    tx = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must never land in the result channel
    _exit_with_parent()
    import sympy  # noqa: F401 - imported once here, not per check

    from .equivalence import CheckOptions, check

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
            sys.exit(3)
        except Exception as exc:  # noqa: BLE001 - any sympy failure means the answer cannot be read
            tx.send((task_id, "unparseable", f"{type(exc).__name__}: {exc}"[:300]))
