"""String-level clean-up of an extracted answer before parsing: LaTeX spellings, spacing, delimiters."""

from __future__ import annotations

import re

# Longest spellings first so that "\leq" is not read as "\le" + "q".
_REPLACE = [
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
    ("\\dbinom", "\\binom"), ("\\tbinom", "\\binom"),
    ("\\displaystyle", " "), ("\\textstyle", " "),
    ("\\leqslant", "<="), ("\\geqslant", ">="), ("\\leq", "<="), ("\\geq", ">="),
    ("\\le", "<="), ("\\ge", ">="), ("\\neq", "!="), ("\\ne", "!="), ("\\lt", "<"), ("\\gt", ">"),
    ("\\cdot", "*"), ("\\times", "*"), ("\\ast", "*"), ("\\div", "/"),
    ("\\mp", "\\mp "), ("\\pm", "\\pm "),
    ("\\qquad", " "), ("\\quad", " "), ("\\,", " "), ("\\;", " "), ("\\:", " "), ("\\!", ""),
    ("\\$", " "), ("\\%", "%"), ("{,}", ""), ("\\{", " \\lbrace "), ("\\}", " \\rbrace "),
    ("\\lbrace", " \\lbrace "), ("\\rbrace", " \\rbrace "),
    ("\\lvert", "|"), ("\\rvert", "|"), ("\\vert", "|"), ("\\mid", "|"),
    ("\\emptyset", "\\varnothing"), ("\\in", "="),
]
_UNICODE = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u00f7": "/",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\uff0c": ",", "\u3002": ".",
})
_UNICODE_WORDS = [("\u2264", "<="), ("\u2265", ">="), ("\u2260", "!="), ("\u00b1", "\\pm "), ("\u221e", "\\infty "),
                  ("\u03c0", "\\pi "), ("\u221a", "\\sqrt"),
                  ("\u222a", "\\cup "), ("\u2205", "\\varnothing ")]
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)[lrm]?(?![a-zA-Z])\s*(\\[{}|]|[()\[\]|.])?")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\u00b0")
_STYLE = re.compile(r"\\(?:mathrm|mathbf|mathit|mathsf|boldsymbol|bm|textbf|textit|textrm|operatorname|rm|bf)\b\s*")
_THIN_THOUSANDS = re.compile(r"(?<=\d),?\\[,;:! ]\s*(?=\d{3}(?!\d))")  # 1\,000 and 11,\! 111
_SPACE_CMD = re.compile(r"(?<!\\)\\ ")  # "\ " is a space, "\\ " a matrix row break
_DOUBLED = re.compile(r"\\\\(?=[A-Za-z])")
_TRAILING = re.compile(r"[\s.;,:]+$")
# "x = 1/3 \\approx 0.33": the exact value is stated before the approximation
_APPROX = re.compile(r"(?<=\S)\s*(?:\\approx|\\simeq|\u2248)(?:(?!\\approx|[,;]).)*", re.DOTALL)
_GLUED_QUAD = re.compile(r"\\q?quad(?=[A-Za-z])")
_LABEL_APPROX = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*(?:\\approx|\\simeq|\u2248)")
_LEAD_APPROX = re.compile(r"^\s*(?:\\approx|\\simeq|\u2248)\s*")
_PERCENT_WORD = re.compile(r"(?<=\d)\s*(?:\\%|%|percent\b|per\s?cent\b|pct\b)", re.IGNORECASE)


def clean(answer: str) -> str:
    """Canonical spelling of an answer: math delimiters, sizing, spacing and symbol commands removed."""
    s = answer.strip()
    if "\\begin" not in s:
        s = _DOUBLED.sub(r"\\", s)  # "\\\\le" from a doubly escaped string is the command \\le
    s = _strip_delimiters(s)
    s = s.translate(_UNICODE)
    for a, b in _UNICODE_WORDS:
        s = s.replace(a, b)
    s = _GLUED_QUAD.sub(" ", s)  # "\\quadx_2": a spacing command glued to the next name
    s = _LABEL_APPROX.sub(r"\1=", s)  # "x \\approx 11" states 11
    s = _LEAD_APPROX.sub("", _APPROX.sub("", s))
    s = _PERCENT_WORD.sub("%", s)
    s = _THIN_THOUSANDS.sub("", s)
    s = _SPACE_CMD.sub(" ", s)
    s = _SIZING.sub(_sizing_repl, s)
    s = _DEGREES.sub("", s)
    for a, b in _REPLACE:
        if a in s:
            s = _replace_command(s, a, b)
    s = _STYLE.sub(r"\\mathrm ", s)  # one name for every font command; parse keeps the content
    s = s.replace("$", " ").replace("**", "^")
    s = _TRAILING.sub("", s.strip())
    s = _strip_delimiters(s)
    return re.sub(r"\s+", " ", s).strip()


def _sizing_repl(m: re.Match) -> str:
    # "\left." is an invisible delimiter; "\left\{" keeps its brace
    d = m.group(1) or ""
    return "" if d == "." else d


def _replace_command(s: str, a: str, b: str) -> str:
    # a command name only matches when not followed by more letters (\le must not eat \left)
    if a[-1].isalpha():
        return re.sub(re.escape(a) + r"(?![a-zA-Z])", lambda _m: b, s)
    return s.replace(a, b)


def _strip_delimiters(s: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            inner = s[len(left):len(s) - len(right)]
            if left != "$" or "$" not in inner:
                return inner.strip()
    return s
