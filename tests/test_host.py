"""The reward host: concurrency, timeouts, on_error policies, weighted sums, metrics."""

import asyncio
import json
import math
import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from helpers_process import HangingProcessReward, PidReward

from grpo_plugins import (
    OptionsError,
    PluginManager,
    Reward,
    RewardConfig,
    RewardError,
    RewardHost,
    RewardOptions,
    RewardResult,
    RewardTimeout,
    Sample,
    hookimpl,
)


def make_manager(*classes):
    """A manager without installed plugins and one inline plugin registering ``classes``."""
    m = PluginManager(load_entrypoints=False)

    class Inline:
        @hookimpl
        def register_rewards(self, register):
            for c in classes:
                register(c)

    m.register(Inline(), name="inline")
    return m


def samples(*texts, **columns):
    return [Sample(prompt="p", completion=t, columns={k: v[i] for k, v in columns.items()})
            for i, t in enumerate(texts)]


class Const(Reward):
    name = "const"

    def score(self, samples):
        return [RewardResult(float(len(s.text))) for s in samples]


class FailsOnBad(Reward):
    name = "fails"

    def score(self, samples):
        out = []
        for s in samples:
            if s.text == "bad":
                raise ZeroDivisionError("boom")
            out.append(RewardResult(1.0))
        return out


class ShortBy1(Reward):
    name = "short"

    def score(self, samples):
        return [RewardResult(1.0) for _ in samples[1:]]


class Maybe(Reward):
    name = "maybe"

    def score(self, samples):
        return [RewardResult(None if s.text == "na" else 10.0) for s in samples]


gate = threading.Event()


class Waiter(Reward):
    """Only succeeds if Setter runs while it waits: proves the two run concurrently."""

    name = "waiter"

    def score(self, samples):
        if not gate.wait(10):
            raise RuntimeError("setter never ran concurrently")
        return [RewardResult(1.0) for _ in samples]


class Setter(Reward):
    name = "setter"

    def score(self, samples):
        gate.set()
        return [RewardResult(2.0) for _ in samples]


class Hang(Reward):
    name = "hang"

    def score(self, samples):
        threading.Event().wait(3600)


class AsyncReward(Reward):
    name = "async"

    async def score(self, samples):
        await asyncio.sleep(0)
        return [RewardResult(float(i)) for i, _ in enumerate(samples)]


def test_weighted_sum_and_metrics():
    m = make_manager(Const, Maybe)
    with RewardHost([RewardConfig(name="const", weight=0.5), RewardConfig(name="maybe", weight=2.0)], m) as host:
        s = host.score(samples("ab", "na", "abcd"))
    assert s.totals == [0.5 * 2 + 20.0, 0.5 * 2, 0.5 * 4 + 20.0]
    assert s.metrics["rewards/const/mean"] == pytest.approx((2 + 2 + 4) / 3)
    assert s.metrics["rewards/const/std"] == pytest.approx(1.1547005383792515)
    assert s.metrics["rewards/maybe/not_applicable"] == 1.0
    assert s.record(1)["rewards"]["maybe"] is None


def test_all_not_applicable_gives_none_not_zero():
    m = make_manager(Maybe)
    with RewardHost(["maybe"], m) as host:
        assert host.score(samples("na", "x")).totals == [None, 10.0]


def test_rewards_run_concurrently():
    gate.clear()
    m = make_manager(Waiter, Setter)
    with RewardHost(["waiter", "setter"], m) as host:
        s = host.score(samples("a"))
    assert s.totals == [3.0]


def test_raise_policy_names_plugin_reward_and_sample_index():
    m = make_manager(FailsOnBad)
    with RewardHost(["fails"], m) as host, pytest.raises(RewardError) as ei:
        host.score(samples("ok", "ok", "bad", "ok"))
    msg = str(ei.value)
    assert "'fails'" in msg and "plugin 'inline'" in msg and "sample 2" in msg and "ZeroDivisionError" in msg
    assert ei.value.index == 2


def test_nan_policy_marks_only_failing_samples():
    m = make_manager(FailsOnBad, Const)
    cfgs = [RewardConfig(name="fails", on_error="nan"), RewardConfig(name="const")]
    with RewardHost(cfgs, m) as host:
        s = host.score(samples("ok", "bad", "ok"))
    vals = [r.value for r in s.results["fails"]]
    assert vals[0] == 1.0 and vals[2] == 1.0 and math.isnan(vals[1])
    assert s.results["fails"][1].info["status"] == "error" and "sample 1" in s.results["fails"][1].info["error"]
    assert s.totals == [1.0 + 2, 3.0, 1.0 + 2]  # the failed reward is left out, not counted as 0
    assert s.metrics["rewards/fails/errors"] == 1.0


def test_zero_policy():
    m = make_manager(FailsOnBad)
    with RewardHost([RewardConfig(name="fails", on_error="zero")], m) as host:
        s = host.score(samples("bad", "ok"))
    assert [r.value for r in s.results["fails"]] == [0.0, 1.0]
    assert s.metrics["rewards/fails/errors"] == 1.0


def test_wrong_length_is_an_error_never_padded():
    m = make_manager(ShortBy1)
    with RewardHost(["short"], m) as host, pytest.raises(RewardError, match="returned 2 results for 3 samples"):
        host.score(samples("a", "b", "c"))
    with RewardHost([RewardConfig(name="short", on_error="nan")], m) as host:
        s = host.score(samples("a", "b", "c"))
    assert all(math.isnan(r.value) for r in s.results["short"])
    assert s.totals == [None, None, None]
    assert s.metrics["rewards/short/errors"] == 3.0


def test_timeout_raises_or_applies_policy():
    m = make_manager(Hang, Const)
    with RewardHost([RewardConfig(name="hang", timeout=0.3), "const"], m) as host:
        with pytest.raises(RewardTimeout, match="timed out after 0.3s"):
            host.score(samples("a"))
    with RewardHost([RewardConfig(name="hang", timeout=0.3, on_error="zero"), "const"], m) as host:
        s = host.score(samples("a", "bb"))
    assert [r.value for r in s.results["hang"]] == [0.0, 0.0]
    assert s.metrics["rewards/hang/timeouts"] == 2.0
    assert s.totals == [1.0, 2.0]


def test_async_reward():
    m = make_manager(AsyncReward)
    with RewardHost(["async"], m) as host:
        assert host.score(samples("a", "b", "c")).totals == [0.0, 1.0, 2.0]


def test_process_executor_runs_in_another_process():
    m = make_manager(PidReward)
    with RewardHost(["pid"], m) as host:
        s = host.score(samples("a", "b"))
    pids = {r.info["pid"] for r in s.results["pid"]}
    assert len(pids) == 1 and os.getpid() not in pids


def test_process_reward_timeout_kills_worker_and_recovers():
    m = make_manager(HangingProcessReward)
    with RewardHost([RewardConfig(name="hang_proc", timeout=20, on_error="nan")], m) as host:
        first = host.score(samples("ok"))  # warm the pool so the timeout below is not spent on spawn
        host.configs[0].timeout = 1.0
        s = host.score(samples("hang"))
        assert math.isnan(s.results["hang_proc"][0].value) and s.metrics["rewards/hang_proc/timeouts"] == 1.0
        host.configs[0].timeout = 20
        again = host.score(samples("ok"))
    assert again.results["hang_proc"][0].value == 2.0
    assert again.results["hang_proc"][0].info["pid"] != first.results["hang_proc"][0].info["pid"]


def test_duplicate_labels_rejected_and_label_allows_two_configs():
    m = make_manager(Const)
    with pytest.raises(ValueError, match="unique"):
        RewardHost(["const", "const"], m)
    with RewardHost([RewardConfig(name="const"), RewardConfig(name="const", label="const2", weight=-1)], m) as host:
        assert host.score(samples("abc")).totals == [0.0]


def test_process_executor_reward_from_a_plugin_file(tmp_path):
    """A reward defined in a --plugin file runs in a worker process (the file is imported there by path)."""
    import subprocess
    import sys

    (tmp_path / "proc_plugin.py").write_text(
        "import os\n"
        "from grpo_plugins import Reward, RewardResult, hookimpl\n\n"
        "class ProcLen(Reward):\n"
        "    name = 'proc_len'\n"
        "    executor = 'process'\n"
        "    def score(self, samples):\n"
        "        return [RewardResult(float(len(s.text)), info={'pid': os.getpid()}) for s in samples]\n\n"
        "@hookimpl\n"
        "def register_rewards(register):\n"
        "    register(ProcLen)\n")
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"completion": "abcd"}\n{"completion": "xy"}\n')
    res = subprocess.run([sys.executable, "-m", "grpo_plugins", "--plugin", str(tmp_path / "proc_plugin.py"), "score",
                          "--reward", "proc_len", "--input", str(inp), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rewards"]["proc_len"] for r in rows] == [4.0, 2.0]
    worker = {r["info"]["proc_len"]["pid"] for r in rows}
    assert len(worker) == 1 and os.getpid() not in worker


# --- options parsed once: RewardConfig, create_reward, config loading -------------------------

class Tunable(Reward):
    name = "tunable"

    class Options(RewardOptions):
        scale: float = 1.0
        nested: dict = {}

    def score(self, samples):
        return [RewardResult(self.options.scale) for _ in samples]


def test_reward_config_lives_beside_the_reward_contract():
    import grpo_plugins.host
    import grpo_plugins.rewards

    assert RewardConfig is grpo_plugins.rewards.RewardConfig is grpo_plugins.host.RewardConfig


def test_options_for_parses_once_and_again_only_after_a_change(monkeypatch):
    calls = []
    real = Tunable.parse_options.__func__
    monkeypatch.setattr(Tunable, "parse_options", classmethod(lambda cls, o: calls.append(o) or real(cls, o)))
    rc = RewardConfig(name="tunable", options={"scale": 2.0, "nested": {"a": 1}})
    first = rc.options_for(Tunable)
    assert rc.options_for(Tunable) is first and first.scale == 2.0 and len(calls) == 1
    rc.options["nested"]["a"] = 2  # changed in place: parsed afresh, never a stale object
    assert rc.options_for(Tunable).nested == {"a": 2} and len(calls) == 2
    copy = rc.model_copy(update={"options": {"scale": 3.0}})
    assert copy.options_for(Tunable).scale == 3.0 and rc.options_for(Tunable).scale == 2.0
    with pytest.raises(OptionsError, match="scale"):
        RewardConfig(name="tunable", options={"scale": "x"}).options_for(Tunable)


def test_create_reward_takes_a_config_or_parsed_options_without_parsing_again(monkeypatch):
    m = make_manager(Tunable)
    rc = RewardConfig(name="tunable", options={"scale": 4.0})
    parsed = rc.options_for(Tunable)
    monkeypatch.setattr(Tunable.Options, "model_validate", classmethod(lambda cls, o: pytest.fail("parsed again")))
    assert m.create_reward(rc).options is parsed
    assert m.create_reward("tunable", parsed).options is parsed
    with RewardHost([rc], manager=m) as host:
        assert host.rewards["tunable"].options is parsed and host.rewards["tunable"].manager is m
    with pytest.raises(TypeError, match="from the config"):
        m.create_reward(rc, {"scale": 1.0})


def test_load_config_returns_parsed_options_and_the_line_index(tmp_path, monkeypatch):
    from grpo_plugins.config import ConfigError, load_config

    m = make_manager(Tunable)
    path = tmp_path / "run.yaml"
    path.write_text("rewards:\n  - name: tunable\n    label: t\n    options:\n      scale: 5.0\n")
    loaded = load_config(path, ["rewards.0.weight=2"], manager=m)
    assert loaded.manager is m and loaded.config.rewards[0].weight == 2.0
    assert loaded.options["t"].scale == 5.0
    assert loaded.line_for("rewards[0].options.scale") == 5 == loaded.line_for(("rewards", 0, "options", "scale"))
    assert loaded.line_for("rewards[0].options.missing") == 4  # the nearest parent's line
    assert loaded.line_for("rewards[0].weight") == "override 'rewards.0.weight=2'"
    assert loaded.problem("rewards[0].label", "bad").format(str(path)) == f"{path}:3: rewards[0].label: bad"
    # the host gets the options config loading parsed, as they are
    monkeypatch.setattr(Tunable.Options, "model_validate", classmethod(lambda cls, o: pytest.fail("parsed again")))
    with RewardHost(loaded.config.rewards, manager=m) as host:
        assert host.rewards["t"].options is loaded.options["t"]
    monkeypatch.undo()
    path.write_text("rewards:\n  - name: tunable\n    options:\n      scale: nope\n")
    with pytest.raises(ConfigError, match=r"run.yaml:4: rewards\[0\].options.scale"):
        load_config(path, manager=m)


def test_load_config_chooses_the_model_from_the_data(tmp_path):
    from grpo_plugins.config import RunConfig, inspect_config

    class Other(RunConfig):
        extra: int = 0

    path = tmp_path / "run.yaml"
    path.write_text("extra: 3\n")
    loaded = inspect_config(path, model=lambda data: Other if "extra" in data else RunConfig,
                            manager=make_manager())
    assert not loaded.problems and isinstance(loaded.config, Other) and loaded.config.extra == 3


_key = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


@given(st.lists(st.one_of(_key, st.integers(0, 20)), min_size=1, max_size=6).filter(lambda p: isinstance(p[0], str)),
       st.dictionaries(st.lists(st.one_of(_key, st.integers(0, 20)), max_size=6).map(tuple), st.integers(1, 999)))
def test_line_for_reads_dotted_paths_as_their_tuples(path, index):
    from grpo_plugins.config import LineIndex

    lines = LineIndex(index)
    dotted = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
    assert lines.line_for(dotted) == lines.line_for(tuple(path))
    # the nearest known parent answers for a path the file does not hold
    parents = [tuple(path[:n]) for n in range(len(path), -1, -1) if tuple(path[:n]) in index]
    assert lines.line_for(tuple(path)) == (index[parents[0]] if parents else None)
