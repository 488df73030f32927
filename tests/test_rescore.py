"""``grpo-plugins rescore``: flipped verdicts after a verifier change, a cache that costs nothing when
the reward is unchanged, and a cache a kill cannot corrupt."""

import json
import sqlite3

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from grpo_plugins.cli import cli
from grpo_plugins.errors import UserError
from grpo_plugins.manager import PluginManager
from grpo_plugins.provenance import canonical_json
from grpo_plugins.rescore import CACHE, RescoreCache, rescore
from grpo_plugins.rewards import RewardResult

PLUGIN = """
from grpo_plugins import Reward, RewardOptions, RewardResult, hookimpl
CALLS = []
class Opts(RewardOptions):
    strict: bool = False
class Eq(Reward):
    name = "eq"
    Options = Opts
    def required_columns(self):
        return ["answer"]
    def score(self, samples):
        CALLS.append(len(samples))
        out = []
        for s in samples:
            got = s.text.strip() if self.options.strict else s.text.strip().lower()
            ok = got == s.columns["answer"]
            out.append(RewardResult(float(ok), info={"status": "correct" if ok else "incorrect"}))
        return out
@hookimpl
def register_rewards(register):
    register(Eq)
"""


@pytest.fixture
def run(tmp_path):
    rows = [{"step": 1, "prompt": "p", "completion": c, "answer": "a", "rewards": {"eq": 1.0},
             "status": {"eq": "correct"}} for c in ("a", "A", "a ", "b")]
    rows[3].update(rewards={"eq": 0.0}, status={"eq": "incorrect"})
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eq.py").write_text(PLUGIN)
    return tmp_path


def _manager(run):
    m = PluginManager(load_entrypoints=False)
    m.load_file(run / "eq.py")
    return m


def test_flip_after_option_change_and_cache_hits_cost_nothing(run):
    m = _manager(run)
    calls = __import__("sys").modules["grpo_plugins_local_eq"].CALLS
    first = rescore(run, "eq", {}, m)
    assert first.changed == [] and first.scored == 4 and sum(calls) == 4
    again = rescore(run, "eq", {}, m)
    assert again.cached == 4 and again.scored == 0 and sum(calls) == 4  # no verifier call at all
    strict = rescore(run, "eq", {"strict": True}, m)
    assert strict.scored == 4 and [c["line"] for c in strict.changed] == [2]  # "A" flips to incorrect
    assert strict.changed[0]["status_after"] == "incorrect" and strict.mean_after == pytest.approx(0.5)
    assert strict.mean_before == pytest.approx(0.75) and strict.statuses["correct"] == [3, 2]


def test_file_change_is_a_new_provenance(run):
    first = rescore(run, "eq", {}, _manager(run))
    (run / "eq.py").write_text(PLUGIN.replace("ok = got ==", "ok = got !="))
    flipped = rescore(run, "eq", {}, _manager(run))
    assert flipped.provenance_after["file_sha256"] != first.provenance_after["file_sha256"]
    assert flipped.scored == 4 and len(flipped.changed) == 4


def test_errors_are_one_line(run, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(UserError, match="no stored rollouts"):
        rescore(empty, "eq", {}, _manager(run))
    with pytest.raises(UserError, match="unknown reward 'nope'"):
        rescore(run, "nope", {}, _manager(run))
    rows = (run / "samples.jsonl").read_text().splitlines()
    bad = json.loads(rows[1])
    del bad["answer"]
    (run / "samples.jsonl").write_text("\n".join([rows[0], json.dumps(bad)]) + "\n")
    with pytest.raises(UserError, match=r"samples.jsonl:2: answer: missing"):
        rescore(run, "eq", {}, _manager(run))


def test_cli_prints_changes(run):
    res = CliRunner().invoke(cli, ["--plugin", str(run / "eq.py"), "rescore", str(run), "--reward", "eq",
                                   "--option", "strict=true"], obj={"manager": PluginManager(load_entrypoints=False)})
    assert res.exit_code == 0, res.output
    assert "4 rows, 1 changed" in res.output and "samples.jsonl:2" in res.output


def test_kill_mid_write_rolls_back(tmp_path):
    """A process SIGKILLed inside a put (before commit) leaves the cache with exactly the committed batches."""
    import subprocess
    import sys

    cache = RescoreCache(tmp_path / CACHE)
    cache.put([("k1", RewardResult(1.0, info={"status": "correct"}))])
    cache.close()
    code = ("import os, signal, sys; from grpo_plugins.rescore import RescoreCache; c = RescoreCache(sys.argv[1]); "
            "c.db.execute('BEGIN'); c.db.executemany('INSERT INTO results VALUES (?, ?)', "
            "[(f'k{i}', '{}') for i in range(2, 5000)]); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / CACHE)])
    assert proc.returncode == -9
    again = RescoreCache(tmp_path / CACHE)
    assert set(again.get([f"k{i}" for i in range(1, 5000)])) == {"k1"} and again.get(["k1"])["k1"].value == 1.0
    assert sqlite3.connect(tmp_path / CACHE).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_known_lines_skip_parsing_and_give_the_parsed_verdicts(run, monkeypatch):
    """A line the cache has seen under this reward is not parsed again, and the report is the one
    parsing gives; an edited line (its stored reward) is parsed again and diffed against its new value."""
    import grpo_plugins.rescore as rs

    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    for r in rows:
        r["provenance"] = {"eq": {"plugin": "eq", "version": "0.1", "reward": "eq", "options": "abc"}}
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    parsed = []
    real = rs._parse
    monkeypatch.setattr(rs, "_parse", lambda path, line, text: parsed.append(line) or real(path, line, text))
    m = _manager(run)
    plain = rescore(run, "eq", {"strict": True}, m, cache=False).as_dict()
    first = rescore(run, "eq", {"strict": True}, m).as_dict()
    assert parsed == [1, 2, 3, 4] * 2
    again = rescore(run, "eq", {"strict": True}, m).as_dict()
    assert parsed == [1, 2, 3, 4] * 2  # nothing parsed
    for report in (first, again):
        assert {k: v for k, v in report.items() if k not in ("scored", "cached")} == \
               {k: v for k, v in plain.items() if k not in ("scored", "cached")}
    assert again["provenance_before"]["version"] == "0.1" and again["changed"][0]["step"] == 1
    rows[1].update(rewards={"eq": 0.0}, status={"eq": "incorrect"})  # line 2 now agrees with strict
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    edited = rescore(run, "eq", {"strict": True}, m)
    assert parsed[8:] == [2] and edited.scored == 0 and edited.changed == []
    lax = rescore(run, "eq", {}, m)  # another provenance: every line is new to it
    assert parsed[9:] == [1, 2, 3, 4] and [c["line"] for c in lax.changed] == [2]


def test_lines_with_values_sqlite_cannot_keep_are_parsed_each_time(run, monkeypatch):
    import grpo_plugins.rescore as rs

    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    rows[0]["step"] = {"cycle": 1, "step": 3}  # sqlite has no dict: the line is not remembered
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    parsed = []
    real = rs._parse
    monkeypatch.setattr(rs, "_parse", lambda path, line, text: parsed.append(line) or real(path, line, text))
    m = _manager(run)
    rescore(run, "eq", {}, m)
    report = rescore(run, "eq", {"strict": True}, m)
    report = rescore(run, "eq", {"strict": True}, m)
    assert parsed == [1, 2, 3, 4] * 2 + [1] and report.cached == 4 and report.changed[0]["line"] == 2


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                    max_leaves=12))
def test_canonical_json_is_json_dumps_sorted_compact(value):
    """The prebuilt encoder writes what json.dumps with the same arguments writes (options hashes already in run dirs keep their values)."""
    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                               default=str)


def test_a_line_that_is_not_utf8_is_one_error_line(run):
    text = (run / "samples.jsonl").read_bytes().replace(b'"completion": "b"', b'"completion": "\xff"')
    (run / "samples.jsonl").write_bytes(text)
    with pytest.raises(UserError, match=r"samples.jsonl:4: not UTF-8"):
        rescore(run, "eq", {}, _manager(run))


def test_benchmark_smoke(tmp_path):
    """benchmarks/rescore_cache.py runs end to end on a small run and writes its ratio."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "rescore_cache.py"
    out = subprocess.run([sys.executable, str(script), "--rows", "200", "--repeats", "1", "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ratio cached/fresh: best" in out.stdout
    numbers = json.loads((tmp_path / "r.json").read_text())
    assert numbers["rows"] == 200 and numbers["changed"] == 0 and 0 < numbers["ratio_best"] < 1
