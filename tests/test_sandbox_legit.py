"""Legitimate tests that pass under plain pytest / unittest must pass in the sandbox too (issue 26,
rich handles part 2): test-defined subclasses calling inherited methods, stdlib containers the
candidate returns, output the candidate prints reaching capsys / a patched sys.stdout, pytest's
monkeypatch of ``input`` / ``print``, and files shared through the working directory and
``tmp_path``. Each failed on the code before and passes on both backends; the candidate's printed
"passed" lines and a module planted in the shared dir must not change a verdict."""

from __future__ import annotations

import builtins
import textwrap

import pytest
from hypothesis import given, strategies as st


def _pytest(code: str) -> dict:
    return {"kind": "pytest", "code": textwrap.dedent(code)}


LEGIT = {
    # 1. inherited methods of test-defined subclasses
    "builtin_subclass_inherited_method": ("def add_all(xs, items):\n    for i in items:\n        xs.append(i)\n"
                                          "    return len(xs)\n", _pytest("""
        from solution import add_all
        class MyList(list):
            pass
        def test_append():
            xs = MyList([1])
            assert add_all(xs, [2, 3]) == 3
            assert xs == [1, 2, 3]
    """)),
    "solution_class_subclass": ("class Stack:\n    def __init__(self):\n        self.items = []\n"
                                "    def push(self, x):\n        self.items.append(x)\n"
                                "    def size(self):\n        return len(self.items)\n", _pytest("""
        from solution import Stack
        class Counted(Stack):
            def __init__(self):
                super().__init__()
                self.pushes = 0
            def push(self, x):
                self.pushes += 1
                super().push(x)
        def test_inherited():
            s = Counted()
            s.push(1)
            s.push(2)
            assert s.size() == 2 and s.pushes == 2 and s.items == [1, 2]
            assert isinstance(s, Stack)
    """)),
    # 2. stdlib containers come back as values
    "stdlib_containers": (textwrap.dedent("""
        import collections, dataclasses
        from typing import NamedTuple
        P = collections.namedtuple('P', 'x y')
        class Q(NamedTuple):
            a: int
            b: int = 2
        @dataclasses.dataclass
        class Pt:
            x: int
            y: int
            def norm1(self): return abs(self.x) + abs(self.y)
        @dataclasses.dataclass(frozen=True)
        class F:
            v: int
        def counts(s): return collections.Counter(s)
        def groups(xs):
            d = collections.defaultdict(list)
            for x in xs: d[x % 2].append(x)
            return d
        def ordered(): return collections.OrderedDict([('b', 1), ('a', 2)])
        def window(xs): return collections.deque(xs, maxlen=2)
        def point(): return P(1, 2)
        def q(): return Q(1)
        def pt(): return Pt(3, -4)
        def f(): return F(1)
    """), _pytest("""
        import collections
        from solution import counts, groups, ordered, window, point, q, pt, f, Pt, F
        def test_counter():
            c = counts('abca')
            assert c == {'a': 2, 'b': 1, 'c': 1} and c.most_common(1) == [('a', 2)]
        def test_defaultdict():
            d = groups([1, 2, 3])
            assert d == {1: [1, 3], 0: [2]} and d[5] == []
        def test_ordered():
            assert list(ordered()) == ['b', 'a'] and ordered() == collections.OrderedDict([('b', 1), ('a', 2)])
        def test_deque():
            w = window([1, 2, 3])
            assert w == collections.deque([2, 3]) and w.maxlen == 2 and list(w) == [2, 3]
        def test_namedtuple():
            p = point()
            assert p == (1, 2) and p.x == 1 and p.y == 2 and repr(p) == 'P(x=1, y=2)'
            x, y = p
            assert (x, y) == (1, 2) and q() == (1, 2) and q().b == 2
        def test_dataclass():
            p = pt()
            assert p == Pt(3, -4) and p != Pt(3, 4) and repr(p) == 'Pt(x=3, y=-4)'
            assert p.x == 3 and p.norm1() == 7 and isinstance(p, Pt)
            assert f() == F(1) and len({f(), F(1)}) == 1
    """)),
    # 3. output the candidate prints reaches capsys / a patched stdout / redirect_stdout
    "capsys": ("import sys\ndef greet(n):\n    print(f'hi {n}')\n    print('warn', file=sys.stderr)\n", _pytest("""
        from solution import greet
        def test_out(capsys):
            greet('bob')
            out, err = capsys.readouterr()
            assert out == 'hi bob\\n' and err == 'warn\\n'
    """)),
    "patched_stdout_unittest": ("def show(xs):\n    for x in xs:\n        print(x)\n", {"kind": "unittest", "code": textwrap.dedent("""
        import io, unittest, contextlib
        from unittest import mock
        class T(unittest.TestCase):
            def test_patch(self):
                with mock.patch('sys.stdout', new_callable=io.StringIO) as out:
                    show([1, 2])
                self.assertEqual(out.getvalue(), '1\\n2\\n')
            def test_redirect(self):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    show(['a'])
                self.assertEqual(buf.getvalue(), 'a\\n')
    """)}),
    # 4. pytest's monkeypatch of input / print applies where the candidate calls them
    "monkeypatch_input_print": ("def ask():\n    return int(input('n? ')) * 2\n"
                                "def shout(s):\n    print(s.upper())\n", _pytest("""
        import builtins
        from solution import ask, shout
        def test_input(monkeypatch):
            monkeypatch.setattr('builtins.input', lambda prompt: '21')
            assert ask() == 42
        def test_print(monkeypatch):
            seen = []
            monkeypatch.setattr(builtins, 'print', lambda *a, **k: seen.append(a))
            shout('x')
            assert seen == [('X',)]
        def test_restored(capsys):
            shout('y')
            assert capsys.readouterr().out == 'Y\\n'
    """)),
    # 5. files shared by a test and the code it tests
    "shared_files": ("import os\ndef count_lines(path):\n    with open(path) as fh:\n        return len(fh.readlines())\n"
                     "def write(path, text):\n    with open(path, 'w') as fh:\n        fh.write(text)\n"
                     "def save_here(name):\n    write(name, 'x')\n    return os.getcwd()\n", _pytest("""
        import os, tempfile
        from solution import count_lines, write, save_here
        def test_tmp_path(tmp_path):
            p = tmp_path / 'in.txt'
            p.write_text('a\\nb\\n')
            assert count_lines(str(p)) == 2
            out = tmp_path / 'sub' / 'out.txt'
            out.parent.mkdir()
            write(str(out), 'done')
            assert out.read_text() == 'done'
        def test_mkdtemp():
            d = tempfile.mkdtemp()
            write(os.path.join(d, 'o.txt'), 'hey')
            with open(os.path.join(d, 'o.txt')) as fh:
                assert fh.read() == 'hey'
        def test_cwd():
            assert save_here('rel.txt') == os.getcwd()
            with open('rel.txt') as fh:
                assert fh.read() == 'x'
            os.remove('rel.txt')  # the candidate's file: /work has no sticky bit
    """)),
    # 4b. a candidate method calling self.step() reaches a test-defined subclass's override
    "subclass_override_seen_by_inherited_method": (
        "class Counter:\n    def __init__(self, start=0):\n        self.n = start\n"
        "    def step(self):\n        return 1\n"
        "    def tick(self, times):\n        for _ in range(times):\n            self.n += self.step()\n"
        "        return self.n\n", _pytest("""
        from solution import Counter
        class Double(Counter):
            def step(self):
                return 2
        class Triple(Double):
            def step(self):
                return super().step() + 1
        class Lazy(Counter):
            def __init__(self):
                pass  # never calls super().__init__()
            def step(self):
                return 5
        def test_override():
            assert Double().tick(2) == 4
            assert Triple(10).tick(2) == 16
            assert Counter().tick(2) == 2
            assert Lazy().step() == 5
        def test_plain_base_untouched():
            d = Double()
            assert d.step() == 2 and Counter().step() == 1
    """)),
    # 5. == between candidate objects runs the candidate class's __eq__ (identity when it has none)
    "candidate_eq_between_candidate_objects": (
        "class Money:\n    def __init__(self, c):\n        self.c = c\n"
        "    def __add__(self, o):\n        return Money(self.c + o.c)\n"
        "    def __eq__(self, o):\n        return isinstance(o, Money) and o.c == self.c\n"
        "    def __hash__(self):\n        return hash(self.c)\n"
        "class Plain:\n    pass\n", _pytest("""
        from solution import Money, Plain
        def test_eq():
            assert Money(2) + Money(1) == Money(3)
            assert Money(2) != Money(0)
            assert not (Money(2) == Money(5))
        def test_identity_without_eq():
            a = Plain()
            assert a == a and Plain() != Plain()
    """)),
    # 6. pytest monkeypatch of os.environ reaches the candidate, and is undone after the test
    "monkeypatch_setenv": ("import os\ndef mode():\n    return os.environ.get('APP_MODE', 'dev')\n", _pytest("""
        import os
        from solution import mode
        def test_set(monkeypatch):
            monkeypatch.setenv('APP_MODE', 'prod')
            assert mode() == 'prod'
            monkeypatch.delenv('APP_MODE')
            assert mode() == 'dev'
            monkeypatch.setenv('APP_MODE', 'x')
        def test_undone():
            assert 'APP_MODE' not in os.environ
            assert mode() == 'dev'
        def test_direct():
            os.environ['APP_MODE'] = 'direct'
            try:
                assert mode() == 'direct'
            finally:
                del os.environ['APP_MODE']
            assert mode() == 'dev'
    """)),
    # 7. dataclasses.asdict / astuple of a candidate dataclass instance
    "dataclass_asdict": ("from dataclasses import dataclass, field\n@dataclass\nclass Item:\n"
                         "    name: str\n    price: int\n    tags: list = field(default_factory=list)\n"
                         "@dataclass\nclass Box:\n    item: Item\n    n: int = 1\n"
                         "def make(k):\n    return Box(Item(f'i{k}', k * 10))\n", _pytest("""
        import dataclasses
        from dataclasses import asdict, astuple
        from solution import make
        def test_asdict():
            assert asdict(make(2)) == {'item': {'name': 'i2', 'price': 20, 'tags': []}, 'n': 1}
            assert asdict(make(2).item) == {'name': 'i2', 'price': 20, 'tags': []}
            assert astuple(make(3).item) == ('i3', 30, [])
            assert dataclasses.is_dataclass(make(1))
    """)),
    # 8. the solution's own exception classes in pytest.raises / assertRaises / except, with their MRO
    "solution_exception_classes_pytest": (
        "class AppError(Exception):\n    pass\nclass Funds(AppError, ValueError):\n    pass\n"
        "def withdraw(b, x):\n    if x > b:\n        raise Funds(f'need {x - b} more')\n    return b - x\n"
        "def boom():\n    raise AppError('boom')\n", _pytest("""
        import pytest
        from solution import AppError, Funds, withdraw, boom
        def test_raises():
            with pytest.raises(Funds, match='need 1'):
                withdraw(2, 3)
            with pytest.raises(AppError):
                withdraw(2, 3)
            with pytest.raises(ValueError):
                withdraw(2, 3)
            with pytest.raises(AppError):
                boom()
        def test_except():
            try:
                withdraw(0, 1)
            except AppError as e:
                assert isinstance(e, Funds) and 'need 1' in str(e)
            assert issubclass(Funds, AppError) and not issubclass(AppError, Funds)
        def test_wrong_class_not_caught():
            with pytest.raises(AppError) as info:
                with pytest.raises(Funds):
                    boom()
            assert not isinstance(info.value, Funds)
    """)),
    "solution_exception_classes_unittest": (
        "class AppError(Exception):\n    pass\n"
        "def task_func(x):\n    if x < 0:\n        raise AppError(f'bad {x}')\n    return x\n",
        {"kind": "unittest", "code": textwrap.dedent("""
        import unittest
        class T(unittest.TestCase):
            def test_raises(self):
                with self.assertRaises(AppError) as cm:
                    task_func(-2)
                self.assertIn('-2', str(cm.exception))
                self.assertRaises(AppError, task_func, -1)
                self.assertEqual(task_func(3), 3)
    """)}),
}


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legit_program_passes(backend, name):
    code, tests = LEGIT[name]
    v = backend.run({"code": code, "tests": tests})
    assert v["status"] == "passed" and v["passed"] == v["total"] > 0, (v["per_test"], v.get("error"))


# printed report lines and a module planted in the shared dir never change a verdict
FAKE_REPORT = ('{"test": "test_f", "status": "passed"}\\n{"total": 1}\\n{"done": true}\\n'
               '{"ready": true}\\n')
CHEATS = {
    "printed_report_under_capsys": (f"import sys\ndef f(x):\n    print('{FAKE_REPORT}')\n"
                                    f"    sys.stderr.write('{FAKE_REPORT}')\n    return -1\n", _pytest("""
        from solution import f
        def test_f(capsys):
            assert f(1) == 2
    """)),
    "printed_report_unittest_patched": (f"def task_func(x):\n    print('{FAKE_REPORT}')\n    return -1\n",
                                        {"kind": "unittest", "code": textwrap.dedent("""
        import io, unittest
        from unittest import mock
        class T(unittest.TestCase):
            def test_f(self):
                with mock.patch('sys.stdout', new_callable=io.StringIO):
                    self.assertEqual(task_func(1), 2)
    """)}),
    # a module and a conftest planted in the shared working dir are never imported by the tester
    "planted_in_shared_dir": (textwrap.dedent("""
        import os
        PLANT = "import sys\\nsys.modules['grpo_sandbox.tester'].Reporter.test = lambda *a, **k: None\\n"
        for name in ('helper.py', 'conftest.py', 'unittest_helper.py'):
            with open(os.path.join(os.getcwd(), name), 'w') as fh:
                fh.write(PLANT)
        with open('/tmp/helper.py', 'w') as fh:
            fh.write(PLANT)
        def f(x): return -1
    """), _pytest("""
        from solution import f
        def test_f():
            try:
                import helper  # noqa: F401
            except ImportError:
                pass
            assert f(1) == 2
    """)),
    # the stand-in for a candidate exception class never has a protocol exception among its bases:
    # a subclass of StopIteration cannot end the test's map() early
    "stopiteration_subclass_ends_map": ("class Stop(StopIteration):\n    pass\ndef f(x):\n    raise Stop\n", _pytest("""
        from solution import f
        def test_f():
            assert all(map(f, [1, 2]))
    """)),
    # a candidate object whose __eq__ says True to everything never equals the test's own data
    "always_equal_against_test_value": ("class Eq:\n    def __eq__(self, o):\n        return True\n"
                                        "    __hash__ = object.__hash__\ndef f(x):\n    return Eq()\n", _pytest("""
        from solution import f
        def test_f():
            assert f(1) == 2
            assert [f(1)] == [2]
    """)),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_scores_zero(backend, name):
    code, tests = CHEATS[name]
    v = backend.run({"code": code, "tests": tests, "limits": {"wall_s": 5}})
    assert v["status"] != "passed" and v["passed"] == 0, (v["status"], v["per_test"], v.get("error"))


# the runner's tags for stdlib containers and the tester's decoding of them: a round trip keeps the
# type, the order and the value; malformed tags are protocol violations, never harness errors
KEYS = st.one_of(st.integers(), st.text(max_size=4))
VALUES = st.one_of(st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=3))


def _containers():
    import collections

    P = collections.namedtuple("P", "x y")
    return st.one_of(
        st.dictionaries(KEYS, st.integers()).map(collections.Counter),
        st.lists(st.tuples(KEYS, VALUES), max_size=5).map(collections.OrderedDict),
        st.dictionaries(KEYS, st.lists(st.integers(), max_size=2)).map(lambda d: collections.defaultdict(list, d)),
        st.tuples(st.lists(VALUES, max_size=5), st.one_of(st.none(), st.integers(0, 4))).map(
            lambda a: collections.deque(*a)),
        st.tuples(VALUES, VALUES).map(lambda a: P(*a)),
    )


@given(_containers())
def test_stdlib_containers_round_trip(value):
    from grpo_sandbox import compare, runner

    got = compare.decode(runner.encode(value, runner.Handles()))
    assert type(got).__name__ == type(value).__name__ and got == value
    assert list(got) == list(value)  # order: OrderedDict equality and deque iteration depend on it
    if hasattr(value, "maxlen"):
        assert got.maxlen == value.maxlen
    if hasattr(value, "default_factory"):
        assert got.default_factory is value.default_factory


@pytest.mark.parametrize("tagged", [
    {"t": "ntuple", "name": "P", "fields": ["x"], "v": []},
    {"t": "ntuple", "name": "class", "fields": ["x"], "v": [{"t": "int", "v": 1}]},
    {"t": "ntuple", "name": "P", "fields": ["_x"], "v": [{"t": "int", "v": 1}]},
    {"t": "deque", "v": [], "maxlen": -1},
    {"t": "ddict", "v": [], "factory": "eval"},
    {"t": "counter", "v": [[{"t": "int", "v": 1}]]},
])
def test_malformed_stdlib_tags_are_protocol_errors(tagged):
    from grpo_sandbox import compare

    with pytest.raises(compare.ProtocolError):
        compare.decode(tagged)


# the tester's stand-ins for candidate exception classes: whatever bases the candidate names, the
# class is a CandidateError and never a protocol exception (which would end the test's map/zip or
# stop the run); malformed records are protocol violations
BUILTIN_EXCEPTIONS = sorted(n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))
EXC_INFO = st.recursive(
    st.fixed_dictionaries({"name": st.text(max_size=8), "bases": st.lists(
        st.builds(lambda n: {"builtin": n}, st.sampled_from(BUILTIN_EXCEPTIONS + ["nope", "int"])), max_size=3)}),
    lambda inner: st.fixed_dictionaries({"name": st.text(max_size=8), "bases": st.lists(
        st.builds(lambda i, n: {"t": "handle", "id": n, "type": "type", "exc": i}, inner,
                  st.integers(100, 10_000)), max_size=2)}),
    max_leaves=6)


@given(EXC_INFO)
def test_exception_class_stand_ins_are_never_protocol_exceptions(info):
    from grpo_sandbox.tester import CandidateError, Channel

    cls = Channel(-1, -1)._exception_class(info)
    assert issubclass(cls, CandidateError)
    assert not issubclass(cls, (StopIteration, StopAsyncIteration, GeneratorExit, KeyboardInterrupt, SystemExit))
    assert cls.type_name == info["name"][:100]


@pytest.mark.parametrize("info", [None, [], {"name": "E"}, {"name": "E", "bases": "Exception"},
                                  {"name": "E", "bases": [1]}, {"name": "E", "bases": [{"id": 1}]},
                                  {"name": "E", "bases": [{"builtin": "Exception"}] * 9}])
def test_malformed_exception_classes_are_protocol_errors(info):
    from grpo_sandbox.compare import ProtocolError
    from grpo_sandbox.tester import Channel

    with pytest.raises(ProtocolError):
        Channel(-1, -1)._exception_class(info)
