"""The trust boundary: test code runs in a trusted tester process under another uid, so nothing the
candidate does in its own process changes a verdict. One wrong program per cheat class (each
would score 1.0 if the test ran in the candidate's process), on both backends, serially and all
at once, plus the legitimate shapes the boundary must still pass (handles, generators, classes,
multiprocessing, pickling of the candidate's own functions)."""

from __future__ import annotations

import textwrap

import pytest

from grpo_code.testing import make_backend
from grpo_plugins import Sample
from grpo_plugins.manager import PluginManager

MBPP_SET = {"kind": "assert", "entry_point": "f", "code": "assert set(f(3)) == set((4, 5))\n"}
HE_ABS = {"kind": "assert", "entry_point": "f", "code": (
    "def check(candidate):\n    assert abs(candidate(2.0) - 1.4142135) < 1e-6\n    assert abs(candidate(9.0) - 3.0) < 1e-6\n")}
LOOP_ALL = {"kind": "assert", "entry_point": "f", "code": (
    "def check(candidate):\n    assert all(candidate(x) == 2 * x for x in range(5))\n"
    "    assert any(candidate(x) == 14 for x in [7])\n")}
SORTED = {"kind": "assert", "code": "assert sorted(f([3, 1, 2])) == [1, 2, 3]\nassert sorted(f([2, 2])) == [2, 2]\n"}
ISINST = {"kind": "assert", "code": "assert isinstance(f(1), int)\nassert f(1) == 2\n"}
ISCLOSE = {"kind": "assert", "code": "import math\nassert math.isclose(f(2), 4.0)\nassert math.isclose(f(3), 6.0)\n"}
LEN_ROUND = {"kind": "assert", "code": "assert len(f(3)) == 3\nassert round(g(1), 2) == 0.33\n"}
PLAIN = {"kind": "assert", "entry_point": "f", "code": "assert f(1) == 2\nassert f(5) == 10\nassert f(0) == 0\n"}
TRUTH = {"kind": "assert", "code": "assert f(7)\nassert not f(8)\n"}
UNITTEST = {"kind": "unittest", "code": textwrap.dedent("""
    import unittest
    class TestCases(unittest.TestCase):
        def test_small(self):
            self.assertEqual(task_func(2), 4)
        def test_big(self):
            self.assertEqual(task_func(10), 20)
""")}

CHEATS = {
    "builtins_set": ("import builtins\nbuiltins.set = lambda *a: 1\ndef f(x): return [0]", MBPP_SET),
    "builtins_abs": ("import builtins\nbuiltins.abs = lambda x: 0\ndef f(x): return 0.0", HE_ABS),
    "builtins_all_any": ("import builtins\nbuiltins.all = builtins.any = lambda *a: True\ndef f(x): return -1",
                         LOOP_ALL),
    "builtins_sorted": ("import builtins\nbuiltins.sorted = lambda *a, **k: [1, 2, 3]\ndef f(x): return []", SORTED),
    "builtins_isinstance": ("import builtins\nbuiltins.isinstance = lambda *a: True\n"
                            "class Two:\n    def __eq__(self, o): return True\ndef f(x): return Two()", ISINST),
    "math_isclose": ("import math\nmath.isclose = lambda *a, **k: True\ndef f(x): return 0.0", ISCLOSE),
    "module_level_len_round": ("len = lambda x: 3\nround = lambda *a: 0.33\nimport math\n"
                               "def f(x): return []\ndef g(x): return 0.0", LEN_ROUND),
    "fake_stdlib_module": ("class M:\n    def isclose(self, *a, **k): return True\nmath = M()\n"
                           "def f(x): return 0.0", {"kind": "assert", "code": "assert math.isclose(f(2), 4.0)\n"}),
    "patch_runner_encode": ("import sys\nr = sys.modules['__main__']\n"
                            "r._encode_real = r.encode\nr.encode = lambda v, h=None, d=0: {'t': 'bool', 'v': True}\n"
                            "def f(x): return None", PLAIN),
    "patch_os_write": ("import os\nreal = os.write\n"
                       "os.write = lambda fd, b: real(fd, b.replace(b'\"error\"', b'\"value\"'))\n"
                       "def f(x): raise ValueError('no')", PLAIN),
    "patch_marshal_pickle_loads": ("import marshal, pickle\nmarshal.loads = lambda b: {'op': 'names'}\n"
                                   "pickle.loads = marshal.loads\ndef f(x): return -1", PLAIN),
    "forked_child_takes_over": ("import os, sys\nif os.fork() != 0:\n    os._exit(0)\n"
                                "def f(x): return 2 * x + 1", PLAIN),
    "eq_override": ("class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
                    "def f(x): return A()", PLAIN),
    "hash_override_in_set": ("class H:\n    def __hash__(self): return hash(4)\n    def __eq__(self, o): return True\n"
                             "def f(x): return [H(), H()]", MBPP_SET),
    "bool_override": ("class B:\n    n = 0\n    def __bool__(self):\n        B.n += 1\n        return B.n % 2 == 1\n"
                      "def f(x): return B()", TRUTH),
    "int_subclass": ("class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
                     "def f(x): return I(0)", PLAIN),
    "fake_verdicts_on_fd1_and_pipes": ("import os, sys\nprint('PASSED 3/3')\nfor fd in range(1, 30):\n"
                                       "    try:\n        os.write(fd, b'{\"test\": \"x\", \"status\": \"passed\"}\\n"
                                       "{\"done\": true}\\n{\"value\": {\"t\": \"int\", \"v\": 2}}\\n')\n"
                                       "    except OSError:\n        pass\ndef f(x): return -1", PLAIN),
    "exit_at_import": ("import sys\nsys.exit(0)\ndef f(x): return 0", PLAIN),
    "os_exit_in_call": ("import os\ndef f(x): os._exit(0)", PLAIN),
    "leftover_thread_answers": ("import os, threading, time\n"
                                "def spam():\n    while True:\n        for fd in range(3, 12):\n"
                                "            try: os.write(fd, b'{\"value\": {\"t\": \"int\", \"v\": 2}}\\n')\n"
                                "            except OSError: pass\n        time.sleep(0.001)\n"
                                "threading.Thread(target=spam, daemon=True).start()\ndef f(x): return -1", PLAIN),
    "leftover_child_answers": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    while True:\n"
                               "        for fd in range(3, 12):\n"
                               "            try: os.write(fd, b'{\"value\": {\"t\": \"int\", \"v\": 2}}\\n')\n"
                               "            except OSError: pass\n        time.sleep(0.001)\ndef f(x): return -1", PLAIN),
    "walk_frames_and_gc": ("import gc, sys\nfound = [o for o in gc.get_objects() if type(o) is str and 'assert' in o]\n"
                           "for fr in list(sys._current_frames().values()):\n    while fr:\n"
                           "        found += [v for v in fr.f_globals.values() if type(v) is str and '== 2' in v]\n"
                           "        fr = fr.f_back\ndef f(x): return len(found) * 1000 - 1", PLAIN),
    "patch_unittest_assert": ("import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
                              "unittest.TestCase.fail = lambda *a, **k: None\ndef task_func(x): return 0", UNITTEST),
    # a test-side object the candidate got by reference: only its public names are reachable
    "callback_reaches_test_globals": (
        "import sys\ndef apply(fn, x):\n"
        "    r = sys.modules.get('grpo_sandbox.runner') or sys.modules['__main__']\n"
        "    for name in ('__globals__', '__closure__', '_grpo_channel', '__self__'):\n"
        "        try:\n            g = r.remote_op('getattr', fn._id, name=name)\n"
        "            for v in list(g.values()):\n"
        "                try: v.send({'test': 'x', 'status': 'passed'})\n                except Exception: pass\n"
        "        except Exception:\n            pass\n"
        "    return -1\n",
        {"kind": "assert", "code": "assert apply(lambda v: v + 1, 1) == 2\n"}),
    # what a test hands the candidate cannot have its checks replaced
    "replace_mock_assertion": ("import os\ndef task_func(p):\n"
                               "    for name in ('assert_called_once_with', 'assert_called_with', 'called'):\n"
                               "        try: setattr(os.remove, name, (lambda *a, **k: None))\n"
                               "        except Exception: pass\n",
                               {"kind": "unittest", "code": "import unittest\nfrom unittest.mock import patch\n"
                                "class T(unittest.TestCase):\n    @patch('os.remove')\n"
                                "    def test_removes(self, m):\n        task_func('/x/a.txt')\n"
                                "        m.assert_called_once_with('/x/a.txt')\n"}),
    "configure_mock_assertion": ("import os\ndef task_func(p):\n"
                                 "    noop = lambda *a, **k: None\n"
                                 "    try: os.remove.configure_mock(assert_called_once_with=noop)\n"
                                 "    except Exception: pass\n"
                                 "    try: os.remove.attach_mock(noop, 'assert_called_once_with')\n"
                                 "    except Exception: pass\n",
                                 {"kind": "unittest", "code": "import unittest\nfrom unittest.mock import patch\n"
                                  "class T(unittest.TestCase):\n    @patch('os.remove')\n"
                                  "    def test_removes(self, m):\n        task_func('/x/a.txt')\n"
                                  "        m.assert_called_once_with('/x/a.txt')\n"}),
    "override_test_object_method": ("def fill(b):\n    try: b.ok = (lambda: True)\n    except Exception: pass\n"
                                    "    try: b.check = 1\n    except Exception: pass\n",
                                    {"kind": "assert", "code": "class Box:\n    def __init__(self): self.items = []\n"
                                     "    def ok(self): return self.items == [1, 2]\n"
                                     "    @property\n    def check(self): return self.ok()\n"
                                     "b = Box()\nfill(b)\nassert b.ok()\nassert b.check\n"}),
    "kill_the_tester": ("import os, signal\nfor p in range(1, 400):\n    try: os.kill(p, signal.SIGKILL)\n"
                        "    except OSError: pass\ndef f(x): return -1", PLAIN),
}

LEGIT = {
    # test-side values pickle cannot carry cross by reference: operations on them run in the tester
    "test_side_lambda": ("def apply(f, xs):\n    return [f(x) for x in xs]\n",
                         {"kind": "assert", "code": "assert apply(lambda x: x * 10, [1, 2]) == [10, 20]\n"
                                                    "assert apply(str.upper, ['a']) == ['A']\n"}),
    "test_defined_class_instances": ("def total(n):\n    s = 0\n    while n is not None:\n        s += n.v\n"
                                     "        n = n.nxt\n    return s\n",
                                     {"kind": "assert", "code": "class Node:\n    def __init__(self, v, nxt=None):\n"
                                                                "        self.v, self.nxt = v, nxt\n"
                                                                "assert total(Node(1, Node(2, Node(3)))) == 6\n"}),
    "test_side_generator": ("def first_two(it):\n    return [next(it), next(it)]\n",
                            {"kind": "assert", "code": "def g():\n    yield 5\n    yield 6\n"
                                                       "assert first_two(g()) == [5, 6]\n"}),
    "callback_calls_back_into_the_candidate": ("def double(x): return 2 * x\ndef apply(f, x): return f(x)\n",
                                               {"kind": "assert", "code": "assert apply(lambda v: double(v) + 1, 3) == 7\n"}),
    "callback_dunder_refused": ("import sys\ndef probe(fn):\n"
                                "    r = sys.modules.get('grpo_sandbox.runner') or sys.modules['__main__']\n"
                                "    try:\n        r.remote_op('getattr', fn._id, name='__globals__')\n"
                                "        return 'reached'\n    except AttributeError:\n        return 'refused'\n",
                                {"kind": "assert", "code": "assert probe(lambda: 0) == 'refused'\n"}),
    "unittest_lambda_key": ("def sort_by(xs, key):\n    return sorted(xs, key=key)\n",
                            {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
                                                         "    def test_key(self):\n"
                                                         "        self.assertEqual(sort_by([3, 1, 2], key=lambda v: -v), [3, 2, 1])\n"}),
    # a test's mock.patch reaches the candidate's process; the mock records the calls test-side
    "unittest_mock_patch_stdlib": ("import os\ndef task_func(d):\n"
                                   "    return sorted(f for f in os.listdir(d) if f.endswith('.txt'))\n",
                                   {"kind": "unittest", "code": "import unittest\nfrom unittest.mock import patch\n"
                                    "class T(unittest.TestCase):\n"
                                    "    @patch('os.listdir', return_value=['b.txt', 'a.py', 'a.txt'])\n"
                                    "    def test_listing(self, m):\n"
                                    "        self.assertEqual(task_func('/nowhere'), ['a.txt', 'b.txt'])\n"
                                    "        m.assert_called_once_with('/nowhere')\n"
                                    "    def test_unpatched_after(self):\n"
                                    "        with self.assertRaises(FileNotFoundError):\n"
                                    "            task_func('/nowhere')\n"}),
    "unittest_mock_open": ("def task_func(path):\n    with open(path) as f:\n"
                           "        return [line.split(',') for line in f.read().splitlines()]\n",
                           {"kind": "unittest", "code": "import unittest\nfrom unittest.mock import patch, mock_open\n"
                            "class T(unittest.TestCase):\n    def test_read(self):\n"
                            "        with patch('builtins.open', mock_open(read_data='a,b\\n1,2\\n')) as m:\n"
                            "            self.assertEqual(task_func('x.csv'), [['a', 'b'], ['1', '2']])\n"
                            "        m.assert_called_once_with('x.csv')\n"}),
    "unittest_patch_solution_name": ("def helper():\n    return 1\ndef task_func():\n    return helper() * 2\n",
                                     {"kind": "unittest", "code": "import unittest\nfrom unittest.mock import patch\n"
                                      "class T(unittest.TestCase):\n"
                                      "    @patch('solution.helper', return_value=10)\n"
                                      "    def test_patched(self, m):\n        self.assertEqual(task_func(), 20)\n"
                                      "    def test_plain(self):\n        self.assertEqual(task_func(), 2)\n"}),
    "unittest_patch_dict_environ": ("import os\ndef task_func():\n    return os.environ.get('API_MODE', 'off')\n",
                                    {"kind": "unittest", "code": "import os, unittest\nfrom unittest.mock import patch\n"
                                     "class T(unittest.TestCase):\n"
                                     "    @patch.dict(os.environ, {'API_MODE': 'on'})\n"
                                     "    def test_decorated(self):\n        self.assertEqual(task_func(), 'on')\n"
                                     "    def test_context(self):\n"
                                     "        with patch.dict('os.environ', {'API_MODE': 'test'}):\n"
                                     "            self.assertEqual(task_func(), 'test')\n"
                                     "        self.assertEqual(task_func(), 'off')\n"}),
    "pytest_mock_patch": ("import random\ndef roll():\n    return random.randint(1, 6)\n",
                          {"kind": "pytest", "code": "from unittest import mock\nimport solution\n"
                           "def test_roll():\n    with mock.patch('random.randint', return_value=4) as m:\n"
                           "        assert solution.roll() == 4\n    m.assert_called_once_with(1, 6)\n"}),
    # in-place changes to the test's arguments are seen by the test, as in one process
    "in_place_list_and_matrix": ("def rotate(nums, k):\n    k %= len(nums)\n    nums[:] = nums[-k:] + nums[:-k]\n"
                                 "def transpose(m):\n    for i in range(len(m)):\n        for j in range(i):\n"
                                 "            m[i][j], m[j][i] = m[j][i], m[i][j]\n"
                                 "def tally(d, word):\n    d[word] = d.get(word, 0) + 1\n",
                                 {"kind": "assert", "code": "xs = [1, 2, 3, 4]\nrotate(xs, 1)\nassert xs == [4, 1, 2, 3]\n"
                                  "m = [[1, 2], [3, 4]]\ntranspose(m)\nassert m == [[1, 3], [2, 4]]\n"
                                  "d = {'a': 1}\ntally(d, 'a')\ntally(d=d, word='b')\nassert d == {'a': 2, 'b': 1}\n"}),
    "relink_test_defined_list": ("def reverse(head):\n    prev = None\n    while head is not None:\n"
                                 "        nxt = head.nxt\n        head.nxt = prev\n        prev, head = head, nxt\n"
                                 "    return prev\n",
                                 {"kind": "assert", "code": "class Node:\n    def __init__(self, v, nxt=None):\n"
                                  "        self.v, self.nxt = v, nxt\n"
                                  "def to_list(n):\n    out = []\n    while n is not None:\n"
                                  "        out.append(n.v)\n        n = n.nxt\n    return out\n"
                                  "a = Node(1, Node(2, Node(3)))\ntail = a.nxt.nxt\n"
                                  "assert reverse(a) is tail\nassert to_list(tail) == [3, 2, 1]\n"}),
    "pytest_test_defined_class": ("def area(shape):\n    return shape.side() ** 2\n",
                                  {"kind": "pytest", "code": "from solution import area\nclass Sq:\n"
                                                             "    def __init__(self, s): self.s = s\n"
                                                             "    def side(self): return self.s\n"
                                                             "def test_area():\n    assert area(Sq(3)) == 9\n"}),
    "plain": ("def f(x): return 2 * x", PLAIN),
    "generator_and_class": ("class Stack:\n    def __init__(self): self.items = []\n"
                            "    def push(self, x): self.items.append(x)\n    def __len__(self): return len(self.items)\n"
                            "def gen(n):\n    yield from range(n)\n",
                            {"kind": "assert", "code": "s = Stack()\ns.push(3)\ns.push(4)\nassert len(s) == 2\n"
                                                       "assert s.items == [3, 4]\nassert list(gen(3)) == [0, 1, 2]\n"
                                                       "assert sum(gen(4)) == 6\n"}),
    "leetcode_solution_class": ("class Solution:\n    def twoSum(self, a, t):\n        seen = {}\n"
                                "        for i, x in enumerate(a):\n            if t - x in seen: return [seen[t - x], i]\n"
                                "            seen[x] = i\n",
                                {"kind": "assert", "code": "assert Solution().twoSum([2, 7, 11], 9) == [0, 1]\n"}),
    "humaneval_float": ("import math\ndef f(x): return math.sqrt(x)", HE_ABS),
    "mbpp_set": ("def f(x): return (x + 2, x + 1)", MBPP_SET),
    "raises_expected": ("def f(x):\n    if x < 0: raise ValueError('neg')\n    return x",
                        {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
                                                     "    def test_neg(self):\n        with self.assertRaises(ValueError):\n"
                                                     "            f(-1)\n    def test_pos(self):\n"
                                                     "        self.assertEqual(f(3), 3)\n"}),
    "multiprocessing_pool_own_function": (
        "from multiprocessing import Pool\ndef sq(x): return x * x\n"
        "def f(n):\n    with Pool(2) as p:\n        return p.map(sq, range(n))\n",
        {"kind": "assert", "code": "assert f(4) == [0, 1, 4, 9]\n"}),
    "pickle_own_class": ("import pickle\nclass P:\n    def __init__(self, v): self.v = v\n"
                         "def f(x): return pickle.loads(pickle.dumps(P(x))).v\n",
                         {"kind": "assert", "code": "assert f(5) == 5\n"}),
}


def job(code, tests, **limits):
    j = {"code": code, "tests": tests}
    if limits:
        j["limits"] = limits
    return j


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_scores_zero(backend, name):
    code, tests = CHEATS[name]
    v = backend.run(job(code, tests, wall_s=5))
    assert v["status"] != "passed" and v["passed"] == 0, (name, v["status"], v["per_test"], v.get("error"))


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legit_program_scores_one(backend, name):
    code, tests = LEGIT[name]
    v = backend.run(job(code, tests))
    assert v["status"] == "passed" and v["passed"] == v["total"] > 0, (name, v["per_test"], v.get("error"),
                                                                        v["stderr"][-500:])


def test_cheats_and_legit_concurrently(backend):
    names = sorted(CHEATS) + sorted(LEGIT)
    jobs = [job(*CHEATS[n], wall_s=5) for n in sorted(CHEATS)] + [job(*LEGIT[n]) for n in sorted(LEGIT)]
    for n, v in zip(names, backend.run_many(jobs)):
        if n in CHEATS:
            assert v["status"] != "passed" and v["passed"] == 0, (n, v["status"])
        else:
            assert v["status"] == "passed", (n, v["status"], v.get("error"))


def test_per_test_detail_names_each_test(backend):
    v = backend.run(job("def task_func(x): return 2 * x if x < 5 else 0", UNITTEST))
    assert v["status"] == "failed" and v["total"] == 2 and v["passed"] == 1
    assert {t["test"]: t["status"] for t in v["per_test"]} == {"TestCases.test_small": "passed",
                                                                "TestCases.test_big": "failed"}


@pytest.mark.parametrize("backend_name", ["docker", "local"])
def test_code_reward_scores_cheats_zero_and_legit_one(backend_name):
    make_backend(backend_name).close()
    r = PluginManager(allow=["code"]).create_reward("code", {"backend": backend_name, "parallel": 2})
    try:
        picks = ["builtins_set", "builtins_abs", "math_isclose", "eq_override", "patch_unittest_assert"]
        samples = [Sample(prompt="p", completion=f"```python\n{CHEATS[n][0]}\n```", columns={"tests": CHEATS[n][1]})
                   for n in picks]
        samples += [Sample(prompt="p", completion=f"```python\n{LEGIT[n][0]}\n```", columns={"tests": LEGIT[n][1]})
                    for n in ("mbpp_set", "humaneval_float")]
        values = [res.value for res in r.score(samples)]
        assert values == [0.0] * len(picks) + [1.0, 1.0]
    finally:
        r.close()
