"""Smaller verdicts (issue 26): out-of-memory paths are ``memory_limit``, a program that stops itself
is a ``timeout`` (plain execution would wait forever), and a candidate that switches off signals
and alarms inside its process still meets the limits enforced from outside, on both backends."""

from __future__ import annotations

import pytest


# a candidate that ignores every signal it may and disarms every in-process timer
UNARMED = ("import signal\nfor s in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU):\n"
           "    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(0)\n"
           "for t in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):\n    signal.setitimer(t, 0)\n")
SPIN_ASSERT = {"kind": "assert", "code": "assert f(1) == 1\n"}
SPIN_UNITTEST = {"kind": "unittest", "code": "import unittest\nclass T(unittest.TestCase):\n"
                 "    def test_a(self):\n        self.assertEqual(f(1), 1)\n"}
SPIN_PYTEST = {"kind": "pytest", "code": "import signal\nfrom solution import f\ndef test_f():\n"
               "    assert f(1) == 1\n"}
FAST = {"wall_s": 8, "cpu_s": 1}

CASES = {
    # uncaught std::bad_alloc ends in abort(): memory_limit, as docs/code.md says
    "cpp_bad_alloc": ({"language": "cpp", "code": "#include <vector>\nint main(){ std::vector<char*> v;\n"
                       "  for(;;){ v.push_back(new char[1<<28]); v.back()[0] = 1; } }\n"}, "memory_limit"),
    "cpp_bad_alloc_stdio": ({"language": "cpp", "code": "#include <vector>\n#include <iostream>\nint main(){ int n;"
                             " std::cin >> n; std::vector<char*> v;\n  for(;;){ v.push_back(new char[n << 20]);"
                             " v.back()[0] = 1; } }\n",
                             "tests": {"kind": "stdio", "cases": [{"stdin": "256\n", "stdout": "1\n"}]}},
                            "memory_limit"),
    "py_memory_error_script": ({"code": "x = bytearray(10**13)\n"}, "memory_limit"),
    "py_memory_error_in_test": ({"code": "def f(x):\n    return bytearray(10**13)\n", "tests": SPIN_PYTEST},
                                "memory_limit"),
    # a program that stops its own process group (or itself) never finishes under plain execution
    "sigstop_group_script": ({"code": "import os, signal\nos.killpg(0, signal.SIGSTOP)\nprint(1)\n",
                              "limits": {"wall_s": 3}}, "timeout"),
    "sigstop_self_stdio": ({"code": "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nprint(1)\n",
                            "tests": {"kind": "stdio", "cases": [{"stdin": "", "stdout": "1\n"}]},
                            "limits": {"wall_s": 3}}, "timeout"),
    "sigstop_group_in_test": ({"code": "import os, signal\ndef f(x):\n    os.killpg(0, signal.SIGSTOP)\n    return x\n",
                               "tests": SPIN_ASSERT, "limits": {"wall_s": 3}}, "timeout"),
    # alarms and SIGXCPU switched off inside: the hard CPU limit from outside is still a timeout
    "unarmed_spin_script": ({"code": UNARMED + "while True: pass\n", "limits": FAST}, "timeout"),
    "unarmed_spin_assert": ({"code": UNARMED + "def f(x):\n    while True: pass\n", "tests": SPIN_ASSERT,
                             "limits": FAST}, "timeout"),
    "unarmed_spin_unittest": ({"code": UNARMED + "def f(x):\n    while True: pass\n", "tests": SPIN_UNITTEST,
                               "limits": FAST}, "timeout"),
    "unarmed_spin_pytest": ({"code": UNARMED + "def f(x):\n    while True: pass\n", "tests": SPIN_PYTEST,
                             "limits": FAST}, "timeout"),
    "unarmed_sleep_pytest": ({"code": UNARMED + "import time\ndef f(x):\n    while True: time.sleep(0.05)\n",
                              "tests": SPIN_PYTEST, "limits": {"wall_s": 3}}, "timeout"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict(backend, name):
    job, want = CASES[name]
    v = backend.run(job)
    assert (v["status"], v["passed"]) == (want, 0), (name, v["status"], v.get("error"), v["per_test"],
                                                     v["stderr"][-300:])


def test_stopping_and_resuming_a_child_still_works(backend):
    """Only a self-stop is ended: a parent may stop and resume its own child."""
    code = ("import os, signal, time\npid = os.fork()\nif pid == 0:\n    time.sleep(0.3)\n    os._exit(7)\n"
            "os.kill(pid, signal.SIGSTOP)\nos.kill(pid, signal.SIGCONT)\n_, st = os.waitpid(pid, 0)\n"
            "print(os.waitstatus_to_exitcode(st))\n")
    v = backend.run({"code": code, "tests": {"kind": "stdio", "cases": [{"stdin": "", "stdout": "7\n"}]}})
    assert v["status"] == "passed", (v["status"], v.get("error"), v["stdout"], v["stderr"][-300:])
