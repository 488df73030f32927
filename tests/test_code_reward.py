"""The ``code`` reward end to end through the plugin manager, on both backends."""

from __future__ import annotations

import pytest

import grpo_plugins
from grpo_plugins import Sample
from grpo_plugins.manager import PluginManager
from grpo_code.backends import create_backend, sandbox_backends
from grpo_plugins import OptionsError, as_trl_reward_func, hookimpl
from grpo_code.testing import make_backend
from grpo_code.tests_format import TestsFormatError

MBPP = {"kind": "assert", "entry_point": "double", "code": "assert double(1) == 2\nassert double(4) == 8\n"
        "assert double(-3) == -6\nassert double(0) == 0\n"}


def completion(body: str) -> str:
    return f"Let me think.\n```python\nprint('draft')\n```\nFinal:\n```python\n{body}\n```\n"


@pytest.fixture(scope="module", params=["docker", "local"])
def reward(request):
    make_backend(request.param).close()  # starts dockerd / builds the image, or skips with the reason
    r = PluginManager(allow=["code"]).create_reward("code", {"backend": request.param, "parallel": 2})
    yield r
    r.close()


def test_reward_creates_backends_from_the_manager_that_made_it():
    class Fake:
        def __init__(self, **kw):
            self.kw = kw

    class P:
        @hookimpl
        def register_sandbox_backends(self, register):
            register("fake", Fake)

    pm = PluginManager(allow=["code"])
    pm.register(P(), name="third_party")
    assert sandbox_backends(pm)["fake"] == (Fake, "third_party")
    reward = pm.create_reward("code", {"backend": "fake"})
    assert reward.manager is pm and isinstance(reward.backend, Fake)
    assert reward.backend.kw == {"limits": {}, "parallel": None}
    # another manager never saw the third party's backend
    with pytest.raises(ValueError, match="unknown sandbox backend 'fake'"):
        create_backend("fake", PluginManager(allow=["code"]))


def test_no_manager_is_an_error_never_the_process_wide_one(monkeypatch):
    import grpo_plugins.manager

    def process_wide():
        raise AssertionError("the process-wide manager was consulted")

    monkeypatch.setattr(grpo_plugins.manager, "get_plugin_manager", process_wide)
    monkeypatch.setattr(grpo_plugins, "get_plugin_manager", process_wide)
    with pytest.raises(TypeError, match=r"create_backend\('docker'\): no plugin manager given"):
        create_backend("docker", None)
    from grpo_code.backends import SandboxUnavailable
    from grpo_code.reward import CodeReward

    with pytest.raises(SandboxUnavailable, match=r"no plugin manager .* PluginManager.create_reward\('code'"):
        CodeReward({"backend": "local"}).backend


def test_registered_with_backends():
    pm = PluginManager(allow=["code"])
    assert pm.reward_entry("code").plugin == "code"
    assert {"docker", "local"} <= set(sandbox_backends(pm))
    assert {row["name"]: row for row in pm.plugins_info()}["code"]["sandbox_backends"] == ["docker", "local"]
    with pytest.raises(OptionsError, match="valid options"):
        pm.create_reward("code", {"backnd": "docker"})
    with pytest.raises(OptionsError, match="code.limits: .*unknown limit 'memory'.*memory_mb"):
        pm.create_reward("code", {"limits": {"memory": 5}})


def test_fraction_and_info(reward):
    samples = [
        Sample("p", completion("def double(x):\n    return 2 * x"), columns={"tests": MBPP}),
        Sample("p", completion("def double(x):\n    return 2 * x if x > 0 else 0"), columns={"tests": MBPP}),
        Sample("p", completion("def double(x):\n    return x + x + (x == 0)"), columns={"tests": MBPP}),
        Sample("p", "no code at all", columns={}),
    ]
    out = reward.score(samples)
    assert [r.value for r in out[:3]] == [1.0, 0.75, 0.75]
    assert out[0].info["status"] == "passed" and out[1].info["status"] == "failed"
    assert [t["passed"] for t in out[1].info["per_test"]] == [True, True, False, True]
    assert out[3].value is None and out[3].info["status"] == "untested"


def test_gaming_completions_score_zero(reward):
    games = [
        "class A:\n    def __eq__(self, o): return True\ndef double(x): return A()",
        "import sys\nprint('4/4 passed')\nsys.exit(0)",
        "import os\ndef double(x): os._exit(0)",
        "def double(x):\n    import gc\n    return [o for o in gc.get_objects() if type(o) is int and o == 2 * x][0] "
        "if False else None",
    ]
    out = reward.score([Sample("p", completion(g), columns={"tests": MBPP}) for g in games])
    assert [r.value for r in out] == [0.0, 0.0, 0.0, 0.0]


def test_binary_and_default_tests():
    make_backend("local").close()
    stdio = {"kind": "stdio", "cases": [{"stdin": "2\n", "stdout": "4"}, {"stdin": "5\n", "stdout": "10"}]}
    r = PluginManager(allow=["code"]).create_reward("code", {"backend": "local", "binary": True, "tests": stdio})
    try:
        out = r.score([Sample("p", "print(int(input()) * 2)"), Sample("p", "print(4)")])
        assert [x.value for x in out] == [1.0, 0.0]
        trl = as_trl_reward_func(r)
        assert trl(["p"], ["print(int(input()) * 2)"]) == [1.0]
    finally:
        r.close()


def test_bad_tests_name_sample_and_field():
    r = PluginManager(allow=["code"]).create_reward("code", {"backend": "local"})
    with pytest.raises(TestsFormatError, match=r"sample 1: tests\.cases\[0\]\.stdout"):
        r.score([Sample("p", "x", columns={"tests": None}),
                 Sample("p", "x", columns={"tests": {"kind": "stdio", "cases": [{"stdout": 1}]}})])
    with pytest.raises(TestsFormatError, match="code reward options: tests.kind"):
        PluginManager(allow=["code"]).create_reward("code", {"tests": {"kind": "nope"}})


HUMANEVAL_2 = {"kind": "assert", "entry_point": "truncate_number", "code": (
    "\n\nMETADATA = {'author': 'jt', 'dataset': 'test'}\n\n\ndef check(candidate):\n"
    "    assert candidate(3.5) == 0.5\n    assert abs(candidate(1.33) - 0.33) < 1e-6\n"
    "    assert abs(candidate(123.456) - 0.456) < 1e-6\n")}


def test_humaneval_check_function(reward):
    good = completion("def truncate_number(number: float) -> float:\n    return number % 1.0")
    off = completion("def truncate_number(number: float) -> float:\n    return round(number % 1.0, 1)")
    out = reward.score([Sample("p", good, columns={"tests": HUMANEVAL_2}),
                        Sample("p", off, columns={"tests": HUMANEVAL_2})])
    assert out[0].value == 1.0 and out[0].info["total"] == 3
    assert out[1].value == pytest.approx(1 / 3)  # 3.5 -> 0.5 holds; 1.33 -> 0.3 and 123.456 -> 0.5 do not
