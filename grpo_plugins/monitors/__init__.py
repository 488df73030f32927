"""Reward-hacking monitors: the Monitor API plugins implement, and the host that runs them each step.

A plugin registers Monitor classes through the ``register_monitors`` hook; a run lists the ones it
wants under ``monitors:`` (name, options, action: warn | checkpoint | stop). See docs/monitors.md."""

from .api import Alert, Monitor, MonitorBatch, MonitorOptions
from .host import (ACTIONS, ALERTS_FILE, MonitorConfig, MonitorHost, MonitorStop, monitor_problems, monitor_registry,
                   strongest_action)

__all__ = ["ACTIONS", "ALERTS_FILE", "Alert", "Monitor", "MonitorBatch", "MonitorConfig", "MonitorHost",
           "MonitorOptions", "MonitorStop", "monitor_problems", "monitor_registry", "strongest_action"]
