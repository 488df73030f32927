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
from .errors import CorruptRecordWarning
from .format import (LEGACY, QUARANTINE, SEGMENTS, STATE, Corruption, Entry, Loss, decode_line, encode_line, key_prefix,
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


def leftovers(root: Path) -> list[Path]:
    """Temp files of a seal, compaction or checkpoint killed half-way (a writer's open removes them)."""
    found = list((root / SEGMENTS).glob("*.tmp")) if (root / SEGMENTS).is_dir() else []
    return found + [p for p in (root / (STATE + ".tmp"),) if p.exists()]


def read_idx(path: Path, log_size: int | None) -> dict[str, array] | None:
    """A sealed segment's index columns; None when missing, corrupt or written for another log size (any: None)."""
    try:
        parsed = split_header(path.read_bytes())
    except FileNotFoundError:
        return None
    if parsed is None:
        return None
    header, body = parsed
    n = header.get("n", -1)
    if (log_size is not None and header.get("log_size") != log_size) or len(body) != 8 * n * len(_IDX_COLUMNS):
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
        self.version = 2  # of the checkpoint read; 1: the format before per-segment counts
        self.expect: dict[int, tuple[int, int, int]] = {}
        self.losses: list[Loss] = []  # acknowledged records missing, per segment
        self.stale: list[int] = []  # sealed segments whose index a writer rebuilds (nothing live missing)
        self.recount: list[int] = []  # segments whose checkpoint count a writer updates (nothing live missing)
        self.cut: dict[int, int] = {}  # sealed segment -> end of its last intact line (rescanned ones)
        self.problems: list[str] = []  # damage found at load that is not a record count
        self.checkpoint_damaged: str | None = None
        self.newline_at: tuple[int, int] | None = None  # (segment, offset) of a damaged final newline
        self.recovered: tuple[int, int] | None = None  # (segment, records) kept after a cut last commit

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        state_path = self.root / STATE
        try:
            data = state_path.read_bytes()
        except FileNotFoundError:
            data = None
        expect: dict[int, tuple[int, int, int]] = {}  # segment -> (records, first seq, last seq) at checkpoint
        rebuild = False
        if data is not None:
            parsed = split_header(data)
            if parsed is None:
                # the segments hold everything but the tombstones and tags of deleted segments: rebuild
                rebuild = True
                self.checkpoint_damaged = (
                    f"{state_path}: the checkpoint fails its checksum; rebuilt from the segments (evictions and "
                    f"tags committed in deleted segments are lost; a writer open writes a new checkpoint)")
                warnings.warn(CorruptRecordWarning(self.checkpoint_damaged), stacklevel=4)
            else:
                header, body = parsed
                self.sealed, self.next_seq, self.tags = header["sealed"], header["next_seq"], header["tags"]
                self.version = header.get("version", 1)
                expect = {e[0]: (e[1], e[2], e[3]) for e in header.get("segs", ())}
                runs = array("q")
                runs.frombytes(body)
                self.dead = set(unranges(zip(runs[0::2], runs[1::2])))
        self.expect = expect
        self.segments = list_segments(self.root)
        if rebuild:  # sealed = the newest segment whose index matches its log
            self.sealed = max((seg for seg in self.segments if read_idx(seg_path(self.root, seg, "idx"),
                              seg_path(self.root, seg, "log").stat().st_size) is not None), default=-1)
        checks = []  # (segment, records found, stale index) of segments to hold against the checkpoint
        for seg in self.segments:
            log = seg_path(self.root, seg, "log")
            st = log.stat()
            size, self.inodes[seg] = st.st_size, st.st_ino
            cols = read_idx(seg_path(self.root, seg, "idx"), size) if seg <= self.sealed else None
            if cols is not None and not rebuild:
                self.idx.extend_columns(seg, cols)
                if seg in expect and expect[seg][0] != len(cols["seq"]):
                    checks.append((seg, cols["seq"], False))
                continue
            scan = scan_log(log, committed_only=seg > self.sealed)
            if seg > self.sealed and scan.tail and seg in expect:
                # records after the last commit that the checkpoint counts as acknowledged: the log was
                # cut inside committed batches, not torn by a kill; keep the intact ones
                last = expect[seg][2]
                keep = [r for r in scan.tail if r[2]["seq"] <= last]
                if keep:
                    scan.records += keep
                    scan.uncommitted -= len(keep)
                    scan.good_end = max(scan.good_end, keep[-1][0] + keep[-1][1])
                    self.recovered = (seg, len(keep))
                    warnings.warn(CorruptRecordWarning(
                        f"segment {seg}: {log} is cut after {len(keep)} intact acknowledged records of a batch "
                        f"whose commit line is gone; they are kept (a writer commits them again)"), stacklevel=4)
            if scan.newline_at is not None:
                self.newline_at = (seg, scan.newline_at)
                self.problems.append(f"segment {seg}: the final commit line's newline is damaged ({log}:"
                                     f"{scan.newline_at}); its batch is kept and the next writer rewrites it")
                warnings.warn(CorruptRecordWarning(self.problems[-1]), stacklevel=4)
            for off, ln in scan.corrupt:
                self.record_corrupt(log, off, ln, None)
            if cols is not None:
                self.idx.extend_columns(seg, cols)
            else:
                for off, ln, e in scan.records:
                    self.idx.add(e["seq"], seg, off, ln, e.get("cycle"), key_prefix(e["key"]))
            if seg > self.sealed or rebuild:  # commits newer than the checkpoint: evictions and tags
                for c in scan.commits:
                    self.dead.update(unranges(c.get("evict", ())))
                    if c.get("tag") is not None:
                        self.tags[c["tag"]] = {"added": c.get("added"), "size": c.get("size")}
            if seg <= self.sealed and cols is None:
                checks.append((seg, [e["seq"] for _, _, e in scan.records], True))
                self.cut[seg] = scan.good_end
            elif seg in expect:
                checks.append((seg, [e["seq"] for _, _, e in scan.records], False))
            if scan.good_end < scan.size or scan.uncommitted:
                if seg == self.segments[-1]:
                    self.torn = (seg, scan.good_end, scan.size)
                elif seg not in expect:
                    warnings.warn(CorruptRecordWarning(
                        f"{log}:{scan.good_end}: {scan.size - scan.good_end} bytes after the last commit of a "
                        f"segment that is not the newest ({scan.uncommitted} uncommitted records ignored)"))
        checks += [(seg, [], False) for seg in expect if seg not in self.inodes]  # a log that is gone
        for seg, found, stale in checks:
            self.hold_to_checkpoint(seg, found, stale)
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
        for loss in self.losses:
            warnings.warn(CorruptRecordWarning(f"{loss}; `grpo-plugins buffer check --repair {self.root}` drops "
                                               f"them from the index"), stacklevel=4)

    def hold_to_checkpoint(self, seg: int, found: Sequence[int], stale: bool) -> None:
        """Count the live records that segment ``seg`` held at the checkpoint and no longer holds."""
        log = seg_path(self.root, seg, "log")
        if seg not in self.expect:
            if stale:
                self.stale.append(seg)
            return
        n, first, last = self.expect[seg]
        in_range = [q for q in found if first <= q <= last]
        gone = n - len(in_range)
        live_gone = 0
        if gone > 0:
            old = read_idx(seg_path(self.root, seg, "idx"), None)  # a stale index still names its records
            have = set(in_range)
            if old is not None and len(old["seq"]) == n:
                live_gone = sum(1 for q in old["seq"] if q not in have and q not in self.dead)
            else:  # counts only: every record gone that is not evicted was live
                live_gone = gone - sum(1 for q in self.dead if first <= q <= last and q not in have)
            live_gone -= sum(1 for c in self.corrupt if c.file == str(log))  # reported as corrupt already
            if live_gone <= 0:
                self.recount.append(seg)  # the count predates an interrupted compaction or deletion
        if live_gone > 0:
            size = log.stat().st_size if log.exists() else None
            detail = " is gone" if size is None else f", {size} bytes"
            self.losses.append(Loss(seg, live_gone, str(log), detail))
        elif stale:
            self.stale.append(seg)  # an interrupted compaction or a lost index: nothing live is missing

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
