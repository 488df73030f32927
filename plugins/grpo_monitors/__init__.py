"""Built-in ``monitors`` plugin: reward-hacking monitors over each step's metrics and scored samples."""

from grpo_plugins import hookimpl
from grpo_plugins.monitors import monitor_registry

from .disagreement import Disagreement
from .divergence import Divergence
from .dominance import Dominance
from .format_collapse import FormatCollapse
from .inconsistency import Inconsistency
from .length_drift import LengthDrift

BUILTIN = (Divergence, Dominance, LengthDrift, Disagreement, Inconsistency, FormatCollapse)


@hookimpl
def register_monitors(register):
    for cls in BUILTIN:
        register(cls)


@hookimpl
def describe_plugins(manager):
    """``grpo-plugins plugins`` lists each plugin's monitors (every plugin's, not only these)."""
    reg = monitor_registry(manager)
    out: dict = {}
    for name, entry in sorted(reg.monitors.items()):
        out.setdefault(entry.plugin, {"monitors": []})["monitors"].append(name)
    for plugin, error in reg.failures.items():
        out.setdefault(plugin, {"monitors": []})["monitor_error"] = error
    return out
