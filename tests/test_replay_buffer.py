"""The on-disk replay buffer: torn tails, dedupe, provenance, capacity, and SIGKILL during appends."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from grpo_plugins.cycle.replay import FILE, ReplayBuffer, encode_line, read_buffer, scan


def rec(i, **extra):
    return {"prompt": f"p{i}", "completion": f"c{i}", **extra}


def test_records_keep_provenance_and_survive_reopening(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        assert buf.extend([rec(0), rec(1)], cycle=0, policy_step=10) == 2
        assert buf.append(rec(2), cycle=1, policy_step=20)
    with ReplayBuffer(tmp_path) as buf:
        got = [(e.seq, e.cycle, e.policy_step, e.record["prompt"]) for e in buf.records()]
        assert got == [(0, 0, 10, "p0"), (1, 0, 10, "p1"), (2, 1, 20, "p2")]
        assert [e.record["prompt"] for e in buf.records(before_cycle=1)] == ["p0", "p1"]
        assert buf.append(rec(3), cycle=1)
        assert buf.records()[-1].seq == 3  # sequence numbers continue after a reopen


def test_duplicates_by_content_are_skipped_even_across_reopen(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        assert buf.extend([rec(0), rec(0, steps=[[0, 1, 1.0]]), rec(1)], cycle=0) == 2
    with ReplayBuffer(tmp_path) as buf:
        assert not buf.append(rec(1, note="same prompt and completion"), cycle=1)
        assert len(buf) == 2
    with ReplayBuffer(tmp_path / "full", dedupe_fields=None) as buf:
        assert buf.extend([rec(0), rec(0, extra=1), rec(0)]) == 2  # whole-record hashing


def test_torn_and_corrupt_lines_are_dropped_and_the_tail_truncated(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        buf.extend([rec(0), rec(1)])
    path = tmp_path / FILE
    good = path.read_bytes()
    line = encode_line({"seq": 2, "key": "k", "cycle": None, "policy_step": None, "added_at": 0.0,
                        "record": rec(2)})
    path.write_bytes(good + line[: len(line) // 2])  # a kill in the middle of a write
    entries, good_end, bad = scan(path)
    assert [e["record"]["prompt"] for e in entries] == ["p0", "p1"] and good_end == len(good) and bad == 1
    with ReplayBuffer(tmp_path) as buf:
        assert path.stat().st_size == len(good)
        buf.append(rec(3))
    assert [e.record["prompt"] for e in read_buffer(tmp_path)] == ["p0", "p1", "p3"]
    # a flipped byte fails the checksum; that line alone is skipped
    data = bytearray(path.read_bytes())
    data[data.index(b'"p1"') + 2] = ord("9")
    path.write_bytes(bytes(data))
    assert [e.record["prompt"] for e in read_buffer(tmp_path)] == ["p0", "p3"]


def test_fifo_eviction_keeps_the_newest_records(tmp_path):
    with ReplayBuffer(tmp_path, capacity=3) as buf:
        for i in range(5):
            buf.append(rec(i), cycle=i)
        assert [e.record["prompt"] for e in buf.records()] == ["p2", "p3", "p4"]
    assert [e.record["prompt"] for e in read_buffer(tmp_path)] == ["p2", "p3", "p4"]
    with ReplayBuffer(tmp_path, capacity=3) as buf:
        assert buf.append(rec(0))  # evicted records may come back


def test_random_eviction_evicts_history_before_the_newest_cycle(tmp_path):
    with ReplayBuffer(tmp_path, capacity=6, eviction="random", seed=1) as buf:
        buf.extend([rec(i) for i in range(6)], cycle=0)
        buf.extend([rec(i) for i in range(6, 10)], cycle=1)
        cycles = [e.cycle for e in buf.records()]
    assert len(cycles) == 6 and cycles.count(1) == 4  # the whole new cycle stays
    assert len(read_buffer(tmp_path)) == 6


WRITER = textwrap.dedent("""
    import sys
    from grpo_plugins.cycle.replay import ReplayBuffer
    buf = ReplayBuffer(sys.argv[1])
    i = len(buf)
    pad = "x" * 50000  # long lines make a kill in the middle of a write likely
    while True:
        buf.append({"prompt": f"p{i}", "completion": pad, "i": i}, cycle=0)
        print(i, flush=True)  # acknowledged: append returned
        i += 1
""")


def test_sigkill_during_appends_loses_no_acknowledged_record_and_duplicates_none(tmp_path):
    acked_all = []
    for _round in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        acked = [int(proc.stdout.readline()) for _ in range(25)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acked += [int(x) for x in proc.stdout.read().split()]  # acks already in the pipe
        acked_all += acked
        ids = [e.record["i"] for e in read_buffer(tmp_path)]
        assert len(ids) == len(set(ids))  # no duplicates
        assert set(acked_all) <= set(ids)  # every acknowledged record is there
        assert ids == list(range(len(ids)))  # and nothing else but at most the one in flight
        assert len(ids) - 1 <= max(acked_all) + 1
    with ReplayBuffer(tmp_path) as buf:  # a writer after the kills appends on a clean line
        n = len(buf)
        buf.append({"prompt": "after", "completion": "", "i": n})
    assert [e.record["i"] for e in read_buffer(tmp_path)] == list(range(n + 1))


def test_a_second_writer_waits_for_the_lock(tmp_path):
    code = "import sys; from grpo_plugins.cycle.replay import ReplayBuffer; ReplayBuffer(sys.argv[1]); print('opened')"
    with ReplayBuffer(tmp_path):
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
    assert proc.communicate(timeout=30)[0].strip() == "opened"
