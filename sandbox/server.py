"""The warm server inside a sandbox container: reads jobs as length-prefixed JSON frames on stdin,
runs each through the harness (one forked candidate process per run, as an unprivileged uid) and
writes the verdict frame to stdout. It is pid 1 of the container, so after every run it can kill
every other process in it and reap them; a run never sees a file or process of the one before.

Usage (the image's command): python3 -I -u /opt/grpo_sandbox/server.py  with env SANDBOX_UID
"""

import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

# the image holds this package at /opt/grpo_sandbox (stdlib only); -I leaves the script's dir off sys.path
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grpo_sandbox import harness  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
SCRATCH = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")  # POSIX queues outlive processes too


class DockerBox:
    """Runs the candidate as ``uid`` in this container; cleans up as pid 1."""

    def __init__(self, uid: int):
        self.uid = uid

    def spawn(self, cmd_r: int, res_w: int, limits: dict) -> subprocess.Popen:
        """Start the runner as the unprivileged uid in its own session, with the two harness pipes."""
        return subprocess.Popen(
            [sys.executable, "-I", "-S", RUNNER, str(cmd_r), str(res_w)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(cmd_r, res_w),
            cwd="/work", env=harness.CANDIDATE_ENV, user=self.uid, group=self.uid, extra_groups=[],
            start_new_session=True,
        )

    def runner_limits(self, limits: dict) -> dict:
        """rlimits the runner applies: the memory cgroup backs RLIMIT_AS up for the whole tree."""
        return {"cpu_s": limits["cpu_s"], "disk_mb": limits["disk_mb"], "as_mb": limits["memory_mb"],
                "nproc": limits["pids"]}

    def kill(self, proc: subprocess.Popen) -> None:
        """Kill every process in the container but this one, then reap them all."""
        for _ in range(1000):
            try:
                os.kill(-1, signal.SIGKILL)  # from pid 1: every other process in the namespace
            except ProcessLookupError:
                pass
            if proc.returncode is None:
                proc.wait()
            _reap()
            if not _others_alive():
                return
            time.sleep(0.001)
        raise RuntimeError("processes survived SIGKILL")

    def oom_kills(self) -> int:
        """How many processes the container's memory cgroup has OOM-killed so far (v1 or v2)."""
        for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
            try:
                with open(path) as fh:
                    for line in fh:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            except OSError:
                continue
        return 0

    def reset(self) -> None:
        """Empty the scratch mounts and IPC objects, as the run uid (root here cannot enter its 0700 dirs)."""
        if not any(os.listdir(top) for top in SCRATCH if os.path.isdir(top)) and not _ipc_objects():
            return  # the common case: the run left nothing, so skip the fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgroups([])
                os.setgid(self.uid)
                os.setuid(self.uid)
                for top in SCRATCH:
                    _wipe(top)
                _remove_sysv_ipc()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("scratch cleanup failed")
        for top in SCRATCH:
            if os.path.isdir(top) and os.listdir(top):
                raise RuntimeError(f"{top} not empty after cleanup")


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _others_alive() -> bool:
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                with open(f"/proc/{name}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                return True
    return False


def _wipe(top: str) -> None:
    if not os.path.isdir(top):
        return
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for root, dirs, _ in os.walk(path):  # the owner can always chmod back what it locked
                os.chmod(root, 0o700)
                for d in dirs:
                    p = os.path.join(root, d)
                    if not os.path.islink(p):
                        os.chmod(p, 0o700)
            os.chmod(path, 0o700)
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _ipc_objects() -> bool:
    for table in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{table}") as fh:
                if len(fh.read().splitlines()) > 1:
                    return True
        except OSError:
            continue
    return False


def _remove_sysv_ipc() -> None:
    """SysV shared memory, semaphores and queues outlive processes; remove this uid's."""
    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    for table, fn in (("shm", libc.shmctl), ("sem", libc.semctl), ("msg", libc.msgctl)):
        try:
            with open(f"/proc/sysvipc/{table}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            ident = int(row.split()[1])
            if table == "sem":
                fn(ident, 0, ipc_rmid)
            else:
                fn(ident, ipc_rmid, None)


def read_frame(stream):
    """One length-prefixed JSON frame, or None at end of input."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return json.loads(stream.read(n))


def write_frame(stream, obj) -> None:
    """Write one length-prefixed JSON frame and flush."""
    data = json.dumps(obj).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def main() -> None:
    uid = int(os.environ.get("SANDBOX_UID", "10001"))
    box = DockerBox(uid)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    box.reset()
    write_frame(stdout, {"ready": True, "uid": uid})
    runs = 0
    while True:
        job = read_frame(stdin)
        if job is None:
            return
        runs += 1
        verdict = harness.run_job(job, box)
        verdict["box"] = {"uid": uid, "run": runs}  # lets the host (and tests) see container reuse
        write_frame(stdout, verdict)


if __name__ == "__main__":
    main()
