"""The ``local`` backend, for machines without Docker: the candidate and the trusted tester each run
under bubblewrap with every namespace unshared (no network; an own pid namespace whose pid 1 is the
runner itself, so /proc shows nothing of the host; a read-only root, /dev and /usr; size-capped
tmpfs /work, /tmp and /dev/shm, inode-capped too when running as root; no host files; an empty
environment for bubblewrap and the sandbox alike), a seccomp filter (no namespaces, mounts,
ptrace, keyrings, BPF, io_uring ...), hard rlimits and, as root, two unprivileged uids per slot
(candidate, tester) and a memory + pids cgroup. The harness stays in this (host) process.
Killing bubblewrap's monitor kills the sandbox's whole pid namespace, so no process outlives a
run; the scratch mounts are unmounted after it, so no file does either.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpo_sandbox
from grpo_sandbox.harness import CANDIDATE_ENV, run_job
from grpo_sandbox.image import IMAGE_FILES

from . import SandboxBackend, SandboxUnavailable, error_verdict, uid_base
from .cgroups import RunCgroup
from .seccomp import filter_bpf

RUNNER = Path(grpo_sandbox.__file__).resolve().parent / "runner.py"
TREE_OVERHEAD_MB = 96  # bubblewrap and the interpreter, on top of the run's memory and scratch
SHM_MB = 16  # /dev/shm, as in the docker backend
INODES = 16384  # per scratch mount, as in the docker backend


def _python() -> tuple[str, list[str]]:
    """The interpreter for candidates and the read-only binds it needs."""
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3", []
    prefix = Path(sys.base_prefix).resolve()
    return str(Path(sys.executable).resolve()), [str(prefix)]


def _root_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for d in ("bin", "sbin", "lib", "lib64", "lib32"):
        p = Path("/") / d
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), f"/{d}"]  # merged-/usr systems
        elif p.is_dir():
            args += ["--ro-bind", str(p), f"/{d}"]
    for f in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    return args


class BwrapBox:
    """The harness's box for one run: spawns the runner under bubblewrap as ``uid``."""

    def __init__(self, uid: int | None, tester_uid: int | None, python: str, extra_binds: list[str],
                 runner_dir: str, cgroup: RunCgroup | None = None, scratch: dict | None = None):
        self.uid, self.tester_uid, self.python, self.extra_binds, self.cgroup = uid, tester_uid, python, extra_binds, cgroup
        self.runner_dir = runner_dir
        self.scratch = scratch  # as root: host dirs where capped tmpfs mounts for /work and /tmp go
        self.mounted: list[str] = []
        self.seccomp: bytes | None = None  # BPF handed to bubblewrap

    def spawn(self, fds: list[int], limits: dict, role: str = "candidate") -> subprocess.Popen:
        """Start the runner (or the tester) in a fresh bubblewrap sandbox with its pipes."""
        uid = self.uid if role == "candidate" else self.tester_uid
        script = "runner.py" if role == "candidate" else "tester.py"
        size = str(int(limits["disk_mb"]) * 1024 * 1024)
        # --as-pid-1: no bubblewrap init inside, so /proc shows only the sandbox's own processes
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
                *_root_binds()]
        for p in self.extra_binds:
            argv += ["--ro-bind", p, p]
        argv += ["--ro-bind", self.runner_dir, "/opt/grpo_sandbox", "--proc", "/proc", "--dev", "/dev",
                 "--size", str(SHM_MB << 20), "--tmpfs", "/dev/shm"]
        if self.scratch is not None:
            # the tester shares the candidate's /work (files a test and the code it tests exchange;
            # never on the tester's import path) and keeps a private /tmp
            if role != "candidate":
                argv += ["--size", size, "--tmpfs", "/tmp"]
            for dest in ("/work", "/tmp") if role == "candidate" else ("/work",):
                src = self.scratch[dest]
                if src not in self.mounted:
                    # /work without the sticky bit: shared, either uid may remove the other's files
                    _mount_tmpfs(src, int(limits["disk_mb"]), "0777" if dest == "/work" else "1777")
                    self.mounted.append(src)
                argv += ["--bind", src, dest]
        else:
            argv += ["--size", size, "--tmpfs", "/work", "--size", size, "--tmpfs", "/tmp"]
        # nothing else is writable: the root, /dev and /opt are read-only
        argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/work", "--clearenv"]
        for k, v in CANDIDATE_ENV.items():
            argv += ["--setenv", k, v]
        seccomp_r = None
        if self.seccomp is not None:
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, self.seccomp)  # a few KB: fits the pipe buffer
            os.close(seccomp_w)
            argv += ["--seccomp", str(seccomp_r)]
        argv += ["--", self.python, "-I", "-S", f"/opt/grpo_sandbox/{script}", *map(str, fds)]
        ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
        try:
            # an empty environment for bubblewrap itself: nothing of the host's reaches the sandbox
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=[*fds, *([seccomp_r] if seccomp_r is not None else [])],
                                    start_new_session=True, env={}, **ids)
        finally:
            if seccomp_r is not None:
                os.close(seccomp_r)
        if self.cgroup is not None and role == "candidate":
            # the whole tree's memory (tmpfs pages included) and process count, like a container's
            mem = int(limits["memory_mb"] + 2 * limits["disk_mb"] + SHM_MB + TREE_OVERHEAD_MB) * 1024 * 1024
            self.cgroup.set_limits(mem, int(limits["pids"]) + 4)
            self.cgroup.adopt(proc.pid, uid)  # before the harness sends the code
        return proc

    def runner_limits(self, limits: dict, role: str = "candidate") -> dict:
        """rlimits the runner applies inside the sandbox."""
        return {"cpu_s": limits["cpu_s"], "disk_mb": limits["disk_mb"], "as_mb": limits["memory_mb"],
                "nproc": limits["pids"] if self.uid is not None else None}

    def kill(self, proc: subprocess.Popen, role: str = "candidate") -> None:
        """Kill bubblewrap's monitor (its pid namespace dies with it) and collect the exit status."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        # bubblewrap reports a child killed by signal N as exit status 128+N
        if proc.returncode is not None and proc.returncode > 128:
            proc.returncode = -(proc.returncode - 128)
        uid = self.uid if role == "candidate" else self.tester_uid
        if uid is not None:
            _kill_uid(uid)

    def oom_kills(self) -> int:
        """OOM kills so far in this slot's cgroup (0 without one: RLIMIT_AS bounds each process)."""
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def reset(self) -> None:
        """Unmount the run's capped scratch mounts (their files go with them); bubblewrap's own
        tmpfs mounts disappear with the namespace."""
        while self.mounted:
            _umount(self.mounted.pop())


_libc = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2


def _mount_tmpfs(path: str, size_mb: int, mode: str = "1777") -> None:
    """A size- and inode-capped tmpfs at ``path`` (root only), like the docker backend's scratch."""
    opts = f"size={size_mb}m,nr_inodes={INODES},mode={mode}".encode()
    if _libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount tmpfs on {path}: {os.strerror(e)}")


def _umount(path: str) -> None:
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"umount {path}: {os.strerror(e)}")


def _kill_uid(uid: int) -> None:
    # belt and braces: nothing of this uid may outlive the run, even outside the pid namespace
    # (zombies are skipped: they are dead, only waiting for the host's init to reap them)
    for _ in range(100):
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        continue
                os.kill(int(name), signal.SIGKILL)
                found = True
            except (OSError, IndexError):
                continue
        if not found:
            return
        time.sleep(0.001)


class LocalBackend(SandboxBackend):
    """Runs jobs under bubblewrap on this machine, ``parallel`` at a time."""

    name = "local"

    def __init__(self, limits: dict[str, Any] | None = None, parallel: int | None = None):
        super().__init__(limits, min(parallel or os.cpu_count() or 1, 25))  # two uids each, from a block of 50
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed; apt-get install bubblewrap")
        self.python, self.extra_binds = _python()
        self._slots: queue.Queue[int] = queue.Queue()
        for i in range(self.parallel):
            self._slots.put(i)
        binds = [a for p in self.extra_binds for a in ("--ro-bind", p, p)]
        probe = subprocess.run(["bwrap", "--unshare-all", *_root_binds(), *binds, "--", self.python, "-I", "-S",
                                "-c", "pass"], capture_output=True, text=True, **self._ids(uid_base() + 50))
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot run {self.python} in a sandbox here "
                                     f"(namespaces, or a path the sandbox uid cannot read): {probe.stderr.strip()}")
        root = os.geteuid() == 0
        self._uids = [uid_base() + 50 + i for i in range(self.parallel)]
        self._tester_uids = [uid_base() + 75 + i for i in range(self.parallel)]
        self._cgroups = [RunCgroup.create(f"grpo-sandbox-{uid}") if root else None for uid in self._uids]
        # bubblewrap opens bind sources as the unprivileged uid, which may not reach a checkout under
        # /root: bind a world-readable copy of the (stdlib-only, secret-free) runner instead
        self._runner_dir = tempfile.mkdtemp(prefix="grpo-sandbox-runner-")
        os.chmod(self._runner_dir, 0o755)
        pkg = os.path.join(self._runner_dir, "grpo_sandbox")
        os.mkdir(pkg)
        os.chmod(pkg, 0o755)
        for name in IMAGE_FILES:
            shutil.copy(RUNNER.parent / name, os.path.join(pkg, name))
            os.chmod(os.path.join(pkg, name), 0o644)
        # False: memory and pids are bounded per process (rlimits) only, not for the whole tree
        self.tree_memory_limit = all(c is not None for c in self._cgroups)
        try:
            self._seccomp: bytes | None = filter_bpf()
        except OSError as exc:
            raise SandboxUnavailable(f"libseccomp cannot build the local backend's filter ({exc}); "
                                     "apt-get install libseccomp2") from exc
        # as root, /work and /tmp are tmpfs mounts of our own with an inode cap (bubblewrap's have none)
        self._scratch_root = tempfile.mkdtemp(prefix="grpo-sandbox-mnt-", dir="/var/tmp") if root else None
        self._scratch: list[dict | None] = []
        for i in range(self.parallel):
            if self._scratch_root is None:
                self._scratch.append(None)
                continue
            os.chmod(self._scratch_root, 0o755)
            dirs = {d: os.path.join(self._scratch_root, f"s{i}", d.strip("/")) for d in ("/work", "/tmp")}
            for d in dirs.values():
                os.makedirs(d)
            os.chmod(os.path.join(self._scratch_root, f"s{i}"), 0o755)
            self._scratch.append(dirs)

    @staticmethod
    def _ids(uid: int) -> dict:
        return {"user": uid, "group": uid, "extra_groups": []} if os.geteuid() == 0 else {}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job under bubblewrap; the harness runs here, outside the sandbox."""
        try:
            job = {**job, "limits": self.job_limits(job)}
        except ValueError as exc:
            return error_verdict(str(exc))
        slot = self._slots.get()
        try:
            root = os.geteuid() == 0
            uid, tuid = (self._uids[slot], self._tester_uids[slot]) if root else (None, None)
            box = BwrapBox(uid, tuid, self.python, self.extra_binds, os.path.join(self._runner_dir, "grpo_sandbox"),
                           self._cgroups[slot], self._scratch[slot])
            box.seccomp = self._seccomp
            return run_job(job, box)
        finally:
            self._slots.put(slot)

    def close(self) -> None:
        """Remove the slots' cgroups and the runner copy."""
        for c in self._cgroups:
            if c is not None:
                c.remove()
        shutil.rmtree(self._runner_dir, ignore_errors=True)
        if self._scratch_root is not None:
            shutil.rmtree(self._scratch_root, ignore_errors=True)  # mounts are gone after each run
