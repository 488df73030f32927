"""``grpo-plugins score`` streams: memory stays flat as the input grows, and the output is still
atomic (an error after many scored batches leaves the old output untouched and no temp file)."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from grpo_plugins.cli import cli
from grpo_plugins.manager import PluginManager

PEAK = """
import resource, sys
from grpo_plugins.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write(path, n, bad_line=None):
    with open(path, "w") as fh:
        for i in range(n):
            if i + 1 == bad_line:
                fh.write("{not json\n")
                continue
            fh.write(json.dumps({"prompt": f"question {i} " * 4, "completion": f"<think>{i}</think><answer>{i}</answer>",
                                 "answer": str(i), "id": i}) + "\n")


def _peak_kb(tmp_path, n):
    inp, out = tmp_path / f"in{n}.jsonl", tmp_path / f"out{n}.jsonl"
    _write(inp, n)
    res = subprocess.run([sys.executable, "-c", PEAK, "score", "--reward", "format", "--batch-size", "256",
                          "--input", str(inp), "--output", str(out)], capture_output=True, text=True,
                         env={"GRPO_PLUGINS_LOAD": "format", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == n and json.loads(lines[-1])["id"] == n - 1
    return int(res.stdout.split()[-1])


def test_memory_stays_flat_as_the_input_grows(tmp_path):
    small, large = _peak_kb(tmp_path, 5_000), _peak_kb(tmp_path, 80_000)  # about 0.6 MB and 10 MB of JSONL
    # holding 80k rows and their outputs in memory costs well over 100 MB; streaming costs nothing per row
    assert large - small < 25_000, (small, large)


def test_error_after_many_batches_keeps_the_old_output(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, 500, bad_line=437)
    out.write_text("old output\n")
    res = CliRunner().invoke(cli, ["score", "--reward", "format", "--batch-size", "16", "--input", str(inp),
                                   "--output", str(out)], obj={"manager": PluginManager(allow=["format"])})
    assert res.exit_code == 1 and f"{inp}:437: invalid JSON" in res.output
    assert out.read_text() == "old output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp file left


def test_streamed_output_matches_row_by_row(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, 70)
    res = CliRunner().invoke(cli, ["score", "--reward", "math", "--batch-size", "8", "--input", str(inp),
                                   "--output", str(out), "--option", "math.workers=1"],
                             obj={"manager": PluginManager(allow=["math"])})
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(70))
    assert all(r["rewards"]["math"] == 1.0 and r["info"]["math"]["extracted"] == str(r["id"]) for r in rows)
    assert "scored 70 samples" in res.output
