"""Damage a disk, a copy or an operator causes to a replay buffer: every acknowledged record that goes
missing is counted and reported (on open, by reads, by `buffer check`), `--repair` keeps what is intact
and says what it dropped; a damaged checkpoint is rebuilt; interrupted compactions leave no false alarm."""

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from grpo_plugins.errors import UserError
from grpo_plugins.replay import (STATE, CorruptRecordWarning, ReplayBuffer, check_buffer, format,
                                 read_buffer)
from helpers_replay import logs, prompts, rec


def check(*args):
    return subprocess.run([sys.executable, "-m", "grpo_plugins", "buffer", "check", *map(str, args)],
                          capture_output=True, text=True)


@contextlib.contextmanager
def quiet():
    """Any warning inside is a test failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def cut_lines(path, n_lines, mid=False):
    """Drop the last ``n_lines`` lines of a log (and half of the line before when ``mid``)."""
    lines = path.read_bytes().splitlines(keepends=True)
    kept = lines[: len(lines) - n_lines]
    data = b"".join(kept)
    if mid:
        data = data[: len(data) - len(kept[-1]) // 2]
    path.write_bytes(data)


def sealed_buffer(root):
    with ReplayBuffer(root, segment_bytes=600) as buf:
        for i in range(12):
            buf.append(rec(i, pad="x" * 40))  # one record + one commit line per batch
    assert len(logs(root)) >= 3
    return logs(root)[0]


@pytest.mark.parametrize("mid", [False, True], ids=["line-boundary", "mid-line"])
def test_a_cut_sealed_segment_is_counted_on_read_open_and_check_and_repair_drops_only_the_lost(tmp_path, mid):
    first = sealed_buffer(tmp_path)
    before = prompts(read_buffer(tmp_path))
    # two batches, two records and their commits: cut after a commit line, or in the middle of a record
    cut_lines(first, 3, mid=True) if mid else cut_lines(first, 4)
    lost = 2
    msg = f"segment 0: {lost} acknowledged records missing"
    with pytest.warns(CorruptRecordWarning, match=msg):
        got = prompts(read_buffer(tmp_path))
    assert len(got) == len(before) - lost and set(got) < set(before)
    with pytest.warns(CorruptRecordWarning, match=msg):
        with ReplayBuffer(tmp_path) as buf:
            assert len(buf) == len(before) - lost
    report = check_buffer(tmp_path)  # still damage after a writer open: nothing repaired it
    assert not report.ok and [(loss.segment, loss.missing) for loss in report.losses] == [(0, lost)]
    out = check(tmp_path)
    assert out.returncode == 1 and msg in out.stdout, out.stdout + out.stderr
    out = check(tmp_path, "--repair")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"segment 0: dropped {lost} acknowledged records that are missing" in out.stdout, out.stdout
    with quiet():
        assert prompts(read_buffer(tmp_path)) == got
        assert check_buffer(tmp_path).ok and not check_buffer(tmp_path).notes
        with ReplayBuffer(tmp_path) as buf:
            assert buf.append(rec(100))


def three_batches(root):
    with ReplayBuffer(root) as buf:
        for b in range(3):
            buf.extend([rec(3 * b + i) for i in range(3)], cycle=b)
    (log,) = logs(root)
    return log


def test_the_newest_segment_cut_into_committed_batches_is_counted_and_its_intact_records_kept(tmp_path):
    log = three_batches(tmp_path)
    cut_lines(log, 2)  # the last commit and the last record of the last batch
    msg = "segment 0: 1 acknowledged records missing"
    with pytest.warns(CorruptRecordWarning, match=msg):
        assert prompts(read_buffer(tmp_path)) == [f"p{i}" for i in range(8)]
    with pytest.warns(CorruptRecordWarning, match=msg):
        with ReplayBuffer(tmp_path) as buf:
            assert len(buf) == 8
            assert buf.append(rec(8)) and not buf.append(rec(7))  # the intact ones count for dedupe
    out = check(tmp_path)
    assert out.returncode == 1 and msg in out.stdout, out.stdout
    assert check(tmp_path, "--repair").returncode == 0
    with quiet():
        assert check_buffer(tmp_path).ok
        assert prompts(read_buffer(tmp_path)) == [f"p{i}" for i in range(9)]


def test_the_newest_segment_cut_at_a_commit_boundary_is_counted(tmp_path):
    log = three_batches(tmp_path)
    cut_lines(log, 4)  # the whole last batch: leaves a valid-looking log
    msg = "segment 0: 3 acknowledged records missing"
    with pytest.warns(CorruptRecordWarning, match=msg):
        assert len(read_buffer(tmp_path)) == 6
    report = check_buffer(tmp_path)
    assert [(loss.segment, loss.missing) for loss in report.losses] == [(0, 3)] and not report.ok


def test_a_flipped_final_newline_of_the_newest_segment_keeps_the_batch_loudly(tmp_path):
    log = three_batches(tmp_path)
    data = bytearray(log.read_bytes())
    data[-1] ^= 0x01
    log.write_bytes(bytes(data))
    with pytest.warns(CorruptRecordWarning, match="segment 0: the final commit line's newline is damaged"):
        assert len(read_buffer(tmp_path)) == 9
    assert not check_buffer(tmp_path).ok
    with pytest.warns(CorruptRecordWarning, match="newline is damaged"):
        with ReplayBuffer(tmp_path) as buf:  # the writer puts the newline back
            assert len(buf) == 9
    assert log.read_bytes().endswith(b"\n")
    with quiet():
        assert len(read_buffer(tmp_path)) == 9 and check_buffer(tmp_path).ok


def test_a_real_torn_tail_after_a_clean_close_stays_quiet(tmp_path):
    log = three_batches(tmp_path)
    line = format.encode_line({"seq": 9, "key": "0" * 64, "cycle": None, "policy_step": None, "added_at": 0.0,
                               "record": rec(9)})
    good = log.read_bytes()
    log.write_bytes(good + line + line[:10])  # a batch in flight when the writer was killed
    with quiet():
        assert len(read_buffer(tmp_path)) == 9
        assert check_buffer(tmp_path).ok
        with ReplayBuffer(tmp_path) as buf:
            assert len(buf) == 9
    assert log.read_bytes() == good


def test_a_damaged_checkpoint_is_rebuilt_from_the_segments(tmp_path):
    with ReplayBuffer(tmp_path, capacity=10, segment_bytes=500) as buf:
        for i in range(14):
            buf.extend([rec(i)], cycle=i, tag=f"t{i}")
    state = tmp_path / STATE
    data = bytearray(state.read_bytes())
    data[12] ^= 0x01
    state.write_bytes(bytes(data))
    with pytest.warns(CorruptRecordWarning, match=f"{state}: the checkpoint fails its checksum; rebuilt from"):
        assert prompts(read_buffer(tmp_path)) == [f"p{i}" for i in range(4, 14)]
    report = check_buffer(tmp_path)
    assert not report.ok and any("checkpoint" in p for p in report.problems)
    with pytest.warns(CorruptRecordWarning, match="rebuilt from"):
        with ReplayBuffer(tmp_path, capacity=10) as buf:
            assert len(buf) == 10 and buf.tags["t13"] == {"added": 1, "size": 10}
    with quiet():
        assert check_buffer(tmp_path).ok
        assert prompts(read_buffer(tmp_path)) == [f"p{i}" for i in range(4, 14)]


KILL_IN_COMPACTION = textwrap.dedent("""
    import os, sys
    from grpo_plugins.replay import ReplayBuffer, buffer
    real_write, real_compact = buffer.write_file, buffer.ReplayBuffer._compact
    state = {"in": False}
    def write_file(path, data):
        if state["in"] and path.name.endswith(sys.argv[2]):
            path.with_name(path.name + ".tmp").write_bytes(data[: len(data) // 2])
            os._exit(9)  # killed while writing the index of a rewritten segment (or the checkpoint after it)
        return real_write(path, data)
    def compact(self, seg):
        state["in"] = True
        real_compact(self, seg)
    buffer.write_file, buffer.ReplayBuffer._compact = write_file, compact
    buf = ReplayBuffer(sys.argv[1], capacity=30, eviction="random", seed=1, segment_bytes=600)
    for c in range(12):
        buf.extend([{"prompt": f"{c}-{i}", "completion": "y" * 20} for i in range(12)], cycle=c)
    print("no compaction", flush=True)
""")


@pytest.mark.parametrize("killed_in", [".idx", "state"])
def test_check_is_exact_after_a_kill_in_compaction(tmp_path, killed_in):
    out = subprocess.run([sys.executable, "-c", KILL_IN_COMPACTION, str(tmp_path), killed_in],
                         capture_output=True, text=True)
    assert out.returncode == 9, out.stdout + out.stderr
    with quiet():
        report = check_buffer(tmp_path)
    assert report.ok, report
    assert report.notes and all("next writer" in n for n in report.notes), report.notes
    result = check(tmp_path)
    assert result.returncode == 0 and "next writer" in result.stdout, result.stdout
    n = report.records
    with quiet():
        with ReplayBuffer(tmp_path, capacity=30, eviction="random") as buf:
            assert len(buf) == n == 30
        report = check_buffer(tmp_path)
    assert report.ok and not report.notes and report.records == 30, report
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_smaller_capacity_on_a_full_disk_is_one_user_error(tmp_path, monkeypatch):
    with ReplayBuffer(tmp_path) as buf:
        buf.extend([rec(i) for i in range(10)])

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(UserError, match=rf"{tmp_path}: .*capacity 4.*6 evictions.*No space left") as err:
        ReplayBuffer(tmp_path, capacity=4)
    assert not isinstance(err.value, OSError)
    monkeypatch.undo()
    with ReplayBuffer(tmp_path, capacity=4) as buf:  # the lock was released; with space it applies
        assert len(buf) == 4


def test_a_checkpoint_of_the_previous_version_opens_and_is_migrated(tmp_path):
    sealed_buffer(tmp_path)
    state = tmp_path / STATE
    header, body = format.split_header(state.read_bytes())
    old = {k: header[k] for k in ("sealed", "next_seq", "tags")}  # what the previous version wrote
    state.write_bytes(format.with_header(old, body))
    with quiet():
        assert len(read_buffer(tmp_path)) == 12
        with ReplayBuffer(tmp_path) as buf:
            assert len(buf) == 12
    header, _ = format.split_header(state.read_bytes())
    assert header["version"] == 2 and header["segs"]
    cut_lines(logs(tmp_path)[0], 2)  # with the counts in place, damage is found
    with pytest.warns(CorruptRecordWarning, match="segment 0: 1 acknowledged records missing"):
        read_buffer(tmp_path)
