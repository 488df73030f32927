"""Per-cycle metrics of the iterative RL loop and the report across cycles (JSON + PNG curves)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterable

from ..io import atomic_write_text, finite_or_none, read_jsonl


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if finite_or_none(v) is not None]
    return statistics.fmean(values) if values else None


def cycle_metrics(root: Path, k: int, steps_per_cycle: int) -> dict[str, Any]:
    """One cycle's numbers: policy accuracy, mean rewards over its steps, label stats, PRM metrics."""
    from ..grpo.metrics import read_metrics

    d = root / "cycles" / str(k)
    grpo = _load(d / "grpo.json")
    lo, hi = k * steps_per_cycle, (k + 1) * steps_per_cycle
    rows = [r for r in read_metrics(root / "policy") if lo < r.get("step", 0) <= hi]
    out: dict[str, Any] = {"cycle": k, "policy_step": hi, "policy/accuracy": grpo.get("after/eval/accuracy")}
    if k == 0 and "before/eval/accuracy" in grpo:
        out["policy/accuracy_start"] = grpo["before/eval/accuracy"]
    keys = sorted({key for r in rows for key in r if key == "reward" or (key.startswith("rewards/") and key.endswith("/mean"))})
    out.update({key: _mean([r.get(key) for r in rows]) for key in keys})
    stats = _load(d / "label_stats.json")
    labels = read_jsonl(d / "labels.jsonl") if (d / "labels.jsonl").exists() else []
    soft = [v for rec in labels for _, _, v in rec["steps"]]
    out.update({"label/rollouts": stats.get("labelled"), "label/continuations": stats.get("continuations"),
                "label/steps": len(soft), "label/mean_soft": _mean(soft),
                "label/outcome_accuracy": _mean([float(r["outcome"]) for r in labels])})
    out.update({f"buffer/{key}": v for key, v in _load(d / "buffer.json").items()})
    out.update(_load(d / "retrain.json"))
    out["seconds"] = _load(d / "timing.json")
    return out


def write_report(root: Path, cycles: Iterable[int]) -> Path:
    """report.json (one entry per finished cycle) and report.png (policy accuracy, PRM step accuracy, reward)."""
    entries = [_load(root / "cycles" / str(k) / "metrics.json") for k in cycles]
    entries = [e for e in entries if e]
    atomic_write_text(root / "report.json", json.dumps({"cycles": entries}, indent=1))
    return plot_report(entries, root / "report.png")


def _series(entries: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for e in entries:
        v = e.get(key)
        if isinstance(v, (int, float)):
            xs.append(e["cycle"])
            ys.append(v)
    return xs, ys


def plot_report(entries: list[dict[str, Any]], out: Path) -> Path:
    """Three panels across cycles: policy held-out accuracy, PRM held-out step accuracy/AUC, mean reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    xs, ys = _series(entries, "policy/accuracy")
    if entries and "policy/accuracy_start" in entries[0]:
        xs, ys = [-1] + xs, [entries[0]["policy/accuracy_start"]] + ys
    ax.plot(xs, ys, "o-")
    ax.set_title("policy held-out accuracy")
    ax.set_xlabel("cycle (-1 = before RL)")
    ax = axes[1]
    prm_keys = sorted({k.rsplit("/eval/", 1)[0] for e in entries for k in e if k.endswith("/eval/step_accuracy")})
    for p in prm_keys:
        for key, style, name in ((f"{p}/eval/step_accuracy", "o-", "step accuracy"), (f"{p}/eval/auc", "s--", "AUC"),
                                 (f"{p}/eval_before/step_accuracy", "x:", "step acc. before retrain")):
            xs, ys = _series(entries, key)
            if xs:
                ax.plot(xs, ys, style, label=f"{p} {name}")
    ax.set_title("PRM on held-out labelled steps")
    ax.set_xlabel("cycle")
    if prm_keys:
        ax.legend(fontsize=7)
    ax = axes[2]
    reward_keys = sorted({k for e in entries for k in e if k == "reward" or k.startswith("rewards/")})
    for key in reward_keys:
        xs, ys = _series(entries, key)
        ax.plot(xs, ys, "o-", label=key)
    ax.set_title("mean reward during the cycle's GRPO steps")
    ax.set_xlabel("cycle")
    if reward_keys:
        ax.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
