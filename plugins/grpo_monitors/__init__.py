"""Built-in ``monitors`` plugin: reward-hacking monitors over each step's metrics and scored samples."""

from grpo_plugins import hookimpl

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
