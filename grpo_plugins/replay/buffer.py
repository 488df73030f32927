"""The replay buffer's one writer: fsynced batch appends with dedupe, capacity and eviction, sealing, compaction."""

from __future__ import annotations

import fcntl
import os
import random
import time
import warnings
from array import array
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ..io import fsync_dir
from .errors import BufferDiskFullError, BufferLockedError
from .format import (LOCK, SEGMENTS, STATE, Corruption, Entry, content_key, encode_line, key_prefix, ranges,
                     with_header, write_file)
from .segments import NO_CYCLE, Index, Store, leftovers, live_positions, migrate_legacy, seg_path

Eviction = Literal["fifo", "random"]


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
        self._dirty = False
        self._lock_fh = _lock(self.root, lock_timeout)
        try:
            self._open()
        except BaseException:
            self._unlock()
            raise

    def _open(self) -> None:
        migrate_legacy(self.root)
        (self.root / SEGMENTS).mkdir(exist_ok=True)
        for p in leftovers(self.root):  # a seal, compaction or checkpoint killed half-way
            p.unlink()
        s = self.store = Store(self.root, writable=True)
        s.load()
        self._dirty = False  # commits since the last checkpoint (close writes one)
        self._fix_newest()
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
            self._fd = os.open(seg_path(self.root, self._active, "log"), os.O_WRONLY | os.O_APPEND)
        for seg in s.stale:  # nothing live is missing from these logs: index them again
            self._write_idx(seg)
        if s.stale or s.recount or s.checkpoint_damaged or s.newline_at or s.recovered or (
                s.version < 2 and s.segments):  # brings the checkpoint up to date (and to this version)
            try:
                self._checkpoint(s.sealed)
            except OSError as exc:  # a full disk: the next seal or close writes it
                warnings.warn(f"{self.root}: could not update the checkpoint ({exc}); will retry", stacklevel=3)
        s.stale, s.recount, s.checkpoint_damaged, s.newline_at, s.recovered = [], [], None, None, None
        over = 0 if self.capacity is None else max(0, self._live - self.capacity)
        if over:  # opened with a smaller capacity than the buffer was written with: evict now
            try:
                self._commit([], self._victims(over, None), None)
            except OSError as exc:
                raise BufferDiskFullError(
                    f"{self.root}: opening with capacity {self.capacity} needs {over} evictions committed, but "
                    f"writing them failed ({exc.strerror or exc}): free space, or open with a capacity of at least "
                    f"{self._live}; nothing was changed") from None
        self._maybe_seal()

    def _fix_newest(self) -> None:
        """Cut a torn tail, commit intact records of a cut last commit, rewrite a damaged final newline."""
        s = self.store
        if s.torn is not None or s.recovered:
            # a kill in the middle of an append: that batch was never acknowledged (cut it away), or a cut
            # inside acknowledged batches: commit the intact records again so the log stands on its own
            seg, good_end = s.torn[:2] if s.torn is not None else (s.recovered[0], None)
            with open(seg_path(self.root, seg, "log"), "r+b") as fh:
                if good_end is not None:
                    fh.truncate(good_end)
                if s.recovered:
                    fh.seek(0, os.SEEK_END)
                    fh.write(encode_line({"commit": s.recovered[1], "evict": [], "recovered": True}))
                os.fsync(fh.fileno())
            s.torn = None
        if s.newline_at is not None:
            seg, at = s.newline_at
            with open(seg_path(self.root, seg, "log"), "r+b") as fh:
                fh.seek(at)
                fh.write(b"\n")
                os.fsync(fh.fileno())

    def repair(self) -> list[str]:
        """Drop the acknowledged records found missing from the index and checkpoint; say what was dropped."""
        s = self.store
        said = [f"segment {loss.segment}: dropped {loss.missing} acknowledged records that are missing "
                f"({loss.file}{loss.detail})" for loss in s.losses]
        for loss in s.losses:
            seg = loss.segment
            if seg in s.cut:  # a sealed log cut in the middle of a line: the partial line goes
                with open(seg_path(self.root, seg, "log"), "r+b") as fh:
                    fh.truncate(s.cut[seg])
                    os.fsync(fh.fileno())
            if seg in s.segments and seg <= s.sealed:
                self._write_idx(seg)
        if s.losses:
            s.losses = []
            self._checkpoint(s.sealed)
        return said

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the newest segment's counts, release the segment file and the writer lock."""
        if self._lock_fh is not None and self._dirty:
            try:  # records the newest segment's acknowledged count, so a later cut of it is found
                self._checkpoint(self.store.sealed)
            except OSError as exc:
                warnings.warn(f"{self.root}: could not write the checkpoint at close ({exc})", stacklevel=2)
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
            k8 = key_prefix(key)
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
        commit: dict[str, Any] = {"commit": len(new), "evict": ranges(evict)}
        if tag is not None:
            commit.update(tag=tag, added=len(new), size=size)
        data = b"".join(lines) + encode_line(commit)
        created = False
        if self._fd is None:
            seg = (s.segments[-1] + 1) if s.segments else 0
            path = seg_path(self.root, seg, "log")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError as exc:
                raise OSError(exc.errno, f"replay buffer append failed, nothing stored: {exc.strerror}",
                              str(path)) from exc
            self._active, created = seg, True
            s.segments.append(seg)
            s.live_per_seg[seg] = 0
        path = seg_path(self.root, self._active, "log")
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
            idx.add(e.seq, self._active, off, len(line), e.cycle, key_prefix(e.key))
            off += len(line)
            self._keys.setdefault(key_prefix(e.key), e.seq)
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
        self._dirty = True
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
        seg = self._active
        self._write_idx(seg, os.fstat(self._fd).st_size)
        self._checkpoint(seg)
        os.close(self._fd)
        self._fd, self._active = None, None
        self._reclaim()

    def _write_idx(self, seg: int, size: int | None = None) -> None:
        idx = self.store.idx
        a, b = idx.segment_span(seg)
        if size is None:
            size = seg_path(self.root, seg, "log").stat().st_size
        write_file(seg_path(self.root, seg, "idx"), with_header({"log_size": size, "n": b - a}, idx.columns(a, b)))

    def _checkpoint(self, sealed: int) -> None:
        """Write ``state``: the last sealed segment, tombstones, tags, and every segment's record count."""
        s, idx = self.store, self.store.idx
        runs = array("q", [x for r in ranges(s.dead) for x in r])
        lost = {loss.segment for loss in s.losses}  # unrepaired: keep the counts that show the loss
        segs = [[seg, *s.expect[seg]] for seg in sorted(lost) if seg in s.expect]
        for seg in s.segments:
            a, b = idx.segment_span(seg)
            if seg not in lost and b > a:
                segs.append([seg, b - a, idx.seq[a], idx.seq[b - 1]])
        header = {"version": 2, "sealed": sealed, "next_seq": s.next_seq, "tags": s.tags, "segs": sorted(segs)}
        write_file(self.root / STATE, with_header(header, runs.tobytes()))
        s.sealed, s.expect = sealed, {e[0]: (e[1], e[2], e[3]) for e in segs}
        self._dirty = False

    def _reclaim(self) -> None:
        """Delete sealed segments with no live record; rewrite sealed ones that are mostly evicted."""
        s, idx = self.store, self.store.idx
        gone = [seg for seg in s.segments if seg <= s.sealed and s.live_per_seg.get(seg, 0) == 0]
        for seg in gone:  # their tombstones and tags are in the checkpoint already
            seg_path(self.root, seg, "log").unlink(missing_ok=True)
            seg_path(self.root, seg, "idx").unlink(missing_ok=True)
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
        compacted = False
        if self.eviction == "random":  # FIFO empties the oldest segment first: deleting it is enough
            for seg in list(s.segments):
                a, b = idx.segment_span(seg)
                if seg <= s.sealed and 0 < s.live_per_seg[seg] * 2 < (b - a):
                    self._compact(seg)
                    compacted = True
        if gone or compacted:  # the checkpoint's counts follow the deleted and rewritten segments
            self._checkpoint(s.sealed)

    def _compact(self, seg: int) -> None:
        """Rewrite a sealed segment with its live records only (room for one segment, never the buffer)."""
        s, idx = self.store, self.store.idx
        a, b = idx.segment_span(seg)
        live = [p for p in range(a, b) if idx.live[p]]
        entries, bad = s.read(live)
        lines = [encode_line(e.to_json()) for e in entries]
        new = Index()
        off = 0
        for e, line in zip(entries, lines):
            new.add(e.seq, seg, off, len(line), e.cycle, key_prefix(e.key))
            off += len(line)
        log, ix = seg_path(self.root, seg, "log"), seg_path(self.root, seg, "idx")
        tmp_log = log.with_name(log.name + ".tmp")
        try:
            with open(tmp_log, "wb") as fh:
                fh.write(b"".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
            idx_bytes = with_header({"log_size": off, "n": len(entries)}, new.columns(0, len(new)))
            os.replace(tmp_log, log)  # until the idx follows, its log_size no longer matches: a rescan
            write_file(ix, idx_bytes)
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
        return live_positions(idx, cycle, before_cycle)

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
