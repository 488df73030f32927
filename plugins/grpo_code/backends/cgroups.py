"""Memory and pids cgroups for the local backend, so its limits cover a whole process tree (rlimits
bound one process each). cgroup v2 or v1; root only; when neither can be set up the backend runs
without one and says so (``LocalBackend.tree_memory_limit``)."""

from __future__ import annotations

import os
from pathlib import Path

from grpo_sandbox.cgroup_events import V1_FILE, V2_FILE, read_oom_kills

ROOT = Path("/sys/fs/cgroup")


class RunCgroup:
    """One cgroup (per controller for v1) that a local-backend slot's processes are moved into."""

    def __init__(self, dirs: dict[str, Path], v2: bool):
        self.dirs, self.v2 = dirs, v2

    @classmethod
    def create(cls, name: str) -> "RunCgroup | None":
        """Create (or reuse) the cgroup ``name``; None when this machine does not allow it."""
        if os.geteuid() != 0:
            return None
        try:
            if (ROOT / "memory").is_dir() and (ROOT / "pids").is_dir():  # v1 (or hybrid)
                dirs = {"memory": ROOT / "memory" / name, "pids": ROOT / "pids" / name}
                for d in dirs.values():
                    d.mkdir(exist_ok=True)
                return cls(dirs, v2=False)
            controllers = (ROOT / "cgroup.controllers").read_text().split()
            if "memory" in controllers and "pids" in controllers:
                (ROOT / "cgroup.subtree_control").write_text("+memory +pids")
                d = ROOT / name
                d.mkdir(exist_ok=True)
                return cls({"memory": d, "pids": d}, v2=True)
        except OSError:
            return None
        return None

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        """Memory (swap included: no swap beyond it) and process-count caps for everything inside."""
        mem, pid = self.dirs["memory"], self.dirs["pids"]
        if self.v2:
            _write(mem / "memory.max", memory_bytes)
            _write(mem / "memory.swap.max", 0, optional=True)
        else:
            # memsw must stay >= the memory limit at every step: open it, set memory, close it
            _write(mem / "memory.memsw.limit_in_bytes", -1, optional=True)
            _write(mem / "memory.limit_in_bytes", memory_bytes)
            _write(mem / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
        _write(pid / "pids.max", pids)

    def adopt(self, pid: int, uid: int | None) -> None:
        """Move ``pid`` and every live process of ``uid`` in; repeat until none is left outside, so a
        process forked during the move is caught too (the candidate's code has not started yet)."""
        moved: set[int] = set()
        for _ in range(20):
            todo = {pid} if pid not in moved else set()
            if uid is not None:
                todo |= {p for p in _uid_pids(uid) if p not in moved}
            if not todo:
                return
            for p in sorted(todo):
                for d in {*self.dirs.values()}:
                    try:
                        _write(d / "cgroup.procs", p)
                    except OSError:
                        pass  # it exited meanwhile
                moved.add(p)

    def oom_kills(self) -> int:
        """Processes the kernel has OOM-killed in this cgroup so far."""
        return read_oom_kills(str(self.dirs["memory"] / (V2_FILE if self.v2 else V1_FILE)))

    def remove(self) -> None:
        """Delete the cgroup (it must be empty)."""
        for d in {*self.dirs.values()}:
            try:
                d.rmdir()
            except OSError:
                pass


def _write(path: Path, value, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _uid_pids(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                continue
    return out
