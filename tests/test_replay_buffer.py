"""The on-disk replay buffer: segments and index, torn tails, loud corruption, dedupe, provenance,
exact capacity, tagged batches, the one-writer lock, and SIGKILL during appends and evictions."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from grpo_plugins import replay
from grpo_plugins.replay import (LEGACY, QUARANTINE, SEGMENTS, BufferLockedError, CorruptRecordWarning,
                                 ReplayBuffer, check_buffer, encode_line, read_buffer)
from helpers_replay import logs, prompts, rec


def test_records_keep_provenance_and_survive_reopening(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        assert buf.extend([rec(0), rec(1)], cycle=0, policy_step=10) == 2
        assert buf.append(rec(2), cycle=1, policy_step=20)
    with ReplayBuffer(tmp_path) as buf:
        got = [(e.seq, e.cycle, e.policy_step, e.record["prompt"]) for e in buf.records()]
        assert got == [(0, 0, 10, "p0"), (1, 0, 10, "p1"), (2, 1, 20, "p2")]
        assert prompts(buf.records(before_cycle=1)) == ["p0", "p1"]
        assert prompts(buf.records(cycle=1)) == ["p2"] and buf.count(cycle=0) == 2
        assert buf.append(rec(3), cycle=1)
        assert buf.records()[-1].seq == 3  # sequence numbers continue after a reopen


def test_duplicates_by_content_are_skipped_even_across_reopen_and_seals(tmp_path):
    with ReplayBuffer(tmp_path, segment_bytes=200) as buf:
        assert buf.extend([rec(0), rec(0, steps=[[0, 1, 1.0]]), rec(1)], cycle=0) == 2
        for i in range(2, 12):
            buf.append(rec(i))
        assert len(logs(tmp_path)) > 3  # several sealed segments, found through their indexes
    with ReplayBuffer(tmp_path) as buf:
        assert not buf.append(rec(1, note="same prompt and completion"), cycle=1)
        assert not buf.append(rec(11))
        assert len(buf) == 12
    with ReplayBuffer(tmp_path / "full", dedupe_fields=None) as buf:
        assert buf.extend([rec(0), rec(0, extra=1), rec(0)]) == 2  # whole-record hashing


def test_a_torn_batch_at_the_end_of_the_newest_segment_is_cut_away_quietly(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        buf.extend([rec(0), rec(1)])
    (log,) = logs(tmp_path)
    good = log.read_bytes()
    line = encode_line({"seq": 2, "key": "0" * 64, "cycle": None, "policy_step": None, "added_at": 0.0,
                        "record": rec(2)})
    for torn in (line[: len(line) // 2], line, line + b"0000"):  # mid-line, whole record without commit
        log.write_bytes(good + torn)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # quiet: a torn tail is no corruption
            assert prompts(read_buffer(tmp_path)) == ["p0", "p1"]
            with ReplayBuffer(tmp_path) as buf:
                assert log.stat().st_size == len(good)
                assert len(buf) == 2
    with ReplayBuffer(tmp_path) as buf:
        buf.append(rec(3))
    assert prompts(read_buffer(tmp_path)) == ["p0", "p1", "p3"]


def flip(path, needle):
    data = bytearray(path.read_bytes())
    at = data.index(needle) + 1
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return at


def test_a_flipped_byte_in_the_last_record_is_reported_moved_aside_and_listed(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        buf.extend([rec(0), rec(1), rec(2)])
    (log,) = logs(tmp_path)
    before = log.read_bytes()
    offset = before.index(b'{"seq":2') - 9  # the line starts 9 bytes (crc + blank) before its JSON
    flip(log, b'"p2"')
    with pytest.warns(CorruptRecordWarning, match=rf"{log}: 1 corrupt record\(s\) at offset\(s\) {offset}"):
        assert prompts(read_buffer(tmp_path)) == ["p0", "p1"]
    with pytest.warns(CorruptRecordWarning, match="moved aside"):
        with ReplayBuffer(tmp_path) as buf:  # the old writer cut it away as if it were a torn tail
            assert log.stat().st_size == len(before)
            assert prompts(buf.records()) == ["p0", "p1"] and len(buf) == 2
            assert buf.append(rec(2))  # may be stored again: the corrupt copy is not part of the buffer
    moved = tmp_path / QUARANTINE / f"{log.stem}-{offset}.bad"
    assert moved.read_bytes() == log.read_bytes()[offset:offset + len(moved.read_bytes())]
    report = check_buffer(tmp_path)
    assert [(c.file, c.offset, c.moved_to) for c in report.corrupt] == [(str(log), offset, str(moved))]
    assert report.records == 3


def test_corruption_in_a_sealed_segment_is_found_on_read_and_tombstoned_once(tmp_path):
    with ReplayBuffer(tmp_path, segment_bytes=300) as buf:
        for i in range(10):
            buf.append(rec(i))
    first = logs(tmp_path)[0]
    flip(first, b'"p1"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        buf = ReplayBuffer(tmp_path)  # opening reads the index only: the damage is not seen yet
    with pytest.warns(CorruptRecordWarning, match=f"{first}: 1 corrupt"):
        assert "p1" not in prompts(buf.records())
    assert len(buf) == 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tombstoned: not reported again
        assert len(buf.records()) == 9
    buf.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ReplayBuffer(tmp_path) as buf:
            assert len(buf) == 9 and len(buf.records()) == 9
    report = check_buffer(tmp_path)
    assert [c.seq for c in report.corrupt] == [None] and report.corrupt[0].moved_to  # listed, moved aside


def test_open_reads_indexes_not_records(tmp_path, monkeypatch):
    with ReplayBuffer(tmp_path, segment_bytes=2000) as buf:
        buf.extend([rec(i, pad="x" * 100) for i in range(200)])
        for i in range(200, 205):
            buf.append(rec(i))
    calls = []
    real = replay.decode_line
    for module in (replay.format, replay.segments):  # the log scans and the record reads
        monkeypatch.setattr(module, "decode_line", lambda line: calls.append(1) or real(line))
    with ReplayBuffer(tmp_path) as buf:
        assert len(buf) == 205
    # headers of the indexes and the checkpoint, plus the lines of the one unsealed segment
    assert 0 < len(calls) < 40  # counted at all: the patch reached the modules that decode
    calls.clear()
    with ReplayBuffer(tmp_path) as buf:
        assert len(buf.sample(5, seed=0)) == 5
    assert 5 <= len(calls) < 45


def test_fifo_eviction_keeps_exactly_the_newest_records_after_every_append(tmp_path):
    with ReplayBuffer(tmp_path, capacity=3, segment_bytes=150) as buf:
        for i in range(12):
            buf.append(rec(i), cycle=i)
            assert len(buf) == min(i + 1, 3)
        assert prompts(buf.records()) == ["p9", "p10", "p11"]
        assert buf.extend([rec(i) for i in range(20, 25)]) == 5  # a batch larger than the capacity
        assert prompts(buf.records()) == ["p22", "p23", "p24"]
    assert prompts(read_buffer(tmp_path)) == ["p22", "p23", "p24"]
    assert len(logs(tmp_path)) <= 3  # emptied segments are deleted
    with ReplayBuffer(tmp_path, capacity=3) as buf:
        assert buf.append(rec(0))  # evicted records may come back


def test_a_smaller_capacity_applies_at_open_not_at_the_first_append(tmp_path):
    with ReplayBuffer(tmp_path, segment_bytes=500) as buf:
        buf.extend([rec(i) for i in range(20)])
    with ReplayBuffer(tmp_path, capacity=5) as buf:
        assert len(buf) == 5 and prompts(buf.records()) == [f"p{i}" for i in range(15, 20)]
    assert len(read_buffer(tmp_path)) == 5


def test_appends_at_capacity_leave_sealed_segments_untouched(tmp_path):
    with ReplayBuffer(tmp_path, capacity=50, segment_bytes=1000) as buf:
        for i in range(50):
            buf.append(rec(i))
        sealed = {p: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in logs(tmp_path)[:-1]}
        assert len(sealed) >= 3
        buf.append(rec(50))  # at capacity: one record in, the oldest tombstoned
        assert len(buf) == 50
        for p, st in sealed.items():  # no rewrite, no copy: at most a whole emptied segment is deleted
            assert not p.exists() or (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) == st


def test_random_eviction_evicts_history_before_the_newest_cycle_and_compacts(tmp_path):
    with ReplayBuffer(tmp_path, capacity=30, eviction="random", seed=1, segment_bytes=600) as buf:
        for c in range(12):
            buf.extend([rec(f"{c}-{i}", pad="y" * 20) for i in range(12)], cycle=c)
            assert len(buf) == min(12 * (c + 1), 30)
            assert buf.count(cycle=c) == 12  # the whole new cycle stays
    assert len(read_buffer(tmp_path)) == 30
    on_disk = sum(p.read_bytes().count(b'"seq"') for p in logs(tmp_path))
    assert on_disk < 3 * 30  # sparse sealed segments are rewritten, emptied ones deleted
    assert check_buffer(tmp_path).ok


def test_random_eviction_is_repeatable_from_its_seed(tmp_path):
    def run(d):
        with ReplayBuffer(d, capacity=20, eviction="random", seed=7, segment_bytes=400) as buf:
            for c in range(6):
                buf.extend([rec(f"{c}-{i}") for i in range(9)], cycle=c)
        return [e.record["prompt"] for e in read_buffer(d)]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_a_tagged_batch_is_committed_once_with_its_count(tmp_path):
    with ReplayBuffer(tmp_path, capacity=4, segment_bytes=200) as buf:
        assert buf.extend([rec(0), rec(1), rec(2)], cycle=0, tag="cycle-0") == 3
        assert buf.extend([rec(0), rec(3), rec(4)], cycle=1, tag="cycle-1") == 2
        assert buf.tags == {"cycle-0": {"added": 3, "size": 3}, "cycle-1": {"added": 2, "size": 4}}
        for i in range(5, 30):  # seals and deletes the segments holding those commits
            buf.append(rec(i))
    with ReplayBuffer(tmp_path, capacity=4) as buf:
        assert buf.extend([rec(100), rec(101)], cycle=1, tag="cycle-1") == 2  # the first commit's count
        assert prompts(buf.records()) == ["p26", "p27", "p28", "p29"]
        assert buf.tags["cycle-1"] == {"added": 2, "size": 4}


def test_a_single_file_buffer_is_migrated(tmp_path):
    lines = [encode_line({"seq": i, "key": replay.content_key(rec(i), ("prompt", "completion")), "cycle": 0,
                          "policy_step": 1, "added_at": 0.0, "record": rec(i)}) for i in range(3)]
    (tmp_path / LEGACY).write_bytes(b"".join(lines))
    assert prompts(read_buffer(tmp_path)) == ["p0", "p1", "p2"]
    with ReplayBuffer(tmp_path) as buf:
        assert len(buf) == 3 and not buf.append(rec(1)) and buf.append(rec(3))
    assert not (tmp_path / LEGACY).exists()
    assert prompts(read_buffer(tmp_path)) == ["p0", "p1", "p2", "p3"]


# --- one writer ---------------------------------------------------------------------------

def test_a_second_writer_in_the_same_process_is_refused_at_once_naming_the_pid(tmp_path):
    with ReplayBuffer(tmp_path):
        t0 = time.monotonic()
        with pytest.raises(BufferLockedError, match=rf"{tmp_path}.*pid {os.getpid()} \(this process"):
            ReplayBuffer(tmp_path)
        assert time.monotonic() - t0 < 1.0
    with ReplayBuffer(tmp_path) as buf:  # released on close
        assert len(buf) == 0


LOCKER = "import sys; from grpo_plugins.replay import ReplayBuffer as R; R(sys.argv[1], lock_timeout=float(sys.argv[2])); print('opened')"


def test_a_second_writer_process_gets_the_holders_pid_or_waits_when_asked(tmp_path):
    with ReplayBuffer(tmp_path):
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", LOCKER, str(tmp_path), "0"], capture_output=True, text=True)
        assert out.returncode != 0 and f"open for writing by pid {os.getpid()}" in out.stderr
        assert time.monotonic() - t0 < 10
        proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp_path), "30"], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert proc.poll() is None  # waiting within its lock_timeout
    assert proc.communicate(timeout=30)[0].strip() == "opened"


# --- a full disk --------------------------------------------------------------------------

def test_enospc_stores_nothing_raises_naming_the_path_and_a_retry_stores_it(tmp_path, monkeypatch):
    with ReplayBuffer(tmp_path, capacity=3, segment_bytes=10**6) as buf:
        buf.extend([rec(0), rec(1), rec(2)])
        (log,) = logs(tmp_path)
        size = log.stat().st_size
        real_write = os.write

        def full(fd, data):  # half the batch fits, then the disk is full
            if len(data) > 20:
                real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(OSError, match=rf"nothing stored.*{log}") as err:
            buf.append(rec(3))
        assert err.value.errno == 28
        assert log.stat().st_size == size and len(buf) == 3 and prompts(buf.records()) == ["p0", "p1", "p2"]
        monkeypatch.setattr(os, "write", real_write)
        assert buf.append(rec(3))  # not "a duplicate": it was never stored
        assert prompts(buf.records()) == ["p1", "p2", "p3"]
    assert prompts(read_buffer(tmp_path)) == ["p1", "p2", "p3"]


def tmpfs(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmpfs(tmp_path / "disk", "1m")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_tiny_disk_at_capacity_keeps_taking_appends_and_a_full_one_raises_cleanly(small_disk):
    root = small_disk / "buffer"
    pad = "z" * 1000
    # ~600 KB of records on a 1 MB disk: the old buffer needed room for a full copy to evict
    with ReplayBuffer(root, capacity=500, segment_bytes=64 << 10) as buf:
        for i in range(3000):  # 3 MB through a 1 MB disk
            assert buf.append({"prompt": f"p{i}", "completion": pad})
            assert len(buf) == min(i + 1, 500)
    assert prompts(read_buffer(root)) == [f"p{i}" for i in range(2500, 3000)]
    filler = small_disk / "filler"
    with ReplayBuffer(root, capacity=None, segment_bytes=64 << 10) as buf:
        with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last byte
            for block in (4096, 1):
                try:
                    while True:
                        fh.write(b"f" * block)
                except OSError:
                    pass
        stored = 0
        while True:  # the last page of the segment may still have room for a record or two
            try:
                buf.append({"prompt": f"slack{stored}", "completion": pad})
                stored += 1
            except OSError:
                break
        assert stored <= 4
        before = [p.stat().st_size for p in logs(root)]
        for i in range(3000, 3020):
            with pytest.raises(OSError) as err:
                buf.append({"prompt": f"p{i}", "completion": pad})
            assert err.value.errno == 28 and str(root) in str(err.value)
        assert [p.stat().st_size for p in logs(root)] == before and len(buf) == 500 + stored
        filler.unlink()  # freeing space is enough: nothing is left half-done
        assert buf.append({"prompt": "p3000", "completion": pad}) and len(buf) == 501 + stored
    assert len(read_buffer(root)) == 501 + stored and check_buffer(root).ok


# --- kills ----------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from grpo_plugins.replay import ReplayBuffer
    cap = None if sys.argv[2] == "none" else int(sys.argv[2])
    buf = ReplayBuffer(sys.argv[1], capacity=cap, eviction=sys.argv[3], segment_bytes=int(sys.argv[4]))
    i = buf.store.next_seq
    pad = "x" * int(sys.argv[5])  # long lines make a kill in the middle of a write likely
    while True:
        n = 1 + i % 3
        buf.extend([{"prompt": f"p{j}", "completion": pad, "i": j} for j in range(i, i + n)], cycle=i // 40)
        print(i + n - 1, flush=True)  # acknowledged: extend returned
        i += n
""")


def kill_loop(root, capacity, eviction, segment_bytes, pad, rounds=4, acks=25):
    acked_all = []
    for _round in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(capacity), eviction, str(segment_bytes),
                                 str(pad)], stdout=subprocess.PIPE, text=True)
        acked = [int(proc.stdout.readline()) for _ in range(acks)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acked += [int(x) for x in proc.stdout.read().split()]  # acks already in the pipe
        acked_all += acked
        yield max(acked_all), [e.record["i"] for e in read_buffer(root)]


def test_sigkill_during_appends_loses_no_acknowledged_record_and_duplicates_none(tmp_path):
    for last, ids in kill_loop(tmp_path, "none", "fifo", 300_000, 50_000):
        assert ids == list(range(len(ids)))  # nothing lost, nothing twice, batches whole
        assert last < len(ids) <= last + 4  # at most the batch in flight besides the acknowledged
    with ReplayBuffer(tmp_path) as buf:  # a writer after the kills appends on a clean line
        n = len(buf)
        buf.append({"prompt": "after", "completion": "", "i": n})
    assert [e.record["i"] for e in read_buffer(tmp_path)] == list(range(n + 1))


@pytest.mark.parametrize("eviction", ["fifo", "random"])
def test_sigkill_during_eviction_keeps_exact_capacity_and_the_newest(tmp_path, eviction):
    cap = 30
    for last, ids in kill_loop(tmp_path, cap, eviction, 20_000, 2_000, rounds=4, acks=40):
        assert len(ids) == cap and len(set(ids)) == cap
        newest = max(ids)
        assert last <= newest <= last + 3
        if eviction == "fifo":
            assert ids == list(range(newest - cap + 1, newest + 1))
        else:
            assert ids == sorted(ids)
            first = newest // 40 * 40  # the newest cycle (40 records each) is evicted last
            if newest - first + 1 <= cap:
                assert set(range(first, newest + 1)) <= set(ids)
            else:
                assert min(ids) >= first
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report = check_buffer(tmp_path)
        assert report.ok and report.records == cap, report
    with ReplayBuffer(tmp_path, capacity=cap, eviction=eviction) as buf:
        assert not list((tmp_path / SEGMENTS).glob("*.tmp"))
        assert len(buf) == cap
    state = json.loads((tmp_path / "state").read_bytes().split(b"\n")[0][9:])
    assert state["next_seq"] <= max(ids) + 1
