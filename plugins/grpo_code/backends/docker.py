"""The ``docker`` backend: a pool of warm, locked-down containers, each running the sandbox's small
server (one forked candidate process per run). Uses the docker SDK, so ``DOCKER_HOST`` picks the
engine: point workers at several engines to scale out.

Container settings: no network, read-only root, size-capped tmpfs scratch, memory = swap limit,
pids limit, CPU quota, cap-drop ALL (plus SETUID/SETGID/KILL for the root-in-container server so it
can start the candidate and the tester as two unprivileged uids and kill their trees),
no-new-privileges. The candidate starts with OOM score adjustment 1000 and the tester with 500,
so the OOM killer takes them before the server. Where the engine can grant CAP_SYS_RESOURCE (not
when it runs in a container without it), the server has it too: it then makes itself and the zygote
unkillable by the OOM killer and pins the candidate's score (a floor its uid cannot lower). A
container is discarded after any limit violation, any server error and after ``max_runs`` runs.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import select
import socket
import struct
import threading
import time
import weakref
from typing import Any

from grpo_sandbox.harness import LIMIT_DEFAULTS

from . import SandboxBackend, SandboxUnavailable, error_verdict, uid_base

DISCARD_AFTER = {"timeout", "memory_limit", "output_limit", "process_limit", "disk_limit", "sandbox_error"}
SERVER_OVERHEAD_MB = 96  # the server and the page cache of python itself, on top of the run's memory
SHM_MB = 16
SERVER_PIDS = 12  # the server, the tester and short-lived cleanup children, on top of the run's pids
LABEL = "grpo-sandbox"
_uids = itertools.count()
_live: "weakref.WeakSet[DockerBackend]" = weakref.WeakSet()
_CAPS_REFUSED: set[str] = set()  # engines that cannot grant CAP_SYS_RESOURCE (asked once per process)


def _next_uid() -> int:
    # one uid per container: RLIMIT_NPROC counts per uid across the whole host, so containers
    # sharing a uid would share a fork-bomb's budget
    return uid_base() + next(_uids) % 50


class ServerGone(RuntimeError):
    """The container's server stopped answering."""


class _Container:
    """One warm container and its attached stdin/stdout stream."""

    def __init__(self, client, image: str, limits: dict, cpus: float, pin_oom: bool = True):
        import docker

        self.runs = 0
        self.uid = _next_uid()
        # tmpfs pages (/work, /tmp, /dev/shm) count too, so the server keeps its overhead when they are full
        mem = f"{int(limits['memory_mb'] + 2 * limits['disk_mb'] + SHM_MB + SERVER_OVERHEAD_MB)}m"
        disk = f"size={int(limits['disk_mb'])}m,mode=1777,nr_inodes=16384"  # inode floods hit a cap too
        host_config = client.api.create_host_config(
            network_mode="none", read_only=True,
            tmpfs={"/work": disk, "/tmp": disk},
            shm_size=f"{SHM_MB}m",
            mem_limit=mem, memswap_limit=mem,
            pids_limit=int(limits["pids"]) + SERVER_PIDS,
            nano_cpus=int(cpus * 1e9),
            cap_drop=["ALL"], cap_add=["SETUID", "SETGID", "KILL", *(["SYS_RESOURCE"] if pin_oom else [])],
            security_opt=["no-new-privileges"],
            ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
            log_config=docker.types.LogConfig(type="none"),
            auto_remove=True,
        )
        # stdin_once: when this process dies its attach socket closes, the server reads EOF and
        # exits, and auto_remove deletes the container -- no orphans even after a SIGKILL
        config = client.api.create_container_config(
            image, ["python3", "-I", "-u", "/opt/grpo_sandbox/server.py"],
            stdin_open=True, user="0",
            # one hash seed for every process the zygote forks, as PYTHONHASHSEED=0 gives fresh ones
            environment={"SANDBOX_UID": str(self.uid), "PYTHONHASHSEED": "0"},
            labels={LABEL: "1", f"{LABEL}.owner": str(os.getpid())},
            host_config=host_config,
        )
        config["StdinOnce"] = True  # the SDK has no argument for it
        cid = client.api.create_container_from_config(config)["Id"]
        self.container = client.containers.get(cid)
        try:
            sock = client.api.attach_socket(self.container.id, params={"stdin": 1, "stdout": 1, "stream": 1})
            self.sock: socket.socket = getattr(sock, "_sock", sock)
            self._raw, self._buf = bytearray(), bytearray()  # attach stream bytes; demuxed stdout
            self.container.start()
            ready = self._read_frame(time.monotonic() + 60)
            if not ready.get("ready"):
                raise ServerGone(f"unexpected first frame {ready!r}")
        except BaseException:
            self.remove()
            raise

    def run(self, job: dict, timeout: float) -> dict:
        """Send one job, wait for its verdict (ServerGone if the server dies or stalls)."""
        data = json.dumps(job).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)
        self.runs += 1
        return self._read_frame(time.monotonic() + timeout)

    def _read_frame(self, deadline: float) -> dict:
        head = self._read_stdout(4, deadline)
        (n,) = struct.unpack(">I", head)
        return json.loads(self._read_stdout(n, deadline))

    def _read_stdout(self, n: int, deadline: float) -> bytes:
        # the attach stream multiplexes: 8-byte header (stream id, 3 zero bytes, length) + payload
        while True:
            out = self._take_stdout(n)
            if out is not None:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerGone("no verdict before the host-side deadline")
            p = select.poll()  # not select(): fd numbers may exceed 1024 in a busy host process
            p.register(self.sock, select.POLLIN)
            if not p.poll(left * 1000):
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ServerGone("the container's server exited")
            self._raw += chunk

    def _take_stdout(self, n: int) -> bytes | None:
        raw = self._raw
        while len(raw) >= 8:
            stream, size = raw[0], struct.unpack(">I", raw[4:8])[0]
            if len(raw) < 8 + size:
                break
            if stream == 1:
                self._buf += raw[8:8 + size]
            del raw[:8 + size]
        if len(self._buf) >= n:
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out
        return None

    def remove(self) -> None:
        """Kill and delete the container (errors ignored: it may be gone already)."""
        try:
            self.sock.close()
        except Exception:
            pass
        try:
            self.container.remove(force=True)
        except Exception:
            pass


class DockerBackend(SandboxBackend):
    """Runs jobs in a pool of warm containers; ``parallel`` containers at most, per limits profile."""

    name = "docker"

    def __init__(self, limits: dict[str, Any] | None = None, parallel: int | None = None, image: str | None = None,
                 max_runs: int = 200, cpus: float = 1.0, build: bool = True):
        super().__init__(limits, parallel or os.cpu_count() or 1)
        try:
            import docker

            self.client = docker.from_env(timeout=120)
            self.client.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"no Docker engine answers ({exc}); start dockerd or use --backend local") from exc
        if image is None:
            from grpo_sandbox.image import build_image, image_exists, image_tag

            image = image_tag()
            if not image_exists(self.client, image):
                if not build:
                    raise SandboxUnavailable(f"sandbox image {image} missing; run `grpo-plugins sandbox build`")
                image = build_image(self.client)
        self.image = image
        self.max_runs = max_runs
        self.cpus = cpus
        self._idle: dict[tuple, list[_Container]] = {}
        self._pin_oom = self.client.api.base_url not in _CAPS_REFUSED  # until the engine refuses CAP_SYS_RESOURCE
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.parallel)
        self._closed = False
        self._oom: set[str] = set()  # containers the engine reported an OOM kill in
        self._oom_cv = threading.Condition()
        self._events = None
        threading.Thread(target=self._watch_oom, daemon=True, name="sandbox-oom-events").start()
        _live.add(self)

    def _watch_oom(self) -> None:
        # a run's OOM can take the container's server with it (a candidate's exec'd child may lower its
        # own OOM score to the server's); the engine's event says it was memory, not a broken sandbox
        since = int(time.time())
        while not self._closed:
            try:
                self._events = self.client.events(decode=True, since=since, filters={
                    "event": "oom", "label": f"{LABEL}.owner={os.getpid()}"})
                for ev in self._events:
                    since = max(since, int(ev.get("time", since)))
                    with self._oom_cv:
                        self._oom.add(ev.get("id", ""))
                        self._oom_cv.notify_all()
            except Exception:
                pass  # closed, or the engine restarted: reconnect (events since the last one are replayed)
            if not self._closed:
                time.sleep(1.0)

    def _oom_killed(self, c: "_Container", wait: float = 2.0) -> bool:
        """Whether the engine reports an OOM kill in ``c`` (waiting briefly for the event)."""
        with self._oom_cv:
            return self._oom_cv.wait_for(lambda: c.container.id in self._oom, timeout=wait)

    @staticmethod
    def _profile(limits: dict) -> tuple:
        # container-level limits; wall, CPU time and output are enforced per run by the server
        return (limits["memory_mb"], limits["pids"], limits["disk_mb"])

    def warm(self, n: int | None = None, limits: dict | None = None) -> None:
        """Start ``n`` containers (default ``parallel``) for a limits profile ahead of the first run."""
        lim = self.job_limits({"limits": limits})
        n = n or self.parallel
        threads = [threading.Thread(target=self._add_idle, args=(lim,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _add_idle(self, lim: dict) -> None:
        c = self._start(lim)
        with self._lock:
            self._idle.setdefault(self._profile(lim), []).append(c)

    def _new(self, lim: dict) -> _Container:
        if self._pin_oom:
            try:
                return _Container(self.client, self.image, lim, self.cpus, pin_oom=True)
            except Exception as exc:
                if "caps" not in str(exc):
                    raise
                self._pin_oom = False  # "unable to apply caps": an engine without CAP_SYS_RESOURCE itself
                _CAPS_REFUSED.add(self.client.api.base_url)
        return _Container(self.client, self.image, lim, self.cpus, pin_oom=False)

    def _start(self, lim: dict) -> _Container:
        # one retry: a container that fails to start is the engine's hiccup, not the program's
        try:
            return self._new(lim)
        except Exception:
            return self._new(lim)

    @property
    def oom_pinned(self) -> bool:
        """Whether containers get CAP_SYS_RESOURCE, so the server is out of the OOM killer's reach."""
        return self._pin_oom

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job on a warm container; a broken container gives a sandbox_error verdict, never a pass."""
        try:
            lim = self.job_limits(job)
        except ValueError as exc:
            return error_verdict(str(exc))
        job = {**job, "limits": lim}
        key = self._profile(lim)
        with self._slots:
            with self._lock:
                pool = self._idle.get(key, [])
                c = pool.pop() if pool else None
            try:
                if c is None:
                    c = self._start(lim)
                # the server enforces wall_s itself; the host deadline only catches a stuck server
                verdict = c.run(job, timeout=float(lim["wall_s"]) * 2 + 30)
            except Exception as exc:
                if c is not None:
                    threading.Thread(target=c.remove, daemon=True).start()
                    if isinstance(exc, ServerGone) and self._oom_killed(c):
                        return error_verdict(f"OOM kill in the container, its server included ({exc})",
                                             status="memory_limit")
                return error_verdict(f"docker backend: {type(exc).__name__}: {exc}")
            with self._lock:
                # idle containers of other limit profiles count too: keep at most 2x parallel warm
                crowded = sum(len(v) for v in self._idle.values()) >= 2 * self.parallel
                retire = verdict.get("status") in DISCARD_AFTER or c.runs >= self.max_runs or self._closed or crowded
                if not retire:
                    self._idle.setdefault(key, []).append(c)
            if retire:
                threading.Thread(target=c.remove, daemon=True).start()
        return verdict

    def containers(self) -> int:
        """Idle warm containers held now."""
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        """Remove every idle container."""
        self._closed = True
        if self._events is not None:
            try:
                self._events.close()
            except Exception:
                pass
        with self._lock:
            pools, self._idle = self._idle, {}
        for pool in pools.values():
            for c in pool:
                c.remove()


@atexit.register
def _close_all() -> None:
    for backend in list(_live):
        backend.close()


__all__ = ["DockerBackend", "LIMIT_DEFAULTS"]
