"""Writes tests/data/legit_corpus/: legit solution + test file pairs in BigCodeBench (unittest) and
KodCode (pytest) style, each template in several variants (constant k), deterministically.

    python3 tests/data/make_legit_corpus.py [OUT_DIR]

Each item is a folder ``<template>_<framework>_k<k>/`` holding ``solution.py`` and ``test_item.py``.
In a template ``@expr@`` is replaced by ``expr`` evaluated with ``k`` bound (``@k + 1@``).
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path

VARIANTS = (2, 3, 5)

# name: (category, solution, pytest file or None, unittest file or None)
TEMPLATES: dict[str, tuple[str, str, str | None, str | None]] = {}


def template(name, category, solution, pytest_src=None, unittest_src=None):
    TEMPLATES[name] = (category, solution, pytest_src, unittest_src)


template("repr_str", "class design", """
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __repr__(self):
        return f"Point({self.x}, {self.y})"
    def __str__(self):
        return f"({self.x}, {self.y})"
def make(k):
    return Point(k, k + 1)
""", """
from solution import Point, make
def test_repr():
    assert repr(Point(@k@, 2)) == "Point(@k@, 2)"
def test_str():
    assert str(make(@k@)) == "(@k@, @k + 1@)"
def test_format():
    assert f"p={make(@k@)}" == "p=(@k@, @k + 1@)"
""", """
import unittest
from solution import Point, make
class TestPoint(unittest.TestCase):
    def test_repr(self):
        self.assertEqual(repr(make(@k@)), "Point(@k@, @k + 1@)")
    def test_str(self):
        self.assertEqual(str(Point(0, @k@)), "(0, @k@)")
""")

template("isinstance", "class design", """
class Shape:
    def area(self):
        raise NotImplementedError
class Square(Shape):
    def __init__(self, side):
        self.side = side
    def area(self):
        return self.side * self.side
def build(n):
    return [Square(i + 1) for i in range(n)]
""", """
from solution import Shape, Square, build
def test_instances():
    shapes = build(@k@)
    assert len(shapes) == @k@
    assert all(isinstance(s, Shape) for s in shapes)
    assert isinstance(shapes[0], Square)
def test_subclass():
    assert issubclass(Square, Shape)
def test_area():
    assert [s.area() for s in build(@k@)] == @[(i + 1) ** 2 for i in range(k)]@
""", """
import unittest
class TestShapes(unittest.TestCase):
    def test_instances(self):
        shapes = build(@k@)
        for s in shapes:
            self.assertIsInstance(s, Shape)
    def test_area(self):
        self.assertEqual(build(@k@)[-1].area(), @k * k@)
""")

template("operators", "class design", """
import math
class Vec:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __add__(self, o):
        return Vec(self.x + o.x, self.y + o.y)
    def __mul__(self, s):
        return Vec(self.x * s, self.y * s)
    __rmul__ = __mul__
    def __neg__(self):
        return Vec(-self.x, -self.y)
    def __abs__(self):
        return math.hypot(self.x, self.y)
    def __lt__(self, o):
        return abs(self) < abs(o)
    def __len__(self):
        return 2
    def __iter__(self):
        return iter((self.x, self.y))
""", """
from solution import Vec
def test_add():
    v = Vec(1, 2) + Vec(@k@, 1)
    assert (v.x, v.y) == (@k + 1@, 3)
def test_scale_both_sides():
    assert tuple(Vec(1, 2) * @k@) == (@k@, @2 * k@)
    assert tuple(@k@ * Vec(1, 2)) == (@k@, @2 * k@)
def test_neg_abs():
    assert abs(Vec(@3 * k@, @4 * k@)) == @5 * k@
    assert (-Vec(@k@, 0)).x == -@k@
def test_sorted_by_norm():
    vs = sorted([Vec(@k + 2@, 0), Vec(1, 0), Vec(0, @k@)])
    assert [abs(v) for v in vs] == [1, @k@, @k + 2@]
    assert len(vs[0]) == 2
""", """
import unittest
from solution import Vec
class TestVec(unittest.TestCase):
    def test_add(self):
        self.assertEqual(list(Vec(@k@, 1) + Vec(1, 1)), [@k + 1@, 2])
    def test_lt(self):
        self.assertTrue(Vec(1, 1) < Vec(@k@, @k@))
        self.assertLess(abs(Vec(0, 1)), abs(Vec(0, @k@)))
""")

template("object_equality", "class design", """
class Money:
    def __init__(self, cents):
        self.cents = cents
    def __add__(self, o):
        return Money(self.cents + o.cents)
    def __eq__(self, o):
        return isinstance(o, Money) and o.cents == self.cents
    def __hash__(self):
        return hash(self.cents)
""", """
from solution import Money
def test_sum_equals():
    assert Money(@k@) + Money(1) == Money(@k + 1@)
def test_not_equal():
    assert Money(@k@) != Money(0)
""", None)

template("context_manager", "class design", """
class Resource:
    opened = 0
    def __init__(self, name):
        self.name = name
        self.closed = False
    def __enter__(self):
        Resource.opened += 1
        return self
    def __exit__(self, *exc):
        self.closed = True
        return False
""", """
import pytest
from solution import Resource
def test_closes():
    with Resource("r@k@") as r:
        assert r.name == "r@k@"
        assert not r.closed
    assert r.closed
def test_exception_propagates():
    with pytest.raises(ValueError):
        with Resource("x") as r:
            raise ValueError("boom")
    assert r.closed
""", """
import unittest
from solution import Resource
class TestResource(unittest.TestCase):
    def test_closes(self):
        res = Resource("r@k@")
        with res as r:
            self.assertFalse(r.closed)
        self.assertTrue(res.closed)
""")

template("inheritance", "class design", """
class Animal:
    def __init__(self, name):
        self.name = name
    def sound(self):
        return "..."
    def speak(self):
        return f"{self.name} says {self.sound()}"
class Dog(Animal):
    def sound(self):
        return "woof"
class Puppy(Dog):
    def speak(self):
        return super().speak() + "!" * @k@
""", """
from solution import Animal, Dog, Puppy
def test_override():
    assert Dog("rex").speak() == "rex says woof"
def test_super_chain():
    assert Puppy("bit").speak() == "bit says woof" + "!" * @k@
    assert isinstance(Puppy("a"), Animal)
""", """
import unittest
class TestAnimals(unittest.TestCase):
    def test_base(self):
        self.assertEqual(Animal("cat").speak(), "cat says ...")
    def test_puppy(self):
        self.assertTrue(Puppy("p").speak().endswith("!" * @k@))
""")

template("test_subclass", "class design", """
class Counter:
    def __init__(self):
        self.n = 0
    def step(self):
        return 1
    def tick(self, times):
        for _ in range(times):
            self.n += self.step()
        return self.n
""", """
from solution import Counter
class Double(Counter):
    def step(self):
        return 2
def test_inherited_tick_uses_override():
    assert Double().tick(@k@) == @2 * k@
def test_base():
    assert Counter().tick(@k@) == @k@
""", """
import unittest
from solution import Counter
class Triple(Counter):
    def step(self):
        return 3
class TestSub(unittest.TestCase):
    def test_tick(self):
        self.assertEqual(Triple().tick(@k@), @3 * k@)
""")

template("builtin_subclass_arg", "class design", """
def total(d, keys):
    return sum(d.get(k, 0) for k in keys)
""", """
from solution import total
class Defaulting(dict):
    def __missing__(self, key):
        return 0
def test_dict_subclass():
    d = Defaulting(a=@k@, b=2)
    assert total(d, ["a", "b", "zz"]) == @k + 2@
""", """
import unittest
from solution import total
class Tracked(dict):
    pass
class TestTotal(unittest.TestCase):
    def test_subclass_of_dict(self):
        self.assertEqual(total(Tracked(x=@k@), ["x", "y"]), @k@)
""")

template("dataclass", "class design", """
from dataclasses import dataclass, field
@dataclass
class Item:
    name: str
    price: int
    tags: list = field(default_factory=list)
def make_item(k):
    return Item(f"item{k}", k * 10)
def cheapest(items):
    return min(items, key=lambda i: i.price)
""", """
from dataclasses import asdict
from solution import Item, make_item, cheapest
def test_fields():
    it = make_item(@k@)
    assert it.name == "item@k@" and it.price == @10 * k@ and it.tags == []
def test_equality():
    assert make_item(@k@) == Item("item@k@", @10 * k@)
def test_asdict():
    assert asdict(make_item(@k@)) == {"name": "item@k@", "price": @10 * k@, "tags": []}
def test_cheapest():
    assert cheapest([make_item(@k + 1@), make_item(@k@)]).price == @10 * k@
""", """
import unittest
class TestItem(unittest.TestCase):
    def test_price(self):
        self.assertEqual(make_item(@k@).price, @10 * k@)
    def test_eq(self):
        self.assertEqual(make_item(1), Item("item1", 10))
""")

template("namedtuple", "containers", """
from collections import namedtuple
Pair = namedtuple("Pair", "lo hi")
def minmax(xs):
    return Pair(min(xs), max(xs))
""", """
from solution import minmax
def test_fields():
    r = minmax([@k@, 1, @k * 3@])
    assert r.lo == 1 and r.hi == @k * 3@
def test_tuple():
    assert minmax([@k@]) == (@k@, @k@)
    lo, hi = minmax([2, @k + 5@])
    assert (lo, hi) == (2, @k + 5@)
""", """
import unittest
class TestMinMax(unittest.TestCase):
    def test_hi(self):
        self.assertEqual(minmax(range(@k@)).hi, @k - 1@)
    def test_tuple(self):
        self.assertEqual(tuple(minmax([@k@, 0])), (0, @k@))
""")

template("counter", "containers", """
from collections import Counter
def letter_counts(s):
    return Counter(c for c in s if c.isalpha())
""", """
from collections import Counter
from solution import letter_counts
def test_counts():
    c = letter_counts("a" * @k@ + "bb!")
    assert c["a"] == @k@ and c["b"] == 2 and c["z"] == 0
def test_most_common():
    assert letter_counts("x" * @k + 2@ + "yy").most_common(1) == [("x", @k + 2@)]
def test_is_counter():
    assert isinstance(letter_counts("ab"), Counter)
""", """
import unittest
class TestCounts(unittest.TestCase):
    def test_equal(self):
        self.assertEqual(letter_counts("q" * @k@), {"q": @k@})
""")

template("defaultdict", "containers", """
from collections import defaultdict
def group_by_first(words):
    g = defaultdict(list)
    for w in words:
        g[w[0]].append(w)
    return g
""", """
from solution import group_by_first
def test_groups():
    g = group_by_first(["ab", "ac", "b@k@"])
    assert g["a"] == ["ab", "ac"] and g["b"] == ["b@k@"]
def test_missing_key_is_empty_list():
    assert group_by_first(["x"])["q"] == []
""", """
import unittest
class TestGroup(unittest.TestCase):
    def test_dict(self):
        self.assertEqual(dict(group_by_first(["z@k@"])), {"z": ["z@k@"]})
""")

template("ordereddict_deque", "containers", """
from collections import OrderedDict, deque
def last_seen(events):
    d = OrderedDict()
    for e in events:
        d.pop(e, None)
        d[e] = True
    return d
def window(xs, n):
    return deque(xs, maxlen=n)
""", """
from solution import last_seen, window
def test_order():
    assert list(last_seen(["a", "b", "a", "c@k@"])) == ["b", "a", "c@k@"]
def test_window():
    w = window(range(10), @k@)
    assert list(w) == @list(range(10 - k, 10))@ and w.maxlen == @k@
""", """
import unittest
class TestOrder(unittest.TestCase):
    def test_keys(self):
        self.assertEqual(list(last_seen("abca")), ["b", "c", "a"])
    def test_window(self):
        self.assertEqual(len(window([1] * 20, @k@)), @k@)
""")

template("tmp_path", "files", """
import csv
def count_lines(path):
    with open(path) as f:
        return sum(1 for _ in f)
def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)
""", """
import csv
from solution import count_lines, write_rows
def test_count(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x\\n" * @k@)
    assert count_lines(p) == @k@
def test_write(tmp_path):
    out = tmp_path / "out.csv"
    write_rows(out, [[i, i * @k@] for i in range(3)])
    assert list(csv.reader(out.open())) == [[str(i), str(i * @k@)] for i in range(3)]
""", None)

template("mkdtemp", "files", """
import os
def list_files(d, ext):
    return sorted(f for f in os.listdir(d) if f.endswith(ext))
def make_files(d, n):
    for i in range(n):
        with open(os.path.join(d, f"f{i}.log"), "w") as fh:
            fh.write(str(i))
""", """
import os, shutil, tempfile
from solution import list_files, make_files
def test_list():
    d = tempfile.mkdtemp()
    try:
        for name in ["a.txt", "b.txt", "c.md"]:
            open(os.path.join(d, name), "w").close()
        assert list_files(d, ".txt") == ["a.txt", "b.txt"]
    finally:
        shutil.rmtree(d)
def test_make():
    d = tempfile.mkdtemp()
    make_files(d, @k@)
    assert len(os.listdir(d)) == @k@
    shutil.rmtree(d)
""", """
import os, shutil, tempfile, unittest
class TestFiles(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp()
    def tearDown(self):
        shutil.rmtree(self.d)
    def test_make_and_list(self):
        make_files(self.d, @k@)
        self.assertEqual(list_files(self.d, ".log"), [f"f{i}.log" for i in range(@k@)])
""")

template("cwd_file", "files", """
import json
def load_config(name="config.json"):
    with open(name) as f:
        return json.load(f)
def save_total(values, name="total.txt"):
    with open(name, "w") as f:
        f.write(str(sum(values)))
""", """
import json, os
from solution import load_config, save_total
def test_load():
    with open("config.json", "w") as f:
        json.dump({"k": @k@}, f)
    try:
        assert load_config() == {"k": @k@}
    finally:
        os.remove("config.json")
def test_save():
    save_total([1, @k@])
    with open("total.txt") as f:
        assert f.read() == "@k + 1@"
    os.remove("total.txt")
""", """
import json, os, unittest
class TestConfig(unittest.TestCase):
    def setUp(self):
        with open("config.json", "w") as f:
            json.dump({"n": @k@}, f)
    def tearDown(self):
        os.remove("config.json")
    def test_load(self):
        self.assertEqual(load_config()["n"], @k@)
""")

template("capsys", "output capture", """
def greet(name, times=1):
    for _ in range(times):
        print(f"Hello, {name}!")
""", """
from solution import greet
def test_greet(capsys):
    greet("ann", @k@)
    assert capsys.readouterr().out == "Hello, ann!\\n" * @k@
def test_nothing(capsys):
    greet("bob", 0)
    assert capsys.readouterr().out == ""
""", None)

template("patched_stdout", "output capture", """
def report(values):
    print("total:", sum(values))
    print("max:", max(values))
""", """
import io
from unittest import mock
from solution import report
def test_report():
    with mock.patch("sys.stdout", new_callable=io.StringIO) as out:
        report([1, @k@])
    assert out.getvalue() == "total: @k + 1@\\nmax: @k@\\n"
""", """
import io, unittest
from unittest.mock import patch
class TestReport(unittest.TestCase):
    @patch("sys.stdout", new_callable=io.StringIO)
    def test_report(self, out):
        report([@k@, 2])
        self.assertIn("total: @k + 2@", out.getvalue())
""")

template("redirect_stdout", "output capture", """
def banner(text):
    line = "=" * len(text)
    print(line)
    print(text)
    print(line)
""", """
import contextlib, io
from solution import banner
def test_banner():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        banner("x" * @k@)
    assert buf.getvalue().splitlines() == ["=" * @k@, "x" * @k@, "=" * @k@]
""", """
import contextlib, io, unittest
class TestBanner(unittest.TestCase):
    def test_lines(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            banner("ab")
        self.assertEqual(buf.getvalue().count("\\n"), 3)
""")

template("mock_patch_stdlib", "mocks", """
import random, time
def roll(n):
    return [random.randint(1, 6) for _ in range(n)]
def stamp():
    return int(time.time()) // 60
""", """
from unittest import mock
from solution import roll, stamp
def test_roll():
    with mock.patch("random.randint", return_value=@k@) as m:
        assert roll(3) == [@k@] * 3
    assert m.call_count == 3
@mock.patch("time.time", return_value=@60 * k + 5@)
def test_stamp(m):
    assert stamp() == @k@
""", """
import unittest
from unittest.mock import patch
class TestRoll(unittest.TestCase):
    @patch("random.randint")
    def test_roll(self, m):
        m.return_value = @k@
        self.assertEqual(sum(roll(2)), @2 * k@)
        m.assert_called_with(1, 6)
""")

template("mock_patch_solution", "mocks", """
def fetch(url):
    raise RuntimeError("no network in tests")
def word_count(url):
    return len(fetch(url).split())
""", """
from unittest import mock
from solution import word_count
def test_word_count():
    with mock.patch("solution.fetch", return_value="a b " * @k@) as m:
        assert word_count("http://x") == @2 * k@
    m.assert_called_once_with("http://x")
""", """
import unittest
from unittest.mock import patch
import solution
class TestWC(unittest.TestCase):
    def test_wc(self):
        with patch.object(solution, "fetch", return_value="w " * @k@):
            self.assertEqual(solution.word_count("u"), @k@)
""")

template("monkeypatch_input", "mocks", """
def ask_sum():
    a = int(input("a? "))
    b = int(input("b? "))
    return a + b
""", """
from solution import ask_sum
def test_sum(monkeypatch):
    answers = iter(["@k@", "10"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert ask_sum() == @k + 10@
""", """
import unittest
from unittest.mock import patch
class TestAsk(unittest.TestCase):
    @patch("builtins.input", side_effect=["@k@", "1"])
    def test_sum(self, m):
        self.assertEqual(ask_sum(), @k + 1@)
        self.assertEqual(m.call_count, 2)
""")

template("monkeypatch_env", "mocks", """
import os
def mode():
    return os.environ.get("APP_MODE", "dev")
def workers():
    return int(os.environ.get("APP_WORKERS", "1"))
""", """
from solution import mode, workers
def test_env(monkeypatch):
    monkeypatch.setenv("APP_MODE", "prod@k@")
    assert mode() == "prod@k@"
def test_default(monkeypatch):
    monkeypatch.delenv("APP_MODE", raising=False)
    assert mode() == "dev"
""", """
import os, unittest
from unittest.mock import patch
class TestEnv(unittest.TestCase):
    def test_workers(self):
        with patch.dict(os.environ, {"APP_WORKERS": "@k@"}):
            self.assertEqual(workers(), @k@)
""")

template("fixtures", "fixtures", """
class Stack:
    def __init__(self):
        self._items = []
    def push(self, x):
        self._items.append(x)
    def pop(self):
        if not self._items:
            raise IndexError("pop from empty stack")
        return self._items.pop()
    def __len__(self):
        return len(self._items)
""", """
import pytest
from solution import Stack
@pytest.fixture
def stack():
    s = Stack()
    for i in range(@k@):
        s.push(i)
    yield s
@pytest.fixture(scope="module")
def empty():
    return Stack()
def test_len(stack):
    assert len(stack) == @k@
def test_pop(stack):
    assert stack.pop() == @k - 1@
    assert len(stack) == @k - 1@
def test_empty(empty):
    with pytest.raises(IndexError):
        empty.pop()
""", """
import unittest
from solution import Stack
class TestStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = Stack()
    def setUp(self):
        self.s = Stack()
        self.s.push(@k@)
    def test_pop(self):
        self.assertEqual(self.s.pop(), @k@)
    def test_empty(self):
        self.assertEqual(len(self.shared), 0)
""")

template("parametrize", "parametrize", """
def is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
""", """
import pytest
from solution import is_prime, fib
@pytest.mark.parametrize("n, expected", [(@k@, @all(k % d for d in range(2, k))@), (1, False), (@k * k@, False), (97, True)])
def test_prime(n, expected):
    assert is_prime(n) == expected
@pytest.mark.parametrize("n", range(@k@))
def test_fib_recurrence(n):
    assert fib(n + 2) == fib(n + 1) + fib(n)
""", """
import unittest
class TestFib(unittest.TestCase):
    def test_values(self):
        for n, want in [(0, 0), (1, 1), (@k + 5@, @[0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55][k + 5]@)]:
            with self.subTest(n=n):
                self.assertEqual(fib(n), want)
""")

template("exceptions", "exceptions", """
class InsufficientFunds(Exception):
    pass
class Account:
    def __init__(self, balance=0):
        if balance < 0:
            raise ValueError("negative balance")
        self.balance = balance
    def withdraw(self, amount):
        if amount > self.balance:
            raise InsufficientFunds(f"need {amount - self.balance} more")
        self.balance -= amount
        return self.balance
""", """
import pytest
from solution import Account, InsufficientFunds
def test_value_error():
    with pytest.raises(ValueError, match="negative"):
        Account(-@k@)
def test_custom():
    with pytest.raises(InsufficientFunds):
        Account(@k@).withdraw(@k + 1@)
def test_ok():
    assert Account(@k + 3@).withdraw(3) == @k@
""", """
import unittest
class TestAccount(unittest.TestCase):
    def test_value_error(self):
        with self.assertRaises(ValueError):
            Account(-1)
    def test_custom(self):
        with self.assertRaises(InsufficientFunds) as cm:
            Account(0).withdraw(@k@)
        self.assertIn("@k@", str(cm.exception))
    def test_builtin_raise(self):
        self.assertRaises(TypeError, Account(1).withdraw, "x")
""")

template("algorithms", "functions", """
def two_sum(nums, target):
    seen = {}
    for i, x in enumerate(nums):
        if target - x in seen:
            return [seen[target - x], i]
        seen[x] = i
    return []
def merge_intervals(iv):
    out = []
    for s, e in sorted(iv):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out
def is_palindrome(s):
    t = [c.lower() for c in s if c.isalnum()]
    return t == t[::-1]
""", """
from solution import two_sum, merge_intervals, is_palindrome
def test_two_sum():
    assert two_sum([1, @k@, 7], @k + 7@) == [1, 2]
    assert two_sum([1], 5) == []
def test_merge():
    assert merge_intervals([[1, 3], [2, @k + 3@], [@k + 10@, @k + 11@]]) == [[1, @k + 3@], [@k + 10@, @k + 11@]]
def test_palindrome():
    assert is_palindrome("A man, a plan" + "" * @k@ + ", a canal: Panama")
    assert not is_palindrome("ab" * @k@)
""", """
import unittest
class TestAlgo(unittest.TestCase):
    def test_two_sum(self):
        self.assertEqual(two_sum([@k@, 1], @k + 1@), [0, 1])
    def test_palindrome(self):
        self.assertTrue(is_palindrome("x" * @k@))
    def test_merge(self):
        self.assertListEqual(merge_intervals([[0, @k@]]), [[0, @k@]])
""")

template("generators", "functions", """
def chunks(xs, n):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]
def running_max(xs):
    best = None
    for x in xs:
        best = x if best is None else max(best, x)
        yield best
""", """
from solution import chunks, running_max
def test_chunks():
    assert list(chunks(list(range(@2 * k + 1@)), 2))[-1] == [@2 * k@]
    assert len(list(chunks("abcdef", @k@))) == @-(-6 // k)@
def test_running_max():
    g = running_max([1, @k@, 0, @k + 1@])
    assert next(g) == 1
    assert list(g) == [@k@, @k@, @k + 1@]
""", """
import unittest
class TestGen(unittest.TestCase):
    def test_chunks(self):
        self.assertEqual(sum(1 for _ in chunks([0] * @k@, 1)), @k@)
""")

template("in_place", "functions", """
def rotate(nums, k):
    k %= len(nums)
    nums[:] = nums[-k:] + nums[:-k]
def bump(counts, key):
    counts[key] = counts.get(key, 0) + 1
""", """
from solution import rotate, bump
def test_rotate_in_place():
    a = [1, 2, 3, 4, 5, 6]
    rotate(a, @k@)
    assert a == @[1, 2, 3, 4, 5, 6][-k:] + [1, 2, 3, 4, 5, 6][:-k]@
def test_bump():
    d = {}
    for _ in range(@k@):
        bump(d, "x")
    assert d == {"x": @k@}
""", """
import unittest
class TestRotate(unittest.TestCase):
    def test_rotate(self):
        a = list(range(@k + 2@))
        rotate(a, 1)
        self.assertEqual(a[0], @k + 1@)
""")


def fill(src: str, k: int) -> str:
    """The template with each ``@expr@`` replaced by its value for this k."""
    # a decorator's @ opens a line; set it aside so it never pairs with a marker's
    src = re.sub(r"(?m)^(\s*)@(?=[A-Za-z_][\w.]*(\(|$))", "\\1\0", src)
    src = re.sub(r"@([^@\n]+)@", lambda m: str(eval(m.group(1), {"k": k})), src)
    return src.replace("\0", "@")


def items() -> dict[str, dict[str, str]]:
    """Every corpus item by name: category, framework, solution and test source."""
    out = {}
    for name, (category, solution, pyt, ut) in TEMPLATES.items():
        for framework, tests in (("pytest", pyt), ("unittest", ut)):
            if tests is None:
                continue
            for k in VARIANTS:
                out[f"{name}_{framework}_k{k}"] = {
                    "category": category, "framework": framework,
                    "solution": textwrap.dedent(fill(solution, k)).lstrip(),
                    "test": textwrap.dedent(fill(tests, k)).lstrip()}
    return out


def write(out: Path) -> int:
    """(Re)write the corpus under out; the number of items."""
    if out.exists():
        shutil.rmtree(out)
    for name, it in items().items():
        d = out / name
        d.mkdir(parents=True)
        (d / "solution.py").write_text(it["solution"])
        (d / "test_item.py").write_text(it["test"])
    return len(items())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "legit_corpus"
    print(f"{write(target)} items -> {target}")
