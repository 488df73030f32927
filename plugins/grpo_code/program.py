"""Which part of a completion is the program."""

from __future__ import annotations

import re

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
TAGS = {"python": {"python", "py", "python3"}, "cpp": {"cpp", "c++", "cc", "cxx"}}


def extract_program(text: str, language: str = "python") -> str:
    """The last fenced block of the language (an untagged one if none is tagged), or the whole text."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]
    tagged = [code for tag, code in blocks if tag in TAGS[language]]
    if tagged:
        return tagged[-1]
    untagged = [code for tag, code in blocks if not tag]
    return untagged[-1] if untagged else text
