"""PRM training data: TRL's PRM format, Math-Shepherd, PRM800K and our own labelled rollouts, all
read into one shape (prompt, completion, step char spans, one label in [0, 1] per step)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from grpo_plugins.io import InputError, read_jsonl

from grpo_plugins.steps import DEFAULT_STEP_PATTERN, MATH_SHEPHERD_TAG, join_steps

Format = Literal["auto", "trl", "math_shepherd", "prm800k", "rollout"]
FORMATS = ("auto", "trl", "math_shepherd", "prm800k", "rollout")


@dataclass
class PRMExample:
    """One labelled trajectory: the step spans index ``completion``; labels are P(step is good)."""

    prompt: str
    completion: str
    spans: list[tuple[int, int]]
    labels: list[float]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.spans) != len(self.labels):
            raise ValueError(f"{len(self.spans)} steps but {len(self.labels)} labels")
        for v in self.labels:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"step label {v!r} is outside [0, 1]")


def _label(v: Any) -> float:
    if isinstance(v, str):
        v = {"+": 1.0, "-": 0.0, "true": 1.0, "false": 0.0}.get(v.strip().lower(), v)
    return float(v)


def from_trl(rec: dict[str, Any], separator: str = "\n") -> PRMExample:
    """TRL PRM format: ``prompt``, ``completions`` (list of step texts), ``labels`` (bool/float per step)."""
    completion, spans = join_steps(rec["completions"], separator)
    return PRMExample(str(rec["prompt"]), completion, spans, [_label(v) for v in rec["labels"]])


def from_math_shepherd(rec: dict[str, Any], tag: str = MATH_SHEPHERD_TAG,
                       step_pattern: str = DEFAULT_STEP_PATTERN) -> PRMExample:
    """Math-Shepherd: ``input`` with a step tag after each step, ``label`` with +/- in the tags' places."""
    text, label_text = rec["input"], rec["label"]
    # the tag may be longer than the one-character +/- that replaces it: index both texts alike
    marked = text.replace(tag, "\0")
    ends = [m.start() for m in re.finditer("\0", marked)]
    if len(marked) != len(label_text):
        raise ValueError("Math-Shepherd label text does not line up with the input text")
    labels = [_label(label_text[i]) for i in ends]
    first = re.search(step_pattern, marked)
    cut = first.start() if first and (not ends or first.start() < ends[0]) else 0
    prompt, body = marked[:cut], marked[cut:]
    pieces = body.split("\0")
    if pieces and not pieces[-1].strip():
        pieces = pieces[:-1]
    if len(pieces) != len(labels):
        raise ValueError(f"{len(pieces)} steps but {len(labels)} +/- labels")
    completion, spans = join_steps([p.strip() for p in pieces], "\n")
    return PRMExample(prompt.strip(), completion, spans, labels)


def from_prm800k(rec: dict[str, Any], neutral: float = 1.0) -> PRMExample:
    """PRM800K phase1/phase2 record: follow the chosen completion of each step; rating -1/0/+1."""
    steps, labels = [], []
    for step in rec["label"]["steps"]:
        if step.get("human_completion"):
            chosen = {"text": step["human_completion"]["text"] if isinstance(step["human_completion"], dict)
                      else step["human_completion"], "rating": 1}
        elif step.get("chosen_completion") is not None:
            chosen = step["completions"][step["chosen_completion"]]
        elif step.get("completions"):
            # no completion chosen: the labeller stopped here (usually at the first wrong step)
            chosen = min(step["completions"], key=lambda c: c.get("rating") if c.get("rating") is not None else 2)
        else:
            break
        rating = chosen.get("rating")
        if rating is None:
            break
        steps.append(chosen["text"])
        labels.append({1: 1.0, 0: neutral, -1: 0.0}[int(rating)])
        if step.get("chosen_completion") is None and not step.get("human_completion"):
            break
    if not steps:
        raise ValueError("PRM800K record has no rated step")
    completion, spans = join_steps(steps, "\n")
    return PRMExample(rec["question"]["problem"], completion, spans, labels)


def from_rollout(rec: dict[str, Any]) -> PRMExample:
    """Our labelled rollouts: ``prompt``, ``completion``, ``steps`` = [[start_char, end_char, label], ...]."""
    steps = rec["steps"]
    return PRMExample(str(rec.get("prompt") or ""), rec["completion"], [(int(s), int(e)) for s, e, _ in steps],
                      [float(v) for _, _, v in steps], meta={k: rec[k] for k in ("cycle", "policy_step") if k in rec})


def detect_format(rec: dict[str, Any]) -> str:
    """Which of the supported formats a record is in, from its keys."""
    if "completions" in rec and "labels" in rec:
        return "trl"
    if isinstance(rec.get("input"), str) and isinstance(rec.get("label"), str):
        return "math_shepherd"
    if isinstance(rec.get("question"), dict) and isinstance(rec.get("label"), dict):
        return "prm800k"
    if "completion" in rec and "steps" in rec:
        return "rollout"
    raise ValueError(f"unrecognised PRM record with keys {sorted(rec)}; expected TRL (prompt, completions, labels), "
                     "Math-Shepherd (input, label), PRM800K (question, label) or rollout (completion, steps)")


def to_example(rec: dict[str, Any], fmt: Format = "auto", separator: str = "\n",
               prm800k_neutral: float = 1.0) -> PRMExample:
    """One record of any supported format as a PRMExample."""
    fmt = detect_format(rec) if fmt == "auto" else fmt
    if fmt == "trl":
        return from_trl(rec, separator)
    if fmt == "math_shepherd":
        return from_math_shepherd(rec)
    if fmt == "prm800k":
        return from_prm800k(rec, prm800k_neutral)
    if fmt == "rollout":
        return from_rollout(rec)
    raise ValueError(f"unknown PRM data format {fmt!r}; valid: {', '.join(FORMATS)}")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a .jsonl file, or of a .json file holding a list."""
    path = Path(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of records")
        return data
    return read_jsonl(path)


def load_examples(paths: str | Path | Iterable[str | Path], fmt: Format = "auto", separator: str = "\n",
                  prm800k_neutral: float = 1.0) -> list[PRMExample]:
    """Read PRM examples from files; errors name the file and record number."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for path in paths:
        for i, rec in enumerate(read_records(path), 1):
            try:
                out.append(to_example(rec, fmt, separator, prm800k_neutral))
            except (KeyError, ValueError, TypeError) as exc:
                raise InputError(f"{path}: record {i}: {type(exc).__name__}: {exc}") from None
    return out
