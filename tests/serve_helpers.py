"""Test helpers for the reward server: an inline plugin of controllable rewards and a real uvicorn
server on a loopback port, run in a thread (or a subprocess where signals matter)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from grpo_plugins import Reward, RewardOptions, RewardResult, hookimpl
from grpo_plugins.manager import PluginManager

PLUGIN_FILE = Path(__file__).with_name("serve_plugin.py")


class SleepOptions(RewardOptions):
    seconds: float = 0.0


class Sleepy(Reward):
    """1.0 after sleeping ``seconds`` (or the row's ``delay`` column); for load and shutdown tests."""

    name = "sleepy"
    Options = SleepOptions

    def score(self, samples):
        time.sleep(max([self.options.seconds] + [float(s.columns.get("delay", 0)) for s in samples]))
        return [RewardResult(1.0, info={"status": "slept"}) for _ in samples]


class Boom(Reward):
    """Raises on a completion that says ``boom``; 1.0 otherwise."""

    name = "boom"

    def score(self, samples):
        for s in samples:
            if "boom" in s.text:
                raise RuntimeError("exploded on purpose")
        return [RewardResult(1.0) for _ in samples]


class ServeTestRewards:
    @hookimpl
    def register_rewards(self, register):
        register(Sleepy)
        register(Boom)


def manager() -> PluginManager:
    """math and format from their entry points, plus the test rewards."""
    m = PluginManager(allow=["math", "format"])
    m.register(ServeTestRewards(), name="test_rewards")
    return m


@contextmanager
def running(cfg: dict, token: str | None = None, mgr: PluginManager | None = None):
    """A real uvicorn server over create_app on 127.0.0.1:<free port>; yields its base URL."""
    import uvicorn

    from grpo_plugins.serve import ServeConfig, create_app
    from grpo_plugins.serve.runner import bind

    app = create_app(ServeConfig.model_validate(cfg), mgr or manager(), token=token)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def serve_process(config_path, *args, env=None):
    """``grpo-plugins serve`` in a subprocess; yields (Popen, base URL) once it prints its address."""
    cmd = [sys.executable, "-m", "grpo_plugins", "serve", str(config_path),
           "--port", "0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    try:
        line = proc.stderr.readline()
        m = re.search(r"on (http://\S+)", line)
        assert m, f"server did not start: {line}{proc.stderr.read() if proc.poll() is not None else ''}"
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stderr.close()
