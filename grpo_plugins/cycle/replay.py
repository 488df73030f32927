"""A crash-safe on-disk replay buffer of labelled rollouts: append-only segment files and a small index.

Layout of a buffer directory::

    segments/00000003.log   record lines ``<crc32 hex> <json>`` and commit lines, append-only
    segments/00000003.idx   the sealed segment's index: seq, offset, length, cycle, key prefix per record
    state                   checkpoint: last sealed segment, evicted seqs, tagged batches (tmp + rename)
    quarantine/             copies of records that failed their checksum
    .lock                   the writer's pid (flock)

An append writes its record lines followed by one commit line (which also names the records the
append evicts) with one ``write`` and one ``fsync``, and returns only then: a batch is stored whole
or, after a kill, not at all (the lines after the last commit of the newest segment are a torn tail,
cut away quietly on the next writer's open). Eviction writes tombstones in that same commit line;
space comes back by deleting segments whose records are all evicted (and, for random eviction, by
rewriting a sealed segment once more than half of it is evicted), so neither an append at capacity
nor an eviction ever rewrites or copies the buffer. When the active segment reaches
``segment_bytes`` it is sealed: its index is written, then the checkpoint. Opening reads the
indexes and the checkpoint and scans only segments newer than the checkpoint; records are read from
disk when asked for. A record that fails its checksum is reported with a warning naming the file and
offset, copied to ``quarantine/`` and tombstoned, never silently dropped.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import json
import os
import random
import time
import warnings
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

from ..errors import UserError
from ..io import fsync_dir

Eviction = Literal["fifo", "random"]
SEGMENTS = "segments"
STATE = "state"
QUARANTINE = "quarantine"
LOCK = ".lock"
LEGACY = "records.jsonl"  # the single-file layout before segments; migrated on a writer's open
NO_CYCLE = -(2**31)  # cycle None in the index
_IDX_COLUMNS = (("seq", "q"), ("off", "q"), ("ln", "q"), ("cycle", "q"), ("key8", "Q"))


class BufferLockedError(UserError, RuntimeError):
    """Another writer holds the buffer's lock; the message names its pid."""


class BufferCorruptError(UserError, RuntimeError):
    """A buffer file the buffer cannot do without (the checkpoint) fails its checksum."""


class NotABufferError(UserError, FileNotFoundError):
    """The directory holds no replay buffer."""


class CorruptRecordWarning(UserWarning):
    """A record failed its checksum; the message names the file, the offsets and the count."""


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


def _key8(key: str) -> int:
    return int(key[:16], 16)


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sorted seqs as [first, last] runs (FIFO evictions are one run)."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _unranges(runs: Iterable[Sequence[int]]) -> Iterator[int]:
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
class _Scan:
    """A segment log read line by line: committed records, commits, corrupt lines, the torn tail."""

    records: list[tuple[int, int, dict[str, Any]]]  # (offset, length, entry json)
    commits: list[dict[str, Any]]
    corrupt: list[tuple[int, int]]
    good_end: int  # end of the last commit (or of the last line kept)
    size: int
    uncommitted: int  # valid record lines after the last commit (a torn batch)


def _scan_log(path: Path, committed_only: bool = True) -> _Scan:
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
    uncommitted = len(pending)
    if bad_in_tail:
        # a complete line that fails its checksum after the last commit is damage, not a torn write:
        # it may be the batch's own commit line, so the batch's records were acknowledged; keep them
        records += pending
        last = max([corrupt[-1][0] + corrupt[-1][1]] + [o + n for o, n, _ in pending])
        good_end, uncommitted = max(good_end, last), 0
    return _Scan(records, commits, corrupt, good_end, len(data), uncommitted)


def _write_file(path: Path, data: bytes) -> None:
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


def _with_header(header: dict[str, Any], body: bytes) -> bytes:
    return encode_line({**header, "body_crc": zlib.crc32(body), "body_len": len(body)}) + body


def _split_header(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    nl = data.find(b"\n")
    header = decode_line(data[: nl + 1]) if nl >= 0 else None
    if header is None:
        return None
    body = data[nl + 1 :]
    if len(body) != header.get("body_len") or zlib.crc32(body) != header.get("body_crc"):
        return None
    return header, body


class _Index:
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


def _seg_path(root: Path, seg: int, ext: str) -> Path:
    return root / SEGMENTS / f"{seg:08d}.{ext}"


def _list_segments(root: Path) -> list[int]:
    d = root / SEGMENTS
    if not d.is_dir():
        return []
    return sorted(int(p.name[:-4]) for p in d.iterdir() if p.name.endswith(".log") and p.name[:-4].isdigit())


def _read_idx(path: Path, log_size: int) -> dict[str, array] | None:
    try:
        parsed = _split_header(path.read_bytes())
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


class _Store:
    """The loaded state of a buffer directory: index, evicted seqs, tags, corruption found."""

    def __init__(self, root: Path, writable: bool):
        self.root, self.writable = root, writable
        self.idx = _Index()
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
            parsed = _split_header(data)
            if parsed is None:
                raise BufferCorruptError(f"{state_path}: the buffer's checkpoint fails its checksum; "
                                         f"`grpo-plugins buffer check {self.root}` lists the segments")
            header, body = parsed
            self.sealed, self.next_seq, self.tags = header["sealed"], header["next_seq"], header["tags"]
            runs = array("q")
            runs.frombytes(body)
            self.dead = set(_unranges(zip(runs[0::2], runs[1::2])))
        self.segments = _list_segments(self.root)
        for seg in self.segments:
            log = _seg_path(self.root, seg, "log")
            st = log.stat()
            size, self.inodes[seg] = st.st_size, st.st_ino
            cols = _read_idx(_seg_path(self.root, seg, "idx"), size) if seg <= self.sealed else None
            if cols is not None:
                self.idx.extend_columns(seg, cols)
                continue
            scan = _scan_log(log, committed_only=seg > self.sealed)
            for off, ln in scan.corrupt:
                self._report(log, off, ln, None)
            for off, ln, e in scan.records:
                self.idx.add(e["seq"], seg, off, ln, e.get("cycle"), _key8(e["key"]))
            if seg > self.sealed:  # commits newer than the checkpoint: evictions and tags
                for c in scan.commits:
                    self.dead.update(_unranges(c.get("evict", ())))
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

    def _report(self, log: Path, off: int, ln: int, seq: int | None) -> Corruption:
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
                    _write_file(moved, fh.read(ln))
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
            log = _seg_path(self.root, seg, "log")
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
                        found.append(self._report(log, off, ln, self.idx.seq[p]))
                        continue
                    out[p] = Entry(**obj)
            finally:
                os.close(fd)
        if found:
            self.report_corrupt(found)
        return [out[p] for p in positions if p in out], bad


class ReplayBuffer:
    """Append-only, fsynced, deduplicated record store with a capacity and an eviction rule; one writer."""

    def __init__(self, root: str | os.PathLike, capacity: int | None = None, eviction: Eviction = "fifo",
                 dedupe_fields: Sequence[str] | None = ("prompt", "completion"), seed: int = 0,
                 lock_timeout: float = 0.0, segment_bytes: int = 8 << 20):
        if eviction not in ("fifo", "random"):
            raise ValueError(f"unknown eviction rule {eviction!r}; valid: fifo, random")
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {capacity}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capacity, self.eviction, self.segment_bytes = capacity, eviction, segment_bytes
        self.dedupe_fields = None if dedupe_fields is None else tuple(dedupe_fields)
        self.rng = random.Random(seed)
        self._fd: int | None = None
        self._lock_fh = _lock(self.root, lock_timeout)
        try:
            self._open()
        except BaseException:
            self._unlock()
            raise

    def _open(self) -> None:
        _migrate_legacy(self.root)
        (self.root / SEGMENTS).mkdir(exist_ok=True)
        for p in (self.root / SEGMENTS).glob("*.tmp"):  # a seal or compaction killed half-way
            p.unlink()
        s = self.store = _Store(self.root, writable=True)
        s.load()
        if s.torn is not None:  # a kill in the middle of an append: that batch was never acknowledged
            seg, good_end, _ = s.torn
            with open(_seg_path(self.root, seg, "log"), "r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
            s.torn = None
        idx = s.idx
        # built in C over every entry, then the evicted ones taken out (a record may come back after its
        # eviction: the later entry wins, and only an entry's own mapping is removed)
        self._keys: dict[int, int] = dict(zip(idx.key8, idx.seq))
        for seq in s.dead:
            p = idx.pos(seq)
            if self._keys.get(idx.key8[p]) == seq:
                del self._keys[idx.key8[p]]
        self._live = sum(s.live_per_seg.values())
        self._head = 0  # first index position that may be live (FIFO eviction walks it forward)
        newest = max(idx.cycle, default=NO_CYCLE)  # the newest cycle stays longest, so evicted ones rarely count
        self._newest_cycle = None if newest == NO_CYCLE else newest
        self._active = s.segments[-1] if s.segments and s.segments[-1] > s.sealed else None
        if self._active is not None:
            self._fd = os.open(_seg_path(self.root, self._active, "log"), os.O_WRONLY | os.O_APPEND)
        over = 0 if self.capacity is None else max(0, self._live - self.capacity)
        if over:  # opened with a smaller capacity than the buffer was written with: evict now
            self._commit([], self._victims(over, None), None)
        self._maybe_seal()

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the segment file and the writer lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return self._live

    @property
    def corrupt(self) -> list[Corruption]:
        """Every line found failing its checksum since opening (each also reported as a warning)."""
        return self.store.corrupt

    @property
    def corrupt_lines(self) -> int:
        return len(self.store.corrupt)

    @property
    def tags(self) -> dict[str, dict[str, Any]]:
        """Tagged batches: tag -> {added, size} as committed with the batch."""
        return self.store.tags

    # --- appending ---------------------------------------------------------------------------

    def append(self, record: dict[str, Any], cycle: int | None = None, policy_step: int | None = None) -> bool:
        """Store one record durably; False (nothing written) when an equal record is already stored."""
        return self.extend([record], cycle, policy_step) == 1

    def extend(self, records: Iterable[dict[str, Any]], cycle: int | None = None, policy_step: int | None = None,
               tag: str | None = None) -> int:
        """Store records durably as one batch (one fsync), skipping duplicates; returns how many were new.

        The batch is stored whole or not at all. With ``tag``, the batch is committed under that name
        and a later call with the same tag stores nothing and returns the count committed the first time
        (``tags[tag]`` also holds the buffer's size after it), so a rerun phase reports what it did.
        """
        if tag is not None and tag in self.store.tags:
            return self.store.tags[tag]["added"]
        new: list[Entry] = []
        seen: dict[int, str] = {}
        for rec in records:
            key = content_key(rec, self.dedupe_fields)
            k8 = _key8(key)
            if seen.get(k8) == key or self._stored(k8, key):
                continue
            seen[k8] = key
            new.append(Entry(self.store.next_seq + len(new), key, cycle, policy_step, time.time(), rec))
        pending = set(self.store.pending_evict)
        over = 0 if self.capacity is None else max(0, self._live - len(pending) + len(new) - self.capacity)
        if not new and tag is None and not pending:
            return 0
        self._commit(new, self._victims(over, new, pending), tag)
        return len(new)

    def _stored(self, k8: int, key: str) -> bool:
        seq = self._keys.get(k8)
        if seq is None:
            return False
        p = self.store.idx.pos(seq)
        if p is None:
            return False
        got, bad = self.store.read([p])
        if bad:  # the stored copy is corrupt: tombstone it with this batch and store the record again
            self.store.pending_evict.append(seq)
            return False
        # a 64-bit prefix match is checked against the stored full key
        return got[0].key == key

    def _victims(self, excess: int, new: list[Entry] | None, skip: set[int] = frozenset()) -> list[int]:
        """Seqs to evict so that ``excess`` fewer records are live (the newest batch evicted last)."""
        idx, out = self.store.idx, []
        if excess <= 0:
            return out
        n = len(idx)
        if self.eviction == "fifo":
            p = self._head
            while len(out) < excess and p < n:
                if idx.live[p] and idx.seq[p] not in skip:
                    out.append(idx.seq[p])
                p += 1
        else:
            newest = self._newest_cycle
            if new:
                cyc = new[0].cycle
                newest = cyc if newest is None or (cyc is not None and cyc > newest) else newest
            chosen: set[int] = set(skip)

            def ok(p: int, any_cycle: bool) -> bool:
                return idx.live[p] and idx.seq[p] not in chosen and (
                    any_cycle or newest is None or idx.cycle[p] != newest)

            for any_cycle in (False, True):
                tries = 0
                # the current cycle's data is what the PRM must learn next: evict history first
                while len(out) < excess and tries < 64 and n:
                    p = self.rng.randrange(n)
                    tries += 1
                    if ok(p, any_cycle):
                        chosen.add(idx.seq[p])
                        out.append(idx.seq[p])
                        tries = 0
                if len(out) < excess:  # sparse: draw from the explicit pool
                    pool = [p for p in range(n) if ok(p, any_cycle)]
                    for p in self.rng.sample(pool, min(len(pool), excess - len(out))):
                        chosen.add(idx.seq[p])
                        out.append(idx.seq[p])
        if len(out) < excess and new:  # a batch larger than the capacity: its oldest go too
            out += [e.seq for e in new[: excess - len(out)]]
        return out

    def _commit(self, new: list[Entry], evict: list[int], tag: str | None) -> None:
        """Write the batch and its commit line (one write, one fsync); update the view only after."""
        s = self.store
        evict = list(dict.fromkeys(evict + s.pending_evict))
        size = self._live + len(new) - len(evict)
        lines = [encode_line(e.to_json()) for e in new]
        commit: dict[str, Any] = {"commit": len(new), "evict": _ranges(evict)}
        if tag is not None:
            commit.update(tag=tag, added=len(new), size=size)
        data = b"".join(lines) + encode_line(commit)
        created = False
        if self._fd is None:
            seg = (s.segments[-1] + 1) if s.segments else 0
            path = _seg_path(self.root, seg, "log")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError as exc:
                raise OSError(exc.errno, f"replay buffer append failed, nothing stored: {exc.strerror}",
                              str(path)) from exc
            self._active, created = seg, True
            s.segments.append(seg)
            s.live_per_seg[seg] = 0
        path = _seg_path(self.root, self._active, "log")
        start = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):  # O_APPEND: each write lands at the end of the file
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
            if created:
                fsync_dir(path.parent)
        except BaseException as exc:
            # stored nothing: cut off what was written (truncating needs no free space)
            os.ftruncate(self._fd, start)
            if created:
                os.close(self._fd)
                self._fd = None
                path.unlink(missing_ok=True)
                s.segments.pop()
                s.live_per_seg.pop(self._active)
                self._active = None
            if isinstance(exc, OSError):
                raise OSError(exc.errno, f"replay buffer append failed, nothing stored: {exc.strerror}",
                              str(path)) from exc
            raise
        # acknowledged: apply to the in-memory view
        idx, off = s.idx, start
        for e, line in zip(new, lines):
            idx.add(e.seq, self._active, off, len(line), e.cycle, _key8(e.key))
            off += len(line)
            self._keys.setdefault(_key8(e.key), e.seq)
            if e.cycle is not None and (self._newest_cycle is None or e.cycle > self._newest_cycle):
                self._newest_cycle = e.cycle
        s.live_per_seg[self._active] += len(new)
        s.next_seq += len(new)
        self._live += len(new)
        for seq in evict:
            p = idx.pos(seq)
            if p is None or not idx.live[p]:
                continue
            idx.live[p] = 0
            s.dead.add(seq)
            s.live_per_seg[idx.seg[p]] -= 1
            self._live -= 1
            if self._keys.get(idx.key8[p]) == seq:
                del self._keys[idx.key8[p]]
        while self._head < len(idx) and not idx.live[self._head]:
            self._head += 1
        s.pending_evict = []
        if tag is not None:
            s.tags[tag] = {"added": len(new), "size": size}
        self._maybe_seal()

    # --- sealing, deleting, compacting -----------------------------------------------------------

    def _maybe_seal(self) -> None:
        if self._active is None or os.fstat(self._fd).st_size < self.segment_bytes:
            return
        try:
            self._seal()
        except OSError as exc:  # the batch is stored already; sealing is retried after the next append
            warnings.warn(f"{self.root}: sealing segment {self._active} failed ({exc}); will retry", stacklevel=3)

    def _seal(self) -> None:
        idx, seg = self.store.idx, self._active
        a, b = idx.segment_span(seg)
        size = os.fstat(self._fd).st_size
        _write_file(_seg_path(self.root, seg, "idx"), _with_header({"log_size": size, "n": b - a}, idx.columns(a, b)))
        self._checkpoint(seg)
        os.close(self._fd)
        self._fd, self._active = None, None
        self._reclaim()

    def _checkpoint(self, sealed: int) -> None:
        s = self.store
        runs = array("q", [x for r in _ranges(s.dead) for x in r])
        header = {"sealed": sealed, "next_seq": s.next_seq, "tags": s.tags}
        _write_file(self.root / STATE, _with_header(header, runs.tobytes()))
        s.sealed = sealed

    def _reclaim(self) -> None:
        """Delete sealed segments with no live record; rewrite sealed ones that are mostly evicted."""
        s, idx = self.store, self.store.idx
        gone = [seg for seg in s.segments if seg <= s.sealed and s.live_per_seg.get(seg, 0) == 0]
        for seg in gone:  # their tombstones and tags are in the checkpoint already
            _seg_path(self.root, seg, "log").unlink(missing_ok=True)
            _seg_path(self.root, seg, "idx").unlink(missing_ok=True)
        if gone:
            fsync_dir(self.root / SEGMENTS)
        for seg in gone:
            a, b = idx.segment_span(seg)
            s.dead.difference_update(idx.seq[a:b])
            idx.delete_span(a, b)
            s.segments.remove(seg)
            del s.live_per_seg[seg]
        if gone:
            self._head = 0
            while self._head < len(idx) and not idx.live[self._head]:
                self._head += 1
        if self.eviction != "random":
            return  # FIFO empties the oldest segment first: deleting it is enough
        for seg in list(s.segments):
            a, b = idx.segment_span(seg)
            if seg <= s.sealed and 0 < s.live_per_seg[seg] * 2 < (b - a):
                self._compact(seg)

    def _compact(self, seg: int) -> None:
        """Rewrite a sealed segment with its live records only (room for one segment, never the buffer)."""
        s, idx = self.store, self.store.idx
        a, b = idx.segment_span(seg)
        live = [p for p in range(a, b) if idx.live[p]]
        entries, bad = s.read(live)
        lines = [encode_line(e.to_json()) for e in entries]
        new = _Index()
        off = 0
        for e, line in zip(entries, lines):
            new.add(e.seq, seg, off, len(line), e.cycle, _key8(e.key))
            off += len(line)
        log, ix = _seg_path(self.root, seg, "log"), _seg_path(self.root, seg, "idx")
        tmp_log = log.with_name(log.name + ".tmp")
        try:
            with open(tmp_log, "wb") as fh:
                fh.write(b"".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
            idx_bytes = _with_header({"log_size": off, "n": len(entries)}, new.columns(0, len(new)))
            os.replace(tmp_log, log)  # until the idx follows, its log_size no longer matches: a rescan
            _write_file(ix, idx_bytes)
        except OSError:
            tmp_log.unlink(missing_ok=True)
            raise
        for p in range(a, b):
            if not idx.live[p]:
                s.dead.discard(idx.seq[p])
        bad_seqs = {idx.seq[p] for p in bad}
        for p in bad:
            if self._keys.get(idx.key8[p]) == idx.seq[p]:
                del self._keys[idx.key8[p]]
        s.dead.update(bad_seqs)  # left out of the rewritten log; recorded with the next checkpoint
        for name in ("seq", "seg", "off", "ln", "cycle", "key8", "live"):
            getattr(idx, name)[a:b] = getattr(new, name)
        s.live_per_seg[seg] = len(new)
        self._live -= len(bad_seqs)

    # --- reading -----------------------------------------------------------------------------

    def _positions(self, cycle: int | None = None, before_cycle: int | None = None) -> list[int]:
        idx = self.store.idx
        return _select(idx, cycle, before_cycle)

    def _load(self, positions: list[int]) -> list[Entry]:
        entries, bad = self.store.read(positions)
        if bad:  # tombstone what failed its checksum, so it is reported once and never returned
            for p in bad:
                if self.store.idx.live[p]:
                    self.store.pending_evict.append(self.store.idx.seq[p])
            try:
                self._commit([], [], None)
            except OSError as exc:
                warnings.warn(f"{self.root}: could not tombstone corrupt records ({exc}); they stay reported",
                              stacklevel=3)
        return entries

    def records(self, cycle: int | None = None, before_cycle: int | None = None) -> list[Entry]:
        """Stored entries in seq order, optionally one cycle's or those from cycles before ``before_cycle``."""
        return self._load(self._positions(cycle, before_cycle))

    def verify(self, chunk: int = 10_000) -> list[Corruption]:
        """Read every live record; those failing their checksum are reported, moved aside and tombstoned."""
        before = len(self.store.corrupt)
        positions = self._positions()
        for a in range(0, len(positions), chunk):
            self._load(positions[a : a + chunk])
        return self.store.corrupt[before:]

    def count(self, cycle: int | None = None, before_cycle: int | None = None) -> int:
        """How many live records match, without reading them."""
        return len(self._positions(cycle, before_cycle))

    def sample(self, n: int, seed: int | None = None) -> list[Entry]:
        """``n`` distinct live records drawn uniformly (all of them when fewer are stored)."""
        rng = random.Random(seed) if seed is not None else self.rng
        idx = self.store.idx
        if n >= self._live:
            return self.records()
        chosen: set[int] = set()
        while len(chosen) < n:  # rejection sampling: evicted positions are a minority (compaction)
            p = rng.randrange(len(idx))
            if idx.live[p]:
                chosen.add(p)
        return self._load(sorted(chosen))


def _select(idx: _Index, cycle: int | None, before_cycle: int | None) -> list[int]:
    live, cyc = idx.live, idx.cycle
    if cycle is not None:
        return [p for p in range(len(idx)) if live[p] and cyc[p] == cycle]
    if before_cycle is not None:
        return [p for p in range(len(idx)) if live[p] and NO_CYCLE != cyc[p] < before_cycle]
    return [p for p in range(len(idx)) if live[p]]


def _lock(root: Path, timeout: float):
    """Take the writer lock (flock: any process, and a second buffer object in this one) or say who has it."""
    fh = open(root / LOCK, "a+")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.seek(0)
                pid = fh.read().strip() or "unknown"
                fh.close()
                here = " (this process: close the other ReplayBuffer first)" if pid == str(os.getpid()) else ""
                raise BufferLockedError(f"{root}: the replay buffer is open for writing by pid {pid}{here}; "
                                        f"one writer at a time (waited {timeout:g}s)") from None
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _migrate_legacy(root: Path) -> None:
    """Turn a single-file buffer (records.jsonl, before segments) into segment 0, committed as it stands."""
    legacy = root / LEGACY
    if not legacy.exists() or _list_segments(root):
        return
    scan = _scan_log(legacy, committed_only=False)
    (root / SEGMENTS).mkdir(exist_ok=True)
    with open(legacy, "r+b") as fh:
        fh.truncate(scan.good_end)
        fh.seek(scan.good_end)
        fh.write(encode_line({"commit": len(scan.records), "evict": [], "migrated": True}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(legacy, _seg_path(root, 0, "log"))
    fsync_dir(root)
    fsync_dir(root / SEGMENTS)


class BufferReader:
    """A read-only view of a buffer directory, taken without the writer lock (the writer may be running)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        for attempt in range(5):  # a concurrent seal or reclaim can delete a file between list and read
            try:
                self.store = _Store(self.root, writable=False)
                if (self.root / LEGACY).exists() and not _list_segments(self.root):
                    self._load_legacy()
                else:
                    self.store.load()
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise
                time.sleep(0.05)

    def _load_legacy(self) -> None:
        scan = _scan_log(self.root / LEGACY, committed_only=False)
        self._legacy = [Entry(**e) for _, _, e in scan.records]
        for off, ln in scan.corrupt:
            self.store._report(self.root / LEGACY, off, ln, None)
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
        return self.store.read(_select(self.store.idx, cycle, before_cycle))[0]


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
            log = _seg_path(root, seg, "log")
            scan = _scan_log(log, committed_only=seg > store.sealed)
            for off, ln in scan.corrupt:
                if (str(log), off) not in seen:
                    c = Corruption(str(log), off, ln)
                    moved = root / QUARANTINE / f"{log.stem}-{off}.bad"
                    c.moved_to = str(moved) if moved.exists() else None
                    corrupt.append(c)
            if seg <= store.sealed and _read_idx(_seg_path(root, seg, "idx"), scan.size) is None:
                problems.append(f"{_seg_path(root, seg, 'idx')}: missing or stale index (rebuilt on the next open)")
    qdir = root / QUARANTINE
    quarantined = sorted(str(p) for p in qdir.iterdir()) if qdir.is_dir() else []
    return CheckReport(sum(store.idx.live), len(store.segments), corrupt, store.torn, quarantined, problems)
