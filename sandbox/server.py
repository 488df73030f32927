"""The warm server inside a sandbox container: reads jobs as length-prefixed JSON frames on stdin,
runs each through the harness and writes the verdict frame to stdout. Candidate and tester
processes are forked by a zygote (``zygote.py``: a pre-imported interpreter started before the
first job) and drop to their unprivileged uids. It is pid 1 of the container, so after every run it can kill
every other process in it and reap them; a run never sees a file or process of the one before.

Usage (the image's command): python3 -I -u /opt/grpo_sandbox/server.py  with env SANDBOX_UID
"""

import ctypes
import json
import os
import signal
import struct
import subprocess
import sys
import time

# the image holds this package at /opt/grpo_sandbox (stdlib only); -I leaves the script's dir off sys.path
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grpo_sandbox import harness  # noqa: E402
from grpo_sandbox.cgroup_events import V1_FILE, V2_FILE, read_oom_kills  # noqa: E402
from grpo_sandbox.zygote import Zygote, ZygoteGone  # noqa: E402

# pytest too: its import is most of a pytest-format run (the system site-packages are on the server's path)
PRELOAD = ("grpo_sandbox.runner", "grpo_sandbox.tester", "pickle", "json", "traceback", "unittest",
           "io", "pytest", "_pytest.python", "_pytest.assertion.rewrite", "_pytest.unittest", "_pytest.fixtures")

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "runner.py")
TESTER = os.path.join(HERE, "tester.py")
TESTER_UID_OFFSET = 1 << 24  # the tester's uid: never a candidate's, never a host user's
SCRATCH = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")  # POSIX queues outlive processes too


class DockerBox:
    """Runs the candidate as ``uid`` and the tester as another uid in this container; cleans up as pid 1."""

    def __init__(self, uid: int, zygote=None):
        self.uid = uid
        self.tester_uid = uid + TESTER_UID_OFFSET
        self.zygote = zygote  # forks pre-imported interpreters; None: start each one with exec

    def spawn(self, fds: list[int], limits: dict, role: str = "candidate") -> subprocess.Popen:
        """Start the runner (or the tester) as its unprivileged uid in its own session, with the pipes."""
        uid = self.uid if role == "candidate" else self.tester_uid
        script = RUNNER if role == "candidate" else TESTER
        adj = 1000 if role == "candidate" else 500
        cwd = "/work"  # shared by both: files a test and the code it tests exchange (never on the tester's path)
        if self.zygote is not None:
            try:
                return self.zygote.spawn(role, uid, adj, cwd, harness.CANDIDATE_ENV, fds)
            except ZygoteGone:
                self.zygote = None  # from now on, a fresh interpreter per process
        return subprocess.Popen(
            [sys.executable, "-I", "-S", script, *map(str, fds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=fds,
            cwd=cwd, env=harness.CANDIDATE_ENV, start_new_session=True, preexec_fn=lambda: become(uid, adj),
        )

    def runner_limits(self, limits: dict, role: str = "candidate") -> dict:
        """rlimits the runner applies: the memory cgroup backs RLIMIT_AS up for the whole tree."""
        return {"cpu_s": limits["cpu_s"], "disk_mb": limits["disk_mb"], "as_mb": limits["memory_mb"],
                "nproc": limits["pids"]}

    def kill(self, proc, role: str = "candidate") -> None:
        """Kill every process of the role's uid (the whole tree, daemons included), then reap them
        (the zygote, root, is never among them)."""
        uid = self.uid if role == "candidate" else self.tester_uid
        for _ in range(1000):
            if _alive(uid):  # the common case, a program that exited and left nothing, skips the fork
                _kill_as(uid)
            if proc.returncode is None:
                proc.wait()
            _reap()
            if not _alive(uid):
                return
            time.sleep(0.001)
        raise RuntimeError("processes survived SIGKILL")

    def oom_kills(self) -> int:
        """How many processes the container's memory cgroup has OOM-killed so far (v1 or v2)."""
        return read_oom_kills(f"/sys/fs/cgroup/memory/{V1_FILE}", f"/sys/fs/cgroup/{V2_FILE}")

    def reset(self) -> None:
        """Empty the scratch mounts and IPC objects, as the run uid (root here cannot enter its 0700 dirs)."""
        # the common case, a script's main.py and a few files: unlinked here, no fork
        left = [_unlink_files(top) for top in SCRATCH]
        if not any(left) and not _ipc_objects():
            return
        for uid in (self.uid, self.tester_uid):  # the tester's private dir is its own to remove
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                    for top in SCRATCH:
                        _wipe(top, uid)
                    _remove_sysv_ipc()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError("scratch cleanup failed")
            if not any(os.listdir(top) for top in SCRATCH if os.path.isdir(top)):
                break
        for top in SCRATCH:
            if os.path.isdir(top) and os.listdir(top):
                raise RuntimeError(f"{top} not empty after cleanup")


def become(uid: int, oom_adj: int) -> None:
    """In a child, before exec: raise its OOM score, then drop to ``uid`` with no supplementary
    groups. The OOM killer then takes the candidate first, then the tester, before the server:
    memfd and tmpfs pages are in no process's RSS, so by size alone the server could look like
    the biggest process. With CAP_SYS_RESOURCE (where the engine grants it) the write is also the
    floor the child's uid cannot go below; without it, a process may lower its own score back to
    the server's, not below."""
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write(str(oom_adj))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)




def _kill_as(uid: int) -> None:
    """kill(-1, SIGKILL) as ``uid``: every process of that uid at once, however fast it forks."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _alive(uid: int) -> bool:
    """Whether a live (not zombie) process of ``uid`` is left."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                return True
    return False


def _wipe(top: str, uid: int) -> None:
    """Remove everything under ``top`` that ``uid`` owns, whatever its modes and depth: an iterative
    walk (no recursion limit) that gives each directory back its owner's rwx before entering it."""
    if not os.path.isdir(top):
        return
    stack = [(top, False)]
    while stack:
        path, listed = stack.pop()
        if listed:
            if path != top:
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # someone else's entries inside: the other uid's pass removes them
            continue
        if path != top:
            try:
                os.chmod(path, 0o700)
            except OSError:
                continue  # not ours
        stack.append((path, True))
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if e.stat(follow_symlinks=False).st_uid == uid:
                        stack.append((e.path, False))
                else:
                    os.unlink(e.path)
            except OSError:
                pass


def _unlink_files(top: str) -> bool:
    """Unlink the files (not directories) directly under ``top``: root owns the sticky scratch
    mounts, and a sticky directory's owner may remove any entry in it. Whether anything is left."""
    try:
        entries = list(os.scandir(top))
    except OSError:
        return False  # no such mount here
    left = False
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                left = True
            else:
                os.unlink(e.path)
        except OSError:
            left = True  # the per-uid sweep takes what is left
    return left


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


def protect_from_oom() -> None:
    """With CAP_SYS_RESOURCE, make this server (and the zygote it forks) unkillable by the OOM
    killer; the children it starts then get score floors their uids cannot lower."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("-1000")
    except OSError:
        pass  # no CAP_SYS_RESOURCE: the scores alone put the candidate and the tester first


def main() -> None:
    uid = int(os.environ.get("SANDBOX_UID", "10001"))
    protect_from_oom()
    # the engine mounts tmpfs with the sticky bit whatever mode it is given; /work is shared by
    # tester and candidate, and either may remove the other's files
    os.chmod("/work", 0o777)
    # forked before the first job is read, so the zygote never holds any job's data
    zygote = Zygote(PRELOAD) if os.environ.get("SANDBOX_ZYGOTE", "1") == "1" else None
    box = DockerBox(uid, zygote)
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
