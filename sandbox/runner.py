"""The candidate side of a sandboxed run (untrusted: everything here shares a process with the
candidate). It applies hard rlimits, runs the candidate's code, and answers the harness's
requests one at a time over a pipe. It decides nothing: values go back as tagged JSON and the
harness compares them in a process the candidate cannot reach.

Usage: python3 -I -S runner.py CMD_FD RESULT_FD   (stdlib only; runs inside the sandbox)
"""

import marshal
import os
import resource
import sys
from _json import encode_basestring_ascii as _quote  # the C half of json: no `re` import, fast start

MAX_DEPTH = 200  # deeper values are reported as opaque so encoding cannot recurse forever


def set_limits(limits):
    """Apply rlimits with hard caps the candidate cannot raise back."""
    mb = 1024 * 1024
    cpu = max(1, int(round(limits["cpu_s"])))
    # SIGXCPU at the soft limit ends the process with a signal the harness reads as a timeout;
    # the hard limit one second later is a SIGKILL for programs that ignore SIGXCPU
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    pairs = [
        (resource.RLIMIT_FSIZE, int(limits["disk_mb"]) * mb),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
    ]
    if limits.get("as_mb"):
        pairs.append((resource.RLIMIT_AS, int(limits["as_mb"]) * mb))
    if limits.get("nproc"):
        pairs.append((resource.RLIMIT_NPROC, int(limits["nproc"])))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def encode(value, depth=0):
    """Tag a value with its exact builtin type; anything else becomes an opaque object tag."""
    t = type(value)  # type(), not isinstance: subclasses of int/str could carry a lying __eq__
    if depth > MAX_DEPTH:
        return {"t": "object", "type": "too deep"}
    if t is int:
        # hex: int <-> decimal str conversion is capped at 4300 digits, base 16 is not
        return {"t": "int", "v": value} if value.bit_length() <= 63 else {"t": "int", "hex": hex(value)}
    if value is None or t is bool or t is str:
        return {"t": t.__name__ if value is not None else "none", "v": value}
    if t is float:
        return {"t": "float", "v": repr(value)}  # repr keeps nan/inf, which JSON cannot
    if t is complex:
        return {"t": "complex", "v": [repr(value.real), repr(value.imag)]}
    if t is bytes:
        return {"t": "bytes", "v": value.hex()}
    if t in (list, tuple):
        return {"t": t.__name__, "v": [encode(x, depth + 1) for x in value]}
    if t in (set, frozenset):  # sorted: equal sets encode equally whatever their iteration order
        return {"t": t.__name__, "v": sorted((encode(x, depth + 1) for x in value), key=dumps)}
    if t is dict:
        items = [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]
        return {"t": "dict", "v": sorted(items, key=lambda kv: dumps(kv[0]))}
    return {"t": "object", "type": t.__name__[:100]}


def strict_compare(op, a, b):
    """A comparison in the candidate's process that never calls the candidate's dunder methods:
    equality on exact-type encodings (ints and floats by value), ordering only between plain
    numbers or strings, membership by strict equality."""
    num = (int, float)
    if op in ("==", "!="):
        if type(a) in num and type(b) in num:
            hit = a == b
        else:
            hit = encode(a) == encode(b)
        return hit if op == "==" else not hit
    if op in ("is", "is not"):
        return (a is b) if op == "is" else (a is not b)
    if op in ("in", "not in"):
        if type(b) is str and type(a) is str:
            hit = a in b
        elif type(b) in (list, tuple, set, frozenset, dict):
            hit = any(strict_compare("==", a, x) for x in b)
        else:
            hit = False
        return hit if op == "in" else not hit
    plain = (type(a) in num and type(b) in num) or (type(a) is str and type(b) is str)
    if not plain:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def dumps(obj):
    """JSON text for the tagged values encode() builds (None, bool, int, str, list, dict only)."""
    t = type(obj)
    if obj is None:
        return "null"
    if t is bool:
        return "true" if obj else "false"
    if t is int:
        return str(obj)
    if t is str:
        return _quote(obj)
    if t is list:
        return "[" + ",".join([dumps(x) for x in obj]) + "]"
    return "{" + ",".join([_quote(k) + ":" + dumps(v) for k, v in obj.items()]) + "}"


def read_frame(fd):
    """One length-prefixed marshal frame from the harness (trusted direction), or None at EOF."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    return marshal.loads(_read_exact(fd, int.from_bytes(head, "big")) or b"")


def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def main():
    cmd_fd, res_fd = int(sys.argv[1]), int(sys.argv[2])
    job = read_frame(cmd_fd)
    nonce = job["nonce"]

    def send(msg):
        msg["nonce"] = nonce
        data = (dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(res_fd, data):]

    set_limits(job["limits"])
    code = job["code"]
    if job["mode"] == "script":
        # the harness's pipes are closed so the program sees only stdin/stdout/stderr
        os.close(cmd_fd)
        os.close(res_fd)
        sys.argv = ["main.py"]
        ns = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
        exec(compile(code, "main.py", "exec"), ns)
        return
    ns = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compile(code, "solution.py", "exec"), ns)
    except BaseException as exc:  # SystemExit included: a solution must define, not exit
        send({"load_error": format_error(exc)})
        return
    if job.get("entry_point") and job["entry_point"] in ns:
        ns["candidate"] = ns[job["entry_point"]]  # HumanEval's check(candidate) convention
    current = [None]

    def check(op, a, b):
        # an assert inside a test statement: the harness decides, from the two values
        send({"i": current[0], "check": [op, encode(a), None if op in ("truth", "not") else encode(b)]})

    # bound after the candidate's code ran, so its own definitions of these names are replaced
    ns["__grpo_cmp__"] = strict_compare
    ns["__grpo_check__"] = check
    send({"ready": True})
    target = None
    while True:
        req = read_frame(cmd_fd)
        if req is None or "end" in req:
            break
        i = current[0] = req["i"]
        try:
            if "stmt" in req:
                exec(compile(req["stmt"], f"test_{i}", "exec"), ns)
                value = None
            elif "expr" in req:
                value = eval(compile(req["expr"], f"test_{i}", "eval"), ns)
            else:
                if target is None:
                    target = resolve(ns, job)
                value = target(*req["args"])
            out = {"i": i, "value": encode(value)}
        except BaseException as exc:
            out = {"i": i, "error": format_error(exc)}
        send(out)


def resolve(ns, job):
    """The function a call-based test calls: a top-level function or a method of a fresh class instance."""
    cls = job.get("class_name")
    if cls is None and job["fn_name"] not in ns and isinstance(ns.get("Solution"), type):
        cls = "Solution"  # LeetCode-style solutions (APPS / LiveCodeBench) put the function on a class
    if cls:
        return getattr(ns[cls](), job["fn_name"])
    return ns[job["fn_name"]]


def format_error(exc):
    """``TypeName: message`` plus the last lines of the traceback, kept short."""
    import traceback  # only on errors: it pulls in linecache and friends

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
    return f"{type(exc).__name__}: {str(exc)[:300]}\n{tb[-1000:]}"


if __name__ == "__main__":
    main()
