"""``grpo-plugins eval``: evaluate saved policies on the held-out prompts with the trainer's rollout
path, then write eval.json, a PNG of pass@k and maj@k against k (one line per model) and a table,
with the training run's monitor alerts (RUN_DIR/alerts.jsonl) when it has any."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SettingError
from ..io import atomic_write_text, read_log_jsonl
from .config import TrainConfig
from .evaluate import bootstrap_interval, greedy_correct, paired_difference, progress_printer, sampled_eval


def _trainer_for(cfg: TrainConfig, manager, model_dir: str):
    """A trainer whose policy is the saved model in ``model_dir`` (a LoRA adapter folder works too)."""
    from transformers import AutoTokenizer

    from .models import load_pretrained_policy
    from .trainer import GRPOTrainer

    model_cfg = cfg.model.model_copy(update={"name_or_path": model_dir, "lora": None})
    run = cfg.model_copy(update={"model": model_cfg})
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer or model_dir,
                                              trust_remote_code=cfg.model.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_pretrained_policy(model_dir, run)
    if not any(p.requires_grad for p in model.parameters()):
        model.requires_grad_(True)  # a LoRA folder loads frozen; the trainer wants an optimizer it never steps here
    return GRPOTrainer(run, manager, model=model, tokenizer=tokenizer)


def evaluate_models(cfg: TrainConfig, manager, models: Sequence[str], samples: int, ks: Sequence[int],
                    subsets: int = 200) -> dict[str, Any]:
    """Greedy accuracy and ``sampled_eval`` for each model folder on ``data.eval``; eval.json's content."""
    if not cfg.data or not cfg.data.eval:
        raise SettingError("data.eval", "`eval` needs held-out prompts", "set data.eval in the config")
    if max(ks) > samples:
        raise SettingError("--k", f"{max(ks)} needs --samples >= {max(ks)} (it is {samples})")
    report: dict[str, Any] = {"samples": samples, "k": sorted(ks), "seed": cfg.train.seed,
                              "temperature": cfg.rollout.temperature, "models": []}
    t_all = time.perf_counter()
    for model_dir in models:
        t0 = time.perf_counter()
        trainer = _trainer_for(cfg, manager, model_dir)
        try:
            rows = list(trainer.eval_rows)
            max_new = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
            greedy, _ = greedy_correct(trainer, rows, max_new)
            lo, hi = bootstrap_interval(np.array(greedy, dtype=float), np.random.default_rng(cfg.train.seed))
            update, close = progress_printer(f"eval {model_dir}", len(rows))
            try:
                result = sampled_eval(trainer, rows, samples, ks, subsets, seed=cfg.train.seed, progress=update)
            finally:
                close()
        finally:
            trainer.host.close()
        report["models"].append({"model": model_dir, "greedy": {"mean": float(np.mean(greedy)), "lo": lo, "hi": hi},
                                 **result, "seconds": time.perf_counter() - t0})
    report["seconds"] = time.perf_counter() - t_all
    report["differences"] = differences(report, cfg.train.seed)
    report["alerts"] = run_alerts(cfg.log.run_dir)
    return report


MAX_ALERT_LINES = 20  # a run that alerted every step still gets a readable report


def run_alerts(run_dir: str | Path) -> list[dict[str, Any]]:
    """The alerts the run's monitors raised (``RUN_DIR/alerts.jsonl``); [] when none fired or there is no run."""
    from ..monitors import ALERTS_FILE

    return read_log_jsonl(Path(run_dir) / ALERTS_FILE)


def format_alerts(alerts: list[dict[str, Any]]) -> list[str]:
    """The report's alerts section: a heading, then one line per alert (``alert step 23 [warning] ...``)."""
    if not alerts:
        return []
    monitors = sorted({str(a.get("monitor")) for a in alerts})
    lines = ["", f"monitor alerts during training (RUN_DIR/alerts.jsonl): {len(alerts)} from {', '.join(monitors)}"]
    for a in alerts[:MAX_ALERT_LINES]:
        action = "" if a.get("action", "warn") == "warn" else f" (action: {a['action']})"
        lines.append(f"  step {a.get('step')} [{a.get('severity')}] {a.get('monitor')}: {a.get('message')}{action}")
    if len(alerts) > MAX_ALERT_LINES:
        lines.append(f"  ... and {len(alerts) - MAX_ALERT_LINES} more")
    return lines


def differences(report: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Each later model minus the first on the same prompts (paired bootstrap intervals)."""
    models = report["models"]
    out = []
    for m in models[1:]:
        base = models[0]
        row: dict[str, Any] = {"model": m["model"], "minus": base["model"]}
        for name, values in m["per_prompt"].items():
            if name in base["per_prompt"]:
                row[name] = paired_difference(base["per_prompt"][name], values, seed)
        out.append(row)
    return out


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """eval.json and passk.png under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    return out / "eval.json", plot_report(report, out / "passk.png")


def _families(report: dict[str, Any]) -> list[str]:
    """Metric families present in every model: pass, maj, and the PRM ones when a step reward voted."""
    names = ["pass", "maj", "prm_maj@{k}/min", "best_of@{k}/min"]
    k = report["k"][0]
    out = []
    for n in names:
        key = f"{n}@{k}" if "{k}" not in n else n.format(k=k)
        if all(key in m for m in report["models"]):
            out.append(n)
    return out


def _key(family: str, k: int) -> str:
    return family.format(k=k) if "{k}" in family else f"{family}@{k}"


def _title(family: str) -> str:
    return {"pass": "pass@k", "maj": "maj@k (answer equivalence)", "prm_maj@{k}/min": "PRM-weighted maj@k (min)",
            "best_of@{k}/min": "PRM best-of-k (min)"}[family]


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """pass@k and maj@k against k, one line (with its 95% band) per model, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = _families(report)
    ks = report["k"]
    fig, axes = plt.subplots(1, len(fams), figsize=(4.6 * len(fams), 3.8), squeeze=False, sharey=True)
    for ax, fam in zip(axes[0], fams):
        for m in report["models"]:
            vals = [m[_key(fam, k)] for k in ks]
            line, = ax.plot(ks, [v["mean"] for v in vals], marker="o", label=m["model"])
            ax.fill_between(ks, [v["lo"] for v in vals], [v["hi"] for v in vals], alpha=0.15, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("k")
        ax.set_title(_title(fam))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of held-out prompts")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"N={report['samples']} samples per prompt, temperature {report['temperature']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _cell(v: dict[str, float] | None, signed: bool = False) -> str:
    if v is None or math.isnan(v["mean"]):
        return "-"
    f = "+.3f" if signed else ".3f"
    return f"{v['mean']:{f}} [{v['lo']:{f}},{v['hi']:{f}}]"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: greedy accuracy, then one block per metric with a column per k."""
    models = report["models"]
    width = max(12, *(len(m["model"]) for m in models), *(len(_title(f)) for f in _families(report))) + 2
    lines = ["greedy accuracy".ljust(width + 12) + "  ".join(f"{m['model']}: {_cell(m['greedy'])}" for m in models)]
    for fam in _families(report):
        lines.append("")
        lines.append(_title(fam).ljust(width) + "".join(f"k={k}".ljust(22) for k in report["k"]))
        for m in models:
            lines.append(m["model"].ljust(width) + "".join(_cell(m.get(_key(fam, k))).ljust(22) for k in report["k"]))
    for d in report.get("differences", []):
        lines.append("")
        lines.append(f"paired difference: {d['model']} - {d['minus']}")
        lines.append("".ljust(width) + "".join(f"k={k}".ljust(24) for k in report["k"]))
        for fam in ("pass", "maj"):
            cells = [_cell(d.get(_key(fam, k)), signed=True).ljust(24) for k in report["k"]]
            lines.append(fam.ljust(width) + "".join(cells))
    lines.append("")
    for m in models:
        parts = []
        for lab, r in m["rewards"].items():
            shares = ", ".join(f"{s} {v:.1%}" for s, v in r["status"].items())
            mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
            parts.append(f"{lab} mean {mean}" + (f" ({shares})" if shares else ""))
        lines.append(f"{m['model']}: " + "; ".join(parts) + f"; {m['seconds']:.0f}s")
    lines += format_alerts(report.get("alerts") or [])
    return "\n".join(lines)
