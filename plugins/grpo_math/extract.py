"""Find the final answer in a model completion, and the answer in a gold column value.

Priorities follow what models are trained to write: an <answer> tag, the last \\boxed{} (with the
boxes just before it that belong to the same answer) or a later "final answer is" phrase, GSM8K's
"####", markdown bold; then, unless the extraction mode is ``marked``, the last math span; then,
in mode ``any`` (the default, as Math-Verify and lighteval read), a short completion that is an
answer as a whole, or the last number. Chat-template tokens end the completion. Every search is
linear in the text or bounded to its tail, so garbage stays cheap.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Literal, NamedTuple

TAIL = 4000  # characters from the end searched for bold, math spans and numbers
MAX_ANSWER = 20000  # longer "answers" are derivations or garbage; the parser refuses them whole

_PHRASE = re.compile(r"(?:final answer|the answer|answer|r\u00e9ponse|respuesta|antwort|risposta|resposta|\u043e\u0442\u0432\u0435\u0442"
                     r"|\u7b54\u6848|\u7b54\u3048)\s*(?:is|est|es|ist|\u00e8|\u662f|\u306f|:|\uff1a|=)\s*:?\s*([^\n]+)", re.IGNORECASE)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
# inline $...$ stays on one line and may hold an escaped \\$; display math may span lines
_MATH = re.compile(r"\$\$(.{1,1000}?)\$\$|\\\[(.{1,1000}?)\\\]|\\\(([^\n]{1,1000}?)\\\)|(?<!\\)\$((?:[^$\\\n]|\\.){1,1000}?)\$",
                   re.DOTALL)
# -1,000.99  1 000  2,74  .4  2/3: grouped thousands, decimal commas and fractions kept whole
_NUMBER = re.compile(r"(?<![A-Za-z])-?(?:\d{1,3}(?:(?:,\d{3})+|(?: \d{3})+)(?![\d,])(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)(?:/\d+)?")
_CHOICE_ANSWER = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\**\s*\(?([A-E])\)?(?![A-Za-z])",
                            re.IGNORECASE)
_CHOICE_PAREN = re.compile(r"\(([A-E])\)")
_CHOICE_ONLY = re.compile(r"\s*(?:\\text\{|\\mathrm\{|\\textbf\{)?\s*\(?([A-Ea-e])\)?\s*\}?(?:[\s.:)]|$)")


class Extracted(NamedTuple):
    """An answer found in a completion and where it was found (box, answer_tag, phrase, ...)."""

    text: str
    source: str


Extraction = Literal["any", "latex", "marked"]
MODES = ("any", "latex", "marked")

# a new chat turn or an end-of-text token: what follows is not the completion's answer
_TURN = re.compile(r"<\|im_start\|>|<\|start_header_id\|>|<\|user\|>|<\|eot_id\|>|<\|im_end\|>|<\|endoftext\|>"
                   r"|<\|end\|>|</s>|<\|assistant\|>")
_GAP_NAME = re.compile(r"(?<![A-Za-z\\])[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=")
_GAP_NOISE = re.compile(r"\\text\s*\{[^{}]{0,40}\}|\\q?quad|\\[,;: ()\[\]]|[\s,;.$()\[\]]")
_IS = re.compile(r"(?:\bis|\best|=|:|\u662f|\u4e3a)\s*", re.IGNORECASE)
_WHOLE_MAX = 200  # a completion this short that parses whole is its own answer ("-5", "\\frac{10}{9}")


def strip_chat_tokens(text: str) -> str:
    """The completion up to the first chat-template token that follows its content."""
    m = _TURN.search(text)
    while m is not None and not text[:m.start()].strip():
        text = text[m.end():]
        m = _TURN.search(text)
    return text[:m.start()] if m else text


def extract_answer(text: str, mode: Extraction = "any") -> Extracted | None:
    """The final answer a completion states, or None when it states none (see ``Extraction``)."""
    if not isinstance(text, str):
        raise TypeError(f"completion text must be a string, got {type(text).__name__}")
    if mode not in MODES:
        raise ValueError(f"extraction mode must be one of {', '.join(MODES)}, got {mode!r}")
    text = strip_chat_tokens(text)
    content = _last_answer_tag(text)
    if content is not None:
        inner = _search(content, "latex")  # the tag marks the answer: its content, or a box / span in it
        if inner is not None:
            return Extracted(inner.text, "answer_tag/" + inner.source)
        if content:
            return Extracted(content[:MAX_ANSWER], "answer_tag")
    return _search(text, mode)


def _last_answer_tag(text: str) -> str | None:
    """Content of the last <answer> tag (to </answer> or the end); rfind keeps this linear."""
    lower = text.lower()
    start = lower.rfind("<answer>")
    if start < 0:
        return None
    start += len("<answer>")
    end = lower.find("</answer>", start)
    return text[start:end if end >= 0 else len(text)].strip()


def _search(text: str, mode: Extraction) -> Extracted | None:
    found = _find(text, mode)
    if found is None or found.text.isascii():
        return found
    inner = _answer_in(found.text)
    if inner:
        return Extracted(inner, found.source)
    number = last_number(text) if mode == "any" else None
    return Extracted(number, "last_number") if number else None


def _find(text: str, mode: Extraction) -> Extracted | None:
    box = boxed_run(text)
    phrase = _last_phrase(text)
    # the later of the last box and the last "final answer is" states the final answer
    if phrase is not None and (box is None or phrase.start() > box[1]):
        value = _sentence(phrase.group(1), mode)
        if value:
            return Extracted(value, "phrase")
    if box is not None:
        return Extracted(box[0], "boxed")
    gsm = None
    for gsm in _GSM8K.finditer(text):
        pass
    if gsm is not None:
        return Extracted(gsm.group(1).strip()[:MAX_ANSWER], "gsm8k")
    tail = text[-TAIL:]
    bold = [b.strip() for b in _BOLD.findall(tail) if _answer_in(b.strip()) and not b.strip().endswith(":")]
    if bold:
        return Extracted(bold[-1][:MAX_ANSWER], "bold")
    if mode == "marked":
        return None
    spans = list(_MATH.finditer(tail))
    if spans and mode == "any":
        # a number stated after the last math span is the later answer ("$d=90/n$ ... there are 12")
        after = tail[spans[-1].end():]
        number = last_number(after) if len(after) < 600 else None
        if number and re.search(r"(?<![\w.])" + re.escape(number.rstrip("%")), after):
            return Extracted(number, "last_number")
    if spans:
        inner = next(g for g in spans[-1].groups() if g).strip()
        if inner and mode == "any" and prose(inner) and not _parses(inner) and last_number(inner):
            return Extracted(last_number(inner), "math/last_number")
        if inner:
            return Extracted(inner[:MAX_ANSWER], "math")
    if mode == "latex":
        return None
    stripped = text.strip()
    if stripped and len(stripped) <= _WHOLE_MAX and not prose(stripped) and _parses(stripped):
        return Extracted(stripped, "whole")
    number = last_number(text)
    return Extracted(number, "last_number") if number else None


def _last_phrase(text: str) -> re.Match | None:
    """The last 'final answer is' match; a phrase inside another's value is the later one."""
    found = None
    for found in _PHRASE.finditer(text):
        pass
    for _ in range(5):
        inner = None if found is None else _PHRASE.search(text, found.start(1))
        if inner is None:
            break
        found = inner
    return found


_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "pi", "sqrt", "and", "or", "oo", "inf",
               "infty", "percent", "pct", "cm", "mm", "km", "kg", "deg", "mod"}
_PROSE_WORDS = {"is", "are", "the", "so", "we", "it", "be", "of", "to", "was", "has", "get", "thus", "then", "answer"}


def prose(text: str) -> bool:
    """Whether a text reads as a sentence rather than as an answer (commands and \\text{} aside)."""
    bare = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}(?:\{[^{}]*\})?|\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox"
                  r"|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    words = [w.lower() for w in re.findall(r"[^\W\d_]{2,}", bare)]
    if any(w in _PROSE_WORDS or not w.isascii() for w in words):
        return True
    return any(len(w) >= 3 and w not in _MATH_WORDS for w in words)


_FOREIGN = re.compile(r"[^\W\d_a-zA-Z\u0370-\u03ff]+")  # letters of scripts answers are not written in


def _answer_in(value: str) -> str:
    """An answer with the words of other scripts around it dropped ('3\u9875' -> '3')."""
    if value.isascii():
        return value
    return re.sub(r"\s+", " ", _FOREIGN.sub(" ", value.translate(_WIDE))).strip(" .,:;")


_WIDE = str.maketrans({"\uff08": "(", "\uff09": ")", "\uff1a": ":", "\uff0c": ",", "\u3002": ".", "\uff1b": ";"})


def _parses(text: str) -> bool:
    from .parse import ParseError, parse_answer  # parse imports nothing from here

    try:
        parse_answer(text)
        return True
    except (ParseError, RecursionError):
        return False


def last_number(text: str) -> str | None:
    """The last number of a text, with its sign, fraction bar, thousands groups or decimal comma."""
    tail_start = max(0, len(text) - TAIL)
    found = None
    for found in _NUMBER.finditer(text, tail_start):
        pass
    if found is None:
        return None
    value = found.group(0).strip().rstrip(",.").strip()
    if found.start() == tail_start and value[:1].isdigit():  # a number longer than the tail: read it whole
        j = tail_start
        while j > 0 and text[j - 1].isdigit() and tail_start - j < MAX_ANSWER:
            j -= 1
        value = text[j:tail_start] + value
    after = text[found.end():found.end() + 12].lstrip()
    if re.match(r"(?:%|\\%|percent\b|pct\b|per cent\b)", after, re.IGNORECASE):
        value += "%"
    return value


def _sentence(value: str, mode: Extraction = "any") -> str:
    """The answer part of a 'final answer is ...' line: up to a sentence end, math spans kept whole."""
    value = value.strip()
    m = re.match(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", value)
    if m:
        return next(g for g in m.groups() if g).strip()
    value = re.split(r"\.\s|\.$|,\s+(?:so|because|since|which)\b", value)[0]
    value = value.strip().strip("*").strip()[:MAX_ANSWER]
    if mode != "any" or not prose(value):
        return value
    # "The largest $n$ is 34": the part after the last "is" / "=", else its last number
    last = _answer_in(_IS.split(value)[-1]).strip().strip("$").strip()
    if last and not prose(last) and _parses(last):
        return last
    # "Janeth aura encore 220 $ ... 12 mois": the first number after the phrase
    first = _NUMBER.search(value)
    return first.group(0).rstrip(",.") if first else value


def boxed_run(text: str) -> tuple[str, int] | None:
    """The last box, joined with the boxes just before it that state one answer (``\\boxed{1}, \\boxed{2}``).

    Returns the content (comma-joined) and the end position of the last box.
    """
    boxes = []
    end = len(text)
    for _ in range(6):
        found = _box_before(text, end)
        if found is None:
            break
        content, start, stop = found
        if boxes and not _one_answer_gap(text[stop:boxes[-1][1]]):
            break
        boxes.append((content, start, stop))
        end = start
    if not boxes:
        return None
    return ", ".join(c for c, _, _ in reversed(boxes))[:MAX_ANSWER], boxes[0][2]


def _one_answer_gap(gap: str) -> bool:
    """Text between two boxes that joins them into one answer: separators and at most three words."""
    if len(gap) > 80 or "\n\n" in gap:
        return False
    joined = re.search(r"[,;]|\\q?quad|\b(?:and|or|und|et|y|oder|ou)\b|[\u548c\u6216]", gap)
    rest = _GAP_NOISE.sub(" ", _GAP_NAME.sub(" ", gap))  # "\\boxed{..} and $y_2 = \\boxed{..}$": named parts
    return (bool(joined) or not gap.strip()) and not re.search(r"\d|\\", rest) and len(re.findall(r"[^\W\d_]+", rest)) <= 3


def _box_before(text: str, end: int) -> tuple[str, int, int] | None:
    """(content, start, end) of the last complete box starting before ``end``."""
    for _ in range(5):  # a truncated last box falls back to the one before it
        start = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if start < 0:
            return None
        i = start + (6 if text.startswith("\\boxed", start) else 5)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            close = _braced_end(text, i)
            if close is not None:
                return text[i + 1:close].strip()[:MAX_ANSWER], start, close + 1
        elif i > start + 5 and i < len(text):
            m = re.match(r"[^\s$]+", text[i:])
            if m:
                return m.group(0), start, i + m.end()
        end = start
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...} (nested braces), or of '\\boxed 5'."""
    found = _box_before(text, len(text))
    return found[0] if found else None


def _braced_end(text: str, i: int) -> int | None:
    """Index of the brace closing the one at ``i`` (escaped braces skipped)."""
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and text[j - 1] != "\\":
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return j
    return None


def extract_choice(text: str, candidate: str | None, letters: bool = False) -> str | None:
    """A multiple-choice letter A-E from the extracted answer, or from 'answer is (C)' in the text.

    With ``letters`` (lighteval's letter extraction) a completion that opens with its letter
    ('D. it can't be A') or ends on one ('I think it's B') is read too, in any language.
    """
    if letters:
        found = letter_of(text)
        if found is not None:
            return found
    if candidate is not None:
        m = _CHOICE_ONLY.match(candidate)
        if m:
            return m.group(1).upper()
    found = None
    for found in _CHOICE_ANSWER.finditer(text[-TAIL:]):
        pass
    if found is None:
        for found in _CHOICE_PAREN.finditer(text[-TAIL:]):
            pass
    return found.group(1).upper() if found else None


# "answer is (for sure) D", "réponse est C", "答案是 C": a phrase, up to three words, the letter
_LETTER_PHRASE = re.compile(r"(?:answer|r\u00e9ponse|respuesta|antwort|risposta|\u7b54\u6848)\s*(?:is|est|es|ist|\u662f|:|\uff1a)?"
                            r"\s*:?\s*(?:[a-z]+\s+){0,3}?\**\(?([A-E])\)?(?![A-Za-z])", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"\s*\**\(?([A-E])\)?(?![A-Za-z0-9])")
_STANDALONE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z'])")


def letter_of(text: str) -> str | None:
    """The choice letter a text states: after 'answer is', at its start, else its last standalone one."""
    found = None
    for found in _LETTER_PHRASE.finditer(text[-TAIL:]):
        pass
    if found is not None:
        return found.group(1).upper()
    m = _LEADING_LETTER.match(text)
    if m:
        return m.group(1)
    for found in _STANDALONE.finditer(text[-TAIL:]):
        pass
    return found.group(1) if found else None


def gold_choice(gold: str, letters: bool = False) -> str | None:
    """The letter when a gold answer is a multiple-choice letter ('C', '(C)', '\\text{(C)}').

    With ``letters``, also a choice written out ('(D) Alina', 'C Cecile', '... the answer is (C) Cecile').
    """
    m = re.fullmatch(r"\s*(?:\\text\{)?\s*\(?([A-E])\)?\s*\}?\s*", gold)
    if m:
        return m.group(1)
    if not letters:
        return None
    found = None
    for found in _LETTER_PHRASE.finditer(gold):
        pass
    if found is not None:
        return found.group(1).upper()
    m = _LEADING_LETTER.match(gold)
    return m.group(1) if m else None


def extract_gold(value: Any) -> str:
    """The answer in a gold column value: a plain answer, or the answer a worked solution states."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"gold answer must be a number or a string, got {value!r}")
    if isinstance(value, numbers.Integral):  # numpy integers from a datasets column too
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if not isinstance(value, str):
        raise ValueError(f"gold answer must be a number or a string, got {type(value).__name__}")
    box = boxed_run(value)
    if box is not None:
        return box[0]
    if "####" in value:
        return value.rsplit("####", 1)[1].strip()
    stripped = value.strip()
    if len(stripped) <= _WHOLE_MAX or _parses(stripped):
        return stripped
    found = extract_answer(stripped, "latex")  # a worked solution: its final math span
    return found.text if found else stripped
