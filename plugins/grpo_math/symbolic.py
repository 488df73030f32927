"""Symbolic comparison with sympy. Imported only inside pool workers, where a hard time bound holds."""

from __future__ import annotations

import random

import sympy
from sympy import Rational

from .numeric import Decimal, allowed_error

_FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec, "csc": sympy.csc,
    "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh,
    "tanh": sympy.tanh, "exp": sympy.exp, "sqrt": sympy.sqrt, "abs": sympy.Abs, "floor": sympy.floor,
    "ceil": sympy.ceiling, "log10": lambda x: sympy.log(x, 10),
}
_CONSTS = {"pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo}
PRECISION = 60  # digits for numeric equality of exact values
RELATIVE = sympy.Float("1e-45")


class Unsupported(ValueError):
    """A node that has no sympy meaning (a unit word inside an expression, a list as a scalar)."""


def to_sympy(node: tuple):
    """The sympy expression of a scalar node."""
    kind = node[0]
    if kind == "num":
        return Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":
        return sympy.Symbol(node[1])
    if kind == "const":
        return _CONSTS[node[1]]
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "add":
        return to_sympy(node[1][0]) + to_sympy(node[1][1])
    if kind == "mul":
        return to_sympy(node[1][0]) * to_sympy(node[1][1])
    if kind == "div":
        return to_sympy(node[1]) / to_sympy(node[2])
    if kind == "pow":
        return to_sympy(node[1]) ** to_sympy(node[2])
    if kind == "fact":
        return sympy.factorial(to_sympy(node[1]))
    if kind == "pct":
        return to_sympy(node[1]) / 100
    if kind == "func":
        name, args = node[1], [to_sympy(a) if a is not None else None for a in node[2]]
        if name == "root":
            return sympy.root(args[0], args[1])
        if name == "log":
            return sympy.log(args[0], args[1]) if len(args) == 2 else sympy.log(args[0])
        if name == "binom":
            return sympy.binomial(args[0], args[1])
        return _FUNCS[name](args[0])
    raise Unsupported(f"{kind} is not a scalar expression")


def scalar_equal(g: tuple, p: tuple, dg: Decimal, dp: Decimal, tolerance: float, rounding: int) -> bool:
    """Equivalence of two scalar nodes: exact where both are exact, within tolerance for decimals."""
    a, b = to_sympy(g), to_sympy(p)
    if a == b:
        return True
    free = a.free_symbols | b.free_symbols
    if free:
        return _identity(a - b, sorted(free, key=str))
    if a.has(sympy.oo, sympy.zoo, sympy.nan) or b.has(sympy.oo, sympy.zoo, sympy.nan):
        return False  # infinities are equal only structurally (a == b above)
    va, vb = sympy.N(a, PRECISION), sympy.N(b, PRECISION)
    if not (va.is_number and vb.is_number) or va.has(sympy.nan, sympy.zoo) or vb.has(sympy.nan, sympy.zoo):
        return False
    diff = abs(va - vb)
    if dg.approx or dp.approx:
        allowed = float(allowed_error(float(abs(va)), float(abs(vb)), dg, dp, tolerance, rounding))
        return bool(diff <= allowed * (1 + 1e-12))
    if va == 0 or vb == 0:
        return bool(sympy.simplify(a - b) == 0) if diff < RELATIVE else False
    return bool(diff <= RELATIVE * max(abs(va), abs(vb)))


def _identity(diff, symbols, trials: int = 4) -> bool:
    """Zero for every value of the symbols: expand first, then random points, then simplify."""
    if sympy.expand(diff) == 0:
        return True
    rng = random.Random(1234)
    checked = 0
    for _ in range(trials * 3):
        point = {s: Rational(rng.randint(11, 290), 97) for s in symbols}
        v = sympy.N(diff.subs(point), 30)
        if not v.is_number or v.has(sympy.nan, sympy.zoo):
            continue
        if abs(v) > sympy.Float("1e-20"):
            return False
        checked += 1
        if checked >= trials:
            break
    if checked == 0:
        return bool(sympy.simplify(diff) == 0)
    return True


def proportional(e1, e2) -> bool:
    """Two equations lhs - rhs that are non-zero constant multiples of each other (rearranged)."""
    if e2 == 0 or e1 == 0:
        return e1 == e2
    symbols = sorted(e1.free_symbols | e2.free_symbols, key=str)
    if not symbols:
        return False
    rng = random.Random(99)
    ratio = None
    for _ in range(12):
        point = {s: Rational(rng.randint(11, 290), 97) for s in symbols}
        v1, v2 = sympy.N(e1.subs(point), 30), sympy.N(e2.subs(point), 30)
        if not (v1.is_number and v2.is_number) or abs(v2) < 1e-20:
            continue
        r = v1 / v2
        if abs(r) < 1e-20:
            return False
        if ratio is None:
            ratio = r
        elif abs(r - ratio) > 1e-15 * abs(ratio):
            return False
    return ratio is not None


def equations_equal(g: tuple, p: tuple) -> bool:
    """Two equations that are the same up to rearrangement and a non-zero factor."""
    e1 = to_sympy(g[1]) - to_sympy(g[2])
    e2 = to_sympy(p[1]) - to_sympy(p[2])
    return proportional(sympy.expand(e1), sympy.expand(e2))
