"""``grpo-plugins monitor RUN_DIR``: the monitors run offline over a finished run's metrics.jsonl and
samples.jsonl, a verdict table (one row per monitor) and a PNG of the series of those that fired.

It runs the run's ``monitors:`` (its config.yaml), every registered monitor with its defaults when the
run has none, or the ``--monitor`` names given. Exit status: 0 when no monitor fired, 1 when one did
(as ``buffer check`` exits 1 on a problem found; a bad run dir or config is the usual ``Error:`` line).
Nothing in RUN_DIR is changed but the PNG (alerts.jsonl stays the live run's)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from ..errors import SettingError, UserError
from ..io import read_log_jsonl
from ..rewards import RewardResult
from .api import Alert
from .host import MonitorHost, monitor_registry

PNG = "monitors.png"


def run_monitors(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The monitor entries a run config lists; [] when it lists none."""
    entries = (config or {}).get("monitors") or []
    if not isinstance(entries, list):
        raise SettingError("monitors", f"expected a list of monitor entries, got {type(entries).__name__}")
    return entries


def batches_from_samples(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per step, the ``results`` observe() gets, rebuilt from samples.jsonl rows (value and status of each
    reward; no step spans, so every reward reads as an outcome)."""
    by_step: dict[int, dict[str, list[RewardResult]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not isinstance(r.get("step"), int) or not isinstance(r.get("rewards"), dict):
            continue
        status = r.get("status") if isinstance(r.get("status"), dict) else {}
        for label, value in r["rewards"].items():
            info = {"status": status[label]} if status.get(label) is not None else {}
            by_step[r["step"]][label].append(
                RewardResult(float(value) if isinstance(value, (int, float)) else None, info=info))
    return {step: {"results": dict(results)} for step, results in by_step.items()}


def verdicts(host: MonitorHost, alerts: list[Alert]) -> list[dict[str, Any]]:
    """One row per configured monitor: fired, its first alert's step, value and message, how many alerts."""
    out = []
    for label in host.monitors:
        mine = [a for a in alerts if a.monitor == label]
        first = mine[0] if mine else None
        out.append({"monitor": label, "fired": first is not None, "first_step": first and first.step,
                    "value": first and first.value, "alerts": len(mine), "message": first.message if first else ""})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """The verdict table as aligned text."""
    cells = [["monitor", "fired", "first step", "value", "message"]]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4g}"
        cells.append([r["monitor"], "FIRED" if r["fired"] else "no", str(r["first_step"] or ""), value, r["message"]])
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(row[:4], widths)] + [row[4]]).rstrip() for row in cells)


def plot_flagged(history: list[dict[str, Any]], host: MonitorHost, alerts: list[Alert], out: Path) -> Path | None:
    """A PNG with, per monitor that fired, the series it reads and a line at each alert's step."""
    fired = [label for label in host.monitors if any(a.monitor == label for a in alerts)]
    if not fired:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(fired), 1, figsize=(7, 2.8 * len(fired)), squeeze=False)
    for ax, label in zip(axes.flat, fired):
        for key in host.monitors[label].watched(history[-1] if history else {}):
            pts = [(r["step"], r[key]) for r in history if isinstance(r.get(key), (int, float))]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key)
        for a in alerts:
            if a.monitor == label:
                ax.axvline(a.step, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{label}: fired at step {next(a.step for a in alerts if a.monitor == label)}")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def monitor_run(run_dir: str | Path, manager, names: tuple[str, ...] = ()) -> tuple[MonitorHost, list[Alert]]:
    """Replay ``run_dir``'s metrics and samples through its monitors (or ``names``, or all registered)."""
    import yaml

    run_dir = Path(run_dir)
    rows = read_log_jsonl(run_dir / "metrics.jsonl")
    if not rows:
        raise UserError(f"{run_dir}/metrics.jsonl: no metrics rows (is this a run directory?)")
    config = run_dir / "config.yaml"
    entries = [{"name": n} for n in names]
    if not entries and config.exists():
        entries = run_monitors(yaml.safe_load(config.read_text(encoding="utf-8")))
    if not entries:
        entries = [{"name": n} for n in monitor_registry(manager).monitors]
    host = MonitorHost(entries, manager)
    alerts = host.replay(rows, batches_from_samples(read_log_jsonl(run_dir / "samples.jsonl")))
    return host, alerts


def add_monitor_command(cli: click.Group) -> None:
    """Attach ``monitor RUN_DIR`` to the ``grpo-plugins`` group."""

    @cli.command("monitor")
    @click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
    @click.option("--monitor", "names", multiple=True, help="run this monitor with its defaults (repeatable; "
                                                            "default: the run's monitors:, else every registered one)")
    @click.option("--out", type=click.Path(dir_okay=False), default=None,
                  help=f"PNG of the flagged series (default RUN_DIR/{PNG}; written only when one fired)")
    @click.option("--json", "as_json", is_flag=True, help="print the verdicts as JSON")
    @click.pass_context
    def monitor_cmd(ctx, run_dir, names, out, as_json):
        """Run monitors over a finished run's metrics.jsonl and samples.jsonl; exit 1 when one fired."""
        from ..manager import get_plugin_manager

        root = ctx.find_root()
        root.ensure_object(dict)
        host, alerts = monitor_run(run_dir, root.obj.setdefault("manager", get_plugin_manager()), names)
        rows = verdicts(host, alerts)
        png = None
        if alerts:
            from ..errors import require

            require("matplotlib", install="pip install 'grpo-plugins[train]'")
            png = plot_flagged(host.history, host, alerts, Path(out) if out else Path(run_dir) / PNG)
        if as_json:
            click.echo(json.dumps({"verdicts": rows, "png": str(png) if png else None}, indent=1))
        else:
            click.echo(table(rows))
            click.echo(f"{sum(r['fired'] for r in rows)} of {len(rows)} monitors fired over "
                       f"{len(host.history)} steps" + (f"; flagged series: {png}" if png else ""))
        sys.exit(1 if alerts else 0)
