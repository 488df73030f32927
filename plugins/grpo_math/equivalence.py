"""Whether two parsed answers are the same: structure first, then scalars (exact, decimal, symbolic).

``equivalent(..., sympy_ok=False)`` runs in the calling process and raises NeedSympy when only
symbolic work can decide; the pool worker calls it again with ``sympy_ok=True``.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from typing import Literal, NamedTuple

from .numeric import NeedSympy, approx, decimal_info, differ_somewhere, exact, exact_match, within
from .parse import ParseError, is_node, parse_answer, walk

Percent = Literal["either", "fraction", "number"]


class CheckOptions(NamedTuple):
    """The comparison settings a check needs (small and picklable for the worker pool)."""

    tolerance: float = 1e-6
    percent: Percent = "either"
    rounding: bool = True
    rounding_digits: int = 3
    relation_intervals: str = "gold"  # "gold" | "both"
    bare_braces: str = "any"  # "any" | "set"
    decimal_comma: str = "auto"  # "auto" | "never"

    @property
    def min_digits(self) -> int:
        """Significant digits a decimal needs to count as a rounding (0: rounding off)."""
        return self.rounding_digits if self.rounding else 0


HUNDRED = ("num", Fraction(100), None, 3)
OO = ("const", "oo")
MAX_VARIANTS = 8
_DECIMAL_COMMA = re.compile(r"-?\d+,(?:\d{1,2}|\d{4,})|-?0,\d+")  # never thousands


def check(gold: str, pred: str, opts: CheckOptions, sympy_ok: bool) -> str:
    """'correct', 'incorrect' or 'unparseable' for an extracted answer against a gold answer."""
    if same_text(gold, pred):
        return "correct"  # the same text is the same answer, readable or not
    try:
        g = parse_answer(gold)
    except ParseError:
        return "unparseable"
    try:
        p = parse_answer(pred)
    except ParseError:
        return "unparseable"
    if equivalent(g, p, opts, sympy_ok):
        return "correct"
    if opts.decimal_comma == "auto":
        # "2,74" is a decimal comma when the other side is one number (and a list of two otherwise)
        g2, p2 = _comma_decimal(gold, g), _comma_decimal(pred, p)
        if (p2 is not None and g[0] != "list" and equivalent(g, p2, opts, sympy_ok)) or \
                (g2 is not None and p[0] != "list" and equivalent(g2, p, opts, sympy_ok)):
            return "correct"
    return "incorrect"


def _comma_decimal(text: str, node: tuple) -> tuple | None:
    """The one-number reading of '2,74' (parsed as a list of two), else None."""
    bare = text.strip().strip("$").strip()
    if node[0] != "list" or not _DECIMAL_COMMA.fullmatch(bare):
        return None
    try:
        return parse_answer(bare.replace(",", "."))
    except ParseError:
        return None


def same_text(a: str, b: str) -> bool:
    """The same answer text, up to spacing and enclosing dollars."""
    return re.sub(r"\s+", "", a).strip("$") == re.sub(r"\s+", "", b).strip("$")


def _squash(s: str) -> str:
    return re.sub(r"[\s{}$\\]", "", s).lower()


def equivalent(g: tuple, p: tuple, o: CheckOptions, sympy_ok: bool) -> bool:
    """Equivalence of two parsed answers (lists unordered, tuples ordered, intervals by their ends)."""
    if g == p:
        return True
    g, p = fold_matrices(g), fold_matrices(p)
    if o.bare_braces == "any":
        g, p = _brace_as_tuple(g, p), _brace_as_tuple(p, g)
    gi, pi = _items(g), _items(p)
    # "AB=4, CD=5" against "4, 5": names on one side only are labels of the values
    if all(_named(x) for x in gi) and not any(x[0] == "eq" for x in pi):
        gi = _named_values(gi)
    elif all(_named(x) for x in pi) and not any(x[0] == "eq" for x in gi):
        pi = _named_values(pi)
    if g[0] == "list" and p[0] == "list":  # a list of solutions that names one twice is the same list
        gi, pi = _unique(gi), _unique(pi)
    if len(gi) == 1 and len(pi) == 1:
        return _item(gi[0], pi[0], o, sympy_ok)
    if _interval_policy_blocks(gi, pi, o):
        return False
    gs, ps = _intervals(gi), _intervals(pi)
    if gs is not None and ps is not None:
        return _matched(gs, ps, lambda a, b: _interval_equal(a, b, o, sympy_ok))
    return _matched(gi, pi, lambda a, b: _item(a, b, o, sympy_ok))


def _unique(items: list[tuple]) -> list[tuple]:
    """Members of a solution set once each (a set written with a repeated member is the same set)."""
    out: list[tuple] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _named_values(items: list[tuple]) -> list[tuple]:
    """Values of named answers; 'p=5, q=2; p=7, q=2' (names repeating in a cycle) as tuples (5,2), (7,2)."""
    names = [x[1] for x in items]
    k = names.index(names[0], 1) if names.count(names[0]) > 1 else 0
    if k > 1 and len(names) % k == 0 and len(set(names[:k])) == k and \
            all(names[i] == names[i % k] for i in range(len(names))):
        return [("tuple", tuple(x[2] for x in items[j:j + k]), "(", ")") for j in range(0, len(items), k)]
    return [x[2] for x in items]


def _named(node: tuple) -> bool:
    return node[0] == "eq" and _label(node[1])


def _has_rel(items: list[tuple]) -> bool:
    return any(n[0] == "rel" for x in items for n in walk(x))


def _interval_policy_blocks(gi: list[tuple], pi: list[tuple], o: CheckOptions) -> bool:
    """An interval gold does not accept an inequality answer unless relation_intervals is 'both'.

    (An inequality gold accepts its interval: that answer states the solution set, as Math-Verify.)
    """
    return o.relation_intervals == "gold" and _has_rel(pi) and not _has_rel(gi)


def _brace_as_tuple(node: tuple, other: tuple) -> tuple:
    """{1,3} (bare TeX braces) read as the tuple (1,3) when the other side is a tuple of that length."""
    if node[0] == "set" and len(node) > 2 and other[0] == "tuple" and len(other[1]) == len(node[1]):
        return ("tuple", node[1], other[2], other[3])
    return node


def fold_matrices(node: tuple) -> tuple:
    """A sum, product, negation or scalar multiple of matrix literals, computed cell by cell."""
    if node[0] not in ("add", "mul", "neg") or not any(n[0] == "matrix" for n in walk(node)):
        return node
    m = _matrix_value(node, 0)
    return m if m is not None else node


def _matrix_value(node: tuple, depth: int):
    if depth > 20:
        return None
    kind = node[0]
    if kind == "matrix":
        return node
    if kind == "neg":
        m = _matrix_value(node[1], depth + 1)
        return None if m is None else ("matrix", tuple(tuple(("neg", c) for c in r) for r in m[1]))
    if kind not in ("add", "mul"):
        return None
    a, b = node[1]
    ma, mb = _matrix_value(a, depth + 1), _matrix_value(b, depth + 1)
    if kind == "add":
        if ma is None or mb is None or len(ma[1]) != len(mb[1]) or len(ma[1][0]) != len(mb[1][0]):
            return None
        return ("matrix", tuple(tuple(("add", (x, y)) for x, y in zip(ra, rb)) for ra, rb in zip(ma[1], mb[1])))
    if ma is not None and mb is not None:
        rows, inner, cols = len(ma[1]), len(mb[1]), len(mb[1][0])
        if len(ma[1][0]) != inner or rows * cols * inner > 400:
            return None
        out = []
        for i in range(rows):
            row = []
            for j in range(cols):
                acc = ("mul", (ma[1][i][0], mb[1][0][j]))
                for k in range(1, inner):
                    acc = ("add", (acc, ("mul", (ma[1][i][k], mb[1][k][j]))))
                row.append(acc)
            out.append(tuple(row))
        return ("matrix", tuple(out))
    scalar, m = (a, mb) if mb is not None else (b, ma)
    if m is None or any(n[0] in _CONTAINERS for n in walk(scalar)):
        return None
    return ("matrix", tuple(tuple(("mul", (scalar, c)) for c in r) for r in m[1]))


def _items(node: tuple) -> list[tuple]:
    """Answers of a node: list and set members, each ± expanded into its two values."""
    base = node[1] if node[0] in ("list", "set") and node[1] else (node,)
    out: list[tuple] = []
    for x in base:
        out += _expand_pm(x)
    return out[:64]


def _expand_pm(node: tuple) -> list[tuple]:
    if not _has_pm(node):
        return [node]
    if node[0] == "pm":
        a, b = node[1], node[2]
        plus = b if a is None else ("add", (a, b))
        minus = ("neg", b) if a is None else ("add", (a, ("neg", b)))
        return (_expand_pm(plus) + _expand_pm(minus))[:MAX_VARIANTS]
    variants = [[]]
    for field in node[1:]:
        if is_node(field):
            options = _expand_pm(field)
        elif isinstance(field, tuple) and all(is_node(x) for x in field):
            options = [tuple(c) for c in itertools.product(*(_expand_pm(x) for x in field))]
        else:
            options = [field]
        variants = [v + [f] for v in variants for f in options][:MAX_VARIANTS]
    return [(node[0], *v) for v in variants]


def _has_pm(node: tuple) -> bool:
    return any(n[0] == "pm" for n in walk(node))


def _matched(gs: list, ps: list, same) -> bool:
    """Unordered one-to-one match of two lists under ``same``."""
    if len(gs) != len(ps):
        return False
    left = list(ps)
    for g in gs:
        for j, p in enumerate(left):
            if same(g, p):
                del left[j]
                break
        else:
            return False
    return True


def _label(node: tuple) -> bool:
    """An equation side that only names the answer: 'x', 'a_1', 'f(x)', '(p,q)', 'A:B', '|AB|', '\\frac{NO}{BO}'."""
    kind = node[0]
    if kind in ("sym", "word", "text"):
        return True
    if kind in ("mul", "tuple"):
        return bool(node[1]) and all(_label(x) for x in node[1])
    if kind == "div":
        return _label(node[1]) and _label(node[2])
    return kind == "func" and node[1] == "abs" and _label(node[2][0])


def _symbol_free(node: tuple) -> bool:
    return not any(n[0] in ("sym", "word", "text") for n in walk(node))


def _item(g: tuple, p: tuple, o: CheckOptions, sympy_ok: bool) -> bool:
    if g == p:
        return True
    kg, kp = g[0], p[0]
    if kg == "eq" and kp == "eq":
        if _label(g[1]) and _label(p[1]):
            return g[1] == p[1] and _item(g[2], p[2], o, sympy_ok)
        if not sympy_ok:
            raise NeedSympy
        from .symbolic import equations_equal  # worker only: sympy lives there
        return equations_equal(g, p)
    if kp == "eq" and kg != "eq" and _symbol_free(p):
        return _item(g, p[2], o, sympy_ok)  # "2^{10} = 1024": the value is the last side
    if kg == "eq" and _label(g[1]):
        return _item(g[2], p, o, sympy_ok)
    if kp == "eq" and _label(p[1]):
        return _item(g, p[2], o, sympy_ok)
    if kg == "text" or kp == "text" or kg == "word" or kp == "word":
        return kg in ("text", "word") and kp in ("text", "word") and _squash(g[1]) == _squash(p[1])
    gi, pi = _intervals([g]), _intervals([p])
    if gi is not None and pi is not None and _interval_policy_blocks([g], [p], o):
        return False
    if gi is not None and pi is not None:
        return _matched(gi, pi, lambda a, b: _interval_equal(a, b, o, sympy_ok))
    if kg == "set" and kp in ("set", "list"):
        return _matched(list(g[1]), list(p[1]), lambda a, b: _item(a, b, o, sympy_ok))
    ge, pe = _elements(g), _elements(p)
    if ge is not None or pe is not None:
        if ge is None or pe is None or len(ge) != len(pe):
            return False
        return all(_item(a, b, o, sympy_ok) for a, b in zip(ge, pe))
    if kg in _CONTAINERS or kp in _CONTAINERS:
        return False
    return _scalar(g, p, o, sympy_ok)


_CONTAINERS = ("tuple", "set", "list", "union", "matrix", "eq", "rel")


def _elements(node: tuple) -> list[tuple] | None:
    """Ordered elements of a tuple, vector or matrix (a one-row or one-column matrix is a vector)."""
    if node[0] == "tuple":
        return list(node[1])
    if node[0] == "matrix":
        rows = node[1]
        if len(rows) == 1 or all(len(r) == 1 for r in rows):
            return [c for r in rows for c in r]
        return [("tuple", r, "[", "]") for r in rows]
    return None


def _intervals(items: list[tuple]) -> list[tuple] | None:
    """Intervals (lo, hi, lo_closed, hi_closed) that items spell, or None if any item is not one."""
    out = []
    for x in items:
        if x[0] == "union":
            parts = _intervals(list(x[1]))
            if parts is None:
                return None
            out += parts
        elif x[0] == "tuple" and len(x[1]) == 2 and x[2] in "([" and x[3] in ")]":
            out.append((x[1][0], x[1][1], x[2] == "[", x[3] == "]"))
        elif x[0] == "rel":
            ivs = _abs_intervals(x)
            iv = _rel_interval(x) if ivs is None else None
            if ivs is None and iv is None:
                return None
            out += ivs if ivs is not None else [iv]
        else:
            return None
    return out


def _is_abs(node: tuple) -> bool:
    return node[0] == "func" and node[1] == "abs" and _label(node[2][0])


def _abs_intervals(node: tuple) -> list[tuple] | None:
    """'1 <= |z| <= 3/2' -> [-3/2, -1] and [1, 3/2]; '|x| < 2' -> (-2, 2); '|x| > 2' -> two rays."""
    xs, ops = node[1], node[2]
    if len(xs) == 3 and _is_abs(xs[1]) and all(op in ("<", "<=") for op in ops) \
            and _symbol_free(xs[0]) and _symbol_free(xs[2]):
        lo, hi, lo_in, hi_in = xs[0], xs[2], ops[0] == "<=", ops[1] == "<="
        return [(("neg", hi), ("neg", lo), hi_in, lo_in), (lo, hi, lo_in, hi_in)]
    if len(xs) == 2 and ops[0] in _FLIP and (_is_abs(xs[0]) or _is_abs(xs[1])):
        v, op = (xs[1], ops[0]) if _is_abs(xs[0]) else (xs[0], _FLIP[ops[0]])
        if not _symbol_free(v):
            return None
        if op in ("<", "<="):
            return [(("neg", v), v, op == "<=", op == "<=")]
        return [(("neg", OO), ("neg", v), False, op == ">="), (v, OO, op == ">=", False)]
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _rel_interval(node: tuple) -> tuple | None:
    """'x > 2' -> (2, oo), '1 < x <= 3' -> (1, 3]: inequalities in one variable as intervals."""
    xs, ops = node[1], node[2]
    if len(xs) == 2 and ops[0] in _FLIP:
        x, v, op = (xs[0], xs[1], ops[0]) if _label(xs[0]) or xs[0][0] == "neg" else (xs[1], xs[0], _FLIP[ops[0]])
        if x[0] == "neg" and _label(x[1]):  # -x > -1 is x < 1
            x, v, op = x[1], ("neg", v), _FLIP[op]
        if not _label(x) or not _symbol_free(v):
            return None
        if op in ("<", "<="):
            return (("neg", OO), v, False, op == "<=")
        return (v, OO, op == ">=", False)
    if len(xs) == 3 and _label(xs[1]) and _symbol_free(xs[0]) and _symbol_free(xs[2]):
        if all(op in ("<", "<=") for op in ops):
            return (xs[0], xs[2], ops[0] == "<=", ops[1] == "<=")
        if all(op in (">", ">=") for op in ops):
            return (xs[2], xs[0], ops[1] == ">=", ops[0] == ">=")
    return None


def _interval_equal(a: tuple, b: tuple, o: CheckOptions, sympy_ok: bool) -> bool:
    for lo_hi in (0, 1):
        ea, eb = a[lo_hi], b[lo_hi]
        infinite = _infinite(ea) or _infinite(eb)
        if infinite:
            if ea != eb:
                return False
        elif a[2 + lo_hi] != b[2 + lo_hi] or not _scalar(ea, eb, o, sympy_ok):
            return False
    return True


def _infinite(node: tuple) -> bool:
    return node == OO or node == ("neg", OO)


def _alternatives(node: tuple, percent: Percent) -> list[tuple]:
    """A percentage read as a fraction (50% = 0.5), as a number (50% = 50), or either."""
    if node[0] != "pct":
        return [node]
    as_fraction, as_number = ("div", node[1], HUNDRED), node[1]
    return {"fraction": [as_fraction], "number": [as_number]}.get(percent, [as_fraction, as_number])


def _scalar(g: tuple, p: tuple, o: CheckOptions, sympy_ok: bool) -> bool:
    for ga in _alternatives(g, o.percent):
        for pa in _alternatives(p, o.percent):
            if ga == pa or _value_equal(ga, pa, o, sympy_ok):
                return True
    return False


def _value_equal(g: tuple, p: tuple, o: CheckOptions, sympy_ok: bool) -> bool:
    dg, dp = decimal_info(g), decimal_info(p)
    try:
        return exact_match(exact(g), exact(p), dg, dp, o.tolerance, o.min_digits)
    except NeedSympy:
        pass
    try:
        a, b = approx(g), approx(p)
        if dg.approx or dp.approx:
            verdict = within(a, b, dg, dp, o.tolerance, o.min_digits)
            if verdict is not None:
                return verdict
        elif abs(a - b) > 1e-9 * max(abs(a), abs(b)):
            return False  # clearly different; proving equality is what needs sympy
    except NeedSympy:
        pass
    if not (dg.approx or dp.approx) and differ_somewhere(g, p):
        return False  # a wrong expression in x needs no worker to be told apart
    if not sympy_ok:
        raise NeedSympy
    from .symbolic import Unsupported, scalar_equal
    try:
        return scalar_equal(g, p, dg, dp, o.tolerance, o.min_digits)
    except Unsupported:
        return False
