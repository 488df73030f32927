"""The buffer's on-disk format: file names, checksummed record and commit lines, log scans, atomic files."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..io import fsync_dir

SEGMENTS = "segments"
STATE = "state"
QUARANTINE = "quarantine"
LOCK = ".lock"
LEGACY = "records.jsonl"  # the single-file layout before segments; migrated on a writer's open


def content_key(record: dict[str, Any], fields: Sequence[str] | None = None) -> str:
    """sha256 of the canonical JSON of a record's content (``fields`` only when given)."""
    if fields is not None:
        record = {k: record.get(k) for k in fields}
    return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def encode_line(entry: dict[str, Any]) -> bytes:
    """``<crc32> <json>\\n`` for one buffer entry or commit."""
    payload = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    return f"{zlib.crc32(payload.encode()):08x} {payload}\n".encode()


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The object of a complete, checksum-valid line; None for a torn or corrupt one."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def key_prefix(key: str) -> int:
    """The first 64 bits of a content key, as the index stores them."""
    return int(key[:16], 16)


def ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sorted seqs as [first, last] runs (FIFO evictions are one run)."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def unranges(runs: Iterable[Sequence[int]]) -> Iterator[int]:
    """The seqs of [first, last] runs (the inverse of ``ranges``)."""
    for a, b in runs:
        yield from range(a, b + 1)


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


@dataclass
class Corruption:
    """One line that failed its checksum: where it is and where its bytes were copied."""

    file: str
    offset: int
    length: int
    seq: int | None = None
    moved_to: str | None = None

    def __str__(self) -> str:
        where = f" (seq {self.seq})" if self.seq is not None else ""
        moved = f", moved aside to {self.moved_to}" if self.moved_to else ""
        return f"{self.file}:{self.offset}: {self.length} bytes fail their checksum{where}{moved}"


@dataclass
class LogScan:
    """A segment log read line by line: committed records, commits, corrupt lines, the torn tail."""

    records: list[tuple[int, int, dict[str, Any]]]  # (offset, length, entry json)
    commits: list[dict[str, Any]]
    corrupt: list[tuple[int, int]]
    good_end: int  # end of the last commit (or of the last line kept)
    size: int
    uncommitted: int  # valid record lines after the last commit (a torn batch)
    tail: list[tuple[int, int, dict[str, Any]]] = None  # those record lines (offset, length, entry json)
    newline_at: int | None = None  # offset of a final commit line's newline that is damaged (the batch is kept)


def scan_log(path: Path, committed_only: bool = True) -> LogScan:
    """Read a segment log line by line; with ``committed_only``, records count once a commit line follows them."""
    data = path.read_bytes()
    records, commits, corrupt, pending = [], [], [], []
    pos, good_end, bad_in_tail = 0, 0, False  # bad_in_tail: a corrupt complete line since the last commit
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl + 1
        line = data[pos:end]
        obj = decode_line(line)
        if obj is None:
            if nl >= 0:  # a complete line with a bad checksum: corruption, not a torn write
                corrupt.append((pos, end - pos))
                bad_in_tail = True
        elif "commit" in obj:
            records += pending
            pending = []
            commits.append(obj)
            good_end, bad_in_tail = end, False
        elif "seq" in obj:
            pending.append((pos, end - pos, obj))
            if not committed_only:
                records.append(pending.pop())
                good_end = end
        pos = end
    newline_at = None
    if pos and data and not data.endswith(b"\n"):
        start = data.rfind(b"\n", 0, len(data) - 1) + 1
        obj = decode_line(data[start:-1] + b"\n")
        if obj is not None and "commit" in obj:
            # a complete commit line whose last byte is not a newline: damage (a flip), not a torn write
            records += pending
            pending = []
            commits.append(obj)
            good_end, bad_in_tail, newline_at = len(data), False, len(data) - 1
    uncommitted = len(pending)
    if bad_in_tail:
        # a complete line that fails its checksum after the last commit is damage, not a torn write:
        # it may be the batch's own commit line, so the batch's records were acknowledged; keep them
        records += pending
        last = max([corrupt[-1][0] + corrupt[-1][1]] + [o + n for o, n, _ in pending])
        good_end, uncommitted, pending = max(good_end, last), 0, []
    return LogScan(records, commits, corrupt, good_end, len(data), uncommitted, pending, newline_at)


@dataclass
class Loss:
    """Acknowledged records a segment should hold (by the checkpoint's counts) that are not in it."""

    segment: int
    missing: int  # live records gone
    file: str
    detail: str = ""

    def __str__(self) -> str:
        return f"segment {self.segment}: {self.missing} acknowledged records missing ({self.file}{self.detail})"


def write_file(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (tmp, fsync, rename); the tmp file is removed when anything fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def with_header(header: dict[str, Any], body: bytes) -> bytes:
    """``body`` behind a checksummed header line that holds its length and crc32."""
    return encode_line({**header, "body_crc": zlib.crc32(body), "body_len": len(body)}) + body


def split_header(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, body) of a file written by ``with_header``; None when either fails its checksum."""
    nl = data.find(b"\n")
    header = decode_line(data[: nl + 1]) if nl >= 0 else None
    if header is None:
        return None
    body = data[nl + 1 :]
    if len(body) != header.get("body_len") or zlib.crc32(body) != header.get("body_crc"):
        return None
    return header, body
