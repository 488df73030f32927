"""The candidate side of a sandboxed run (untrusted: everything here shares a process with the
candidate). It applies hard rlimits, loads the candidate's code, and answers requests one at a
time. It decides nothing: values go back as type-tagged JSON (handles for anything that is not
plain data) and are compared in another process, under another uid, that the candidate cannot
reach. Patching anything here (encode, os.write, marshal, builtins) only changes what the
candidate answers, which it controls anyway.

Modes: ``script`` (the program as a real ``__main__``), ``call`` (harness requests: call one
function), ``serve`` (the trusted tester's requests: names, calls, attributes, iteration on
handles; test-side objects arrive as ``Remote`` stand-ins whose operations run in the tester),
``exec`` (exec a binary, e.g. a compiled C++ program, from memory).

Usage: python3 -I -S runner.py CMD_FD RESULT_FD [REQ_FD ANS_FD]   (stdlib only; runs in the sandbox)
"""

import builtins
import marshal
import operator
import os
import resource
import sys
from _json import encode_basestring_ascii as _quote  # the C half of json: no `re` import, fast start

_read, _write = os.read, os.write  # the channel's own, bound before the candidate (or a test's patch) can swap them
MAX_DEPTH = 200  # deeper values cross as handles, so encoding cannot recurse forever
MAX_HANDLES = 100_000


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


class Handles:
    """Objects that are not plain data stay here; the other side gets their id."""

    def __init__(self):
        self.objs = []
        self.once = {}  # id(cls) -> its id, for exception classes: the tester keeps one class per class

    def put_once(self, obj):
        i = self.once.get(id(obj))
        if i is None:
            i = self.once[id(obj)] = self.put(obj)  # kept in objs, so id(obj) is never reused
        return i

    def put(self, obj):
        if len(self.objs) >= MAX_HANDLES:
            raise MemoryError("too many handles")
        self.objs.append(obj)
        return len(self.objs) - 1

    def get(self, i):
        return self.objs[i]


def encode(value, handles=None, depth=0):
    """Tag a value with its exact builtin type; anything else becomes a handle (or an opaque tag)."""
    t = type(value)  # type(), not isinstance: subclasses of int/str could carry a lying __eq__
    if depth > MAX_DEPTH:
        return _handle(value, handles)
    if t is Raw:  # the names answer, already encoded
        return {"t": "raw", "v": list(value)}
    if t is Handle:  # a forced handle (iterators)
        return _handle(value.obj, handles)
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
        return {"t": t.__name__, "v": [encode(x, handles, depth + 1) for x in value]}
    if t in (set, frozenset):  # sorted: equal sets encode equally whatever their iteration order
        return {"t": t.__name__, "v": sorted((encode(x, handles, depth + 1) for x in value), key=dumps)}
    if t is dict:
        items = [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in dict.items(value)]
        return {"t": "dict", "v": sorted(items, key=lambda kv: dumps(kv[0]))}
    if t is Remote:  # a test-side object going back: the tester gets its own object again
        return {"t": "handle", "ref": value._id}
    stdlib = _stdlib_container(value, t, handles, depth)
    return stdlib if stdlib is not None else _handle(value, handles)


# builtin types a defaultdict's factory may be named by (anything else crosses as a handle)
FACTORIES = ("int", "float", "complex", "str", "bytes", "bool", "list", "tuple", "dict", "set", "frozenset")


def _stdlib_container(value, t, handles, depth):
    """Counter, OrderedDict, defaultdict, deque and plain namedtuples as tagged data (exact types
    only, so a subclass with methods of its own stays a handle); a dataclass instance as a handle
    that says so (the tester compares its fields). None: not one of them."""
    mod = sys.modules.get("collections")
    if mod is not None:
        enc = lambda x: encode(x, handles, depth + 1)  # noqa: E731
        if t is mod.Counter or t is mod.OrderedDict:  # in order: OrderedDict equality depends on it
            return {"t": "counter" if t is mod.Counter else "odict",
                    "v": [[enc(k), enc(v)] for k, v in dict.items(value)]}
        if t is mod.defaultdict:
            f = value.default_factory
            name = getattr(f, "__name__", None)
            factory = name if name in FACTORIES and f is getattr(builtins, name) else \
                (None if f is None else enc(f))
            return {"t": "ddict", "v": [[enc(k), enc(v)] for k, v in dict.items(value)], "factory": factory}
        if t is mod.deque:
            return {"t": "deque", "v": [enc(x) for x in value], "maxlen": value.maxlen}
        if _plain_namedtuple(t):
            return {"t": "ntuple", "name": str(t.__name__)[:100], "fields": list(t._fields),
                    "v": [enc(x) for x in tuple.__iter__(value)]}
    if handles is not None and not isinstance(value, type) and "__dataclass_fields__" in getattr(t, "__dict__", {}) \
            and getattr(getattr(t, "__dataclass_params__", None), "eq", False) is True:
        out = _handle(value, handles)
        out["dc"] = True
        return out
    return None


_NT_STANDARD = frozenset(("__module__", "__doc__", "__slots__", "__new__", "__repr__", "__getnewargs__",
                          "__match_args__", "__annotations__", "__orig_bases__", "__qualname__", "_make", "_asdict",
                          "_replace", "_fields", "_field_defaults", "__getstate__"))


def _plain_namedtuple(t):
    """A class collections.namedtuple / typing.NamedTuple made, with nothing of the program's own."""
    fields = t.__dict__.get("_fields")
    return (t.__bases__ == (tuple,) and type(fields) is tuple and all(type(f) is str for f in fields)
            and set(t.__dict__) <= _NT_STANDARD | set(fields))


def _handle(value, handles):
    name = type(value).__name__
    name = name[:100] if type(name) is str else "?"
    if handles is None:
        return {"t": "object", "type": name}
    if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ != "builtins":
        return _exception_class(value, handles)
    return {"t": "handle", "id": handles.put(value), "type": name, "call": callable(value)}


def _exception_class(cls, handles):
    """A non-builtin exception class as a handle with its name and bases (builtin ones by name),
    so the tester can make one real exception class standing for it (see tester.Channel.proxy)."""
    bases = [{"builtin": b.__name__} if b.__module__ == "builtins" else _exception_class(b, handles)
             for b in cls.__bases__ if issubclass(b, BaseException)]
    name = cls.__name__ if type(cls.__name__) is str else "?"
    return {"t": "handle", "id": handles.put_once(cls), "type": "type", "call": True,
            "exc": {"name": name[:100], "bases": bases}}


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


def read_frame(fd, loads=marshal.loads):
    """One length-prefixed frame from the trusted side, or None at EOF."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, int.from_bytes(head, "big"))
    return None if body is None else loads(body)


def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = _read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def writer(fd):
    """A function that writes one JSON line to ``fd``."""
    def send(msg):
        data = (dumps(msg) + "\n").encode()
        while data:
            data = data[_write(fd, data):]
    return send


def new_module(name, filename):
    """A real module object registered in sys.modules, so pickle and multiprocessing find its names."""
    mod = type(sys)(name)
    mod.__file__ = filename
    mod.__builtins__ = __builtins__
    sys.modules[name] = mod
    return mod


def main():
    fds = [int(a) for a in sys.argv[1:]]
    cmd_fd, res_fd = fds[0], fds[1]
    job = read_frame(cmd_fd)
    send = writer(res_fd)
    set_limits(job["limits"])
    mode = job["mode"]
    if mode == "exec":
        run_exec(job, cmd_fd, res_fd)
        return
    if mode == "script":
        # the harness's pipes are closed so the program sees only stdin/stdout/stderr
        os.close(cmd_fd)
        os.close(res_fd)
        sys.argv = ["main.py"]
        # a real __main__ module: pickle and multiprocessing look functions and classes up there;
        # on disk too, as under `python3 main.py`, so the spawn start method can re-run it by path
        path = os.path.join(os.getcwd(), "main.py")
        try:
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(job["code"])
        except OSError:
            pass
        mod = new_module("__main__", path)
        exec(compile(job["code"], "main.py", "exec"), mod.__dict__)
        return
    mod = new_module("solution", "/work/solution.py")
    ns = mod.__dict__
    try:
        exec(compile(job["code"], "solution.py", "exec"), ns)
    except BaseException as exc:  # SystemExit included: a solution must define, not exit
        send({"load_error": format_error(exc)})
        return
    send({"ready": True})
    if mode == "serve":
        os.umask(0)  # files the candidate makes in the shared /work are the test's to change too
        os.close(cmd_fd)
        serve(mod, fds[2], writer(fds[3]))
        return
    target = None
    while True:  # call mode: the harness sends argument lists and compares what comes back
        req = read_frame(cmd_fd)
        if req is None or "end" in req:
            break
        i = req["i"]
        try:
            if target is None:
                target = resolve(ns, job)
            out = {"i": i, "value": encode(target(*req["args"]))}
        except BaseException as exc:
            out = {"i": i, "error": format_error(exc)}
        send(out)


def run_exec(job, cmd_fd, res_fd):
    """Exec ``argv`` (or a binary sent in the job, from an anonymous memory file) in place of the runner."""
    os.close(cmd_fd)
    os.close(res_fd)
    argv = job["argv"]
    env = job.get("env") or dict(os.environ)
    if job.get("binary") is not None:
        fd = os.memfd_create("prog", 0)
        data = memoryview(job["binary"])
        while data:
            data = data[_write(fd, data):]
        os.execve(fd, argv, env)
    os.execve(argv[0], argv, env)


_session = None  # (req_fd, send, loads, handles, mod) while serving the tester: what a Remote talks through


def serve(mod, req_fd, send):
    """Answer the tester's requests: every value crosses as tagged data, other objects as handles."""
    import pickle

    global _session
    handles = Handles()
    handles.put(mod)  # handle 0: the solution module
    remotes = {}

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            if type(pid) is tuple:  # a test-side object passed by reference
                if pid[1] not in remotes:
                    remotes[pid[1]] = Remote(pid[1], pid[2])
                return remotes[pid[1]]
            return handles.get(pid)  # a handle of ours the tester passes back

    def loads(data):
        import io

        return Loader(io.BytesIO(data)).load()

    _session = (req_fd, send, loads, handles, mod)
    while True:
        req = read_frame(req_fd, loads)
        if req is None:
            return
        send(respond(req, handles, mod))


_MUTABLE = (list, dict, set, bytearray)


def _snapshot(req):
    """marshal images of a call's mutable plain arguments (None: not marshallable, always sent back)."""
    out = {}
    args, kw = req.get("args", ()), req.get("kw", {})
    for key, a in [*enumerate(args), *kw.items()]:
        if type(a) in _MUTABLE:
            try:
                out[key] = (a, marshal.dumps(a))
            except ValueError:
                out[key] = (a, None)
    return out


def _changed(snap, handles):
    """The arguments a call changed in place, so the tester can change its own objects alike."""
    after = {}
    for key, (a, before) in snap.items():
        try:
            same = before is not None and marshal.dumps(a) == before
        except ValueError:
            same = False
        if not same:
            after[str(key)] = encode(a, handles)
    return after


MAX_FORWARD = 4 << 20  # characters of output one answer carries back to the tester


class _Capture:
    """sys.stdout / sys.stderr while the tester's own is redirected (capsys, a patched sys.stdout):
    what the candidate prints goes back with the answer, as text for the test's stream."""

    encoding, errors = "utf-8", "replace"

    def __init__(self):
        self.parts, self.n = [], 0

    def write(self, s):
        if type(s) is not str:
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self.n < MAX_FORWARD:
            self.parts.append(s[:MAX_FORWARD - self.n])
            self.n += len(self.parts[-1])
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self):
        return "".join(self.parts)


def respond(req, handles, mod):
    """The answer record to one tester request (with a call's in-place changes to its arguments)."""
    cap = req.get("cap") if type(req) is dict else None
    if cap:
        saved = sys.stdout, sys.stderr
        out_c, err_c = _Capture(), _Capture()
        sys.stdout, sys.stderr = (out_c if cap[0] else saved[0]), (err_c if cap[1] else saved[1])
    try:
        out = _respond(req, handles, mod)
    finally:
        if cap:
            sys.stdout, sys.stderr = saved
    if cap:
        for key, c in (("out", out_c), ("err", err_c)):
            if c.n:
                out[key] = c.text()
    return out


def _respond(req, handles, mod):
    try:
        snap = _snapshot(req) if type(req) is dict and req.get("op") == "call" else None
        out = {"value": encode(answer(req, handles, mod), handles)}
        if snap:
            after = _changed(snap, handles)
            if after:
                out["after"] = after
    except StopIteration:
        out = {"stop": True}
    except BaseException as exc:
        out = {"error": error_record(exc, handles)}
    out["rid"] = req.get("rid") if type(req) is dict else None
    return out


def remote_op(op, i, **kw):
    """Run ``op`` on the tester's object ``i`` there (its arguments cross as tagged data, like any
    answer); serve the tester's nested requests meanwhile; its result comes back by value."""
    req_fd, send, loads, handles, mod = _session
    send({"cb": op, "h": i, **{k: encode(v, handles) for k, v in kw.items()}})
    while True:
        req = read_frame(req_fd, loads)
        if req is None:
            raise SystemExit(1)  # the tester is gone
        if type(req) is dict and req.get("op") == "cb_return":
            return req.get("value")
        if type(req) is dict and req.get("op") == "cb_raise":
            import builtins

            cls = getattr(builtins, str(req.get("type")), None)
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                cls = RuntimeError
            raise cls(str(req.get("msg", "")))
        send(respond(req, handles, mod))  # the test's callable called back into the candidate


_MISSING = object()
_env0 = []  # our environment before the first change the tester sent


def _set_env(values, removed):
    if not _env0:
        _env0.append(dict(os.environ))
    if type(values) is not dict or type(removed) is not list:
        raise TypeError("malformed environment")
    new = dict(_env0[0])
    new.update(values)
    for k in removed:
        new.pop(k, None)
    os.environ.clear()
    os.environ.update(new)


_patched = {}  # (id(target), name) -> (target, stack of the values it held before each patch)


def _patch(req, mod):
    """A test's mock.patch, carried over: set (or restore) the attribute here too."""
    where, name = req["target"], req["name"]
    if type(where) is dict and where.get("solution"):
        target = mod
    elif type(where) is dict:
        import importlib

        target = importlib.import_module(where["module"])
        for part in filter(None, (where.get("qualname") or "").split(".")):
            target = getattr(target, part)
    else:
        target = where  # one of our own objects, passed back as its handle
    key = (id(target), name)
    if req["op"] == "patch":
        held = target.__dict__.get(name, _MISSING) if hasattr(target, "__dict__") else getattr(target, name, _MISSING)
        _patched.setdefault(key, (target, []))[1].append(held)
        setattr(target, name, req["value"])
        return None
    entry = _patched.get(key)
    if entry and entry[1]:
        held = entry[1].pop()
        if held is _MISSING:
            try:
                delattr(target, name)
            except AttributeError:
                pass
        else:
            setattr(target, name, held)
    return None


PATCHABLE_BUILTINS = ("input", "print", "open")  # the builtins tests commonly patch; the tester's list too
_builtins0 = {}


def _set_builtins(values):
    """The test patched some of PATCHABLE_BUILTINS (monkeypatch, mock.patch, assignment): ours are
    the test's values (stand-ins for test-side callables), the rest our own again."""
    if not _builtins0:
        _builtins0.update((n, getattr(builtins, n)) for n in PATCHABLE_BUILTINS)
    for n in PATCHABLE_BUILTINS:
        setattr(builtins, n, values[n] if type(values) is dict and n in values else _builtins0[n])


class Remote:
    """A test-side object the tester passed by reference (a lambda, a test-defined class or one of
    its instances, a generator): every operation on it runs in the tester."""

    __slots__ = ("_id", "_type")

    def __init__(self, i, type_name):
        object.__setattr__(self, "_id", i)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args, **kw):
        return remote_op("call", self._id, args=list(args), kw=kw)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return remote_op("getattr", self._id, name=name)

    def __setattr__(self, name, value):
        remote_op("setattr", self._id, name=name, value=value)

    def __iter__(self):
        return remote_op("iter", self._id)

    def __next__(self):
        return remote_op("next", self._id)

    def __len__(self):
        return remote_op("len", self._id)

    def __getitem__(self, key):
        return remote_op("getitem", self._id, key=key)

    def __contains__(self, item):
        return remote_op("contains", self._id, item=item)

    def __bool__(self):
        return remote_op("bool", self._id)

    def __str__(self):
        return remote_op("str", self._id)

    def __repr__(self):
        return remote_op("repr", self._id)

    def __enter__(self):
        return remote_op("enter", self._id)

    def __exit__(self, *exc):
        remote_op("exit", self._id)
        return False

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return hash((Remote, self._id))


def answer(req, handles, mod):
    """One request of the tester: names of the module, call, attribute, iteration, container ops."""
    op = req["op"]
    if op == "names":
        out = []
        for name, value in list(mod.__dict__.items()):
            if name.startswith("__") or type(name) is not str:
                continue
            if type(value) is type(sys):  # an imported module: the tester imports its own copy
                out.append([name, {"t": "module", "v": str(getattr(value, "__name__", ""))[:200]}])
            else:
                out.append([name, encode(value, handles)])
        return Raw(out)
    if op in ("patch", "unpatch"):
        return _patch(req, mod)
    if op == "builtins":
        return _set_builtins(req["values"])
    if op == "env":  # the test's os.environ changed: ours is our starting one with the same changes
        return _set_env(req["values"], req["removed"])
    obj = handles.get(req["h"])
    if op == "call":
        return obj(*req.get("args", ()), **req.get("kw", {}))
    if op == "getattr":
        return getattr(obj, req["name"])
    if op == "setattr":
        setattr(obj, req["name"], req["value"])
        return None
    if op == "iter":
        return Handle(iter(obj))
    if op == "next":
        return next(obj)
    if op == "len":
        return len(obj)
    if op == "getitem":
        return obj[req["key"]]
    if op == "setitem":
        obj[req["key"]] = req["value"]
        return None
    if op == "contains":
        return req["item"] in obj
    if op == "str":
        return str(obj)
    if op == "repr":
        return repr(obj)
    if op == "operator":
        name = req["name"]
        if name not in OPERATORS:
            raise ValueError(f"unknown operator {name!r}")
        args = list(req.get("args", ()))
        return getattr(operator, name)(*(args + [obj] if req.get("reflected") else [obj] + args))
    if op == "enter":
        return obj.__enter__()
    if op == "exit":
        obj.__exit__(None, None, None)
        return None
    if op == "dcfields":  # a dataclass instance's class (by id) and field values, for == in the tester
        import dataclasses

        return [id(type(obj)), [getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare],
                bool(obj.__dataclass_params__.frozen or obj.__dataclass_params__.unsafe_hash)]
    if op == "dcconvert":  # dataclasses.asdict / astuple in a test
        import dataclasses

        return dataclasses.asdict(obj) if req.get("how") == "dict" else dataclasses.astuple(obj)
    if op == "members":  # a candidate class's public attributes, for a test-defined subclass of it
        return [[n, callable(getattr(obj, n, None))] for n in dir(obj) if not n.startswith("_")]
    if op == "isinstance":
        return isinstance(req["obj"], obj)
    if op == "issubclass":
        return issubclass(req["obj"], obj)
    raise ValueError(f"unknown op {op!r}")


OPERATORS = frozenset(("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "lshift", "rshift",
                       "and_", "or_", "xor", "lt", "le", "gt", "ge", "eq", "ne", "neg", "pos", "abs", "invert"))


class Raw(list):
    """An already-encoded list (the names answer)."""


class Handle:
    """Force a handle for a value even when it is plain data (iterators)."""

    def __init__(self, obj):
        self.obj = obj


def error_record(exc, handles=None):
    """An exception as data: builtin exception classes by name, anything else as CandidateError
    (with its class as a handle, when there is a handle table)."""
    t = type(exc)
    builtin = getattr(t, "__module__", None) == "builtins" and isinstance(exc, Exception)
    try:
        msg = str(exc)[:1000]
    except BaseException:
        msg = "?"
    out = {"type": t.__name__ if builtin else "CandidateError", "name": str(t.__name__)[:100], "msg": msg,
           "tb": format_error(exc)[-800:]}
    if handles is not None and t.__module__ != "builtins":
        try:
            out["cls"] = _exception_class(t, handles)
        except BaseException:
            pass  # a class whose bases or name cannot be read: a plain CandidateError
    return out


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
    try:
        import traceback  # only on errors: it pulls in linecache and friends

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
        return f"{type(exc).__name__}: {str(exc)[:300]}\n{tb[-1000:]}"
    except BaseException:  # a candidate's exception whose __str__ raises
        return f"{type(exc).__name__}"


if __name__ == "__main__":
    main()
