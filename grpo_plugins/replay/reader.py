"""Read-only access without the writer lock: a buffer's records, and the full check behind ``buffer check``."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CorruptRecordWarning, NotABufferError
from .format import LEGACY, QUARANTINE, SEGMENTS, Corruption, Entry, Loss, scan_log
from .segments import Store, leftovers, list_segments, live_positions, seg_path


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
    """What ``grpo-plugins buffer check`` found: live records, corrupt lines, missing acknowledged records,
    damage (problems), a torn tail, leftovers of interrupted operations that a writer's open cleans (notes)."""

    records: int
    segments: int
    corrupt: list[Corruption]
    torn: tuple[int, int, int] | None
    quarantined: list[str]
    problems: list[str]
    losses: list[Loss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.problems and not self.losses


def check_buffer(root: str | os.PathLike) -> CheckReport:
    """Verify every line of every segment against its checksum and the indexes against their logs."""
    root = Path(root)
    problems: list[str] = []
    if not (root / SEGMENTS).is_dir() and not (root / LEGACY).exists():
        raise NotABufferError(f"{root}: not a replay buffer (no {SEGMENTS}/ or {LEGACY})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptRecordWarning)
        store = BufferReader(root).store
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
    problems += ([store.checkpoint_damaged] if store.checkpoint_damaged else []) + store.problems
    notes = [f"{p}: left by a seal, compaction or checkpoint killed half-way (removed by the next writer open)"
             for p in leftovers(root)]
    notes += [f"{seg_path(root, seg, 'idx')}: missing or stale index, nothing missing from its log (rebuilt by "
              f"the next writer open)" for seg in store.stale]
    notes += [f"segment {seg}: the checkpoint's count predates an interrupted compaction or deletion, nothing "
              f"live is missing (updated by the next writer open)" for seg in store.recount]
    if store.recovered:
        seg, n = store.recovered
        notes.append(f"segment {seg}: {n} intact acknowledged records after its last commit line are kept (the next "
                     f"writer open commits them again)")
    qdir = root / QUARANTINE
    quarantined = sorted(str(p) for p in qdir.iterdir()) if qdir.is_dir() else []
    return CheckReport(sum(store.idx.live), len(store.segments), corrupt, store.torn, quarantined, problems,
                       list(store.losses), notes)
