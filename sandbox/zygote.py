"""The zygote: a pre-imported interpreter forked by the container's server before any job arrives,
which forks one child per candidate or tester process (the way pools skip interpreter start-up).
The server sends it the child's uid, working dir, environment and pipe ends (SCM_RIGHTS); the
child drops to the uid, takes the pipes as its stdio and runs the runner or the tester, then
ends as a fresh interpreter would (non-daemon threads joined, atexit run, stdio flushed). The
zygote never sees a job: it holds only imported code, so nothing of one run (memory, files,
environment) reaches the next. Stdlib only (copied into the sandbox image)."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import sys

MAX_FDS = 8


class ZygoteGone(RuntimeError):
    """The zygote stopped answering; the server falls back to starting interpreters."""


class Zygote:
    """The server's end: start the zygote, ask it for processes, collect their exit statuses."""

    def __init__(self, preload=()):
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the zygote
            self.sock.close()
            code = 1
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                for i in (0, 1):  # the server's job and verdict streams are not the zygote's
                    os.dup2(devnull, i)
                os.close(devnull)
                for name in preload:
                    try:
                        __import__(name)
                    except Exception:
                        pass
                _serve(child)
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.pid = pid
        self.exits: dict[int, int] = {}

    def spawn(self, role: str, uid: int, oom_adj: int, cwd: str, env: dict, fds: list[int]) -> "ZygoteProc":
        """A new process of ``role`` ("candidate" | "tester"); its stdio are new pipes, ``fds`` pass through."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        head = json.dumps({"role": role, "uid": uid, "adj": oom_adj, "cwd": cwd, "env": env, "fds": len(fds)})
        try:
            socket.send_fds(self.sock, [head.encode()], [in_r, out_w, err_w, *fds])
            pid = self._until(lambda m: "pid" in m)["pid"]
        except OSError as exc:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise ZygoteGone(str(exc)) from exc
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        return ZygoteProc(self, pid, in_w, out_r, err_r)

    def _until(self, want, block: bool = True) -> dict | None:
        while True:
            try:
                data = self.sock.recv(65536, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            if not data:
                raise ZygoteGone("the zygote exited")
            msg = json.loads(data)
            if "exit" in msg:
                self.exits[msg["exit"]] = msg["status"]
                if not want(msg):
                    continue
            if want(msg):
                return msg

    def collect(self, pid: int, block: bool) -> int | None:
        """The exit status of ``pid`` once the zygote has reaped it (negative: killed by that signal)."""
        while pid not in self.exits:
            if self._until(lambda m: m.get("exit") == pid, block) is None:
                return None
        return self.exits.pop(pid)


class ZygoteProc:
    """A zygote child, with the parts of ``subprocess.Popen`` the harness uses."""

    def __init__(self, zygote: Zygote, pid: int, stdin_fd: int, stdout_fd: int, stderr_fd: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None
        self.stdin = open(stdin_fd, "wb", buffering=0)
        self.stdout = open(stdout_fd, "rb", buffering=0)
        self.stderr = open(stderr_fd, "rb", buffering=0)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.collect(self.pid, block=False)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.collect(self.pid, block=True)
        return self.returncode


def _serve(sock: socket.socket) -> None:
    """The zygote's loop: fork on request, report each child's exit status."""
    children: dict[int, int] = {}  # pidfd -> pid
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == sock.fileno():
                try:
                    data, fds, _, _ = socket.recv_fds(sock, 65536, MAX_FDS + 3)
                except OSError:
                    return
                if not data:
                    return  # the server is gone
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    _child(json.loads(data), fds)  # never returns
                for f in fds:
                    os.close(f)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = pid
                poller.register(pidfd, select.POLLIN)
                sock.send(json.dumps({"pid": pid}).encode())
            else:
                pid = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                sock.send(json.dumps({"exit": pid, "status": os.waitstatus_to_exitcode(status)}).encode())


def _child(req: dict, fds: list[int]) -> None:
    code = 1
    try:
        os.setsid()
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(req["adj"]))
        os.setgroups([])
        os.setresgid(req["uid"], req["uid"], req["uid"])
        os.setresuid(req["uid"], req["uid"], req["uid"])
        for i, fd in enumerate(fds[:3]):
            os.dup2(fd, i)
        keep = set(fds[3:]) | {0, 1, 2}
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in keep:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # buffered stdio over the new fds, as a fresh interpreter has (the server's are unbuffered)
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                                     encoding="utf-8")
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                                       encoding="utf-8")
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                                       encoding="utf-8", errors="backslashreplace",
                                                       line_buffering=True)
        fd_args = [str(f) for f in fds[3:]]
        if req["role"] == "candidate":
            from grpo_sandbox import runner as mod
        else:
            from grpo_sandbox import tester as mod
        sys.argv = [mod.__file__, *fd_args]
        code = _run_main(mod.main)
    finally:
        os._exit(code)


def _run_main(main) -> int:
    """Run ``main`` and end the way the interpreter does: exit code, excepthook, threads, atexit."""
    import atexit
    import threading

    code = 0
    try:
        main()
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        try:
            sys.excepthook(*sys.exc_info())
        except BaseException:
            pass
        code = 1
    try:
        threading._shutdown()  # join non-daemon threads, as interpreter shutdown does
        atexit._run_exitfuncs()
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return code


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:
        pass
    return 1
