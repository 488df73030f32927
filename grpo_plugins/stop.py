"""One stop controller for every long phase (tiny build, warm-up, GRPO, evaluation, labelling, PRM
training): the first SIGINT or SIGTERM prints one line and sets a flag each phase polls at a safe
point (``check``), where it leaves a resumable state and raises ``StopRequested``; a second signal
raises ``KeyboardInterrupt`` at once. The CLI installs it for its long commands and exits 130 (SIGINT)
or 143 (SIGTERM); library callers (``GRPOTrainer.train``) install it themselves, which nests."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

MESSAGE = "stopping after this step; press Ctrl-C again to stop now"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """A phase stopped at a safe point after a stop signal (a KeyboardInterrupt, so callers unwind)."""


class StopController:
    """The process's stop flag and the SIGINT/SIGTERM handlers that set it; ``install`` nests."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second press: stop now, wherever the code is
        self.signum = signum
        print(f"\n{MESSAGE}", file=sys.stderr, flush=True)

    def install(self) -> Callable[[], None]:
        """Handle SIGINT and SIGTERM until the returned function is called (no-op off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        if self._depth == 0:
            # installed whatever was there, SIG_IGN included: a job started in the background (``cmd &``
            # from a script) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        self._depth += 1
        done = []

        def restore() -> None:
            if done:
                return
            done.append(True)
            self._depth -= 1
            if self._depth == 0:
                for sig, handler in self._previous.items():
                    signal.signal(sig, handler)
                self._previous = {}
                self.signum = None  # a later phase outside any install must not see an old stop

        return restore

    def reset(self) -> tuple[int, int | None]:
        """Uninstall whatever is installed and forget any stop; returns the (depth, signal) it found."""
        found = (self._depth, self.signum)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._depth, self._previous, self.signum = 0, {}, None
        return found

    def requested(self) -> bool:
        """True once a stop signal arrived while installed."""
        return self.signum is not None

    def check(self) -> None:
        """A safe point: raise StopRequested if a stop signal arrived."""
        if self.signum is not None:
            raise StopRequested(signal.Signals(self.signum).name)

    def exit_code(self) -> int:
        """128 + the signal number (130 SIGINT, 143 SIGTERM); 130 for a KeyboardInterrupt without one."""
        return 128 + (self.signum or signal.SIGINT)

    def signal_name(self) -> str:
        """SIGINT or SIGTERM: the signal that stopped the process (SIGINT when none was caught)."""
        return signal.Signals(self.signum or signal.SIGINT).name


controller = StopController()
install = controller.install
requested = controller.requested
check = controller.check
