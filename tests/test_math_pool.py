"""Hard per-check bound: pathological answers come back as timeout or unparseable, from any thread."""

from __future__ import annotations

import os
import threading
import time

import pytest

from grpo_math.pool import CheckPool
from grpo_math.reward import MathReward
from grpo_plugins import Sample

BOUND = 1.0

PATHOLOGICAL = {
    "power tower": "\\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    "10^10^10": "\\boxed{10^{10^{10}}}",
    "huge factorial": "\\boxed{(10^{10})!}",
    "nested logs": "\\boxed{" + "\\log(" * 30 + "x" + ")" * 30 + "}",
    "deep nesting": "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "garbage": "\\boxed{" + "}{)(x^" * 20000 + "}",
    "100k characters": "<answer>" + "%$#@!^&" * 15000 + "</answer>",
    "unbalanced braces": "\\boxed{" + "{" * 5000 + "1",
    "unclosed answer tags": "<answer>1" * 20000,
}


@pytest.fixture(scope="module")
def reward():
    r = MathReward({"timeout": BOUND, "workers": 2})
    yield r
    r.close()


def _score(reward, completions, gold="5"):
    return reward.score([Sample("q", c, columns={"answer": gold}) for c in completions])


def test_pathological_inputs_end_as_timeout_or_unparseable(reward):
    results = _score(reward, list(PATHOLOGICAL.values()))
    statuses = {name: r.info["status"] for name, r in zip(PATHOLOGICAL, results)}
    # the tower, the huge integers and the factorial only end because the worker is killed
    for name in ("power tower", "10^10^10", "huge factorial"):
        assert statuses[name] == "timeout", statuses
    for name in ("deep nesting", "garbage", "100k characters"):
        assert statuses[name] == "unparseable", statuses
    # an unclosed box marks nothing; the default extraction reads its last number, 1
    assert statuses["unbalanced braces"] == "incorrect"
    assert statuses["unclosed answer tags"] == "incorrect"  # the last tag holds "1"
    assert statuses["nested logs"] in ("timeout", "incorrect")
    assert all(r.value == 0.0 for r in results)
    timed_out = [r for r in results if r.info["status"] == "timeout"]
    assert all(any(w in r.info["detail"] for w in ("killed", "memory", "died")) for r in timed_out)


def test_killed_workers_are_replaced_and_later_checks_still_work(reward):
    before = reward.pool.replaced
    results = _score(reward, ["\\boxed{10^{10^{10}}}", "\\boxed{x^2+2x+1}", "\\boxed{(x+1)^2}"], gold="(x+1)^2")
    assert [r.info["status"] for r in results] == ["timeout", "correct", "correct"]
    assert reward.pool.replaced == before + 1
    assert _score(reward, ["\\boxed{\\frac{\\sqrt{2}}{2}}"], gold="\\frac{1}{\\sqrt{2}}")[0].info["status"] == "correct"


def test_bound_holds_off_the_main_thread(reward):
    """No SIGALRM: the same checks from a worker thread give the same statuses."""
    completions = ["\\boxed{2^{2^{2^{2^{2^{2}}}}}}", "\\boxed{\\sin^2 x+\\cos^2 x}", "\\boxed{4}"]
    out = {}

    def run():
        out["results"] = _score(reward, completions, gold="1")

    t = threading.Thread(target=run)
    t.start()
    t.join(120)  # a liveness guard, not a timing: a hang would leave the thread alive
    assert not t.is_alive()
    assert [r.info["status"] for r in out["results"]] == ["timeout", "correct", "incorrect"]


def test_concurrent_callers_share_the_pool_safely(reward):
    results = {}

    def run(k):
        results[k] = _score(reward, [f"\\boxed{{\\frac{{{k}x}}{{2}}}}"], gold=f"{k / 2}x")[0].info["status"]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {1: "correct", 2: "correct", 3: "correct", 4: "correct"}


def test_memory_cap_stops_a_runaway_check():
    pool = CheckPool(1, timeout=30.0, memory_mb=300)
    try:
        # 2^(2^33) needs a gigabyte-sized integer: over the cap long before the 30 s bound
        (status, detail), = pool.run([("5", "2^{2^{33}}", (1e-6, "either", True))])
        # Python raises MemoryError; GMP (when sympy uses gmpy2) aborts the worker instead
        assert (status, "memory" in detail) == ("memory", True) or detail == "worker process died"
        (status, _), = pool.run([("2", "\\sqrt{4}", (1e-6, "either", True))])
        assert status == "correct"
    finally:
        pool.close()


def test_close_kills_the_workers_and_refuses_more_work():
    r = MathReward({"timeout": BOUND, "workers": 1})
    assert _score(r, ["\\boxed{2x}"], gold="x+x")[0].info["status"] == "correct"
    pids = [w.pid for w in r.pool._all] + [r.pool._zygote.proc.pid]
    pool = r.pool
    r.close()
    deadline = time.monotonic() + 10  # killed grandchildren are reaped by init a moment later
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids and all(not _alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.run([("1", "1", (1e-6, "either", True))])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError, match="pool size"):
        CheckPool(0, 1.0, 512)
    with pytest.raises(ValueError, match="timeout"):
        CheckPool(1, 0, 512)
