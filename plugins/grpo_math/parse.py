"""A small recursive-descent parser from LaTeX or plain-text answers to a tuple tree.

It never evaluates anything (no ``eval``, no sympy), so it is safe and bounded on any input and
can run in the calling process. Node shapes:

    ("num", Fraction, ulp | None, significant digits)   ulp is set for decimal literals
    ("sym", name) ("const", "pi" | "E" | "I" | "oo") ("text", words) ("word", unit words)
    ("neg", x) ("add", (a, b)) ("mul", (a, b)) ("div", a, b) ("pow", a, b) ("fact", x) ("pct", x)
    ("func", name, (args...)) ("pm", a | None, b) ("eq", lhs, rhs) ("rel", (operands), (ops))
    ("tuple", (items), open, close) ("set", (items)) ("list", (items)) ("union", (parts))
    ("matrix", ((cells), ...))
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from .normalize import clean


class ParseError(ValueError):
    """The answer is not something the parser can read."""


MAX_CHARS = 20000  # longer "answers" are garbage or derivations (a 10,000-digit integer still reads)
CACHED_CHARS = 1000  # longer answers are parsed without the cache, so it stays small
MAX_DEPTH = 40
MAX_EXPONENT = 400  # digits of 10^k a literal like 1e400 may ask for

FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
         "ln", "log", "exp", "lg", "sqrt", "abs", "floor", "ceil"}
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
         "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
         "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega"}
MATRIX_ENVS = {"pmatrix", "bmatrix", "Bmatrix", "matrix", "smallmatrix", "array", "vmatrix", "Vmatrix"}
TEXT_CMDS = {"text", "mbox", "textnormal", "textup", "hbox"}
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
# 1,234,567.5 and 1 234 567, but not 1,23 or 1,2345 or 0,111 (a decimal comma)
_GROUPED = re.compile(r"[1-9]\d{0,2}(?:(?:,\d{3})+|(?: \d{3})+)(?:\.\d+)?(?![\d,]| \d)")
_REPEATING = re.compile(r"\\overline\s*\{(\d{1,50})\}")
_MIXED = re.compile(r"(\d+)\s?\\frac\s*\{(\d+)\}\s*\{(\d+)\}")
_EXP = re.compile(r"[eE]([-+]?\d+)")
_LETTERS = re.compile(r"[A-Za-z]+")
_WORDS_ONLY = re.compile(r"[A-Za-z]+(?:[\s'\-]+[A-Za-z]+)*")
# what separates several answers: commas, semicolons, "and" / "or" (also inside \text{})
_JOIN = re.compile(r"[,;]|(?:and|or)(?![A-Za-z])|\\text\{\s*(?:and|or)\s*\}")
_RELOPS = ("<=", ">=", "!=", "=", "<", ">")


def parse_answer(answer: str) -> tuple:
    """Parse an extracted answer into a node tree; raise ParseError when it cannot be read."""
    if len(answer) > CACHED_CHARS:
        return _parse(answer)
    return _parse_cached(answer)


def _parse(answer: str) -> tuple:
    s = clean(answer)
    if not s:
        raise ParseError("empty answer")
    if len(s) > MAX_CHARS:
        raise ParseError(f"answer longer than {MAX_CHARS} characters")
    words = re.sub(r"\\(?:text|mbox|textnormal|mathrm)\s*\{([^{}]*)\}", r"\1", s).strip()
    if _WORDS_ONLY.fullmatch(words) and max(len(w) for w in _LETTERS.findall(words)) >= 3:
        return ("text", " ".join(words.lower().split()))
    try:
        return _Parser(s).parse()
    except RecursionError:
        raise ParseError("answer nested too deeply") from None


_parse_cached = lru_cache(maxsize=16384)(_parse)
parse_answer.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]


def digits_value(digits: str) -> int:
    """int() of a digit string of any length (Python refuses over 4,300 digits in one call)."""
    if len(digits) <= 4000:
        return int(digits or "0")
    value = 0
    for k in range(0, len(digits), 4000):
        chunk = digits[k:k + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def as_text(node: tuple) -> tuple:
    """An item that is only unit-like words is a text answer."""
    return ("text", node[1].lower()) if node[0] == "word" else node


class _Parser:
    def __init__(self, s: str):
        self.s = s
        self.i = 0
        self.depth = 0

    # --- helpers -------------------------------------------------------------------------------
    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def peek(self, text: str) -> bool:
        self.ws()
        if not self.s.startswith(text, self.i):
            return False
        end = self.i + len(text)
        # a command only matches whole ("\p" must not match "\pi")
        return not (text[-1].isalpha() and text[0] == "\\" and end < len(self.s) and self.s[end].isalpha())

    def take(self, text: str) -> bool:
        if self.peek(text):
            self.i += len(text)
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            got = self.s[self.i:self.i + 10] or "end of answer"
            raise ParseError(f"expected {text!r} at position {self.i}, found {got!r}")

    def at_end(self) -> bool:
        self.ws()
        return self.i >= len(self.s)

    def word_ahead(self) -> str | None:
        self.ws()
        m = _LETTERS.match(self.s, self.i)
        return m.group(0) if m else None

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("answer nested too deeply")

    # --- grammar -------------------------------------------------------------------------------
    def parse(self) -> tuple:
        items = self.items()
        if not self.at_end():
            raise ParseError(f"unexpected {self.s[self.i:self.i + 10]!r} at position {self.i}")
        items = [as_text(x) for x in items]
        return items[0] if len(items) == 1 else ("list", tuple(items))

    def items(self) -> list[tuple]:
        out = [self.union()]
        while True:
            self.ws()
            join = _JOIN.match(self.s, self.i)
            if join is None:
                return out
            self.i = join.end()
            out.append(self.union())

    def union(self) -> tuple:
        parts = [self.relation()]
        while self.take("\\cup") or self.take_plain_union():
            parts.append(self.relation())
        if len(parts) > 1 and parts[0][0] == "eq":  # "z \\in [a,b] \\cup [c,d]": the name owns the union
            return ("eq", parts[0][1], ("union", (parts[0][2], *parts[1:])))
        return parts[0] if len(parts) == 1 else ("union", tuple(parts))

    def take_plain_union(self) -> bool:
        # "(1,2) U (3,4)" as typed in plain text: a capital U between spaces
        if self.peek("U ") and self.s[self.i - 1] == " ":
            self.i += 1
            return True
        return False

    def ratio(self) -> tuple:
        """'7:32' and '12:00' as ordered tuples (a ratio is never reduced: 12:00 is not 1:00)."""
        parts = [self.sum()]
        while self.peek(":") and not self.peek(":="):
            self.i += 1
            parts.append(self.sum())
        return parts[0] if len(parts) == 1 else ("tuple", tuple(parts), ":", ":")

    def relation(self) -> tuple:
        operands, ops = [self.ratio()], []
        while True:
            op = next((o for o in _RELOPS if self.peek(o)), None)
            if op is None:
                break
            self.i += len(op)
            ops.append(op)
            operands.append(self.ratio())
        if not ops:
            return operands[0]
        if set(ops) == {"="}:  # "x = 5+5+1 = 11": the name and the last value
            return ("eq", operands[0], operands[-1])
        return ("rel", tuple(operands), tuple(ops))

    def sum(self) -> tuple:
        acc = self.term()
        while True:
            if self.take("+"):
                acc = ("add", (acc, self.term()))
            elif self.peek("-") and not self.peek("->"):
                self.i += 1
                acc = ("add", (acc, ("neg", self.term())))
            elif self.take("\\pm"):
                acc = ("pm", acc, self.term())
            elif self.take("\\mp"):
                acc = ("pm", acc, ("neg", self.term()))
            else:
                return acc

    def term(self) -> tuple:
        acc = self.unary()
        while True:
            if self.take("*"):
                acc = ("mul", (acc, self.unary()))
            elif self.take("/"):
                acc = ("div", acc, self.unary())
            elif self.starts_operand():
                if self.s[self.i].isdigit() and self.s[:self.i].rstrip()[-1:].isdigit():
                    raise ParseError("two numbers side by side")  # "4 2" is no product
                nxt = self.postfix()
                if _is_unit(nxt):
                    self.unit_tail()  # "5 cm^2", "3 meters/second": any unit word after a value
                elif _is_unit(acc):
                    acc = nxt  # a leading word ("total 5") is a label
                else:
                    acc = ("mul", (acc, nxt))
            else:
                return acc

    def unit_tail(self) -> None:
        while True:
            save = self.i
            if self.take("^"):
                self.exponent()
            elif self.take("/") or self.word_ahead() == "per":
                if self.word_ahead() == "per":
                    self.i += 3
                nxt = self.postfix() if self.starts_operand() else None
                if nxt is None or not _is_unit(nxt):
                    self.i = save
                    return
            else:
                return

    def starts_operand(self) -> bool:
        self.ws()
        if self.i >= len(self.s):
            return False
        c = self.s[self.i]
        if c.isdigit() or c in "({" or (c == "." and self.s[self.i + 1:self.i + 2].isdigit()):
            return True
        if c.isascii() and c.isalpha():
            w = self.word_ahead()
            return w not in ("and", "or", "U")
        if c == "\\":
            m = _LETTERS.match(self.s, self.i + 1)
            name = m.group(0) if m else ""
            return name not in ("cup", "pm", "mp", "rbrace", "rangle", "end", "right", "rfloor", "rceil", "to") \
                and not _JOIN.match(self.s, self.i)
        return False

    def unary(self) -> tuple:
        if self.take("-"):
            return ("neg", self.unary())
        if self.take("+"):
            return self.unary()
        if self.take("\\pm"):
            return ("pm", None, self.unary())
        if self.take("\\mp"):
            return ("pm", None, ("neg", self.unary()))
        return self.postfix()

    def postfix(self) -> tuple:
        x = self.power()
        while True:
            if self.peek("!") and not self.peek("!="):
                self.i += 1
                x = ("fact", x)
            elif self.take("%"):
                x = ("pct", x)
            else:
                return x

    def power(self) -> tuple:
        base = self.primary()
        if self.take("^"):
            return ("pow", base, self.exponent())
        return base

    def exponent(self) -> tuple:
        self.enter()
        try:
            if self.take("-"):
                return ("neg", self.exponent())
            if self.take("+"):
                return self.exponent()
            p = self.primary()
            if self.take("^"):
                return ("pow", p, self.exponent())
            return p
        finally:
            self.depth -= 1

    def primary(self) -> tuple:
        self.ws()
        if self.i >= len(self.s):
            raise ParseError("answer ends where a value was expected")
        c = self.s[self.i]
        if c.isdigit() or c == ".":
            return self.number()
        if c in "([":
            return self.bracket()
        if c == "{":
            self.i += 1
            return self.group("}")
        if c == "|":
            self.i += 1
            self.enter()
            x = self.sum()
            self.depth -= 1
            self.expect("|")
            return ("func", "abs", (x,))
        if c == "\\":
            return self.command()
        if c.isascii() and c.isalpha():
            return self.letters()
        raise ParseError(f"unexpected {c!r} at position {self.i}")

    def number(self) -> tuple:
        mixed = _MIXED.match(self.s, self.i)
        if mixed and self._mixed_ok(mixed):
            self.i = mixed.end()  # 4\frac{2}{3} is four and two thirds, as written in word problems
            w, n, d = (int(g) for g in mixed.groups())
            return ("num", w + Fraction(n, d), None, len(mixed.group(1)))
        m = _GROUPED.match(self.s, self.i) if self.depth == 0 else None
        if m:
            text = m.group(0).replace(",", "").replace(" ", "")
            self.i = m.end()
        else:
            m = _NUMBER.match(self.s, self.i)
            if not m:
                raise ParseError(f"bad number at position {self.i}")
            text = m.group(0)
            self.i = m.end()
        exp = 0
        e = _EXP.match(self.s, self.i)
        if e:
            exp = int(e.group(1)) if len(e.group(1)) < 8 else MAX_EXPONENT + 1
            if abs(exp) > MAX_EXPONENT:
                raise ParseError("exponent of a number literal too large")
            self.i = e.end()
        whole, _, frac = text.partition(".")
        rep = _REPEATING.match(self.s, self.i) if "." in text and not exp else None
        if rep:  # 0.1\overline{6} = 1/6: a repeating decimal is exact
            self.i = rep.end()
            head = Fraction(digits_value(whole) * 10 ** len(frac) + digits_value(frac), 10 ** len(frac))
            cycle = rep.group(1)
            return ("num", head + Fraction(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(frac)), None, 1)
        digits = (whole + frac).lstrip("0") or "0"
        value = Fraction(digits_value(whole) * 10 ** len(frac) + digits_value(frac), 10 ** len(frac)) * Fraction(10) ** exp
        ulp = Fraction(10) ** (exp - len(frac)) if frac else None
        return ("num", value, ulp, len(digits))

    def _mixed_ok(self, m: re.Match) -> bool:
        n, d = int(m.group(2)), int(m.group(3))
        before = self.s[:self.i].rstrip()
        # a proper fraction right after a whole number that is not itself a factor or an exponent
        return 0 < n < d and not before.endswith(("^", "*", "/", "\\cdot", "_"))

    def bracket(self) -> tuple:
        opener = self.s[self.i]
        self.i += 1
        self.enter()
        items = self.items()
        self.depth -= 1
        self.ws()
        closer = self.s[self.i:self.i + 1]
        if closer not in (")", "]"):
            raise ParseError(f"unclosed {opener!r}")
        self.i += 1
        if len(items) == 1 and opener + closer in ("()", "[]"):
            return items[0]
        return ("tuple", tuple(as_text(x) for x in items), opener, closer)

    def group(self, closer: str) -> tuple:
        self.enter()
        items = self.items() if not self.peek(closer) else []
        self.depth -= 1
        self.expect(closer)
        if len(items) == 1:
            return items[0]
        return ("set", tuple(items), "bare")  # {1,3}: TeX grouping braces, loosely a set

    def arg(self, parens: bool = False) -> tuple:
        """One macro argument: {group}, one digit or letter, a command, or (group) for \\sqrt(2)."""
        self.ws()
        if self.i >= len(self.s):
            raise ParseError("missing argument")
        c = self.s[self.i]
        if c == "{":
            self.i += 1
            x = self.group("}")
            if x[0] == "set":
                raise ParseError("argument holds a list")
            return x
        if c.isdigit() and parens:
            return self.number()  # \sqrt10 is meant as the root of 10, whatever TeX draws
        if c.isdigit():
            self.i += 1
            return ("num", Fraction(int(c)), None, 1)
        if c.isascii() and c.isalpha():
            self.i += 1
            return _letter(c)
        if c == "\\":
            return self.command()
        if c == "(" and parens:
            return self.bracket()
        raise ParseError(f"unexpected {c!r} at position {self.i}")

    def command(self) -> tuple:
        m = _LETTERS.match(self.s, self.i + 1)
        if not m:
            raise ParseError(f"unknown command at position {self.i}")
        name = m.group(0)
        self.i = m.end()
        if name == "frac":
            return ("div", self.arg(), self.arg())
        if name == "binom":
            return ("func", "binom", (self.arg(), self.arg()))
        if name == "sqrt":
            if self.take("["):
                self.enter()
                n = self.sum()
                self.depth -= 1
                self.expect("]")
                return ("func", "root", (self.arg(parens=True), n))
            return ("func", "sqrt", (self.arg(parens=True),))
        if name == "pi":
            return ("const", "pi")
        if name == "infty":
            return ("const", "oo")
        if name == "varnothing":
            return ("set", ())
        if name == "lbrace":
            self.enter()
            items = self.items() if not self.peek("\\rbrace") else []
            self.depth -= 1
            self.expect("\\rbrace")
            return ("set", tuple(as_text(x) for x in items))
        if name == "langle":
            self.enter()
            items = self.items()
            self.depth -= 1
            self.expect("\\rangle")
            return ("tuple", tuple(items), "<", ">")
        if name in ("lfloor", "lceil"):
            self.enter()
            x = self.sum()
            self.depth -= 1
            self.expect("\\rfloor" if name == "lfloor" else "\\rceil")
            return ("func", "floor" if name == "lfloor" else "ceil", (x,))
        if name in TEXT_CMDS or name == "mathrm":
            return self.text_arg()
        if name == "begin":
            return self.environment()
        if name in FUNCS:
            return self.function(name)
        if name in GREEK:
            return self.subscript(name)
        raise ParseError(f"unsupported command \\{name}")

    def text_arg(self) -> tuple:
        self.ws()
        if not self.take("{"):
            raise ParseError("\\text without braces")
        end = self.s.find("}", self.i)
        if end < 0:
            raise ParseError("unclosed \\text{")
        content = self.s[self.i:end]
        self.i = end + 1
        stripped = content.strip()
        if not stripped or re.fullmatch(r"[A-Za-z][A-Za-z\s.'\-]*", stripped) and len(stripped) > 1:
            return ("word", " ".join(stripped.split()))
        inner = _Parser(clean(stripped))
        inner.depth = self.depth + 1
        return inner.parse()

    def environment(self) -> tuple:
        m = re.match(r"\s*\{(\w+\*?)\}", self.s[self.i:])
        if not m or m.group(1) not in MATRIX_ENVS:
            raise ParseError("unsupported environment")
        env = m.group(1)
        self.i += m.end()
        if env == "array":
            spec = re.match(r"\s*\{[^{}]*\}", self.s[self.i:])
            self.i += spec.end() if spec else 0
        end = self.s.find("\\end{" + env + "}", self.i)
        if end < 0:
            raise ParseError(f"unclosed environment {env}")
        body = self.s[self.i:end]
        self.i = end + len("\\end{" + env + "}")
        rows = []
        for row in re.split(r"\\\\", body):
            if not row.strip():
                continue
            cells = []
            for cell in row.split("&"):
                inner = _Parser(cell.strip())
                inner.depth = self.depth + 1
                cells.append(inner.parse())
            rows.append(tuple(cells))
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("matrix rows of different lengths")
        return ("matrix", tuple(rows))

    def function(self, name: str) -> tuple:
        if name in ("sqrt", "abs", "floor", "ceil"):
            self.ws()
            x = self.arg(parens=True)
            return ("func", name, (x,))
        base = None
        if name == "log" and self.take("_"):
            base = self.arg()
        power = self.exponent() if self.take("^") else None
        self.ws()
        if self.peek("("):
            x = self.bracket()
        elif self.peek("{"):
            x = self.arg()
        else:
            self.enter()
            x = self.postfix()
            self.depth -= 1
        name = {"ln": "log", "lg": "log10"}.get(name, name)
        node = ("func", "log", (x, base)) if base is not None else ("func", name, (x,))
        return ("pow", node, power) if power is not None else node

    def subscript(self, name: str) -> tuple:
        if self.take("_"):
            sub = self.arg()
            key = _sub_key(sub)
            return ("sym", f"{name}_{key}")
        return ("sym", name)

    def letters(self) -> tuple:
        m = _LETTERS.match(self.s, self.i)
        run = m.group(0)
        after = self.s[m.end():m.end() + 1]
        if run in FUNCS and (after in ("(", " ", "{", "^", "_") or after.isdigit()):
            self.i = m.end()
            return self.function(run)
        if run == "pi":
            self.i = m.end()
            return ("const", "pi")
        if run in ("oo", "inf", "infty", "infinity"):
            self.i = m.end()
            return ("const", "oo")
        # A unit word follows a space ("5 cm", "12 dollars") or is long and glued to a number
        # ("5miles"); "2xy" or "(ab)" are products of symbols, or a wrong "2xy" would equal "2xz".
        prev = self.s[self.i - 1] if self.i > 0 else " "
        if (prev == " " and (len(run) >= 3 or (len(run) == 2 and self.i > 0))) or (prev.isdigit() and len(run) >= 4):
            self.i = m.end()
            return ("word", run)
        self.i += 1
        if self.take("_"):
            sub = self.arg()
            key = _sub_key(sub)
            return ("sym", f"{run[0]}_{key}")
        return _letter(run[0])


def _sub_key(sub: tuple) -> str:
    """The name part of a subscript (a_1, x_{n}); a huge one is no name."""
    if sub[0] == "sym":
        return sub[1]
    if sub[0] == "num" and sub[1].denominator == 1 and sub[1].numerator.bit_length() <= 300:
        return str(sub[1].numerator)
    if any(n[0] == "num" and n[1].numerator.bit_length() > 300 for n in walk(sub)):
        raise ParseError("subscript too long")
    key = repr(sub)
    if len(key) > 200:
        raise ParseError("subscript too long")
    return key


def _letter(c: str) -> tuple:
    if c == "e":
        return ("const", "E")
    if c == "i":
        return ("const", "I")
    return ("sym", c)


def _is_unit(node: tuple) -> bool:
    return node[0] == "word" or (node[0] == "pow" and node[1][0] == "word")


def is_node(x) -> bool:
    """A parse tree node: a tuple whose first item is its kind."""
    return isinstance(x, tuple) and bool(x) and isinstance(x[0], str)


def walk(node: tuple):
    """Every node of a tree, depth first (operand tuples of add / mul / lists are looked inside)."""
    yield node
    for field in node[1:]:
        if is_node(field):
            yield from walk(field)
        elif isinstance(field, tuple):
            for x in field:
                if is_node(x):
                    yield from walk(x)
                elif isinstance(x, tuple):  # matrix rows
                    for y in x:
                        if is_node(y):
                            yield from walk(y)

