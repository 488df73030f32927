"""Make sure a Docker engine answers: start ``dockerd`` ourselves when we are root and none does.
Used by install-host.sh and by the tests' session fixture (a rebooted machine has no dockerd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

LOG = "/var/log/grpo-dockerd.log"


def engine_answers() -> bool:
    """Whether the engine that DOCKER_HOST (or the default socket) names answers a ping."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def start_engine(wait_s: float = 60.0) -> str | None:
    """Start dockerd if no engine answers; return None when one answers, else the reason it cannot."""
    if engine_answers():
        return None
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer"
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine answers and only root can start dockerd here"
    with open(LOG, "ab") as log:
        # a session of its own, so the engine outlives the process (test run, installer) that started it
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if engine_answers():
            return None
        time.sleep(0.5)
    return f"dockerd did not answer within {wait_s:.0f}s; see {LOG}"


if __name__ == "__main__":
    if "--start" in sys.argv:
        reason = start_engine()
        if reason:
            print(f"sandbox: {reason}", file=sys.stderr)
            sys.exit(1)
        print("sandbox: Docker engine answers")
