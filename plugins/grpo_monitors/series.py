"""Which metric holds a reward's per-step mean, read from the metric names alone (so recorded runs work)."""

from __future__ import annotations

import re
from typing import Any

_MEAN = re.compile(r"^rewards/(.+)/(mean|step_mean)$")


def reward_labels(row: dict[str, Any]) -> list[str]:
    """Reward labels with a mean in a metrics row, in the row's (config) order."""
    out: list[str] = []
    for key in row:
        m = _MEAN.match(key)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def is_step_reward(row: dict[str, Any], label: str) -> bool:
    """A step reward logs ``rewards/LABEL/step_mean`` (the mean step value); an outcome reward does not."""
    return f"rewards/{label}/step_mean" in row


def metric_of(row: dict[str, Any], name: str) -> str:
    """The metric a monitor option names: ``reward`` (the step's summed reward), a reward label (its
    step mean for a step reward, else its mean), or a metric key as it is."""
    if name == "reward" or "/" in name:
        return name
    return f"rewards/{name}/step_mean" if is_step_reward(row, name) else f"rewards/{name}/mean"
