"""Comparing the candidate's values with expected ones, outside the candidate's process: decode the
runner's type-tagged JSON into plain builtins (never unpickle), then compare type-strictly, so no
candidate-defined ``__eq__``, ``__bool__`` or subclass ever runs here. Stdlib only (copied into the
sandbox image)."""

from __future__ import annotations

import collections
import functools
import math


class ProtocolError(Exception):
    """The candidate side sent something the runner never would: tampering."""


def decode(tagged, handle=None):
    """Rebuild a builtin value from the runner's tagged JSON (see _decode); anything malformed,
    too deep or too large to rebuild is a ProtocolError, never an exception of the harness."""
    try:
        return _decode(tagged, handle)
    except ProtocolError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError, MemoryError) as exc:
        raise ProtocolError(f"malformed value ({type(exc).__name__})") from None


def _decode(tagged, handle=None):
    """Rebuild a builtin value from the runner's tagged JSON. Handles become ``handle(tagged)``
    (the tester's proxies) or, without a factory, an Opaque marker, as opaque objects do."""
    if type(tagged) is not dict or "t" not in tagged:
        raise ProtocolError("malformed value")
    t, v = tagged["t"], tagged.get("v")
    if t == "none":
        return None
    if t == "bool" and type(v) is bool:
        return v
    if t == "int":
        if "hex" in tagged and type(tagged["hex"]) is str:
            return int(tagged["hex"], 16)
        return v if type(v) is int else _bad(t)
    if t == "str" and type(v) is str:
        return v
    if t == "float" and type(v) is str:
        return float(v)
    if t == "complex" and type(v) is list and len(v) == 2 and all(type(x) is str for x in v):
        return complex(float(v[0]), float(v[1]))
    if t == "bytes" and type(v) is str:
        return bytes.fromhex(v)
    if t in ("list", "tuple", "set", "frozenset") and type(v) is list:
        items = [_decode(x, handle) for x in v]
        if t in ("set", "frozenset"):
            items = [Opaque("unhashable") if isinstance(x, (list, dict, set)) else x for x in items]
            try:
                return set(items) if t == "set" else frozenset(items)
            except TypeError:
                return Opaque("unhashable set")
        return items if t == "list" else tuple(items)
    if t == "dict" and type(v) is list:
        try:
            return {_decode(k, handle): _decode(val, handle) for k, val in v}
        except (TypeError, ValueError):
            return Opaque("unhashable key")
    if t in STDLIB_TAGS and type(v) is list:
        return _decode_stdlib(t, tagged, v, handle)
    if t == "object":
        return Opaque(str(tagged.get("type", "?")))
    if t == "handle":
        return handle(tagged) if handle is not None else Opaque(str(tagged.get("type", "?")))
    if t == "raw" and handle is not None:
        return tagged  # the names answer: the tester decodes each entry itself
    return _bad(t)


STDLIB_TAGS = frozenset(("counter", "odict", "ddict", "deque", "ntuple"))
FACTORIES = {f.__name__: f for f in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset)}


@functools.lru_cache(maxsize=256)
def _namedtuple_class(name: str, fields: tuple):
    """One tester-side class per (name, fields), so two decoded values of it compare as plain Python does."""
    return collections.namedtuple(name, fields)


def _decode_stdlib(t, tagged, v, handle):
    """The stdlib containers the runner sends as data: the same type rebuilt here."""
    if t == "deque":
        maxlen = tagged.get("maxlen")
        if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
            _bad(t)
        return collections.deque((_decode(x, handle) for x in v), maxlen)
    if t == "ntuple":
        name, fields = tagged.get("name"), tagged.get("fields")
        if type(name) is not str or not name.isidentifier() or type(fields) is not list or len(fields) != len(v):
            _bad(t)
        try:
            cls = _namedtuple_class(name, tuple(fields))
        except (ValueError, TypeError):
            _bad(t)  # names namedtuple refuses (keywords, duplicates, leading underscores)
        return cls(*(_decode(x, handle) for x in v))
    try:
        pairs = [(_decode(k, handle), _decode(val, handle)) for k, val in v]
        if t == "counter":
            return collections.Counter(dict(pairs))
        if t == "odict":
            return collections.OrderedDict(pairs)
        factory = tagged.get("factory")
        if type(factory) is str:
            factory = FACTORIES.get(factory) or _bad(t)
        elif factory is not None:
            factory = _decode(factory, handle)
            if isinstance(factory, Opaque):
                factory = None  # the harness's side: there is nothing to call
        return collections.defaultdict(factory, pairs)
    except TypeError:
        return Opaque("unhashable key")


def _bad(t):
    raise ProtocolError(f"malformed value of tag {t!r}")


class Opaque:
    """A value of a non-builtin type from the candidate: it equals nothing, not even itself."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self.type_name} object>"


def same(got, expected, tol: float | None = None, json_mode: bool = False) -> bool:
    """Type-strict equality on decoded builtins: bool is never a number, str never bytes; ints and
    floats compare by value (optionally within ``tol``); in json_mode a tuple may match a list,
    because JSON has no tuples."""
    if isinstance(got, Opaque) or isinstance(expected, Opaque):
        return False
    got, expected = _as_builtin(got), _as_builtin(expected)
    tg, te = type(got), type(expected)
    if tg is bool or te is bool:
        return tg is te and got == expected
    if tg in (int, float) and te in (int, float):
        try:
            if tol is not None and (tg is float or te is float):
                if math.isnan(got) or math.isnan(expected):
                    return False
                return abs(got - expected) <= tol * max(1.0, abs(expected))
            return got == expected
        except OverflowError:  # an int beyond float range (10**400) against a float: not close
            return False
    if tg in (list, tuple) and te in (list, tuple) and (tg is te or json_mode):
        return len(got) == len(expected) and all(same(a, b, tol, json_mode) for a, b in zip(got, expected))
    if tg is not te:
        return False
    if tg is dict:
        return got.keys() == expected.keys() and all(same(got[k], expected[k], tol, json_mode) for k in got)
    return got == expected  # str, bytes, complex, None, set, frozenset: builtins only at this point


def _as_builtin(x):
    """A decoded Counter / OrderedDict / defaultdict as the dict and a namedtuple as the tuple it
    equals in plain Python (a deque equals no list there, so it stays a deque)."""
    t = type(x)
    if t in (collections.Counter, collections.OrderedDict, collections.defaultdict):
        return dict(x)
    if t is not tuple and isinstance(x, tuple):
        return tuple(x)
    return x


def apply_compare(op: str, a, b) -> bool:
    """Apply a comparison to two decoded builtin values; opaque values and type errors fail."""
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        return False
    if op == "==":
        return same(a, b)
    if op == "!=":
        return not same(a, b)
    if op in ("is", "is not"):
        if b is None or type(b) is bool:
            hit = type(a) is type(b) and a == b
        elif a is None or type(a) is bool:
            hit = type(a) is type(b) and a == b
        else:
            return False  # identity of other values cannot cross a process boundary
        return hit if op == "is" else not hit
    try:
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        if op == ">=":
            return bool(a >= b)
        if op == "in":
            return any(same(a, x) for x in b) if isinstance(b, (list, tuple, set, frozenset)) else bool(a in b)
        if op == "not in":
            return not (any(same(a, x) for x in b) if isinstance(b, (list, tuple, set, frozenset)) else a in b)
    except (TypeError, OverflowError, ValueError):
        return False
    return False


def truthy(v) -> bool | None:
    """Truthiness of a decoded builtin value; None for an opaque object, which is neither."""
    return None if isinstance(v, Opaque) else bool(v)


def check_holds(op: str, a, b) -> bool:
    """Whether an assert's check holds: ``truth`` / ``not`` on one value, else a comparison."""
    if op == "truth":
        return truthy(a) is True
    if op == "not":
        return truthy(a) is False
    return apply_compare(op, a, b)


def stdout_matches(got: str, expected: str, tol: float | None = None) -> bool:
    """Whitespace-tolerant line compare: tokens per line, trailing blank lines ignored, optional float tolerance."""
    def lines(s):
        out = [ln.split() for ln in s.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    a, b = lines(got), lines(expected)
    if len(a) != len(b):
        return False
    for la, lb in zip(a, b):
        if len(la) != len(lb):
            return False
        for ta, tb in zip(la, lb):
            if ta == tb:
                continue
            if tol is None:
                return False
            try:
                fa, fb = float(ta), float(tb)
            except ValueError:
                return False
            if not (abs(fa - fb) <= tol * max(1.0, abs(fb))):
                return False
    return True
