"""Measure an outcome reward on labelled cases: accuracy, false positives and negatives, time per check.

The ``grpo-plugins audit`` command runs this on a JSONL file whose lines carry ``completion``, the
gold column the reward reads, ``expected`` (true when the completion's answer is right) and
optionally ``category`` and ``id``. A case counts as accepted when the reward's ``info["status"]``
is ``"correct"`` or, for a reward without statuses, when its value is above zero.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from .host import RewardHost
from .io import InputError, read_jsonl
from .rewards import RewardConfig, RewardResult, sample_from_record


def load_cases(path: str) -> list[dict[str, Any]]:
    """Labelled cases; InputError names file:line and field for a missing or non-boolean ``expected``."""
    records = read_jsonl(path, required=("completion", "expected"))
    lines = [n for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    for rec, lineno in zip(records, lines):
        y = rec["expected"]
        if isinstance(y, int) and not isinstance(y, bool) and y in (0, 1):
            rec["expected"] = bool(y)
        elif not isinstance(y, bool):
            raise InputError(f"{path}:{lineno}: field 'expected' must be true/false (or 1/0), got {y!r}")
        rec["_line"] = lineno
    if not records:
        raise InputError(f"{path}: no cases")
    return records


def with_gold_column(configs: list[RewardConfig], gold_column: str, manager) -> list[RewardConfig]:
    """``--gold-column``: sets each reward's ``answer_column``. A reward without that option is an error
    naming its own column options, unless it already reads that column (then there is nothing to set)."""
    out = []
    for c in configs:
        cls = manager.reward_entry(c.name).cls
        if "answer_column" in cls.Options.model_fields:
            out.append(c.model_copy(update={"options": {**c.options, "answer_column": gold_column}}))
            continue
        reward = manager.create_reward(c)
        try:
            reads = list(reward.required_columns() or ())
        finally:
            reward.close()
        if gold_column not in reads:
            own = [f for f in cls.Options.model_fields if f.endswith("_column")]
            fix = (f"set its own with --option {c.name}.{own[0]}={gold_column}" if own
                   else f"it reads the columns: {', '.join(reads) or 'none'}")
            raise InputError(f"--gold-column sets answer_column, and reward {c.name!r} has no such option; {fix}")
        out.append(c)
    return out


def check_columns(configs: list[RewardConfig], cases: list[dict], manager, path: str) -> None:
    """Every case has each column the rewards require: one line per column, not a KeyError at sample 0."""
    from .grpo.preflight import column_option

    seen = sorted({k for rec in cases for k in rec if k != "_line"})
    for c in configs:
        reward = manager.create_reward(c)
        try:
            for col in reward.required_columns() or ():
                lacking = [rec["_line"] for rec in cases if rec.get(col) is None]
                if not lacking:
                    continue
                opt = column_option(reward, col)
                fix = f"--gold-column or --option {c.name}.{opt}=COLUMN" if opt == "answer_column" else (
                    f"--option {c.name}.{opt}=COLUMN" if opt else "add the column")
                if len(lacking) == len(cases):
                    raise InputError(f"{path}: no case has a {col!r} column (reward {c.name!r} reads it; set {fix}); "
                                     f"the file's columns: {', '.join(seen)}")
                raise InputError(f"{path}:{lacking[0]}: {col}: missing (reward {c.name!r} needs it)"
                                 + (f"; {len(lacking) - 1} more cases lack it" if len(lacking) > 1 else ""))
        finally:
            reward.close()


def accepted(result: RewardResult) -> bool:
    """The reward's verdict: status 'correct' where it reports one, else a value above zero."""
    status = result.info.get("status") if isinstance(result.info, dict) else None
    if status is not None:
        return status == "correct"
    return result.value is not None and result.value == result.value and result.value > 0


def run_reward(config: RewardConfig, cases: list[dict], manager, progress: Callable[[int], None]) -> list[dict]:
    """Score every case alone (so times are per check); one dict per case: verdict, status, ms, info."""
    out = []
    with RewardHost([config], manager=manager) as host:
        if host.entries[config.label].cls.granularity != "outcome":
            raise ValueError(f"audit needs an outcome reward; {config.name!r} scores steps")
        for rec in cases:
            sample = sample_from_record({k: v for k, v in rec.items() if k != "_line"})
            t = time.perf_counter()
            res = host.score([sample]).results[config.label][0]
            ms = 1000 * (time.perf_counter() - t)
            info = res.info if isinstance(res.info, dict) else {}
            out.append({"accepted": accepted(res), "status": info.get("status"), "ms": ms,
                        "extracted": info.get("extracted"), "error": info.get("error") or info.get("detail")
                        if info.get("status") == "error" else None})
            progress(1)
    return out


def summary(cases: list[dict], verdicts: list[dict]) -> dict:
    """Accuracy, false positives / negatives, errors and mean / max ms per check of one reward."""
    n = len(cases)
    ok = sum(v["accepted"] == c["expected"] for c, v in zip(cases, verdicts))
    times = [v["ms"] for v in verdicts]
    return {"cases": n, "accuracy": round(ok / n, 4),
            "false_positives": sum(v["accepted"] and not c["expected"] for c, v in zip(cases, verdicts)),
            "false_negatives": sum(c["expected"] and not v["accepted"] for c, v in zip(cases, verdicts)),
            "errors": sum(v["status"] == "error" for v in verdicts),
            "mean_ms": round(sum(times) / n, 3), "max_ms": round(max(times), 1)}


def audit(configs: list[RewardConfig], cases: list[dict], manager, progress=None) -> dict:
    """The audit report: per reward overall and by category, and the cases where anyone disagrees."""
    progress = progress or (lambda k: None)
    verdicts = {c.label: run_reward(c, cases, manager, progress) for c in configs}
    labels = [c.label for c in configs]
    report: dict[str, Any] = {"cases": len(cases), "rewards": {}, "by_category": {}, "disagreements": []}
    for label in labels:
        report["rewards"][label] = summary(cases, verdicts[label])
    groups: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cases):
        if "category" in c:
            groups[str(c["category"])].append(i)
    for cat in sorted(groups):
        idx = groups[cat]
        report["by_category"][cat] = {label: summary([cases[i] for i in idx], [verdicts[label][i] for i in idx])
                                      for label in labels}
    for i, c in enumerate(cases):
        got = {label: verdicts[label][i] for label in labels}
        if any(v["accepted"] != c["expected"] for v in got.values()) or len({v["accepted"] for v in got.values()}) > 1:
            report["disagreements"].append({
                "line": c["_line"], "id": c.get("id"), "category": c.get("category"), "expected": c["expected"],
                **{label: {k: v for k, v in got[label].items() if k != "ms" and v is not None}
                   for label in labels}})
    return report


def format_report(report: dict, path: str) -> str:
    """The report as text: one table overall, one by category, then the disagreements."""
    labels = list(report["rewards"])
    head = "| reward | cases | accuracy | false pos | false neg | errors | mean ms/check | max ms |"
    sep = "|---|---|---|---|---|---|---|---|"

    def row(name, s):
        return (f"| {name} | {s['cases']} | {s['accuracy']:.3f} | {s['false_positives']} | {s['false_negatives']} "
                f"| {s['errors']} | {s['mean_ms']:.2f} | {s['max_ms']:.0f} |")

    lines = [f"audit of {', '.join(labels)} on {path} ({report['cases']} cases)", "", head, sep]
    lines += [row(label, report["rewards"][label]) for label in labels]
    if report["by_category"]:
        lines += ["", "by category:", "", head.replace("| reward |", "| category | reward |"), sep + "---|"]
        for cat, per in report["by_category"].items():
            lines += [row(f"{cat} | {label}", s) for label, s in per.items()]
    lines += ["", f"disagreements ({len(report['disagreements'])}):"]
    for d in report["disagreements"]:
        verdicts = "; ".join(f"{label}: {'accepts' if d[label]['accepted'] else 'rejects'}"
                             f" ({d[label].get('status', '-')}, extracted {d[label].get('extracted')!r})"
                             for label in labels)
        where = f"line {d['line']}" + (f" id {d['id']}" if d.get("id") is not None else "")
        cat = f" [{d['category']}]" if d.get("category") is not None else ""
        lines.append(f"  {where}{cat}: expected {'correct' if d['expected'] else 'wrong'}; {verdicts}")
    return "\n".join(lines)


PROGRESS_EVERY_S = 10.0  # off a terminal: one progress line this often, as train's plain lines are periodic


def progress_bar(total: int, every_s: float = PROGRESS_EVERY_S, clock=time.monotonic):
    """A tqdm bar on a terminal, else a plain line every ``every_s`` seconds and one at the end; (update, close)."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        bar = tqdm(total=total, desc="auditing", unit="check")
        return bar.update, bar.close
    state = {"done": 0, "last": clock()}

    def update(k):
        state["done"] += k
        now = clock()
        if now - state["last"] >= every_s or state["done"] == total:
            print(f"audit: {state['done']}/{total} checks", file=sys.stderr, flush=True)
            state["last"] = now

    return update, lambda: None
