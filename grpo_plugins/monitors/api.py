"""The monitor API: a Monitor class observes each scored batch (a MonitorBatch) and returns Alerts.

A monitor is to a run what a reward is to a sample: a named class with an ``Options`` model, built
once per configured entry, called by the host inside its own error boundary. Monitors may keep state
between steps; ``batch.history`` holds every step's metrics so far, so most need none."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from ..rewards import RewardOptions, RewardResult, Sample, describe_validation_error

Severity = Literal["warning", "critical", "error"]  # error: the monitor itself failed
SEVERITIES = ("warning", "critical", "error")


@dataclass
class Alert:
    """One finding: the monitor (its config label), severity, a one-line message, the value that tripped it.

    The host fills ``step`` and ``action`` (what the run does about it: warn, checkpoint, stop)."""

    monitor: str
    message: str
    severity: Severity = "warning"
    value: float | None = None
    step: int | None = None
    action: str = "warn"

    def to_json(self) -> dict[str, Any]:
        """The ``alerts.jsonl`` row."""
        return asdict(self)

    def line(self) -> str:
        """The log line: ``alert step 12 [warning] divergence: ...``."""
        return f"alert step {self.step} [{self.severity}] {self.monitor}: {self.message}"


@dataclass
class MonitorBatch:
    """What a monitor sees each step: the scored samples, {reward label: [RewardResult]}, each reward's
    granularity, each sample's mean per-token advantage, this step's metrics, and every step's so far."""

    step: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]  # metrics rows (each with "step"), oldest first, this step's last
    samples: list[Sample] = field(default_factory=list)
    results: dict[str, list[RewardResult]] = field(default_factory=dict)
    granularity: dict[str, str] = field(default_factory=dict)
    advantages: list[float] = field(default_factory=list)
    recorded: dict[str, float] = field(default_factory=dict)  # what record() kept, by metric key

    def record(self, label: str, name: str, value: float) -> str:
        """Keep a monitor's per-step statistic as metric ``monitors/LABEL/NAME`` (in metrics.jsonl and
        history), so an offline replay of the run reads what the live monitor saw; returns the key."""
        key = f"monitors/{label}/{name}"
        self.recorded[key] = float(value)
        self.history[-1][key] = float(value)
        return key

    def series(self, key: str, window: int | None = None) -> tuple[list[int], list[float]]:
        """(steps, values) of metric ``key`` over the last ``window`` rows of history, finite values only."""
        rows = self.history[-window:] if window else self.history
        pts = [(int(r["step"]), float(r[key])) for r in rows
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return [s for s, _ in pts], [v for _, v in pts]


class MonitorOptions(RewardOptions):
    """Base for monitor option models: typed, defaults documented, unknown keys rejected."""


class Monitor:
    """Base class for monitors. Subclasses set ``name``, ``Options`` and ``observe``."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[MonitorOptions]] = MonitorOptions
    description: ClassVar[str] = ""

    def __init__(self, options: MonitorOptions | dict[str, Any] | None = None, label: str | None = None):
        if not isinstance(options, self.Options):
            options = self.Options.model_validate(dict(options or {}))
        self.options = options
        self.label = label or self.name

    @classmethod
    def option_problems(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
        """(option path, message) for each option ``cls.Options`` rejects; [] when they validate."""
        try:
            cls.Options.model_validate(dict(options or {}))
        except ValidationError as err:
            return describe_validation_error(cls.Options, err)
        return []

    def observe(self, batch: MonitorBatch) -> list[Alert]:  # pragma: no cover - abstract
        """Look at one scored batch; return the alerts it raises ([] when all is well)."""
        raise NotImplementedError

    def watched(self, row: dict[str, Any]) -> list[str]:
        """The metric keys this monitor reads, given a metrics row (what ``grpo-plugins monitor`` plots)."""
        return []

    def alert(self, message: str, value: float | None = None, severity: Severity = "warning") -> Alert:
        """An Alert from this monitor (its config label)."""
        return Alert(self.label, message, severity, value)


def validate_monitor_class(cls: Any) -> None:
    """Raise TypeError when a registered class does not follow the monitor contract."""
    if not (isinstance(cls, type) and issubclass(cls, Monitor)):
        raise TypeError(f"{cls!r} is not a subclass of grpo_plugins.monitors.Monitor")
    if not isinstance(cls.name, str) or not cls.name.replace("_", "").replace("-", "").isalnum():
        raise TypeError(f"{cls.__qualname__}.name must be a non-empty identifier-like string, got {cls.name!r}")
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, MonitorOptions)):
        raise TypeError(f"{cls.__qualname__}.Options must subclass MonitorOptions")
    if cls.observe is Monitor.observe:
        raise TypeError(f"{cls.__qualname__} does not implement observe(batch)")
