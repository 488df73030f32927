"""The host side of monitors: the ``monitors:`` config entries, the registry the ``register_monitors``
hook builds, and MonitorHost, which runs each configured monitor on every scored batch inside its own
error boundary, stamps each alert with its step and action, and keeps ``alerts.jsonl``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import SettingError, UserError
from ..io import dumps, read_log_jsonl, write_jsonl_atomic
from .api import SEVERITIES, Alert, Monitor, MonitorBatch, validate_monitor_class

Action = Literal["warn", "checkpoint", "stop"]
ACTIONS = ("warn", "checkpoint", "stop")  # weakest first: a step's action is its strongest alert's
ALERTS_FILE = "alerts.jsonl"


class MonitorConfig(BaseModel):
    """One monitor in a run: which one, its options, and what the run does when it alerts."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered monitor name (grpo_monitors: divergence, dominance, length_drift, "
                                                  "disagreement, inconsistency, format_collapse)")
    options: dict[str, Any] = Field(default_factory=dict, description="the monitor's own options")
    action: Action = Field("warn", description="warn: log it; checkpoint: also save a checkpoint; "
                                               "stop: save a checkpoint and end the run")
    label: str | None = Field(None, description="name in alerts; defaults to name (the same monitor twice)")

    @model_validator(mode="after")
    def _label(self):
        if self.label is None:
            self.label = self.name
        return self


class MonitorStop(UserError):
    """A monitor whose action is ``stop`` alerted: the run saved a checkpoint and ended."""

    def __init__(self, alert: Alert, checkpoint: str | os.PathLike | None = None):
        self.alert = alert
        saved = f"checkpoint saved: {checkpoint}; " if checkpoint else ""
        super().__init__(f"monitor {alert.monitor!r} stopped the run at step {alert.step}: {alert.message} "
                         f"({saved}to train on, set its action to warn and run the same command)")


@dataclass
class MonitorEntry:
    """A registered monitor class and the plugin that gave it."""

    cls: type[Monitor]
    plugin: str


@dataclass
class MonitorRegistry:
    """Every registered monitor by name, names two plugins register, plugins whose registration failed."""

    monitors: dict[str, MonitorEntry] = field(default_factory=dict)
    clashes: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def entry(self, name: str) -> MonitorEntry:
        """The entry for ``name``; SettingError-ready message (ValueError) when unknown or clashing."""
        if name in self.clashes:
            raise ValueError(f"monitor name {name!r} is registered by several plugins: {', '.join(self.clashes[name])}")
        if name not in self.monitors:
            from ..suggest import did_you_mean

            close = did_you_mean(name, self.monitors)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            failed = "".join(f"; plugin {p!r} failed to register monitors: {e}" for p, e in self.failures.items())
            avail = (", ".join(sorted(self.monitors))
                     or "(none: no monitor plugin is loaded; check plugins: and GRPO_PLUGINS_LOAD)")
            raise ValueError(f"unknown monitor {name!r}; {hint}available monitors: {avail}{failed}")
        return self.monitors[name]


def monitor_registry(manager) -> MonitorRegistry:
    """Collect the monitors every plugin registers through ``register_monitors``, each plugin on its own."""
    reg = MonitorRegistry()
    for plugin, caller in manager.per_plugin("register_monitors"):
        got: list[type[Monitor]] = []

        def register(cls, _got=got):
            validate_monitor_class(cls)
            _got.append(cls)

        try:
            caller(register=register)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others' monitors
            reg.failures[plugin] = f"{type(exc).__name__}: {exc}"
            continue
        for cls in got:
            if cls.name in reg.monitors and reg.monitors[cls.name].plugin != plugin:
                reg.clashes.setdefault(cls.name, [reg.monitors[cls.name].plugin]).append(plugin)
            reg.monitors[cls.name] = MonitorEntry(cls, plugin)
    return reg


def monitor_problems(configs: Iterable[MonitorConfig], manager) -> list[tuple[str, str]]:
    """(config key, message) for each unknown monitor name, bad option or repeated label."""
    reg = monitor_registry(manager)
    out, labels = [], {}
    for i, c in enumerate(configs):
        if c.label in labels:
            out.append((f"monitors[{i}].label", f"label {c.label!r} repeats monitors[{labels[c.label]}]; "
                                                f"set label: to tell them apart"))
        labels.setdefault(c.label, i)
        try:
            cls = reg.entry(c.name).cls
        except ValueError as exc:
            out.append((f"monitors[{i}].name", str(exc)))
            continue
        for path, msg in cls.option_problems(c.options):
            out.append((f"monitors[{i}].options" + (f".{path}" if path else ""), msg))
    return out


def _as_alerts(out: Any) -> list[Alert]:
    """A monitor's return value as a list of Alerts (None and a single Alert are allowed)."""
    if out is None:
        return []
    items = [out] if isinstance(out, Alert) else list(out)
    for a in items:
        if not isinstance(a, Alert):
            raise TypeError(f"observe() returned {type(a).__name__}, expected Alert (use self.alert(message, value))")
        if a.severity not in SEVERITIES:
            raise TypeError(f"alert severity {a.severity!r} is not one of {', '.join(SEVERITIES)}")
    return items


class MonitorHost:
    """Runs the configured monitors on each step's batch and keeps their alerts (``alerts.jsonl``)."""

    def __init__(self, configs: Iterable[MonitorConfig | dict], manager, history: Iterable[dict] = ()):
        self.configs = [c if isinstance(c, MonitorConfig) else MonitorConfig.model_validate(c) for c in configs]
        problems = monitor_problems(self.configs, manager) if self.configs else []
        if problems:
            raise SettingError(*problems[0])
        reg = monitor_registry(manager) if self.configs else MonitorRegistry()
        self.monitors = {c.label: reg.entry(c.name).cls(c.options, c.label) for c in self.configs}
        self.actions = {c.label: c.action for c in self.configs}
        self.history: list[dict[str, Any]] = list(history)
        self.path: Path | None = None

    def __bool__(self) -> bool:
        return bool(self.monitors)

    def start(self, run_dir: str | os.PathLike, step: int, write: bool = True) -> None:
        """Continue a run at ``step``: history from its metrics.jsonl, alerts.jsonl cut back to that step."""
        run_dir = Path(run_dir)
        self.history = [r for r in read_log_jsonl(run_dir / "metrics.jsonl") if r.get("step", 0) <= step]
        if write:
            self.path = run_dir / ALERTS_FILE
            if self.path.exists():
                write_jsonl_atomic(self.path, [r for r in read_log_jsonl(self.path) if (r.get("step") or 0) <= step])

    def observe(self, step: int, metrics: dict[str, Any], **batch: Any) -> list[Alert]:
        """Every monitor's alerts on step ``step`` (``batch``: samples, results, granularity, advantages)."""
        if not self.monitors:
            return []
        self.history.append({"step": step, **metrics})
        view = MonitorBatch(step=step, metrics=metrics, history=self.history, **batch)
        alerts = []
        for label, monitor in self.monitors.items():
            try:
                found = _as_alerts(monitor.observe(view))
            except Exception as exc:  # noqa: BLE001 - a broken monitor warns; it never stops training
                found = [Alert(label, f"monitor failed: {type(exc).__name__}: {exc}", "error")]
            for a in found:
                a.step = step
                a.action = "warn" if a.severity == "error" else self.actions[label]
            alerts += found
        metrics.update(view.recorded)  # the trainer logs this dict: recorded statistics reach metrics.jsonl
        if self.path is not None and alerts:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(dumps(a.to_json()) + "\n" for a in alerts))
        return alerts

    def replay(self, rows: Iterable[dict[str, Any]],
               batches: dict[int, dict[str, Any]] | None = None) -> list[Alert]:
        """Run the monitors over recorded metrics rows (``metrics.jsonl``), as if each were a step;
        ``batches``: per step, the observe() keywords recorded for it (samples, results; see cli.py)."""
        out = []
        for r in rows:
            step = int(r["step"])
            out += self.observe(step, {k: v for k, v in r.items() if k != "step"}, **(batches or {}).get(step, {}))
        return out


def strongest_action(alerts: Iterable[Alert]) -> str:
    """The strongest action among ``alerts``: stop > checkpoint > warn (warn when there are none)."""
    return max((a.action for a in alerts), key=ACTIONS.index, default="warn")
