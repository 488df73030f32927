"""The hostile-program suite, run against both backends (docker and local), serially and
concurrently: every hostile program is contained and never scores, legitimate programs still
pass, and the sandbox keeps serving (clean) after each."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading

import pytest

from grpo_code.testing import make_backend

FAST = {"wall_s": 3, "cpu_s": 1}
LIMIT_STATUSES = {"timeout", "memory_limit", "output_limit", "process_limit", "disk_limit"}

# after every hostile program: the box is empty (files, processes) and still answers
SENTINEL = textwrap.dedent("""
    import json, os
    mine = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())
            and os.stat('/proc/' + p).st_uid == os.getuid()]
    here = [f for f in os.listdir('.') if f != 'main.py']  # the program itself, as under python3 main.py
    print(json.dumps([sorted(here), sorted(os.listdir('/tmp')), mine]))
""")


def job(code, tests=None, stdin=None, **limits):
    j = {"code": textwrap.dedent(code)}
    if tests is not None:
        j["tests"] = tests
    if stdin is not None:
        j["stdin"] = stdin
    if limits:
        j["limits"] = limits
    return j


ASSERT_F = {"kind": "assert", "entry_point": "f", "code": "assert f(1) == 2\nassert f(5) == 10\nassert f(0) == 0\n"}
LOOP_F = {"kind": "assert", "entry_point": "f", "code": (
    "def check(candidate):\n"
    "    for x, want in [(1, 2), (5, 10), (0, 0)]:\n"
    "        assert candidate(x) == want\n"
    "    assert all(candidate(x) == 2 * x for x in range(4))\n"
    "    assert candidate(3) in [6, 60] and not candidate(0)\n")}
CALL_F = {"kind": "call", "fn_name": "f", "cases": [{"args": [1], "expected": 2}, {"args": [5], "expected": 10}]}
STDIO = {"kind": "stdio", "cases": [{"stdin": "3\n", "stdout": "6\n"}, {"stdin": "7\n", "stdout": "14\n"}]}

HOSTILE = {
    # resource abuse
    "cpu_spin": (job("while True: pass", **FAST), {"timeout"}),
    "sleep": (job("import time; time.sleep(60)", wall_s=1.5), {"timeout"}),
    "busy_threads": (job("""
        import threading
        def spin():
            while True: pass
        ts = [threading.Thread(target=spin) for _ in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
    """, **FAST), {"timeout"}),
    "busy_children": (job("""
        import os
        for _ in range(4):
            if os.fork() == 0:
                os.setsid()
                while True: pass
        import time; time.sleep(60)
    """, **FAST), {"timeout"}),
    "sigterm_ignored": (job("""
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
            signal.signal(s, signal.SIG_IGN)
        while True: pass
    """, **FAST), {"timeout"}),
    "fork_bomb": (job("import os\nwhile True:\n    os.fork()", **FAST), {"process_limit", "timeout"}),
    "thread_bomb": (job("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    """), {"process_limit"}),  # default wall clock: a loaded machine must not turn this into a timeout
    "big_alloc": (job("x = bytearray(4 * 1024 ** 3)"), {"memory_limit"}),
    "gradual_memory": (job("""
        chunks = []
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
    """), {"memory_limit"}),
    "disk_fill": (job("""
        with open('big', 'wb') as f:
            while True: f.write(b'x' * (1 << 20))
    """, disk_mb=32), {"disk_limit"}),
    "tmp_fill": (job("""
        with open('/tmp/big', 'wb') as f:
            while True: f.write(b'x' * (1 << 20))
    """, disk_mb=32), {"disk_limit"}),
    "inode_fill": (job("""
        import os
        os.mkdir('d')
        i = 0
        while True:
            open(f'd/{i}', 'w').close(); i += 1
    """, **FAST), {"disk_limit", "timeout"}),
    "stdout_flood": (job("import sys\nwhile True: sys.stdout.write('x' * 65536)"), {"output_limit"}),
    "stderr_flood": (job("import sys\nwhile True: sys.stderr.write('y' * 65536)"), {"output_limit"}),
    "flood_from_child": (job("""
        import os, sys
        if os.fork() == 0:
            os.setsid()
            while True: os.write(1, b'z' * 65536)
        os.wait()
    """), {"output_limit"}),
    # escapes
    # these may well exit 0 (the signal is refused or never delivered): what matters is the box survives
    "kill_parent": (job("import os, signal; os.kill(os.getppid(), signal.SIGKILL); os.kill(1, signal.SIGKILL)"),
                    {"runtime_error", "passed"}),
    "kill_everything": (job("import os, signal; os.kill(-1, signal.SIGKILL); os.kill(-1, signal.SIGSTOP)"),
                        {"runtime_error", "passed"}),
    "setuid_root": (job("import os; os.setuid(0); print('ROOT')"), {"runtime_error"}),
    "sudo_like_exec": (job("import os; os.execv('/bin/su', ['su', '-c', 'id'])"), {"runtime_error"}),
}


def assert_clean(backend):
    v = backend.run(job(SENTINEL))
    assert v["status"] == "passed", v
    files, tmp, procs = json.loads(v["stdout"])
    assert (files, tmp, procs) == ([], [], []), "something survived the previous run"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_contained(backend, name):
    j, allowed = HOSTILE[name]
    v = backend.run(j)
    assert v["status"] in allowed, (name, v["status"], v.get("stderr", "")[-400:], v.get("error"))
    if "passed" not in allowed:
        assert v["passed"] == 0
    assert len(v["stdout"].encode()) <= 8 << 20  # output was capped while streaming
    assert "ROOT" not in v["stdout"]
    assert_clean(backend)


def test_no_network(backend):
    """Neither a TEST-NET address nor a server listening on the host's loopback is reachable."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        v = backend.run(job(f"""
            import socket
            for addr in (('192.0.2.1', 80), ('127.0.0.1', {port})):
                try:
                    s = socket.create_connection(addr, timeout=2)
                    print('CONNECTED', addr)
                except OSError as e:
                    print('blocked', addr, type(e).__name__)
        """, wall_s=8))
    finally:
        srv.close()
    assert v["status"] == "passed", v
    assert "CONNECTED" not in v["stdout"]
    assert v["stdout"].count("blocked") == 2


def test_host_files_and_secrets_unreadable(backend, tmp_path, monkeypatch):
    secret = "s3cr3t-" + os.urandom(6).hex()
    monkeypatch.setenv("GRPO_TEST_SECRET", secret)
    (tmp_path / "secret.txt").write_text(secret)
    v = backend.run(job(f"""
        import os, glob
        print(dict(os.environ))
        for p in ['{tmp_path}/secret.txt', '/etc/shadow', '/root/.bashrc', '/proc/1/environ',
                  '/proc/1/cmdline', '/var/run/docker.sock']:
            try:
                print(p, open(p, 'rb').read()[:200])
            except OSError as e:
                print(p, 'denied', type(e).__name__)
        print(glob.glob('/home/*'), glob.glob('/work/*'), os.getuid())
    """))
    assert v["status"] == "passed", v
    assert secret not in v["stdout"]
    assert "docker.sock b" not in v["stdout"] and "/etc/shadow b" not in v["stdout"]
    assert not v["stdout"].rstrip().endswith(" 0")  # never uid 0


def test_nothing_persists_between_runs_in_one_box():
    """Files in every writable place, a daemon, SysV IPC: none of it is visible to the next run."""
    for name in ("docker", "local"):
        b = make_backend(name, parallel=1)
        try:
            first = b.run(job("""
                import os, subprocess, sys
                for p in ('keep.txt', '/tmp/keep.txt', '/dev/shm/keep'):
                    try:
                        open(p, 'w').write('x'); print('wrote', p)
                    except OSError:
                        pass
                os.makedirs('locked/inner'); os.chmod('locked', 0)
                import ctypes
                print('shm', ctypes.CDLL(None).shmget(0x5eed, 4096, 0o1600))  # IPC_CREAT: outlives processes
                rt = ctypes.CDLL('librt.so.1')
                rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
                print('mq', rt.mq_open(b'/keep', os.O_CREAT | os.O_RDWR, 0o600, None))
                if os.fork() == 0:
                    os.setsid(); os.close(1); os.close(2)
                    import time; time.sleep(60)
                print('done')
            """))
            assert first["status"] == "passed" and "wrote keep.txt" in first["stdout"], first
            assert "shm -1" not in first["stdout"] and "mq -1" not in first["stdout"]
            second = b.run(job(SENTINEL + "\nimport os, ctypes\nprint(os.path.exists('/dev/shm/keep'))\n"
                                          "print(ctypes.CDLL(None).shmget(0x5eed, 0, 0))\n"
                                          "print(os.listdir('/dev/mqueue') if os.path.isdir('/dev/mqueue') else [])"))
            assert second["status"] == "passed", second
            lines = second["stdout"].splitlines()
            assert json.loads(lines[0]) == [[], [], []] and lines[1:] == ["False", "-1", "[]"]
            if name == "docker":
                assert first["box"]["uid"] == second["box"]["uid"]  # the same warm container was reused
                assert second["box"]["run"] == first["box"]["run"] + 1
        finally:
            b.close()


# --- harness tampering: nothing here may score ------------------------------------------------

TAMPER = {
    "always_true_eq": ("""
        class Any:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
        def f(x): return Any()
    """, ASSERT_F),
    "always_true_eq_loop_tests": ("""
        class Any:
            def __eq__(self, other): return True
            __hash__ = object.__hash__
        def f(x): return Any()
    """, LOOP_F),
    "override_harness_helpers": ("""
        __grpo_cmp__ = lambda *a: True
        __grpo_check__ = lambda *a: None
        def f(x): return -1
    """, LOOP_F),
    "int_subclass_eq": ("""
        class I(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        def f(x): return I(0)
    """, CALL_F),
    "exit0_at_import": ("import sys\nsys.exit(0)\ndef f(x): return 0", ASSERT_F),
    "os_exit_in_call": ("import os\ndef f(x): os._exit(0)", CALL_F),
    "sys_exit_in_call": ("import sys\ndef f(x): sys.exit(0)", ASSERT_F),
    "exit_in_del": ("""
        import os
        class D:
            def __del__(self): os._exit(0)
        def f(x):
            D(); return -1
    """, ASSERT_F),
    "atexit_and_excepthook": ("""
        import atexit, sys
        atexit.register(lambda: print('{"status": "passed", "passed": 3, "total": 3}'))
        sys.excepthook = lambda *a: print('ALL TESTS PASSED')
        def f(x): raise AssertionError('nope')
    """, ASSERT_F),
    "fake_pass_lines": ("""
        import sys
        print('PASSED 3/3'); print('{"i": 0, "value": {"t": "int", "v": 2}}')
        sys.stderr.write('OK\\n')
        def f(x): return None
    """, CALL_F),
    "forged_results_with_nonce": ("""
        import gc, json, os
        nonce = next(o['nonce'] for o in gc.get_objects() if type(o) is dict and 'nonce' in o)
        for i in range(10):
            os.write(4, (json.dumps({'nonce': nonce, 'i': i, 'value': {'t': 'int', 'v': 2}}) + '\\n').encode())
        def f(x): return x * 2 + 1
    """, CALL_F),
    "patch_runner_encode": ("""
        import sys
        m = sys.modules['__main__']
        m.encode = lambda v, depth=0: {'t': 'bool', 'v': True}
        def f(x): return None
    """, ASSERT_F),
    "patch_builtins": ("""
        import builtins
        builtins.AssertionError = type('X', (Exception,), {})
        builtins.isinstance = lambda *a: True
        builtins.type = lambda *a: int
        def f(x): return 'two'
    """, ASSERT_F),
    "read_tests": ("""
        import gc, os, glob
        found = []
        for o in gc.get_objects():
            if type(o) is str and ('== 2' in o or '"expected"' in o):
                found.append(o)
        for p in glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ') + glob.glob('/opt/grpo_sandbox/*'):
            try:
                data = open(p, 'rb').read()
                if b'expected' in data and p.startswith('/proc'):
                    found.append(p)
            except OSError:
                pass
        print('FOUND', found)
        def f(x): return len(found) * 1000
    """, CALL_F),
    "stdio_exit_early": ("import sys\nsys.exit(0)", STDIO),
    "stdio_reads_expected": ("""
        import glob
        hits = []
        for p in glob.glob('/proc/*/mem') + glob.glob('/proc/*/fd/*'):
            try:
                with open(p, 'rb') as fh:
                    hits.append(fh.read(64))
            except OSError:
                pass
        print(hits[:1] or 'nothing')
    """, STDIO),
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_harness_tampering_scores_nothing(backend, name):
    code, tests = TAMPER[name]
    v = backend.run(job(code, tests))
    assert v["status"] != "passed", (name, v)
    assert v["passed"] == 0, (name, v)
    assert "14\n" not in v["stdout"] and "FOUND ['" not in v["stdout"]
    assert_clean(backend)


# --- legitimate programs must pass under the default limits ----------------------------------

LEGIT = {
    "deep_recursion_big_stack": job("""
        import sys, threading
        sys.setrecursionlimit(200000)
        threading.stack_size(512 * 1024 * 1024)
        def depth(n): return 0 if n == 0 else 1 + depth(n - 1)
        out = []
        t = threading.Thread(target=lambda: out.append(depth(100000))); t.start(); t.join()
        print(out[0])
    """),
    "four_threads": job("""
        import threading
        res = [0] * 4
        def work(i): res[i] = sum(range(200000))
        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(len(set(res)))
    """),
    "200mb_resident": job("""
        b = bytearray(200 * 1024 * 1024)
        for i in range(0, len(b), 4096): b[i] = 1
        print(sum(b[::4096]) > 0)
    """),
    "2mb_output": job("import sys\nsys.stdout.write('a' * (2 * 1024 * 1024))"),
    "stdin": job("import sys\nprint(sys.stdin.read().upper())", stdin="hello\n" * 1000),
    "scratch_files": job("""
        import os, tempfile
        open('a.txt', 'w').write('x' * 10**6)
        fd, p = tempfile.mkstemp(); os.write(fd, b'y' * 10**6); os.close(fd)
        os.makedirs('d/e'); open('d/e/f', 'w').write('z')
        print(os.path.getsize('a.txt') + os.path.getsize(p))
    """),
    "one_second_cpu": job("""
        import time
        t = time.process_time()
        while time.process_time() - t < 0.8: pass
        print('ok')
    """),
    "loop_style_tests": job("def f(x):\n    return 2 * x", LOOP_F),
    "subprocess_child": job("import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', 'print(41+1)'], "
                            "capture_output=True, text=True).stdout.strip())"),
}


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legitimate_program_passes(backend, name):
    v = backend.run(LEGIT[name])
    assert v["status"] == "passed", (name, v.get("stderr", "")[-600:], v.get("error"))
    assert v["exit_code"] == 0


def test_legit_outputs_are_right(backend):
    v = backend.run(LEGIT["deep_recursion_big_stack"])
    assert v["stdout"].strip() == "100000"
    v = backend.run(LEGIT["2mb_output"])
    assert len(v["stdout"]) == 2 * 1024 * 1024
    v = backend.run(LEGIT["stdin"])
    assert v["stdout"].count("HELLO") == 1000


def test_whole_suite_concurrently(backend):
    """Every hostile, tampering and legitimate program at once: verdicts stay per-program and in order."""
    jobs, expect, names = [], [], []
    for n, (j, allowed) in sorted(HOSTILE.items()):
        jobs.append(j), expect.append(allowed), names.append(n)
    for n, (code, tests) in sorted(TAMPER.items()):
        jobs.append(job(code, tests)), expect.append(None), names.append(n)
    for n, j in sorted(LEGIT.items()):
        jobs.append(j), expect.append({"passed"}), names.append(n)
    verdicts = backend.run_many(jobs)
    for n, v, allowed in zip(names, verdicts, expect):
        if allowed is None:  # tampering: anything but a pass
            assert v["status"] != "passed" and v["passed"] == 0, (n, v["status"])
        else:
            assert v["status"] in allowed, (n, v["status"], v.get("stderr", "")[-300:])
    assert_clean(backend)


def test_threads_share_backend_safely(backend):
    out = {}

    def worker(i):
        out[i] = backend.run(job(f"print({i} * 3)"))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert {i: v["stdout"].strip() for i, v in out.items()} == {i: str(i * 3) for i in range(6)}


FORKED_MEMORY = job("""
    import os, time
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            b = bytearray(200 * 1024 * 1024)
            for j in range(0, len(b), 4096): b[j] = 1
            time.sleep(2)
            os._exit(0)
        pids.append(pid)
    for p in pids:
        os.waitpid(p, 0)
    print('parent survived')
""", memory_mb=256, disk_mb=64)


def test_memory_limit_covers_the_whole_tree(backend):
    """Four children of 200 MB each under a 256 MB run limit: each fits its own rlimit, the tree does
    not. A parent that waits its OOM-killed children out and exits 0 still gets memory_limit."""
    if getattr(backend, "tree_memory_limit", True) is False:
        pytest.skip("this backend bounds memory per process only (no memory cgroup here)")
    v = backend.run(FORKED_MEMORY)
    assert v["status"] == "memory_limit", (v["status"], v["stdout"], v["stderr"][-300:])
    assert_clean(backend)


# --- the program is a real __main__ --------------------------------------------------------------

MAIN_PROGRAMS = {
    "pool_map_own_function": job("""
        from multiprocessing import Pool
        def sq(x):
            return x * x
        if __name__ == '__main__':
            with Pool(2) as p:
                print(p.map(sq, range(5)))
    """),
    "spawn_pool_own_function": job("""
        import multiprocessing as mp
        def sq(x):
            return x * x
        if __name__ == '__main__':
            with mp.get_context('spawn').Pool(2) as p:
                print(p.map(sq, range(5)))
    """, wall_s=20),
    "pickle_own_class": job("""
        import pickle
        class Point:
            def __init__(self, x): self.x = x
        def make(x): return Point(x)
        p = pickle.loads(pickle.dumps(Point(3)))
        f = pickle.loads(pickle.dumps(make))
        print(p.x, f(4).x, __name__)
    """),
}


@pytest.mark.parametrize("name", sorted(MAIN_PROGRAMS))
def test_program_runs_as_real_main(backend, name):
    v = backend.run(MAIN_PROGRAMS[name])
    assert v["status"] == "passed", (name, v["stderr"][-600:])
    assert v["stdout"].strip() in ("[0, 1, 4, 9, 16]", "3 4 __main__")


# --- nothing a candidate does makes the sandbox fail -----------------------------------------------

CALL_FLOAT = {"kind": "call", "fn_name": "f", "cases": [{"args": [1], "expected": 2.5}], "float_tol": 1e-6}
BREAKERS = {
    "mode000_nested_dirs": (job("""
        import os
        for top in ('.', '/tmp', '/dev/shm'):
            p = os.path.join(top, 'a')
            os.makedirs(p + '/b/c/d')
            open(p + '/b/c/d/f', 'w').write('x')
            for q in (p + '/b/c/d', p + '/b/c', p + '/b', p):
                os.chmod(q, 0)
    """), {"passed"}),
    "deep_tree_1500": (job("""
        import os
        os.chdir('/work')
        for i in range(1500):
            os.mkdir('d'); os.chdir('d')
        os.chmod('.', 0)
        print('deep')
    """), {"passed"}),
    "huge_int_where_float_expected": (job("def f(x): return 10**400", CALL_FLOAT), {"failed"}),
    "deep_json_answer": (job("""
        def f(x):
            v = []
            for _ in range(100000):
                v = [v]
            return v
    """, CALL_FLOAT), {"failed"}),
    "deep_json_forged_line": (job("""
        import os
        def f(x):
            for fd in range(3, 20):
                try:
                    os.write(fd, b'{"i": 0, "value": ' + b'{"t": "list", "v": [' * 50000 + b']}' * 50000 + b'}\\n')
                except OSError:
                    pass
            return 0
    """, CALL_FLOAT), {"failed"}),
    "deep_value_to_tester": (job("""
        def f(x):
            v = []
            for _ in range(100000):
                v = [v]
            return v
    """, {"kind": "assert", "code": "assert f(1) == []\n"}), {"failed"}),
    "memfd_flood": (job("""
        import os
        fds = []
        while True:
            fd = os.memfd_create('x')  # pages in no process's RSS, each file under the file-size cap
            os.write(fd, b'x' * (16 << 20))
            fds.append(fd)
    """, memory_mb=256, disk_mb=32), {"memory_limit"}),
    # a child that execs is dumpable again, so it can lower its own OOM score to the server's
    # before the flood: the OOM killer may then take the zygote or the server itself
    "memfd_flood_lowered_oom_score": (job("""
        import subprocess
        flood = (
            "open('/proc/self/oom_score_adj', 'w').write('0')\\n"
            "import os\\n"
            "fds = []\\n"
            "while True:\\n"
            "    fd = os.memfd_create('x')\\n"
            "    os.write(fd, b'x' * (16 << 20))\\n"
            "    fds.append(fd)\\n")
        subprocess.run(["/usr/bin/python3", "-c", flood])
    """, memory_mb=256, disk_mb=32), {"memory_limit"}),
    "mmap_exhaustion": (job("""
        import mmap
        maps = []
        while True:
            m = mmap.mmap(-1, 64 << 20)
            m.write(b'x' * (64 << 20))
            maps.append(m)
    """, memory_mb=256, disk_mb=32), {"memory_limit"}),
    "children_exhaustion": (job("""
        import os, time
        for _ in range(8):
            if os.fork() == 0:
                b = b'x' * (768 << 20)  # filled in C: the pages are touched at once
                time.sleep(60)
                os._exit(0)
        while True:
            try: os.wait()
            except ChildProcessError: break
    """, wall_s=15), {"memory_limit"}),
}


MEMORY_TREE = ("memfd_flood", "memfd_flood_lowered_oom_score", "children_exhaustion")  # need a memory cgroup


@pytest.mark.parametrize("name", sorted(BREAKERS))
def test_candidate_cannot_break_the_sandbox(backend, name):
    j, allowed = BREAKERS[name]
    if name in MEMORY_TREE and getattr(backend, "tree_memory_limit", True) is False:
        pytest.skip("this backend bounds memory per process only (no memory cgroup here)")
    v = backend.run(j)
    assert v["status"] in allowed, (name, v["status"], v.get("error"), v["stderr"][-400:])
    assert_clean(backend)


def test_breakers_concurrently(backend):
    names = [n for n in sorted(BREAKERS) if getattr(backend, "tree_memory_limit", True) or
             n not in MEMORY_TREE]
    verdicts = backend.run_many([BREAKERS[n][0] for n in names])
    for n, v in zip(names, verdicts):
        assert v["status"] in BREAKERS[n][1], (n, v["status"], v.get("error"))
    assert_clean(backend)


# --- the local backend is as tight as docker -------------------------------------------------------

def test_no_host_process_or_environment_visible(backend, monkeypatch):
    """/proc shows only the sandbox's own processes; no environ or cmdline there holds the host's
    environment or paths (bubblewrap's init used to be pid 1 with the host's whole environment)."""
    import sys

    secret = "s3cr3t-" + os.urandom(6).hex()
    monkeypatch.setenv("GRPO_TEST_SECRET", secret)
    v = backend.run(job("""
        import os
        for p in sorted(os.listdir('/proc')):
            if p.isdigit():
                for f in ('environ', 'cmdline'):
                    try:
                        print(p, f, open(f'/proc/{p}/{f}', 'rb').read())
                    except OSError as e:
                        print(p, f, 'denied')
        print(dict(os.environ))
    """))
    assert v["status"] == "passed", v
    assert secret not in v["stdout"]
    for host_path in (sys.prefix, os.getcwd(), "bwrap", "grpo-sandbox-runner"):
        assert host_path not in v["stdout"], host_path


def test_only_scratch_is_writable_and_capped(backend):
    v = backend.run(job("""
        import os
        for d in ('/', '/etc', '/opt', '/dev', '/usr', '/work', '/tmp', '/dev/shm'):
            try:
                open(os.path.join(d, 'probe'), 'w').write('x'); os.unlink(os.path.join(d, 'probe'))
                st = os.statvfs(d)
                print(d, 'writable', st.f_blocks * st.f_frsize >> 20, st.f_files)
            except OSError:
                print(d, 'read-only')
    """, disk_mb=64))
    assert v["status"] == "passed", v
    rows = {ln.split()[0]: ln.split()[1:] for ln in v["stdout"].splitlines()}
    for d in ("/", "/etc", "/opt", "/dev", "/usr"):
        assert rows[d] == ["read-only"], (d, rows[d])
    for d in ("/work", "/tmp"):
        assert rows[d][0] == "writable" and int(rows[d][1]) <= 64, (d, rows[d])
    assert rows["/dev/shm"][0] == "writable" and int(rows["/dev/shm"][1]) <= 64
    if os.geteuid() == 0 or backend.name == "docker":
        assert all(int(rows[d][2]) <= 16384 for d in ("/work", "/tmp")), rows  # inode caps


def test_namespaces_ptrace_and_mounts_refused(backend):
    v = backend.run(job("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        print('unshare_user', libc.unshare(0x10000000))
        print('unshare_net', libc.unshare(0x40000000))
        print('ptrace', libc.ptrace(16, 1, 0, 0))
        print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print('fork ok')
    """))
    assert v["status"] == "passed", v
    assert v["stdout"].split("\n")[:5] == ["unshare_user -1", "unshare_net -1", "ptrace -1", "mount -1", "fork ok"]


def test_nothing_reaches_the_next_run_through_the_zygote():
    """The docker backend forks every process from a pre-imported zygote: what one run changes in
    its (copied) memory, modules, environment and files is gone for the next, in the same container."""
    b = make_backend("docker", parallel=1)
    try:
        first = b.run(job("""
            import builtins, os, sys, json
            os.environ['LEAK'] = '1'
            builtins.LEAK = 1
            json.LEAK = 1
            for m in list(sys.modules.values()):
                try: m.LEAK = 1
                except Exception: pass
            sys.path.insert(0, '/work/leak')
            open('/tmp/leak', 'w').write('x')
            print(os.getppid() != 1, sys.modules['__main__'].__file__)
        """))
        assert first["status"] == "passed", first
        second = b.run(job("""
            import builtins, os, sys, json
            print(os.environ.get('LEAK'), hasattr(builtins, 'LEAK'), hasattr(json, 'LEAK'),
                  any(getattr(m, 'LEAK', None) == 1 for m in list(sys.modules.values())),
                  '/work/leak' in sys.path, os.path.exists('/tmp/leak'))
        """))
        assert second["status"] == "passed", second
        assert second["stdout"].split() == ["None", "False", "False", "False", "False", "False"]
        assert first["box"]["uid"] == second["box"]["uid"] and second["box"]["run"] == first["box"]["run"] + 1
        assert first["stdout"].split()[0] == "True"  # forked by the zygote, not by the server (pid 1)
    finally:
        b.close()


def test_oom_that_takes_the_docker_server_is_memory_limit():
    """When a run's OOM kills the container's server itself (the victim the kernel picks once a
    candidate's child has lowered its own OOM score), the engine's OOM event makes the verdict
    memory_limit, not sandbox_error, and the pool goes on with a fresh container. The server is
    made the victim here from outside: its OOM score raised, a hog started next to the run."""
    import subprocess
    import time

    b = make_backend("docker", parallel=1)
    try:
        warm = b.run(job("print(1)", memory_mb=128, disk_mb=16))
        assert warm["status"] == "passed", warm
        (c,) = [c for pool in b._idle.values() for c in pool]
        out = {}
        t = threading.Thread(target=lambda: out.update(b.run(job("import time; time.sleep(8)", wall_s=20,
                                                                 memory_mb=128, disk_mb=16))))
        t.start()
        time.sleep(1.5)  # the candidate is running: every process but the server gets score 0, the server 1000
        subprocess.run(["docker", "exec", "-u", "0", c.container.id, "python3", "-c", textwrap.dedent("""
            import os
            for p in os.listdir('/proc'):
                if p.isdigit() and p != '1':
                    try: open(f'/proc/{p}/oom_score_adj', 'w').write('0')
                    except OSError: pass
            open('/proc/1/oom_score_adj', 'w').write('1000')
        """)], check=True, capture_output=True, timeout=60)
        subprocess.run(["docker", "exec", "-u", "0", c.container.id, "python3", "-c",
                        "b = []\nwhile True: b.append(bytearray(8 << 20))"], capture_output=True, timeout=60)
        t.join(60)
        assert out["status"] == "memory_limit", out
        assert "OOM" in out["error"]
        after = b.run(job("print(2)", memory_mb=128, disk_mb=16))
        assert after["status"] == "passed" and after["box"]["uid"] != warm["box"]["uid"], after
    finally:
        b.close()


def test_oom_score_floor_where_the_engine_grants_it():
    """With CAP_SYS_RESOURCE the server is unkillable by the OOM killer and neither the candidate
    nor a child it execs can lower its score; an engine that cannot grant it (ours runs in a
    container without it) starts containers without it and says so, and the child can lower its
    score (the case test_oom_that_takes_the_docker_server_is_memory_limit covers)."""
    b = make_backend("docker", parallel=1)
    try:
        v = b.run(job("""
            import subprocess
            lower = ("try:\\n    open('/proc/self/oom_score_adj', 'w').write('0')\\n    print('lowered')\\n"
                     "except OSError:\\n    print('refused')\\n")
            print(open('/proc/self/oom_score_adj').read().strip(), open('/proc/1/oom_score_adj').read().strip())
            print(subprocess.run(['/usr/bin/python3', '-c', lower], capture_output=True, text=True).stdout.strip())
        """))
        assert v["status"] == "passed", v
        own, server, child = v["stdout"].split()
        assert own == "1000"
        if b.oom_pinned:
            assert (server, child) == ("-1000", "refused")
        else:
            assert (server, child) == ("0", "lowered")
    finally:
        b.close()
