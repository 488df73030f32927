"""A crash-safe on-disk replay buffer of labelled rollouts.

One JSONL file, append-only: each line is ``<crc32 hex> <json>``. An append returns only after the
line is written with one ``write`` call and fsynced, so a returned append (an acknowledged record)
survives a kill at any later moment. A kill during a write leaves at most one torn last line; readers
drop it by its missing newline or bad checksum, and the next writer truncates it away before
appending. Records carry provenance (cycle, policy step, sequence number) and a content hash for
dedupe. Over capacity, the buffer is compacted (rewritten to a temp file, fsynced, renamed).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ..io import fsync_dir

Eviction = Literal["fifo", "random"]
FILE = "records.jsonl"
LOCK = ".lock"


def content_key(record: dict[str, Any], fields: Sequence[str] | None = None) -> str:
    """sha256 of the canonical JSON of a record's content (``fields`` only when given)."""
    if fields is not None:
        record = {k: record.get(k) for k in fields}
    return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def encode_line(entry: dict[str, Any]) -> bytes:
    """``<crc32> <json>\\n`` for one buffer entry."""
    payload = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    return f"{zlib.crc32(payload.encode()):08x} {payload}\n".encode()


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The entry of a complete, checksum-valid line; None for a torn or corrupt one."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        return json.loads(payload)
    except ValueError:
        return None


def scan(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int, int]:
    """Read a buffer file: (entries, byte length of the valid prefix, corrupt lines skipped)."""
    entries, good_end, bad, pos = [], 0, 0, 0
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return [], 0, 0
    for line in data.splitlines(keepends=True):
        pos += len(line)
        entry = decode_line(line)
        if entry is None:
            bad += 1
            continue
        entries.append(entry)
        good_end = pos
    return entries, good_end, bad


@dataclass
class Entry:
    """A stored record with its provenance."""

    seq: int
    key: str
    cycle: int | None
    policy_step: int | None
    added_at: float
    record: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "key": self.key, "cycle": self.cycle, "policy_step": self.policy_step,
                "added_at": self.added_at, "record": self.record}


class ReplayBuffer:
    """Append-only, fsynced, deduplicated record store with a capacity and an eviction rule."""

    def __init__(self, root: str | os.PathLike, capacity: int | None = None, eviction: Eviction = "fifo",
                 dedupe_fields: Sequence[str] | None = ("prompt", "completion"), seed: int = 0):
        if eviction not in ("fifo", "random"):
            raise ValueError(f"unknown eviction rule {eviction!r}; valid: fifo, random")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / FILE
        self.capacity = capacity
        self.eviction = eviction
        self.dedupe_fields = None if dedupe_fields is None else tuple(dedupe_fields)
        self.rng = random.Random(seed)
        # one writer at a time: a second process appending would interleave half-lines
        self._lock_fh = open(self.root / LOCK, "a")
        fcntl.flock(self._lock_fh, fcntl.LOCK_EX)
        entries, good_end, self.corrupt_lines = scan(self.path)
        if self.path.exists() and self.path.stat().st_size > good_end:
            # drop a torn tail so the next append starts on a clean line
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
        self.entries = [Entry(**e) for e in entries]
        self.keys = {e.key for e in self.entries}
        self.next_seq = max((e.seq for e in self.entries), default=-1) + 1
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_dir(self.root)

    def close(self) -> None:
        """Release the file and the writer lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, record: dict[str, Any], cycle: int | None = None, policy_step: int | None = None) -> bool:
        """Store one record durably; False (nothing written) when an equal record is already stored."""
        return self.extend([record], cycle, policy_step) == 1

    def extend(self, records: Iterable[dict[str, Any]], cycle: int | None = None,
               policy_step: int | None = None) -> int:
        """Store records durably (one fsync for the lot), skipping duplicates; returns how many were new."""
        new, lines, seen = [], [], set()
        for rec in records:
            key = content_key(rec, self.dedupe_fields)
            if key in self.keys or key in seen:
                continue
            seen.add(key)
            entry = Entry(self.next_seq + len(new), key, cycle, policy_step, time.time(), rec)
            new.append(entry)
            lines.append(encode_line(entry.to_json()))
        if lines:
            data = b"".join(lines)
            size = os.fstat(self._fd).st_size
            try:
                written = 0
                while written < len(data):  # O_APPEND: each write lands at the end of the file
                    written += os.write(self._fd, data[written:])
                os.fsync(self._fd)
            except BaseException:
                # a half-written line would swallow the next append's first line: cut it off
                os.ftruncate(self._fd, size)
                raise
            # only now are the records acknowledged: a failed write leaves the in-memory view unchanged
            self.entries += new
            self.keys |= seen
            self.next_seq += len(new)
            if self.capacity is not None and len(self.entries) > self.capacity:
                self._evict()
        return len(new)

    def _evict(self) -> None:
        """Drop entries down to capacity (oldest first, or random among older cycles) and compact."""
        excess = len(self.entries) - self.capacity
        if self.eviction == "fifo":
            drop = {e.seq for e in sorted(self.entries, key=lambda e: e.seq)[:excess]}
        else:
            newest = max((e.cycle for e in self.entries if e.cycle is not None), default=None)
            # the current cycle's data is what the PRM must learn next: evict history first
            older = [e.seq for e in self.entries if e.cycle != newest or newest is None]
            pool = older if len(older) >= excess else [e.seq for e in self.entries]
            drop = set(self.rng.sample(pool, excess))
        self.entries = [e for e in self.entries if e.seq not in drop]
        self.keys = {e.key for e in self.entries}
        tmp = self.path.with_name(FILE + ".compact")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(encode_line(e.to_json()) for e in self.entries))
            fh.flush()
            os.fsync(fh.fileno())
        os.close(self._fd)
        os.replace(tmp, self.path)
        fsync_dir(self.root)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def records(self, cycle: int | None = None, before_cycle: int | None = None) -> list[Entry]:
        """Stored entries, optionally only one cycle's or only those from cycles before ``before_cycle``."""
        out = self.entries
        if cycle is not None:
            out = [e for e in out if e.cycle == cycle]
        if before_cycle is not None:
            out = [e for e in out if e.cycle is not None and e.cycle < before_cycle]
        return list(out)


def read_buffer(root: str | os.PathLike) -> list[Entry]:
    """Entries of a buffer directory without taking the writer lock (torn tail ignored)."""
    entries, _, _ = scan(Path(root) / FILE)
    return [Entry(**e) for e in entries]
