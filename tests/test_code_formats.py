"""unittest, pytest and C++ end to end: through ``grpo-plugins sandbox exec`` and through the
``code`` reward, on both backends; spec errors name the field."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from grpo_code.testing import make_backend
from grpo_code.tests_format import TestsFormatError, check_language, normalize_tests
from grpo_plugins import Sample
from grpo_plugins.cli import build_cli
from grpo_plugins.manager import PluginManager

# BigCodeBench's shape: the solution defines task_func, the tests are a TestCase module
BCB_TESTS = textwrap.dedent("""
    import unittest
    class TestCases(unittest.TestCase):
        def test_counts(self):
            self.assertEqual(task_func("a b a"), {"a": 2, "b": 1})
        def test_empty(self):
            from solution import task_func as tf
            self.assertEqual(tf(""), {})
        def test_type(self):
            with self.assertRaises(TypeError):
                task_func(None)
""")
BCB_GOOD = ("import collections\ndef task_func(text):\n    if not isinstance(text, str):\n        raise TypeError('text')\n"
            "    return dict(collections.Counter(text.split()))\n")
BCB_HALF = "def task_func(text):\n    return {'a': 2, 'b': 1}\n"
# KodCode's shape: a pytest file importing from solution
KOD_TESTS = textwrap.dedent("""
    import pytest
    from solution import merge
    def test_basic():
        assert merge([1, 3], [2]) == [1, 2, 3]
    @pytest.mark.parametrize("a, b", [([], []), ([1], [])])
    def test_edges(a, b):
        assert merge(a, b) == sorted(a + b)
""")
KOD_GOOD = "def merge(a, b):\n    return sorted(a + b)\n"
CPP_GOOD = "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"
CPP_WRONG = CPP_GOOD.replace("a + b", "a - b")
CPP_BROKEN = "int main() { return undeclared; }\n"
STDIO = {"kind": "stdio", "cases": [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "40 2\n", "stdout": "42\n"}]}


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_formats_through_sandbox_exec(tmp_path, backend):
    make_backend(backend).close()
    rows = [
        {"code": BCB_GOOD, "tests": {"kind": "unittest", "code": BCB_TESTS}},
        {"code": BCB_HALF, "tests": {"kind": "unittest", "code": BCB_TESTS}},
        {"code": KOD_GOOD, "tests": {"kind": "pytest", "code": KOD_TESTS}},
        {"code": "def merge(a, b):\n    return a + b\n", "tests": {"kind": "pytest", "code": KOD_TESTS}},
        {"code": CPP_GOOD, "language": "cpp", "tests": STDIO},
        {"code": CPP_WRONG, "language": "cpp", "tests": STDIO},
        {"code": CPP_BROKEN, "language": "cpp", "tests": STDIO},
        {"code": "#include <cstdio>\nint main() { int *p = nullptr; return *p; }", "language": "cpp"},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pm = PluginManager(allow=["code"])
    res = CliRunner().invoke(build_cli(pm), ["sandbox", "exec", "--input", str(tmp_path / "in.jsonl"), "--output",
                                             str(tmp_path / "out.jsonl"), "--backend", backend, "--parallel", "2"],
                             obj={"manager": pm})
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["status"] for o in out] == ["passed", "failed", "passed", "failed", "passed", "failed",
                                         "compile_error", "runtime_error"], [o.get("error") for o in out]
    assert [(o["passed"], o["total"]) for o in out[:6]] == [(3, 3), (1, 3), (3, 3), (2, 3), (2, 2), (0, 2)]
    assert {t["test"]: t["status"] for t in out[1]["per_test"]} == {
        "TestCases.test_counts": "passed", "TestCases.test_empty": "failed", "TestCases.test_type": "failed"}
    assert [t["test"] for t in out[2]["per_test"]] == ["test_basic", "test_edges[a0-b0]", "test_edges[a1-b1]"]
    assert "undeclared" in out[6]["error"] and out[6]["error"].startswith("compile error")


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_formats_through_the_code_reward(backend):
    make_backend(backend).close()
    pm = PluginManager(allow=["code"])
    py = pm.create_reward("code", {"backend": backend, "parallel": 2})
    cpp = pm.create_reward("code", {"backend": backend, "parallel": 2, "language": "cpp"})
    try:
        samples = [Sample(prompt="p", completion=f"```python\n{code}```", columns={"tests": tests})
                   for code, tests in [(BCB_GOOD, {"kind": "unittest", "code": BCB_TESTS}),
                                       (BCB_HALF, {"kind": "unittest", "code": BCB_TESTS}),
                                       (KOD_GOOD, {"kind": "pytest", "code": KOD_TESTS})]]
        assert [r.value for r in py.score(samples)] == [1.0, pytest.approx(1 / 3), 1.0]
        cs = [Sample(prompt="p", completion=f"Here:\n```cpp\n{code}```\n", columns={"tests": STDIO})
              for code in (CPP_GOOD, CPP_WRONG, CPP_BROKEN)]
        res = cpp.score(cs)
        assert [r.value for r in res] == [1.0, 0.0, 0.0]
        assert res[2].info["status"] == "compile_error"
    finally:
        py.close()
        cpp.close()


def test_spec_errors_name_the_field():
    with pytest.raises(TestsFormatError, match=r"tests.code: not valid Python \(line 1"):
        normalize_tests({"kind": "pytest", "code": "def test_(:"})
    with pytest.raises(TestsFormatError, match="tests.kind: expected one of assert, call, stdio, unittest, pytest"):
        normalize_tests({"kind": "doctest", "code": ""})
    with pytest.raises(TestsFormatError, match="x:3: tests.kind: C\\+\\+ programs take stdio tests, got 'assert'"):
        check_language("cpp", normalize_tests({"kind": "assert", "code": "assert f(1)"}), "x:3")
    with pytest.raises(TestsFormatError, match="language: expected one of python, cpp, got 'rust'"):
        check_language("rust", None, "x")
