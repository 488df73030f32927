"""The kernel's count of OOM kills in a memory cgroup, read from its events file. Standard library
only: the server reads it inside the container, the local backend's cgroups on the host."""

from __future__ import annotations

V1_FILE = "memory.oom_control"  # cgroup v1: "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
V2_FILE = "memory.events"  # cgroup v2: "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"


def parse_oom_kills(text: str) -> int | None:
    """The ``oom_kill`` count of a v1 ``memory.oom_control`` or v2 ``memory.events`` text; None if absent."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return None  # kernels before 4.13 have no oom_kill line in v1's file


def read_oom_kills(*paths: str) -> int:
    """The count from the first of ``paths`` that can be read and has one; 0 when none does."""
    for path in paths:
        try:
            with open(path) as fh:
                count = parse_oom_kills(fh.read())
        except OSError:
            continue
        if count is not None:
            return count
    return 0
