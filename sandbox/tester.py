"""The trusted test process: test code, its imports and every comparison run here, under a uid of
its own that the candidate cannot signal or trace. The candidate's names are proxies: calling one
sends the arguments to the candidate process (pickled: the trusted direction) and the result comes
back as type-tagged JSON, decoded into plain builtins; anything that is not plain data comes back
as a handle whose methods run on the candidate's side. So builtins, ``math.isclose``,
``unittest`` and pytest here are the real ones, and no ``__eq__``, ``__hash__`` or ``__bool__`` of
the candidate ever runs in this process. Test-side values pickle cannot carry (lambdas, classes
defined in the test, their instances, generators) go the other way by reference: the candidate
calls back and the operation runs here, public names only (``Channel._callback``). Formats:
``assert`` (HumanEval / MBPP), ``unittest`` (TestCase modules, BigCodeBench's ``task_func``),
``pytest`` (a test file importing ``solution``).

Usage: python3 -I -S tester.py CMD_FD REPORT_FD REQ_FD ANS_FD   (stdlib, plus pytest for that format)
"""

import builtins
import functools
import importlib
import io
import json
import keyword
import marshal
import os
import pickle
import resource
import stat
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grpo_sandbox.asserts import split_tests  # noqa: E402
from grpo_sandbox.compare import ProtocolError, decode  # noqa: E402

_BUILTIN_NAMES = frozenset(vars(builtins))
# the tester's own I/O, bound before any test runs: a test's mock.patch of os.write or json must
# not reach the channel or the report
_write, _read, _dumps, _loads = os.write, os.read, json.dumps, json.loads
MAX_ANSWER = 64 << 20  # bytes of one answer; more is the candidate flooding its pipe
# builtins a test's patch of which applies in the candidate too (runner.PATCHABLE_BUILTINS)
PATCHABLE_BUILTINS = ("input", "print", "open")
SHARED = "/work"  # both processes' working directory and the tests' temp dir; never on sys.path


class CandidateGone(BaseException):
    """The candidate process ended or broke the protocol; no later call can succeed.
    A BaseException, so test code's ``except Exception`` cannot swallow it."""


class SandboxBroken(Exception):
    """The image (or host) lacks something the format needs: a sandbox_error, not the candidate's fault."""


class CandidateError(Exception):
    """An exception raised on the candidate's side: the one type such exceptions arrive as, with the
    original type's name in ``type_name``. For an ordinary builtin exception (ValueError, KeyError,
    FileNotFoundError...) it arrives as a subclass of both, named like the original, so
    ``pytest.raises(ValueError)`` and ``assertRaises(KeyError)`` still match; the protocol
    exceptions (StopIteration, StopAsyncIteration, GeneratorExit, KeyboardInterrupt, SystemExit)
    arrive as a plain CandidateError, so a candidate's StopIteration cannot end the test's ``map`` /
    ``filter`` / ``zip`` early; the candidate's own classes as their stand-ins
    (Channel._exception_class), subclasses of CandidateError too."""

    type_name = "?"


def _environ_data():
    """``os.environ``'s underlying dict (encoded keys and values): compared at every request, and
    decoding the whole environment each time would cost more than the request itself."""
    return getattr(os.environ, "_data", None) or dict(os.environ)


class Channel:
    """Requests to the candidate process and its answers, one at a time."""

    def __init__(self, req_fd: int, ans_fd: int):
        self.req_fd, self.ans_fd = req_fd, ans_fd
        self.buf = bytearray()
        self.gone: str | None = None
        self.proxies: dict[int, "Proxy"] = {}
        self.local: list = []  # test-side objects passed by reference, by the id the candidate holds
        self.local_ids: dict[int, int] = {}
        self.streams = sys.stdout, sys.stderr  # ours: output the candidate prints goes to the test's only when it redirects
        self.builtins0 = {n: getattr(builtins, n) for n in PATCHABLE_BUILTINS}
        self.builtins_sent: dict = {}
        self.subclass_bases: dict[int, type] = {}
        self.env0 = dict(os.environ)
        self.env_raw = dict(_environ_data())

    def _persistent_id(self, obj):
        if isinstance(obj, Proxy):
            return obj._id
        if _by_reference(obj):
            n = self.local_ids.get(id(obj))
            if n is None:
                n = self.local_ids[id(obj)] = len(self.local)
                self.local.append(obj)  # kept alive, so its id() is never reused
            return ("cb", n, type(obj).__name__[:100])
        return None

    def _send(self, obj: dict) -> None:
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=4)
        pickler.persistent_id = self._persistent_id
        try:
            pickler.dump(obj)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise TypeError(f"argument cannot cross to the candidate's process: {exc}") from None
        data = out.getvalue()
        try:
            _write(self.req_fd, len(data).to_bytes(4, "big"))
            view = memoryview(data)
            while view:
                view = view[_write(self.req_fd, view):]
        except OSError:
            self._lost("the candidate process ended")

    def request(self, op: str, **kw):
        """Send one request; the decoded answer, or the candidate's exception raised here."""
        if self.gone:
            raise CandidateGone(self.gone)
        self._sync_builtins()
        self._sync_env()
        rid = os.urandom(6).hex()  # answers must echo it: stray lines from the candidate's threads break the run
        cap = [sys.stdout is not self.streams[0], sys.stderr is not self.streams[1]]
        self._send({"op": op, "rid": rid, **({"cap": cap} if any(cap) else {}), **kw})
        msg = self._answer()
        while "cb" in msg:  # the candidate uses a test-side object we passed: run it here, answer, wait on
            self._callback(msg)
            msg = self._answer()
        if msg.get("rid") != rid:
            self._lost("an answer to a request that was not made")
        # what the candidate printed meanwhile, as text into the test's own stream (capsys, a patched
        # sys.stdout): never into the report, which is a pipe of its own
        for key, on, stream in (("out", cap[0], "stdout"), ("err", cap[1], "stderr")):
            if on and type(msg.get(key)) is str:
                getattr(sys, stream).write(msg[key])
        if "error" in msg:
            raise self._error(msg["error"])
        if "stop" in msg:  # the end of a candidate iterator; from any other op, a StopIteration like any error
            if op == "next":
                raise StopIteration
            raise _exception({"type": "StopIteration", "name": "StopIteration", "msg": ""})
        if "value" not in msg:
            self._lost("malformed answer")
        try:
            if op == "call" and "after" in msg:
                self._write_back(kw.get("args", ()), kw.get("kw", {}), msg["after"])
            return decode(msg["value"], self.proxy)
        except (ProtocolError, RecursionError, MemoryError, ValueError, TypeError, OverflowError, KeyError) as exc:
            self._lost(f"malformed answer: {type(exc).__name__}")

    def _error(self, err) -> CandidateError:
        """A candidate's exception record as the dedicated type: its class's stand-in when it is not
        a builtin one (see _exception_class), else as _exception makes it."""
        cls = None
        if type(err) is dict and type(err.get("cls")) is dict and "exc" in err["cls"]:
            try:
                cls = self.proxy(err["cls"])
            except (ProtocolError, RecursionError, MemoryError, ValueError, TypeError, KeyError):
                self._lost("malformed error")
        if isinstance(cls, type) and issubclass(cls, CandidateError):
            try:
                return cls(str(err.get("msg", "")))
            except Exception:
                pass  # a builtin base whose constructor wants more than a message
        return _exception(err)

    def _sync_builtins(self) -> None:
        """The test patched ``input`` / ``print`` / ``open`` (monkeypatch, mock.patch, assignment):
        the candidate's builtins follow before it runs again, as stand-ins for the test's values."""
        now = {n: v for n in PATCHABLE_BUILTINS if (v := getattr(builtins, n, None)) is not self.builtins0[n]}
        if now.keys() != self.builtins_sent.keys() or any(now[n] is not self.builtins_sent[n] for n in now):
            self.builtins_sent = now
            self.request("builtins", values=now)

    def _sync_env(self) -> None:
        """The test changed ``os.environ`` (monkeypatch.setenv/delenv, patch.dict, assignment): the
        candidate's environment follows before it runs again, as changes to its own starting one."""
        if _environ_data() == self.env_raw:  # the common case, in about a microsecond
            return
        self.env_raw = dict(_environ_data())
        now = dict(os.environ)
        self.request("env", values={k: v for k, v in now.items() if self.env0.get(k) != v},
                     removed=[k for k in self.env0 if k not in now])

    def _write_back(self, args, kw, after) -> None:
        """A call changed mutable arguments in place (``nums[:] = ...``): change ours the same way,
        as a call in one process would have; only lists, dicts, sets and bytearrays we passed."""
        if type(after) is not dict:
            raise ProtocolError("malformed in-place changes")
        for key, tagged in after.items():
            a = args[int(key)] if key.isdigit() and int(key) < len(args) else kw.get(key)
            if type(a) not in (list, dict, set, bytearray):
                raise ProtocolError("an in-place change to an argument that cannot change")
            new = decode(tagged, self.proxy)
            want = bytes if type(a) is bytearray else type(a)
            if type(new) is not want:
                raise ProtocolError("an in-place change of an argument's type")
            if type(a) in (list, bytearray):
                a[:] = new
            else:
                a.clear()
                a.update(new)

    def _answer(self) -> dict:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_ANSWER:
                self._lost("answer too large")
            try:
                chunk = _read(self.ans_fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self._lost("the candidate process ended")
            self.buf += chunk
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        try:
            msg = _loads(line)
        except (ValueError, RecursionError, MemoryError):
            self._lost("answer is not JSON")
        if type(msg) is not dict:
            self._lost("answer is not an object")
        return msg

    def _lost(self, why: str):
        self.gone = why
        raise CandidateGone(why)

    def _callback(self, msg: dict) -> None:
        """One operation the candidate asks of a test-side object; its arguments are decoded like
        any answer (plain data and proxies), and no name starting with ``_`` is reachable, so the
        object's globals, closure and the tester's own state stay out of reach."""
        op, i = msg.get("cb"), msg.get("h")
        if type(i) is not int or not 0 <= i < len(self.local) or op not in _CALLBACK_OPS:
            self._lost("a callback to an object that was not passed")
        try:
            args = {k: decode(msg[k], self.proxy) for k in ("args", "kw", "name", "key", "item", "value") if k in msg}
        except (ProtocolError, RecursionError, MemoryError, ValueError, TypeError, OverflowError, KeyError):
            self._lost("malformed callback")
        obj = self.local[i]
        try:
            reply = {"op": "cb_return", "value": _CALLBACK_OPS[op](obj, args)}
        except CandidateGone:
            raise
        except BaseException as exc:  # back to the candidate, as the exception it caused
            reply = {"op": "cb_raise", "type": type(exc).__name__, "msg": str(exc)[:1000]}
        try:
            self._send(reply)
        except TypeError as exc:
            self._send({"op": "cb_raise", "type": "TypeError", "msg": str(exc)[:1000]})

    def _exception_class(self, info) -> type:
        """The tester's stand-in for a candidate exception class: a real subclass of CandidateError
        (and of the stand-ins for its bases, builtin ones by name as in _error_class), so
        ``pytest.raises``, ``assertRaises``, ``except`` and ``issubclass`` work with it; a protocol
        exception base (StopIteration...) is never among them. One per candidate class."""
        if type(info) is not dict or type(info.get("bases")) is not list or len(info["bases"]) > 8:
            raise ProtocolError("malformed exception class")
        name = str(info.get("name", "?"))[:100]
        bases = []
        for b in info["bases"]:
            if type(b) is dict and "builtin" in b:
                base = _error_class(str(b["builtin"])[:100]) or CandidateError
            elif type(b) is dict and "exc" in b:
                base = self.proxy(b)
            else:
                raise ProtocolError("malformed exception base")
            if base not in bases:
                bases.append(base)
        label = name if name.isidentifier() else "CandidateError"  # type() refuses some names ("\0")
        ns = {"type_name": name, "__qualname__": label, "__module__": "solution"}
        try:
            return type(label, tuple(bases) or (CandidateError,), ns)
        except TypeError:  # bases whose layouts or order do not combine here
            return type(label, (CandidateError,), ns)

    def proxy(self, tagged: dict):
        """The proxy for a handle the candidate sent (one per id, so identity holds)."""
        if "ref" in tagged:  # one of our own objects coming back
            r = tagged["ref"]
            if type(r) is not int or not 0 <= r < len(self.local):
                raise ProtocolError("a reference to an object that was not passed")
            return self.local[r]
        i = tagged.get("id")
        if type(i) is not int:
            raise ProtocolError("malformed handle")
        p = self.proxies.get(i)
        if p is None and "exc" in tagged:
            p = self.proxies[i] = self._exception_class(tagged["exc"])
        if p is None:
            cls = DataclassProxy if tagged.get("dc") is True else Proxy
            p = self.proxies[i] = cls(self, i, str(tagged.get("type", "?"))[:100], tagged.get("call") is True)
        return p


_PLAIN = frozenset((int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset))
_LIVE = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)


def _by_reference(obj) -> bool:
    """Whether a test-side value crosses as a reference: what pickle would have to look up in a
    module the candidate does not have (lambdas, test-defined functions, classes and their
    instances) or cannot carry at all (generators). Stdlib and builtin values cross by value."""
    t = type(obj)
    if t in _PLAIN:
        return False
    if isinstance(obj, _LIVE):
        return True
    if _is_mock(obj):
        return True  # mocks record their calls here, where the test asserts on them
    if isinstance(obj, types.BuiltinMethodType):
        # ``my_list.append`` of a test-defined list subclass: by value, pickle would send "getattr of
        # that (by-reference) object", which the candidate would ask of us again, without end
        owner = getattr(obj, "__self__", None)
        return owner is not None and not isinstance(owner, types.ModuleType) and _by_reference(owner)
    mod = getattr(obj, "__module__", None) if isinstance(obj, (types.FunctionType, types.MethodType, type)) \
        else getattr(t, "__module__", None)
    root = str(mod).split(".")[0]
    return not (root == "builtins" or root in sys.stdlib_module_names)


def _is_mock(obj) -> bool:
    """A unittest.mock object, or one of its classes or functions."""
    named = isinstance(obj, (types.FunctionType, types.MethodType, type))
    return getattr(type(obj), "__module__", None) == "unittest.mock" or (
        named and getattr(obj, "__module__", None) == "unittest.mock")


def _public(name) -> str:
    if type(name) is not str or name.startswith("_"):
        raise AttributeError(f"{name!r} is not reachable across the sandbox")
    return name


def _reachable(obj, name) -> str:
    """A public name, and on a mock only what stands for the patched object (``resp.json``,
    ``f.read``): the mock's own API (``assert_*``, ``configure_mock``, ``attach_mock``,
    ``return_value``, ``reset_mock``...) would let the candidate rewrite the test's checks."""
    name = _public(name)
    if _is_mock(obj) and hasattr(type(obj), name):
        raise AttributeError(f"the mock's own {name!r} is not reachable across the sandbox")
    return name


def _setattr(obj, a):
    """Data attributes of a test-defined instance only (a linked list the candidate relinks): no
    mock, no TestCase, nothing that shadows a method or property, no callable value, so a test's
    own checks cannot be replaced by the candidate's."""
    import unittest

    name, value = _public(a.get("name")), a.get("value")
    t = type(obj)
    if isinstance(obj, (type, types.FunctionType, types.MethodType, unittest.TestCase)) or \
            _is_mock(obj) or not hasattr(obj, "__dict__"):
        raise TypeError(f"attributes of a test's {t.__name__} cannot be set across the sandbox")
    is_callable = value._callable if isinstance(value, Proxy) else callable(value)
    if callable(getattr(t, name, None)) or hasattr(getattr(t, name, None), "__set__") or is_callable:
        raise TypeError(f"{name!r} cannot be replaced across the sandbox")
    setattr(obj, name, value)


def _call(obj, a):
    args, kw = a.get("args", []), a.get("kw", {})
    if type(args) is not list or type(kw) is not dict or not all(type(k) is str for k in kw):
        raise TypeError("malformed call")
    return obj(*args, **kw)


_CALLBACK_OPS = {
    "call": _call,
    "getattr": lambda obj, a: getattr(obj, _reachable(obj, a.get("name"))),
    "setattr": _setattr,
    "iter": lambda obj, a: iter(obj),
    "next": lambda obj, a: next(obj),
    "len": lambda obj, a: len(obj),
    "getitem": lambda obj, a: obj[a.get("key")],
    "contains": lambda obj, a: a.get("item") in obj,
    "bool": lambda obj, a: bool(obj),
    "str": lambda obj, a: str(obj),
    "repr": lambda obj, a: repr(obj),
    "enter": lambda obj, a: obj.__enter__(),
    "exit": lambda obj, a: obj.__exit__(None, None, None),
}


def forward_patches(ch: Channel) -> None:
    """``mock.patch`` in a test patches the candidate's process too: the patched name there (in a
    stdlib module, a stdlib class, the solution module or a candidate object) becomes a stand-in
    for the value here, so the candidate's calls reach the test's mock, which records them here."""
    from unittest import mock

    enter, exit_ = mock._patch.__enter__, mock._patch.__exit__

    def patched_enter(self):
        new = enter(self)
        try:
            obj = self.getter()
            target = _patch_target(obj)
            if obj is builtins and self.attribute in PATCHABLE_BUILTINS:
                target = None  # the channel carries these over itself (Channel._sync_builtins)
            if target is not None:
                ch.request("patch", target=target, name=self.attribute, value=getattr(obj, self.attribute))
                self._grpo_forwarded = target
        except CandidateGone:
            raise
        except Exception:
            pass  # not carried across: the candidate keeps its own value, as before patches were forwarded
        return new

    def patched_exit(self, *exc_info):
        target = self.__dict__.pop("_grpo_forwarded", None)
        if target is not None:
            ch.request("unpatch", target=target, name=self.attribute)
        return exit_(self, *exc_info)

    mock._patch.__enter__, mock._patch.__exit__ = patched_enter, patched_exit
    # patch.dict(os.environ, ...) needs nothing here: Channel._sync_env carries any change over


def dataclass_helpers(ch: Channel) -> None:
    """``dataclasses.asdict`` / ``astuple`` / ``is_dataclass`` accept a candidate dataclass instance:
    the conversion runs where the instance lives and comes back as data (nested handles stay handles)."""
    import dataclasses

    asdict, astuple, is_dataclass = dataclasses.asdict, dataclasses.astuple, dataclasses.is_dataclass

    def convert(how, orig):
        @functools.wraps(orig)
        def wrapped(obj, **kw):
            if not isinstance(obj, DataclassProxy):
                return orig(obj, **kw)
            got = ch.request("dcconvert", h=obj._id, how=how)
            factory = kw.get("dict_factory" if how == "dict" else "tuple_factory")
            return got if factory is None else factory(list(got.items()) if how == "dict" else got)
        return wrapped

    dataclasses.asdict, dataclasses.astuple = convert("dict", asdict), convert("tuple", astuple)
    dataclasses.is_dataclass = functools.wraps(is_dataclass)(
        lambda obj: isinstance(obj, DataclassProxy) or is_dataclass(obj))


def _patch_target(obj):
    """How the candidate's side finds the object a patch targets; None when it lives only here."""
    if isinstance(obj, Proxy):
        return obj  # crosses as the candidate's own handle
    if isinstance(obj, SolutionModule):
        return {"solution": True}
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
    elif isinstance(obj, type):
        name = obj.__module__
    else:
        return None
    if name.split(".")[0] not in sys.stdlib_module_names:
        return None
    return {"module": name, "qualname": None if isinstance(obj, types.ModuleType) else obj.__qualname__}


_PROTOCOL_EXCEPTIONS = (StopIteration, StopAsyncIteration, GeneratorExit, KeyboardInterrupt, SystemExit)


@functools.cache
def _error_class(name: str):
    """CandidateError's subclass for the builtin exception ``name``; None for a protocol exception
    or a name that is not an ordinary builtin Exception class."""
    base = getattr(builtins, name, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or issubclass(base, _PROTOCOL_EXCEPTIONS):
        return None
    try:
        return type(name, (CandidateError, base), {"type_name": name, "__qualname__": name})
    except TypeError:  # a layout that does not combine
        return None


def _exception(err) -> CandidateError:
    """A candidate's exception record as the dedicated type (see CandidateError)."""
    if type(err) is not dict:
        return CandidateError("malformed error")
    kind, msg = str(err.get("type", ""))[:100], str(err.get("msg", ""))
    cls = _error_class(kind) if kind.isidentifier() else None
    if cls is not None:
        try:
            return cls(msg)
        except Exception:
            pass  # a constructor that wants more than a message (UnicodeDecodeError)
    name = kind if getattr(builtins, kind, None) is not None else str(err.get("name", "?"))[:100]
    exc = CandidateError(f"{name}: {msg}")
    exc.type_name = name
    return exc


class Proxy:
    """An object that lives in the candidate's process: attribute access, calls, iteration and
    container operations run there; equality is identity and truthiness is refused, so the
    candidate's own ``__eq__``, ``__hash__`` and ``__bool__`` never decide anything."""

    __slots__ = ("_ch", "_id", "_type", "_callable")

    def __init__(self, ch: Channel, i: int, type_name: str, is_callable: bool):
        object.__setattr__(self, "_ch", ch)
        object.__setattr__(self, "_id", i)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_callable", is_callable)

    def __call__(self, *args, **kw):
        return self._ch.request("call", h=self._id, args=args, kw=kw)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._ch.request("getattr", h=self._id, name=name)

    def __setattr__(self, name, value):
        self._ch.request("setattr", h=self._id, name=name, value=value)

    def __iter__(self):
        return self._ch.request("iter", h=self._id)

    def __next__(self):
        return self._ch.request("next", h=self._id)

    def __len__(self):
        n = self._ch.request("len", h=self._id)
        if type(n) is not int or n < 0:
            raise TypeError("__len__ of a candidate object must return a non-negative int")
        return n

    def __getitem__(self, key):
        return self._ch.request("getitem", h=self._id, key=key)

    def __setitem__(self, key, value):
        self._ch.request("setitem", h=self._id, key=key, value=value)

    def __contains__(self, item):
        return self._ch.request("contains", h=self._id, item=item) is True

    def __str__(self):
        s = self._ch.request("str", h=self._id)
        if type(s) is not str:
            raise TypeError("__str__ of a candidate object must return a str")
        return s

    def __repr__(self):
        s = self._ch.request("repr", h=self._id)
        if type(s) is not str:
            raise TypeError("__repr__ of a candidate object must return a str")
        return s

    # isinstance(x, SolutionClass) looks these up on type(SolutionClass), this class: the check runs
    # where the class lives, and only a real bool counts
    def __instancecheck__(self, obj):
        if isinstance(obj, SubclassBase):
            obj = obj._grpo_obj  # a test-defined subclass's instance: its candidate object decides
        return self._ch.request("isinstance", h=self._id, obj=obj) is True

    def __mro_entries__(self, bases):
        # ``class Mine(SolutionClass)`` in a test: a test-side base standing for the candidate class
        return (_subclass_base(self),)

    def __subclasscheck__(self, cls):
        return self._ch.request("issubclass", h=self._id, obj=cls) is True

    # == between two candidate objects is the candidate class's own __eq__ (identity when it has
    # none), as in plain Python; against a test-side value it stays identity, so a candidate object
    # that equals everything never matches the test's expected data. Only a real bool counts.
    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, Proxy):
            return False
        return self._ch.request("operator", h=self._id, name="eq", args=(other,)) is True

    def __ne__(self, other):
        if self is other:
            return False
        if not isinstance(other, Proxy):
            return True
        return self._ch.request("operator", h=self._id, name="ne", args=(other,)) is not False

    def __hash__(self):
        return hash((Proxy, self._id))

    def __bool__(self):
        raise TypeError(f"the truth value of a candidate {self._type} object is not decided across the sandbox")

    def __enter__(self):
        return self._ch.request("enter", h=self._id)

    def __exit__(self, *exc):
        # the candidate's __exit__ runs (it is told no more than that the block ended) but never
        # decides whether the test's exception, an AssertionError above all, is swallowed
        self._ch.request("exit", h=self._id)
        return False

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce_ex__(self, protocol):
        raise TypeError("candidate objects cross only as handles")


class DataclassProxy(Proxy):
    """A candidate dataclass instance (``eq=True``): a handle, so its methods run there, that equals
    another of the same class whose compared fields are equal, and hashes by them when frozen, as
    in plain Python. The fields are fetched as data at each comparison and compared here."""

    __slots__ = ()

    def _fields(self):
        got = self._ch.request("dcfields", h=self._id)
        if type(got) is not list or len(got) != 3 or type(got[0]) is not int or type(got[1]) is not list:
            raise TypeError("malformed dataclass fields")
        return got

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, DataclassProxy):
            return False
        a, b = self._fields(), other._fields()
        return a[0] == b[0] and a[1] == b[1]

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        cls, values, hashable = self._fields()
        if hashable is not True:
            raise TypeError(f"unhashable type: {self._type!r}")
        return hash((cls, tuple(values)))


class SubclassBase:
    """Stands for a candidate class under a test-defined subclass: the instance holds a candidate
    object (made by ``__init__``, so ``super().__init__(...)`` works) and every public method of the
    class it does not override calls that object's. The methods the subclass overrides are set on
    the candidate object as stand-ins for this instance's bound methods, so the candidate's own
    methods calling ``self.step()`` reach the test's override, as in plain Python (the override's
    ``super().step()`` calls the candidate class's function, not the stand-in)."""

    def __init__(self, *args, **kw):
        self._grpo_bind(type(self)._grpo_class(*args, **kw))

    def _grpo_bind(self, obj):
        object.__setattr__(self, "_grpo_obj", obj)
        object.__setattr__(self, "_grpo_stood", set())
        base = next(c for c in type(self).__mro__ if "_grpo_class" in c.__dict__)
        for name in _overrides(type(self), base):
            try:
                setattr(obj, name, getattr(self, name))  # crosses by reference: calls run here
            except CandidateGone:
                raise
            except Exception:
                continue  # a candidate class that refuses instance attributes (__slots__): no stand-in
            self._grpo_stood.add(name)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if "_grpo_obj" not in self.__dict__:  # the subclass never called super().__init__()
            self._grpo_bind(type(self)._grpo_class())
        return getattr(self._grpo_obj, name)

    def __len__(self):
        return len(self._grpo_obj)

    def __iter__(self):
        return iter(self._grpo_obj)

    def __contains__(self, item):
        return item in self._grpo_obj

    def __getitem__(self, key):
        return self._grpo_obj[key]

    def __setitem__(self, key, value):
        self._grpo_obj[key] = value

    def __str__(self):
        return str(self._grpo_obj)

    def __repr__(self):
        return repr(self._grpo_obj)


def _delegate(self, cls: Proxy, name: str):
    """The candidate's method ``name`` for a subclass instance: through the class when the object's
    own attribute is the stand-in for the test's override (``super().step()`` in that override)."""
    if name in self.__dict__.get("_grpo_stood", ()):
        return functools.partial(getattr(cls, name), self._grpo_obj)
    return getattr(self._grpo_obj, name)


@functools.cache
def _overrides(cls: type, base: type) -> tuple:
    """The candidate methods ``cls`` (a test-defined subclass of ``base``) defines again."""
    own = {n for c in cls.__mro__[:cls.__mro__.index(base)] for n, v in vars(c).items()
           if not n.startswith("_") and callable(v)}
    return tuple(sorted(n for n in own if n in base._grpo_methods))


def _subclass_base(cls: Proxy) -> type:
    """The test-side base for ``class Mine(cls)``, one per candidate class: its public methods
    delegate to the instance's candidate object (so ``super().push(x)`` finds them), its data
    attributes read through."""
    base = cls._ch.subclass_bases.get(cls._id)
    if base is not None:
        return base
    members = cls._ch.request("members", h=cls._id)
    ns = {"_grpo_class": cls, "__module__": "solution", "__qualname__": cls._type}
    methods = set()
    for pair in members if type(members) is list else ():
        if type(pair) is list and len(pair) == 2 and type(pair[0]) is str and pair[0].isidentifier() \
                and not pair[0].startswith("_"):
            name = pair[0]
            if pair[1] is True:
                ns[name] = (lambda n: lambda self, *a, **kw: _delegate(self, cls, n)(*a, **kw))(name)
                methods.add(name)
            else:
                ns[name] = property((lambda n: lambda self: getattr(self._grpo_obj, n))(name))
    ns["_grpo_methods"] = frozenset(methods)
    base = cls._ch.subclass_bases[cls._id] = type(cls._type if cls._type.isidentifier() else "Base",
                                                   (SubclassBase,), ns)
    return base


def _operator(name: str, reflected: bool = False):
    def method(self, *other):
        return self._ch.request("operator", h=self._id, name=name, args=other, reflected=reflected)
    method.__name__ = f"__{'r' if reflected else ''}{name.rstrip('_')}__"
    return method


# operators run where the object lives (the candidate's own class decides what `+` or `<` means);
# == / != / hash / bool stay identity and refusal, so no candidate object can equal an expected value
BINARY_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "lshift", "rshift",
                    "and_", "or_", "xor")
for _name in BINARY_OPERATORS:
    setattr(Proxy, f"__{_name.rstrip('_')}__", _operator(_name))
    setattr(Proxy, f"__r{_name.rstrip('_')}__", _operator(_name, reflected=True))
for _name in ("lt", "le", "gt", "ge", "neg", "pos", "abs", "invert"):
    setattr(Proxy, f"__{_name}__", _operator(_name))
del _name


# module-level names the loaders and collectors treat as protocol hooks, whatever their case of underscores
_HOOKS = frozenset(("load_tests", "setUpModule", "tearDownModule", "setup_module", "teardown_module",
                    "setup_function", "teardown_function", "pytestmark", "pytest_plugins"))


def bindable(name) -> bool:
    """Whether a name the candidate reports is bound in the tests: a public identifier (no leading
    underscore, so no dunder and no module hook such as ``__getattr__``, ``__path__``, ``__all__``,
    ``__test__`` or ``__builtins__``) that is not a keyword, a builtin, or a unittest / pytest hook
    (``load_tests``, ``pytest_*``...). The only place reported names are filtered."""
    return (type(name) is str and name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)
            and name not in _BUILTIN_NAMES and name not in _HOOKS and not name.startswith("pytest_"))


class SolutionModule(types.ModuleType):
    """``import solution`` on the trusted side: names the module did not bind at load come from the candidate."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        ch = self.__dict__["_grpo_channel"]
        return ch.request("getattr", h=0, name=name)


def candidate_names(ch: Channel) -> dict:
    """The candidate module's top-level names as proxies / data; its stdlib imports imported here."""
    answer = ch.request("names")
    out = {}
    if type(answer) is not dict or answer.get("t") != "raw" or type(answer.get("v")) is not list:
        raise CandidateGone("malformed names answer")
    for pair in answer["v"]:
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or not pair[0].isidentifier():
            raise CandidateGone("malformed names answer")
        name, tagged = pair
        if not bindable(name):
            continue  # `len = ...`, `__builtins__`, `__path__`, `load_tests`: never bound in the tests
        if name in sys.stdlib_module_names:
            tagged = {"t": "module", "v": name}  # `math = Fake()` gets the real math here
        if type(tagged) is dict and tagged.get("t") == "module":
            modname = str(tagged.get("v", ""))
            if modname.split(".")[0] in sys.stdlib_module_names:
                try:
                    out[name] = importlib.import_module(modname)
                except Exception:
                    pass
            continue
        try:
            out[name] = decode(tagged, ch.proxy)
        except (ProtocolError, RecursionError, ValueError, TypeError, OverflowError, KeyError):
            raise CandidateGone("malformed names answer") from None
    return out


class Reporter:
    """Per-test outcomes to the harness, one JSON line each, as they happen."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, msg: dict) -> None:
        data = (_dumps(msg) + "\n").encode()
        while data:
            data = data[_write(self.fd, data):]

    def test(self, name: str, status: str, error: str = "") -> None:
        msg = {"test": name[:300], "status": status}
        if error:
            msg["error"] = error[-1500:]
        self.send(msg)


def _err(exc: BaseException) -> str:
    import traceback

    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-2:])
    except Exception:
        tb = type(exc).__name__
    return tb[-1500:]


def run_asserts(job, ch, report):
    """Each top-level assert is a test; other statements are setup; all of it runs here."""
    ns = {"__name__": "__test__", "__builtins__": builtins}
    names = candidate_names(ch)
    ns.update(names)
    ep = job.get("entry_point")
    if ep and ep in names:
        ns["candidate"] = names[ep]  # HumanEval's check(candidate) convention
    setup_error = ""
    for item in split_tests(job["code"]):
        if setup_error:
            if item["test"]:
                report.test(item["src"], "error", setup_error)
            continue
        try:
            exec(compile(item["src"], f"test:{item['line']}", "exec"), ns)
        except AssertionError as exc:
            if item["test"]:
                report.test(item["src"], "failed", _err(exc))
            else:
                setup_error = _err(exc)
            continue
        except (Exception, CandidateGone) as exc:
            if item["test"]:
                report.test(item["src"], "error", _err(exc))
            else:
                setup_error = _err(exc)
            continue
        if item["test"]:
            report.test(item["src"], "passed")


def install_solution(ch) -> tuple[types.ModuleType, dict]:
    """``solution`` importable here, bound to the candidate's module."""
    mod = SolutionModule("solution")
    mod.__dict__["_grpo_channel"] = ch
    names = candidate_names(ch)
    mod.__dict__.update(names)
    sys.modules["solution"] = mod
    return mod, names


def run_unittest(job, ch, report):
    """A TestCase module; the candidate's names are bound in it (BigCodeBench) and importable as solution."""
    import unittest

    _, names = install_solution(ch)
    mod = types.ModuleType("test_solution")
    mod.__dict__.update(names)
    exec(compile(job["code"], "test_solution.py", "exec"), mod.__dict__)
    suite = _test_suite(mod)
    report.send({"total": suite.countTestCases()})

    class Result(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self.state: dict[str, tuple[str, str]] = {}

        def _set(self, test, status, err=""):
            key = test.id()
            if self.state.get(key, ("passed",))[0] == "passed" or status in ("failed", "error"):
                self.state[key] = (status, err)

        def addSuccess(self, test):
            self.state.setdefault(test.id(), ("passed", ""))

        def addFailure(self, test, err):
            self._set(test, "failed", self._exc_info_to_string(err, test))

        def addError(self, test, err):
            self._set(test, "error", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason):
            self.state[test.id()] = ("skipped", str(reason))

        def addExpectedFailure(self, test, err):
            self.state[test.id()] = ("passed", "")

        def addUnexpectedSuccess(self, test):
            self.state[test.id()] = ("failed", "unexpected success")

        def addSubTest(self, test, subtest, err):
            if err is not None:
                failed = issubclass(err[0], test.failureException)
                self._set(test, "failed" if failed else "error", self._exc_info_to_string(err, test))

        def stopTest(self, test):
            super().stopTest(test)
            key = test.id()
            status, err = self.state.get(key, ("error", "no outcome"))
            report.test(key.replace("test_solution.", "", 1), status, err)

    suite.run(Result())


def _test_suite(mod):
    """The suite of the test file's TestCase classes, as ``loadTestsFromModule`` builds it, read from
    the module's dict (no module ``__getattr__`` / ``__dir__``), and a ``load_tests`` honoured only
    when the test file itself defines it: the candidate never builds the suite."""
    import unittest

    loader = unittest.defaultTestLoader
    cases = [loader.loadTestsFromTestCase(obj) for _, obj in sorted(mod.__dict__.items())
             if isinstance(obj, type) and issubclass(obj, unittest.TestCase)]
    suite = loader.suiteClass(cases)
    hook = mod.__dict__.get("load_tests")
    if type(hook) is types.FunctionType and hook.__code__.co_filename == "test_solution.py":
        return hook(loader, suite, None)
    return suite


def _overflow_uid() -> int:
    try:
        with open("/proc/sys/kernel/overflowuid") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 65534


def trusted_path(entries) -> list:
    """The import path entries no other uid can change: each exists, is owned by root or us and is
    not group/other-writable, and no directory above it is writable by others without the sticky
    bit (so /tmp/<ours> is fine, /tmp itself never is). The candidate's files never get imported here."""
    owners = {0, os.getuid(), _overflow_uid()}  # the overflow uid: root's files seen from a user namespace

    def safe(p, leaf):
        try:
            st = os.stat(p)
        except OSError:
            return False
        shared = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        return st.st_uid in owners and (not shared or (not leaf and st.st_mode & stat.S_ISVTX))

    out = []
    for e in entries:
        if type(e) is not str or not os.path.isabs(e):
            continue  # '' or a relative entry: the working directory
        p = os.path.realpath(e)
        parents = []
        q = os.path.dirname(p)
        while q != os.path.dirname(q):
            parents.append(q)
            q = os.path.dirname(q)
        if safe(p, True) and all(safe(q, False) for q in parents):
            out.append(e)
    return out


def share_scratch() -> None:
    """The tests' temp files (``tempfile.mkdtemp``, pytest's ``tmp_path``) go in SHARED, the
    candidate's working directory too, and are made readable and writable by it: tempfile and
    pytest ask for 0700 / 0600, which would keep the candidate's uid out. Only under SHARED, which
    is group/other-writable and so never on the import path (``trusted_path``)."""
    import tempfile

    if not os.path.isdir(SHARED) or not os.access(SHARED, os.W_OK):
        return  # a backend without a shared dir (local, not root): the tests' files stay ours
    os.umask(0)
    os.environ["TMPDIR"] = SHARED
    tempfile.tempdir = None
    mkdir, open_ = os.mkdir, os.open

    def shared(path) -> bool:
        try:
            return os.path.abspath(os.fsdecode(path)).startswith(SHARED + "/")
        except (TypeError, ValueError):
            return False

    def wide_mkdir(path, mode=0o777, *a, **kw):
        return mkdir(path, 0o777 if shared(path) else mode, *a, **kw)

    def wide_open(path, flags, mode=0o777, *a, **kw):
        return open_(path, flags, 0o666 if shared(path) else mode, *a, **kw)

    os.mkdir, os.open = wide_mkdir, wide_open


def run_pytest(job, ch, report):
    """A pytest file importing ``solution``, run by pytest here, one outcome per test."""
    import tempfile

    install_solution(ch)
    import site

    site.main()  # -S left the system's site-packages (the image's python3-pytest) off sys.path
    sys.path[:] = trusted_path(sys.path)
    try:
        import pytest
    except ImportError as exc:
        raise SandboxBroken(f"pytest is not installed for the sandbox's python3: {exc}") from None

    d = tempfile.mkdtemp(prefix="grpo-tests-", dir="/tmp")  # private: the test file's dir is on sys.path
    path = os.path.join(d, "test_solution.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(job["code"])
    ini = os.path.join(d, "pytest.ini")
    with open(ini, "w") as fh:
        fh.write("[pytest]\n")  # an explicit ini file: no config is discovered from shared dirs

    class Collector:
        def __init__(self):
            self.seen: dict[str, tuple[str, str]] = {}

        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.failed or report.skipped:
                status = "passed" if report.passed else ("skipped" if report.skipped else
                                                         ("failed" if report.when == "call" else "error"))
                prev = self.seen.get(report.nodeid)
                if prev is None or prev[0] == "passed":
                    self.seen[report.nodeid] = (status, "" if report.passed else str(report.longrepr)[-1500:])

        def pytest_runtest_logfinish(self, nodeid, location):
            status, err = self.seen.get(nodeid, ("error", "no outcome"))
            report.test(nodeid.split("::", 1)[-1], status, err)

        def pytest_collection_finish(self, session):
            report_obj.send({"total": len(session.items)})

        def pytest_collectreport(self, report):
            if report.failed:
                report_obj.test("collection", "error", str(report.longrepr)[-1500:])

    report_obj = report
    sink = open(os.devnull, "w")
    sys.stdout = sink
    try:
        # tmp_path under a fresh dir of ours in the shared one (pytest's default root would be 0700)
        base = os.path.join(tempfile.mkdtemp(prefix="pytest-"), "t")
        pytest.main([path, "-q", "-c", ini, "--rootdir", d, "--confcutdir", d, "-p", "no:cacheprovider",
                     "--basetemp", base,
                     "-p", "no:stepwise", "-p", "no:pastebin", "-p", "no:junitxml", "-W", "ignore"],
                    plugins=[Collector()])
    finally:
        sys.stdout = sys.__stdout__


RUNNERS = {"assert": run_asserts, "unittest": run_unittest, "pytest": run_pytest}


def main():
    cmd_fd, rep_fd, req_fd, ans_fd = (int(a) for a in sys.argv[1:5])
    head = os.read(cmd_fd, 4)
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        chunk = os.read(cmd_fd, n - len(body))
        if not chunk:
            break
        body += chunk
    job = marshal.loads(body)
    os.close(cmd_fd)
    lim = job["limits"]
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_AS, (int(lim["as_mb"]) * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.path[:] = trusted_path(sys.path)
    share_scratch()
    report = Reporter(rep_fd)
    ch = Channel(req_fd, ans_fd)
    try:
        if "mock" in job["code"] or "patch" in job["code"]:  # unittest.mock costs 26 ms to import
            forward_patches(ch)
        if "dataclass" in job["code"]:
            dataclass_helpers(ch)
        RUNNERS[job["kind"]](job, ch, report)
        report.send({"done": True})
    except CandidateGone as exc:
        report.send({"done": True, "error": f"candidate process: {exc}"})
    except SandboxBroken as exc:
        report.send({"done": True, "error": f"sandbox: {exc}"})
    except Exception as exc:  # the test code itself is broken (a syntax error in a TestCase module...)
        report.send({"done": True, "error": f"test code: {_err(exc)}"})


if __name__ == "__main__":
    main()
