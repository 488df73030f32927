"""Read-only access without the writer lock: a buffer's records, and the full check behind ``buffer check``."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import BufferCorruptError, CorruptRecordWarning, NotABufferError
from .format import LEGACY, QUARANTINE, SEGMENTS, Corruption, Entry, scan_log
from .segments import Store, list_segments, live_positions, read_idx, seg_path


class BufferReader:
    """A read-only view of a buffer directory, taken without the writer lock (the writer may be running)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        for attempt in range(5):  # a concurrent seal or reclaim can delete a file between list and read
            try:
                self.store = Store(self.root, writable=False)
                if (self.root / LEGACY).exists() and not list_segments(self.root):
                    self._load_legacy()
                else:
                    self.store.load()
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise
                time.sleep(0.05)

    def _load_legacy(self) -> None:
        scan = scan_log(self.root / LEGACY, committed_only=False)
        self._legacy = [Entry(**e) for _, _, e in scan.records]
        for off, ln in scan.corrupt:
            self.store.record_corrupt(self.root / LEGACY, off, ln, None)
        self.store.report_corrupt()

    def __len__(self) -> int:
        if hasattr(self, "_legacy"):
            return len(self._legacy)
        return sum(self.store.idx.live)

    def records(self, cycle: int | None = None, before_cycle: int | None = None) -> list[Entry]:
        """Stored entries in seq order (a record failing its checksum is reported and left out)."""
        if hasattr(self, "_legacy"):
            return [e for e in self._legacy if (cycle is None or e.cycle == cycle) and (
                before_cycle is None or (e.cycle is not None and e.cycle < before_cycle))]
        return self.store.read(live_positions(self.store.idx, cycle, before_cycle))[0]


def read_buffer(root: str | os.PathLike, cycle: int | None = None, before_cycle: int | None = None) -> list[Entry]:
    """Entries of a buffer directory without taking the writer lock (a torn tail is ignored)."""
    for attempt in range(5):
        try:
            return BufferReader(root).records(cycle, before_cycle)
        except FileNotFoundError:  # the writer deleted a segment between our open and our read
            if attempt == 4:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


@dataclass
class CheckReport:
    """What ``grpo-plugins buffer check`` found: live records, corrupt lines, a torn tail, quarantined files."""

    records: int
    segments: int
    corrupt: list[Corruption]
    torn: tuple[int, int, int] | None
    quarantined: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.problems


def check_buffer(root: str | os.PathLike) -> CheckReport:
    """Verify every line of every segment against its checksum and the indexes against their logs."""
    root = Path(root)
    problems: list[str] = []
    if not (root / SEGMENTS).is_dir() and not (root / LEGACY).exists():
        raise NotABufferError(f"{root}: not a replay buffer (no {SEGMENTS}/ or {LEGACY})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptRecordWarning)
        try:
            store = BufferReader(root).store
        except BufferCorruptError as exc:
            return CheckReport(0, 0, [], None, [], [str(exc)])
        corrupt = list(store.corrupt)
        seen = {(c.file, c.offset) for c in corrupt}
        for seg in store.segments:  # full scan: indexed segments are not read at open
            log = seg_path(root, seg, "log")
            scan = scan_log(log, committed_only=seg > store.sealed)
            for off, ln in scan.corrupt:
                if (str(log), off) not in seen:
                    c = Corruption(str(log), off, ln)
                    moved = root / QUARANTINE / f"{log.stem}-{off}.bad"
                    c.moved_to = str(moved) if moved.exists() else None
                    corrupt.append(c)
            if seg <= store.sealed and read_idx(seg_path(root, seg, "idx"), scan.size) is None:
                problems.append(f"{seg_path(root, seg, 'idx')}: missing or stale index (rebuilt on the next open)")
    qdir = root / QUARANTINE
    quarantined = sorted(str(p) for p in qdir.iterdir()) if qdir.is_dir() else []
    return CheckReport(sum(store.idx.live), len(store.segments), corrupt, store.torn, quarantined, problems)
