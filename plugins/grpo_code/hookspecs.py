"""Hooks the code plugin adds to the host (through ``add_hookspecs``): sandbox backends."""

from __future__ import annotations

from typing import Callable

from grpo_plugins import hookspec


@hookspec
def register_sandbox_backends(register: Callable[[str, type], None]) -> None:
    """Register code-execution backends: call ``register("name", BackendClass)``."""
