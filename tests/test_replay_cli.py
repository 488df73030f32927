"""`grpo-plugins buffer check`: lists records that fail their checksum by file and offset, repairs on request."""

import os
import subprocess
import sys

from grpo_plugins.replay import SEGMENTS, ReplayBuffer, read_buffer


def check(*args):
    return subprocess.run([sys.executable, "-m", "grpo_plugins", "buffer", "check", *map(str, args)],
                          capture_output=True, text=True)


def test_buffer_check_lists_a_flipped_record_and_repair_moves_it_aside(tmp_path):
    buf_dir = tmp_path / "buffer"
    with ReplayBuffer(buf_dir, segment_bytes=400) as buf:
        for i in range(12):
            buf.append({"prompt": f"p{i}", "completion": "c" * 40}, cycle=0)
    out = check(buf_dir)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr
    assert "12 records in" in out.stdout
    log = sorted((buf_dir / SEGMENTS).glob("*.log"))[1]  # a sealed segment: only a full check reads it
    data = bytearray(log.read_bytes())
    at = data.index(b'"completion"')
    data[at + 3] ^= 0x20
    log.write_bytes(bytes(data))
    offset = data.rfind(b"\n", 0, at) + 1
    out = check(buf_dir)
    assert out.returncode == 1
    assert f"{log}:{offset}: " in out.stdout and "not moved aside yet" in out.stdout, out.stdout
    out = check(buf_dir, "--repair")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{log}:{offset}: " in out.stdout and "moved aside to" in out.stdout and "1 corrupt, 0 not" in out.stdout
    assert len(read_buffer(buf_dir)) == 11
    assert (buf_dir / "quarantine").is_dir()


def test_buffer_check_repair_names_the_writer_holding_the_lock(tmp_path):
    with ReplayBuffer(tmp_path) as buf:
        buf.append({"prompt": "p", "completion": "c"})
        out = check(tmp_path, "--repair")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"Error: {tmp_path}: the replay buffer is open for writing by pid {os.getpid()}; one writer at a time "
        f"(waited 0s)")


def test_buffer_check_on_a_directory_that_is_no_buffer_says_so(tmp_path):
    out = check(tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error: {tmp_path}: not a replay buffer (no segments/ or records.jsonl)"
