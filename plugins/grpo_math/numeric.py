"""In-process numeric evaluation of parsed answers, bounded in time: exact rationals, then floats.

Anything that could take long (huge powers, symbols, complex values, cancellation) raises
NeedSympy so the caller can hand the check to a worker process that has a hard time bound.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

from .parse import walk


class NeedSympy(Exception):
    """This value needs symbolic work, which only runs in a bounded worker process."""


MAX_BITS = 20000  # largest exact power computed in-process (about 6,000 digits)
MAX_FACTORIAL = 300


class Decimal(NamedTuple):
    """How a value was written: with a decimal point anywhere, and the literal's rounding unit."""

    approx: bool
    ulp: Fraction | None  # half of it is the rounding error of a bare decimal literal
    digits: int  # significant digits of that literal


def decimal_info(node: tuple) -> Decimal:
    """Whether a node contains a decimal literal; the ulp when it is a bare (signed) literal."""
    bare = node[1] if node[0] == "neg" else node
    if bare[0] == "num":
        return Decimal(bare[2] is not None, bare[2], bare[3])
    return Decimal(_has_decimal(node), None, 0)


def _has_decimal(node: tuple) -> bool:
    return any(n[0] == "num" and n[2] is not None for n in walk(node))


def exact(node: tuple) -> Fraction:
    """The exact rational value of a node built from numbers, + - * /, integer powers and n!."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "neg":
        return -exact(node[1])
    if kind == "add":
        return exact(node[1][0]) + exact(node[1][1])
    if kind == "mul":
        return exact(node[1][0]) * exact(node[1][1])
    if kind == "div":
        a, b = exact(node[1]), exact(node[2])
        if b == 0:
            raise NeedSympy
        return a / b
    if kind == "pow":
        base, e = exact(node[1]), exact(node[2])
        if e.denominator != 1 or (base == 0 and e < 0):
            raise NeedSympy
        bits = max(base.numerator.bit_length(), base.denominator.bit_length())
        if bits * abs(e.numerator) > MAX_BITS:
            raise NeedSympy
        return base ** e.numerator
    if kind == "pct":
        return exact(node[1]) / 100
    if kind == "fact":
        n = exact(node[1])
        if n.denominator != 1 or not 0 <= n <= MAX_FACTORIAL:
            raise NeedSympy
        return Fraction(math.factorial(int(n)))
    if kind == "func" and node[1] == "binom":
        n, k = exact(node[2][0]), exact(node[2][1])
        if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= 10 * MAX_FACTORIAL:
            raise NeedSympy
        return Fraction(math.comb(int(n), int(k))) if k >= 0 else Fraction(0)
    raise NeedSympy


_FUNCS = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "exp": math.exp,
    "abs": abs, "cot": lambda x: 1 / math.tan(x), "sec": lambda x: 1 / math.cos(x), "csc": lambda x: 1 / math.sin(x),
}
_CONSTS = {"pi": math.pi, "E": math.e}


def approx(node: tuple, env: dict[str, float] | None = None) -> float:
    """A double-precision value of a real node (symbols from ``env``); NeedSympy when not trustworthy."""
    try:
        v = _approx(node, env or {})
    except (OverflowError, ValueError, ZeroDivisionError, TypeError):
        raise NeedSympy from None
    if not math.isfinite(v):
        raise NeedSympy
    return v


def _approx(node: tuple, env: dict[str, float]) -> float:
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "sym":
        if node[1] not in env:
            raise NeedSympy
        return env[node[1]]
    if kind == "const":
        if node[1] not in _CONSTS:
            raise NeedSympy
        return _CONSTS[node[1]]
    if kind == "neg":
        return -_approx(node[1], env)
    if kind == "add":
        a, b = _approx(node[1][0], env), _approx(node[1][1], env)
        s = a + b
        if abs(s) < 1e-9 * (abs(a) + abs(b)):  # cancellation: double precision cannot tell
            raise NeedSympy
        return s
    if kind == "mul":
        return _approx(node[1][0], env) * _approx(node[1][1], env)
    if kind == "div":
        return _approx(node[1], env) / _approx(node[2], env)
    if kind == "pow":
        base, e = _approx(node[1], env), _approx(node[2], env)
        if base < 0 and e != int(e):
            raise NeedSympy
        return math.pow(base, e)
    if kind == "pct":
        return _approx(node[1], env) / 100
    if kind == "fact":
        n = _approx(node[1], env)
        if n != int(n) or not 0 <= n <= 170:
            raise NeedSympy
        return float(math.factorial(int(n)))
    if kind == "func":
        name, args = node[1], node[2]
        vals = [_approx(a, env) for a in args if a is not None]
        if name == "sqrt":
            return math.sqrt(vals[0])
        if name == "root":
            x, n = vals
            if x < 0:
                raise NeedSympy
            return x ** (1 / n)
        if name in ("log", "log10"):
            x = vals[0]
            if abs(x - 1) < 1e-6:  # log near 1 loses all relative precision
                raise NeedSympy
            if len(vals) == 2:
                return math.log(x) / math.log(vals[1])
            return math.log10(x) if name == "log10" else math.log(x)
        if name == "binom":
            n, k = vals
            if n != int(n) or k != int(k) or not 0 <= n <= 10 * MAX_FACTORIAL:
                raise NeedSympy  # math.comb(10**300, 10**150) would never return
            return float(math.comb(int(n), int(k)))
        if name in _FUNCS:
            return float(_FUNCS[name](vals[0]))
    raise NeedSympy


def within(a: float, b: float, da: Decimal, db: Decimal, tolerance: float, rounding: int) -> bool | None:
    """Compare two values of which one or both were written as decimals; None when too close to call."""
    allowed = allowed_error(a, b, da, db, tolerance, rounding)
    diff = abs(a - b)
    noise = 1e-12 * max(abs(a), abs(b))
    if diff + noise <= allowed:
        return True
    if diff - noise > allowed:
        return False
    return None


def allowed_error(a, b, da: Decimal, db: Decimal, tolerance: float, rounding: int):
    """Error allowed between two values when one or both sides are decimal approximations.

    ``rounding`` is the fewest significant digits a decimal needs to count as the other side rounded
    (0: never).
    """
    allowed = tolerance * max(abs(a), abs(b))
    if rounding and da.approx != db.approx:
        d = da if da.approx else db
        if d.ulp is not None and d.digits >= rounding:  # "0.3" for 1/3 is too coarse by default
            allowed = max(allowed, d.ulp / 2)
    return allowed


def exact_match(a: Fraction, b: Fraction, da: Decimal, db: Decimal, tolerance: float, rounding: int) -> bool:
    """Equality of two exact values; decimals on either side may differ within the allowed error."""
    if a == b:
        return True
    if not (da.approx or db.approx):
        return False
    return abs(a - b) <= allowed_error(a, b, da, db, tolerance, rounding)


def symbols(node: tuple) -> set[str]:
    """Names of the symbols in a node."""
    return {n[1] for n in walk(node) if n[0] == "sym"}


# Sample points for symbols: positive and away from small integers, like the worker's.
_POINTS = (0.7316, 1.2913, 2.1771)


def differ_somewhere(g: tuple, p: tuple) -> bool:
    """True when two expressions in symbols clearly differ at a sample point (so they are not equal)."""
    names = sorted(symbols(g) | symbols(p))
    if not names or len(names) > 8:
        return False
    for k, base in enumerate(_POINTS):
        env = {n: base + 0.1173 * i * (k + 1) for i, n in enumerate(names)}
        try:
            a, b = approx(g, env), approx(p, env)
        except NeedSympy:
            continue
        if abs(a - b) > 1e-6 * max(abs(a), abs(b)):
            return True
    return False
