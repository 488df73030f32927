"""Segment files loaded into memory: the per-record index, evicted seqs, tags, corrupt lines, legacy migration."""

from __future__ import annotations

import bisect
import errno
import os
import warnings
from array import array
from pathlib import Path
from typing import Any, Sequence

from ..io import fsync_dir
from .errors import BufferCorruptError, CorruptRecordWarning
from .format import (LEGACY, QUARANTINE, SEGMENTS, STATE, Corruption, Entry, decode_line, encode_line, key_prefix,
                     scan_log, split_header, unranges, write_file)

NO_CYCLE = -(2**31)  # cycle None in the index
_IDX_COLUMNS = (("seq", "q"), ("off", "q"), ("ln", "q"), ("cycle", "q"), ("key8", "Q"))


class Index:
    """Per-record columns for every record in the segment files, in seq order (live or evicted)."""

    def __init__(self):
        self.seq, self.seg, self.off, self.ln = array("q"), array("l"), array("q"), array("q")
        self.cycle, self.key8, self.live = array("q"), array("Q"), array("b")

    def __len__(self) -> int:
        return len(self.seq)

    def add(self, seq: int, seg: int, off: int, ln: int, cycle: int | None, key8: int) -> None:
        self.seq.append(seq)
        self.seg.append(seg)
        self.off.append(off)
        self.ln.append(ln)
        self.cycle.append(NO_CYCLE if cycle is None else cycle)
        self.key8.append(key8)
        self.live.append(1)

    def extend_columns(self, seg: int, cols: dict[str, array]) -> None:
        n = len(cols["seq"])
        self.seq.extend(cols["seq"])
        self.seg.extend(array("l", [seg]) * n)
        self.off.extend(cols["off"])
        self.ln.extend(cols["ln"])
        self.cycle.extend(cols["cycle"])
        self.key8.extend(cols["key8"])
        self.live.extend(array("b", [1]) * n)

    def pos(self, seq: int) -> int | None:
        i = bisect.bisect_left(self.seq, seq)
        return i if i < len(self.seq) and self.seq[i] == seq else None

    def segment_span(self, seg: int) -> tuple[int, int]:
        return bisect.bisect_left(self.seg, seg), bisect.bisect_right(self.seg, seg)

    def delete_span(self, a: int, b: int) -> None:
        for name in ("seq", "seg", "off", "ln", "cycle", "key8", "live"):
            del getattr(self, name)[a:b]

    def columns(self, a: int, b: int) -> bytes:
        return b"".join(getattr(self, name)[a:b].tobytes() for name, _ in _IDX_COLUMNS)


def seg_path(root: Path, seg: int, ext: str) -> Path:
    """The log (``ext`` = log) or index (idx) file of segment ``seg``."""
    return root / SEGMENTS / f"{seg:08d}.{ext}"


def list_segments(root: Path) -> list[int]:
    """Numbers of the segment logs in a buffer directory, oldest first."""
    d = root / SEGMENTS
    if not d.is_dir():
        return []
    return sorted(int(p.name[:-4]) for p in d.iterdir() if p.name.endswith(".log") and p.name[:-4].isdigit())


def read_idx(path: Path, log_size: int) -> dict[str, array] | None:
    """A sealed segment's index columns; None when missing, corrupt or written for another log size."""
    try:
        parsed = split_header(path.read_bytes())
    except FileNotFoundError:
        return None
    if parsed is None:
        return None
    header, body = parsed
    n = header.get("n", -1)
    if header.get("log_size") != log_size or len(body) != 8 * n * len(_IDX_COLUMNS):
        return None  # the log was rewritten (compaction killed between its two renames): rescan
    cols, pos = {}, 0
    for name, code in _IDX_COLUMNS:
        cols[name] = array(code)
        cols[name].frombytes(body[pos : pos + 8 * n])
        pos += 8 * n
    return cols


class Store:
    """The loaded state of a buffer directory: index, evicted seqs, tags, corruption found."""

    def __init__(self, root: Path, writable: bool):
        self.root, self.writable = root, writable
        self.idx = Index()
        self.dead: set[int] = set()  # evicted seqs still present in a segment file
        self.tags: dict[str, dict[str, Any]] = {}
        self.sealed, self.next_seq = -1, 0
        self.corrupt: list[Corruption] = []
        self.live_per_seg: dict[int, int] = {}
        self.torn: tuple[int, int, int] | None = None  # (segment, good end, size) of a torn tail
        self.segments: list[int] = []
        self.pending_evict: list[int] = []  # found corrupt or over capacity at open: tombstone next commit
        self.inodes: dict[int, int] = {}  # segment -> inode of the log as loaded (a compaction replaces it)

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        state_path = self.root / STATE
        try:
            data = state_path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None:
            parsed = split_header(data)
            if parsed is None:
                raise BufferCorruptError(f"{state_path}: the buffer's checkpoint fails its checksum; "
                                         f"`grpo-plugins buffer check {self.root}` lists the segments")
            header, body = parsed
            self.sealed, self.next_seq, self.tags = header["sealed"], header["next_seq"], header["tags"]
            runs = array("q")
            runs.frombytes(body)
            self.dead = set(unranges(zip(runs[0::2], runs[1::2])))
        self.segments = list_segments(self.root)
        for seg in self.segments:
            log = seg_path(self.root, seg, "log")
            st = log.stat()
            size, self.inodes[seg] = st.st_size, st.st_ino
            cols = read_idx(seg_path(self.root, seg, "idx"), size) if seg <= self.sealed else None
            if cols is not None:
                self.idx.extend_columns(seg, cols)
                continue
            scan = scan_log(log, committed_only=seg > self.sealed)
            for off, ln in scan.corrupt:
                self.record_corrupt(log, off, ln, None)
            for off, ln, e in scan.records:
                self.idx.add(e["seq"], seg, off, ln, e.get("cycle"), key_prefix(e["key"]))
            if seg > self.sealed:  # commits newer than the checkpoint: evictions and tags
                for c in scan.commits:
                    self.dead.update(unranges(c.get("evict", ())))
                    if c.get("tag") is not None:
                        self.tags[c["tag"]] = {"added": c.get("added"), "size": c.get("size")}
            if scan.good_end < scan.size or scan.uncommitted:
                if seg == self.segments[-1]:
                    self.torn = (seg, scan.good_end, scan.size)
                else:
                    warnings.warn(CorruptRecordWarning(
                        f"{log}:{scan.good_end}: {scan.size - scan.good_end} bytes after the last commit of a "
                        f"segment that is not the newest ({scan.uncommitted} uncommitted records ignored)"))
        if len(self.idx):
            self.next_seq = max(self.next_seq, self.idx.seq[-1] + 1)
        for seq in self.dead:
            p = self.idx.pos(seq)
            if p is not None:
                self.idx.live[p] = 0
        self.dead = {s for s in self.dead if self.idx.pos(s) is not None}
        for seg in self.segments:
            a, b = self.idx.segment_span(seg)
            self.live_per_seg[seg] = sum(self.idx.live[a:b])
        self.report_corrupt()

    def record_corrupt(self, log: Path, off: int, ln: int, seq: int | None) -> Corruption:
        """Note a line that fails its checksum, copying its bytes to quarantine/ when writable."""
        c = Corruption(str(log), off, ln, seq)
        qdir = self.root / QUARANTINE
        moved = qdir / f"{log.stem}-{off}.bad"
        if moved.exists():
            c.moved_to = str(moved)
        elif self.writable:
            try:  # a copy of the bytes, so nothing is lost for a later look; the log itself is immutable
                qdir.mkdir(exist_ok=True)
                with open(log, "rb") as fh:
                    fh.seek(off)
                    write_file(moved, fh.read(ln))
                c.moved_to = str(moved)
            except OSError:
                pass
        self.corrupt.append(c)
        return c

    def report_corrupt(self, new: Sequence[Corruption] | None = None) -> None:
        items = self.corrupt if new is None else new
        by_file: dict[str, list[Corruption]] = {}
        for c in items:
            by_file.setdefault(c.file, []).append(c)
        for f, cs in by_file.items():
            offs = ", ".join(str(c.offset) for c in cs[:10]) + (", ..." if len(cs) > 10 else "")
            moved = f"; moved aside to {self.root / QUARANTINE}" if all(c.moved_to for c in cs) else ""
            warnings.warn(CorruptRecordWarning(f"{f}: {len(cs)} corrupt record(s) at offset(s) {offs}{moved}"),
                          stacklevel=4)

    # --- reading records ---------------------------------------------------------------------

    def read(self, positions: Sequence[int]) -> tuple[list[Entry], list[int]]:
        """Entries at index positions (in the order given) and the positions that failed their checksum."""
        out: dict[int, Entry] = {}
        bad: list[int] = []
        found: list[Corruption] = []
        by_seg: dict[int, list[int]] = {}
        for p in positions:
            by_seg.setdefault(self.idx.seg[p], []).append(p)
        for seg, ps in by_seg.items():
            log = seg_path(self.root, seg, "log")
            fd = os.open(log, os.O_RDONLY)
            try:
                if not self.writable and os.fstat(fd).st_ino != self.inodes.get(seg):
                    # the writer compacted this segment since we loaded it: our offsets are stale
                    raise FileNotFoundError(errno.ENOENT, "segment rewritten since it was opened", str(log))
                for p in sorted(ps, key=lambda p: self.idx.off[p]):
                    off, ln = self.idx.off[p], self.idx.ln[p]
                    obj = decode_line(os.pread(fd, ln, off))
                    if obj is None or obj.get("seq") != self.idx.seq[p]:
                        bad.append(p)
                        found.append(self.record_corrupt(log, off, ln, self.idx.seq[p]))
                        continue
                    out[p] = Entry(**obj)
            finally:
                os.close(fd)
        if found:
            self.report_corrupt(found)
        return [out[p] for p in positions if p in out], bad


def live_positions(idx: Index, cycle: int | None, before_cycle: int | None) -> list[int]:
    """Index positions of live records: all, one cycle's, or those of cycles before ``before_cycle``."""
    live, cyc = idx.live, idx.cycle
    if cycle is not None:
        return [p for p in range(len(idx)) if live[p] and cyc[p] == cycle]
    if before_cycle is not None:
        return [p for p in range(len(idx)) if live[p] and NO_CYCLE != cyc[p] < before_cycle]
    return [p for p in range(len(idx)) if live[p]]


def migrate_legacy(root: Path) -> None:
    """Turn a single-file buffer (records.jsonl, before segments) into segment 0, committed as it stands."""
    legacy = root / LEGACY
    if not legacy.exists() or list_segments(root):
        return
    scan = scan_log(legacy, committed_only=False)
    (root / SEGMENTS).mkdir(exist_ok=True)
    with open(legacy, "r+b") as fh:
        fh.truncate(scan.good_end)
        fh.seek(scan.good_end)
        fh.write(encode_line({"commit": len(scan.records), "evict": [], "migrated": True}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(legacy, seg_path(root, 0, "log"))
    fsync_dir(root)
    fsync_dir(root / SEGMENTS)
