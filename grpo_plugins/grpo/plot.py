"""``grpo-plugins plot RUN_DIR``: training curves as one PNG (matplotlib, no display needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .metrics import read_metrics

DEFAULT_KEYS = ["reward", "kl", "completions/mean_length", "entropy", "clip_ratio/region_mean", "loss"]


def _smooth(values: list[float], k: int) -> list[float]:
    out, window = [], []
    for v in values:
        window.append(v)
        if len(window) > k:
            window.pop(0)
        out.append(sum(window) / len(window))
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None, keys: list[str] | None = None) -> Path:
    """Plot each metric against the step (raw and moving average), plus held-out accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}/metrics.jsonl has no rows to plot")
    if keys is None:
        keys = list(DEFAULT_KEYS)
        keys[1:1] = sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    keys = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)]
    ev = {}
    if (run_dir / "eval.json").exists():
        ev = json.loads((run_dir / "eval.json").read_text())
    panels = keys + (["eval/accuracy"] if ev else [])
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        if key == "eval/accuracy":
            pts = []
            if "before" in ev:
                pts.append((0, ev["before"]["eval/accuracy"]))
            pts += [(c["step"], c["eval/accuracy"]) for c in ev.get("curve", [])]
            if "after" in ev:
                pts.append((rows[-1]["step"], ev["after"]["eval/accuracy"]))
            pts = sorted(dict(pts).items())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color="tab:green")
            ax.set_ylim(0, 1)
            ax.set_title("held-out accuracy (greedy)")
        else:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, alpha=0.35, color="tab:blue")
            ax.plot(xs, _smooth(ys, max(1, len(ys) // 20)), color="tab:blue")
            ax.set_title(key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers: no tick at 2.5
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out) if out else run_dir / "curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
