"""What crosses from candidate to tester (issue 26, third hostile pass): only data and handles.
Each cheat class gets wrong programs that earned full reward before the fix (they report
protocol-hook names through a patched runner, build unittest's suite, plant a package for the
tester to import, end ``map`` with StopIteration, or collect no tests); each must score 0 on both
backends, and the legitimate shapes next to them (``pytest.raises`` on a candidate's ValueError, a
candidate iterator that ends) still pass. ``bindable``, the one rule for which reported names the
tester binds, has its own property test."""

from __future__ import annotations

import keyword
import textwrap

import pytest
from hypothesis import given, strategies as st

from grpo_sandbox import tester

# the candidate patches its own runner so the names answer carries EXTRA: the runner is
# candidate-controlled, so only the tester's filter stands between these names and the tests
REPORT_EXTRA = textwrap.dedent("""
    import sys
    _r = sys.modules.get('grpo_sandbox.runner') or sys.modules['__main__']
    _real = _r.answer
    def _answer(req, handles, mod, _real=_real):
        out = _real(req, handles, mod)
        if type(req) is dict and req.get('op') == 'names':
            out.extend([k, _r.encode(v, handles)] for k, v in EXTRA.items())
        return out
    _r.answer = _answer
""")

# a suite the candidate builds: it reports its own fake test as passed (or as an expected failure)
FORGED_SUITE = textwrap.dedent("""
    class _T:
        def id(self): return 'TestCases.test_small'
    class Suite:
        def __init__(self, how): self.how = how
        def countTestCases(self): return 1
        def run(self, result):
            t = _T()
            if self.how == 'success':
                result.addSuccess(t)
            else:
                result.addExpectedFailure(t, None)
            result.stopTest(t)
            return result
""")

UNITTEST = {"kind": "unittest", "code": textwrap.dedent("""
    import unittest
    class TestCases(unittest.TestCase):
        def test_small(self):
            self.assertEqual(task_func(2), 4)
""")}
HE_ABS = {"kind": "assert", "entry_point": "f", "code": (
    "def check(candidate):\n    assert abs(candidate(2.0) - 1.4142135) < 1e-6\n    assert abs(candidate(9.0) - 3.0) < 1e-6\n")}
PYTEST_STAR = {"kind": "pytest", "code": "from solution import *\ndef test_f():\n    assert f(1) == 2\n"}
PYTEST_FROM = {"kind": "pytest", "code": "from solution import f\ndef test_f():\n    assert f(1) == 2\n"}
# the file the candidate plants for the tester to import as ``solution.f``: it makes every outcome pass
PLANT = ("import sys\nt = sys.modules.get('grpo_sandbox.tester') or sys.modules['__main__']\n"
         "orig = t.Reporter.test\n"
         "t.Reporter.test = lambda self, name, status, error='': orig(self, name, 'passed')\n")

CHEATS = {
    # 1. names with double underscores
    "dunder_builtins_forged": (
        REPORT_EXTRA + "def fake_abs(x): return 0\nEXTRA = {'__builtins__': {'abs': fake_abs, 'len': lambda x: 1}}\n"
        "def f(x): return 0.0\n", HE_ABS),
    "dunder_all_carries_test_false": (
        REPORT_EXTRA + "EXTRA = {'__all__': ['__test__', 'f'], '__test__': False}\ndef f(x): return -1\n", PYTEST_STAR),
    "dunder_all_carries_builtins": (
        REPORT_EXTRA + "def fake_abs(x): return 0\nEXTRA = {'__all__': ['__builtins__', 'f'], "
        "'__builtins__': {'abs': fake_abs}}\ndef f(x): return -1\n",
        {"kind": "pytest", "code": "from solution import *\ndef test_f():\n    assert abs(f(1) - 2) < 1e-9\n"}),
    # 2. unittest's load_tests protocol
    "load_tests_forged_success": (FORGED_SUITE + "def load_tests(*a): return Suite('success')\n"
                                  "def task_func(x): return 0\n", UNITTEST),
    "load_tests_expected_failure": (FORGED_SUITE + "def load_tests(*a): return Suite('xfail')\n"
                                    "def task_func(x): return 0\n", UNITTEST),
    "load_tests_empty_suite": (FORGED_SUITE + "class Empty(Suite):\n    def countTestCases(self): return 0\n"
                               "    def run(self, result): return result\n"
                               "def load_tests(*a): return Empty('none')\ndef task_func(x): return 0\n", UNITTEST),
    "load_tests_through_module_getattr": (
        REPORT_EXTRA + FORGED_SUITE + "def hook(name):\n    if name == 'load_tests':\n"
        "        return lambda *a: Suite('success')\n    raise AttributeError(name)\n"
        "EXTRA = {'__getattr__': hook}\ndef task_func(x): return 0\n", UNITTEST),
    # 3. a __path__ makes solution a package whose submodule the tester imports
    "path_makes_solution_a_package": (
        REPORT_EXTRA + "import os\nos.makedirs('/tmp/pk', exist_ok=True)\nos.chmod('/tmp/pk', 0o755)\n"
        f"with open('/tmp/pk/f.py', 'w') as fh:\n    fh.write({PLANT!r})\nos.chmod('/tmp/pk/f.py', 0o644)\n"
        "EXTRA = {'__path__': ['/tmp/pk']}\n", PYTEST_FROM),
    # 4. StopIteration raised by the candidate must not end the test's map / filter / zip
    "stop_iteration_ends_map": ("def f(x): raise StopIteration\n",
                                {"kind": "assert", "code": "assert all(map(f, [1, 2, 3]))\n"
                                                           "assert list(zip(map(f, [1]), [1])) == []\n"}),
    "stop_iteration_in_unittest": ("def task_func(x): raise StopIteration('done')\n",
                                   {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
                                    "    def test_all(self):\n        self.assertTrue(all(map(task_func, [2, 3])))\n"}),
    "stop_iteration_in_pytest_filter": ("def f(x): raise StopIteration\n",
                                        {"kind": "pytest", "code": "from solution import f\ndef test_f():\n"
                                         "    assert not [x for x in filter(f, [1, 2]) if x]\n"
                                         "    assert all(map(f, [1, 2]))\n"}),
    # a candidate context manager never swallows the test's failing assertion
    "context_manager_swallows_assertion": (
        "class Quiet:\n    def __enter__(self): return self\n    def __exit__(self, *a): return True\n"
        "def f(x): return -1\n",
        {"kind": "pytest", "code": "from solution import Quiet, f\ndef test_f():\n    with Quiet():\n"
         "        assert f(1) == 2\n"}),
    # operators return what the candidate's class says, but == stays identity: no AlwaysEqual
    "operator_result_always_equal": (
        "class Eq:\n    def __eq__(self, o): return True\n    def __add__(self, o): return Eq()\n"
        "def f(x): return Eq() + Eq()\n", PYTEST_FROM),
    # 5. nothing collected is never a pass
    "no_tests_pytest": ("def f(x): return -1\n", {"kind": "pytest", "code": "from solution import f\nX = f(1)\n"}),
    "no_tests_unittest": ("def task_func(x): return 0\n",
                          {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n    pass\n"}),
    "no_tests_assert": ("def f(x): return -1\n", {"kind": "assert", "code": "y = f(1)\n"}),
}

LEGIT = {
    "pytest_raises_candidate_value_error": (
        "def f(x):\n    if x < 0:\n        raise ValueError('negative input')\n    return x\n"
        "def g(path):\n    return open(path).read()\n",
        {"kind": "pytest", "code": "import pytest\nfrom solution import f, g\n"
         "def test_neg():\n    with pytest.raises(ValueError, match='negative'):\n        f(-1)\n"
         "def test_missing():\n    with pytest.raises(FileNotFoundError):\n        g('/nope/x')\n"
         "def test_os_error():\n    with pytest.raises(OSError):\n        g('/nope/x')\n"
         "def test_pos():\n    assert f(2) == 2\n"}),
    "unittest_assert_raises_key_error": (
        "def task_func(d):\n    return d['missing']\n",
        {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
         "    def test_key(self):\n        with self.assertRaises(KeyError):\n            task_func({})\n"
         "    def test_lookup(self):\n        with self.assertRaises(LookupError):\n            task_func({})\n"}),
    "assert_except_zero_division": (
        "def f(x): return 1 / x\n",
        {"kind": "assert", "code": "try:\n    f(0)\n    ok = False\nexcept ZeroDivisionError as e:\n"
         "    ok = 'division' in str(e)\nassert ok\n"}),
    "candidate_iterator_ends": (
        "class Countdown:\n    def __init__(self, n): self.n = n\n    def __iter__(self): return self\n"
        "    def __next__(self):\n        if self.n == 0:\n            raise StopIteration\n"
        "        self.n -= 1\n        return self.n + 1\n"
        "def gen(n):\n    yield from range(n)\n",
        {"kind": "pytest", "code": "import pytest\nfrom solution import Countdown, gen\n"
         "def test_list():\n    assert list(Countdown(3)) == [3, 2, 1]\n"
         "def test_next_exhausted():\n    it = gen(1)\n    assert next(it) == 0\n"
         "    with pytest.raises(StopIteration):\n        next(it)\n"}),
    "pytest_star_import_public_names": (
        "def f(x): return 2 * x\ndef _helper(): return 1\n",
        {"kind": "pytest", "code": "from solution import *\ndef test_f():\n    assert f(1) == 2\n"
         "def test_private_not_star_imported():\n    assert '_helper' not in globals()\n"}),
    # class design: repr / str run where the object lives; isinstance / issubclass against the
    # solution's classes (a subclass, a tuple of classes, tester-side values)
    "class_repr_and_isinstance": (
        "class Point:\n    def __init__(self, x, y): self.x, self.y = x, y\n"
        "    def __repr__(self): return f'Point({self.x}, {self.y})'\n"
        "    def __str__(self): return f'({self.x}, {self.y})'\n"
        "class Point3(Point):\n    pass\ndef make(): return Point3(1, 2)\n",
        {"kind": "pytest", "code": textwrap.dedent("""
            from solution import Point, Point3, make
            def test_repr():
                assert repr(Point(1, 2)) == "Point(1, 2)" and str(Point(1, 2)) == "(1, 2)"
                assert f"{Point(1, 2)!r}" == "Point(1, 2)"
            def test_isinstance():
                p = make()
                assert isinstance(p, Point) and isinstance(p, Point3) and isinstance(p, (int, Point))
                assert not isinstance(Point(0, 0), Point3) and not isinstance(3, Point)
                assert issubclass(Point3, Point) and not issubclass(Point, Point3)
        """)}),
    "unittest_is_instance_of_solution_class": (
        "class Stack:\n    def __init__(self): self.items = []\n"
        "    def __repr__(self): return f'Stack({self.items})'\ndef task_func(): return Stack()\n",
        {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
         "    def test_type(self):\n        self.assertIsInstance(task_func(), Stack)\n"
         "        self.assertEqual(repr(task_func()), 'Stack([])')\n"}),
    # operators, comparisons (sorted), unary ops and the context-manager protocol run candidate-side
    "class_operators_and_context_manager": (
        "class V:\n    def __init__(self, x): self.x = x\n    def __add__(self, o): return V(self.x + o.x)\n"
        "    def __mul__(self, k): return V(self.x * k)\n    __rmul__ = __mul__\n"
        "    def __lt__(self, o): return self.x < o.x\n    def __neg__(self): return V(-self.x)\n"
        "    def __abs__(self): return abs(self.x)\n"
        "class Res:\n    log = []\n    def __enter__(self): Res.log.append('in'); return 7\n"
        "    def __exit__(self, *a): Res.log.append('out')\ndef log(): return list(Res.log)\n",
        {"kind": "pytest", "code": textwrap.dedent("""
            from solution import V, Res, log
            def test_ops():
                assert (V(1) + V(2)).x == 3 and (V(2) * 3).x == 6 and (3 * V(2)).x == 6
                assert V(1) < V(2) and not V(2) < V(1) and (-V(4)).x == -4 and abs(V(-5)) == 5
                assert [v.x for v in sorted([V(3), V(1), V(2)])] == [1, 2, 3]
            def test_with():
                with Res() as r:
                    assert r == 7
                assert log() == ['in', 'out']
        """)}),
    "pytest_explicit_import_of_hook_named_function": (
        "def setup(x): return x + 1\n",
        {"kind": "pytest", "code": "from solution import setup as s\ndef test_s():\n    assert s(1) == 2\n"}),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_scores_zero(backend, name):
    code, tests = CHEATS[name]
    v = backend.run({"code": code, "tests": tests, "limits": {"wall_s": 5}})
    assert v["status"] != "passed" and v["passed"] == 0, (name, v["status"], v["per_test"], v.get("error"))


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legit_program_scores_one(backend, name):
    code, tests = LEGIT[name]
    v = backend.run({"code": code, "tests": tests})
    assert v["status"] == "passed" and v["passed"] == v["total"] > 0, (name, v["per_test"], v.get("error"),
                                                                        v["stderr"][-500:])


def test_nothing_collected_is_no_tests(backend):
    for code, tests in (CHEATS["no_tests_pytest"], CHEATS["no_tests_unittest"], CHEATS["no_tests_assert"]):
        v = backend.run({"code": code, "tests": tests})
        assert (v["status"], v["passed"], v["total"]) == ("no_tests", 0, 0), (tests["kind"], v)


def test_candidate_exception_keeps_its_name_as_the_dedicated_type(backend):
    code = "def f(x):\n    raise ValueError('bad ' + str(x))\ndef g():\n    raise StopIteration\n"
    tests = {"kind": "pytest", "code": textwrap.dedent("""
        import pytest
        from solution import f, g
        def dedicated(e):
            return 'CandidateError' in [c.__name__ for c in type(e).__mro__]
        def test_value_error():
            with pytest.raises(ValueError) as info:
                f(1)
            assert dedicated(info.value) and info.value.type_name == 'ValueError'
            assert type(info.value).__name__ == 'ValueError' and str(info.value) == 'bad 1'
        def test_stop_iteration_is_wrapped():
            with pytest.raises(Exception) as info:
                g()
            assert dedicated(info.value) and not isinstance(info.value, StopIteration)
            assert info.value.type_name == 'StopIteration'
    """)}
    v = backend.run({"code": code, "tests": tests})
    assert v["status"] == "passed" and v["passed"] == 2, (v["per_test"], v.get("error"))


# the one rule for bound names: a public identifier (no leading underscore, so no dunder and no
# module hook such as __getattr__ / __path__ / __all__ / __test__ / __builtins__), not a keyword,
# not a builtin, not a unittest / pytest protocol hook
HOOKS = {"load_tests", "setUpModule", "tearDownModule", "setup_module", "teardown_module", "setup_function",
         "teardown_function", "pytestmark", "pytest_plugins"}


def _expected(name) -> bool:
    import builtins

    return (type(name) is str and name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)
            and name not in vars(builtins) and name not in HOOKS and not name.startswith("pytest_"))


NAMES = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"\A_{0,2}[A-Za-z_][A-Za-z0-9_]{0,10}_{0,2}\Z"),
    st.sampled_from(sorted(HOOKS | {"__getattr__", "__path__", "__all__", "__test__", "__builtins__", "__dir__",
                                    "__spec__", "__loader__", "__name__", "len", "abs", "True", "None", "lambda",
                                    "pytest_generate_tests", "pytest_collection_modifyitems", "f", "task_func",
                                    "Solution", "setup", "ﬁ", "é"})),
    st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2),
)


@given(NAMES)
def test_bindable_is_the_rule(name):
    assert tester.bindable(name) is _expected(name)


@pytest.mark.parametrize("name", ["__getattr__", "__path__", "__all__", "__test__", "load_tests", "__builtins__",
                                  "_private", "pytest_generate_tests", "len", "class"])
def test_protocol_names_are_never_bound(name):
    assert not tester.bindable(name)


@pytest.mark.parametrize("name", ["f", "task_func", "Solution", "has_close_elements", "setup", "x1", "élan"])
def test_public_names_are_bound(name):
    assert tester.bindable(name)
