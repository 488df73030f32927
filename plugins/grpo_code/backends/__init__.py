"""Sandbox backends: the shared interface and lookup through the ``register_sandbox_backends`` hook."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from grpo_plugins import SettingError
from grpo_sandbox.harness import LIMIT_DEFAULTS, STATUSES, merge_limits

__all__ = ["LIMIT_DEFAULTS", "STATUSES", "SandboxBackend", "SandboxUnavailable", "create_backend", "merge_limits",
           "sandbox_backends"]


class SandboxUnavailable(RuntimeError):
    """The backend cannot run on this machine (no engine, no bubblewrap); the message says why."""


class SandboxBackend:
    """A place to run untrusted code. ``run(job) -> verdict`` must be thread-safe."""

    name = ""

    def __init__(self, limits: dict[str, Any] | None = None, parallel: int | None = None):
        self.defaults = merge_limits(limits)
        self.parallel = parallel

    def run(self, job: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        """Run one job {code, tests?, stdin?, limits?}; return the verdict record."""
        raise NotImplementedError

    def run_many(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run jobs concurrently (``parallel`` at a time); verdicts in input order."""
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel or 1, len(jobs)))) as ex:
            return list(ex.map(self.run, jobs))

    def job_limits(self, job: dict[str, Any]) -> dict[str, Any]:
        """This backend's defaults overlaid by the job's own limits."""
        return merge_limits(self.defaults, job.get("limits"))

    def close(self) -> None:
        """Release containers or other resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def uid_base() -> int:
    """Start of this process's block of 100 sandbox uids (docker: +0..49, local: +50..99).

    RLIMIT_NPROC counts per uid host-wide and the local backend sweeps its uids after each run, so
    two processes sandboxing on one machine must not share uids."""
    return 100000 + (os.getpid() % 100000) * 100


def error_verdict(message: str, status: str = "sandbox_error") -> dict[str, Any]:
    """A verdict for a run the backend could not carry out; never a pass."""
    return {"status": status, "passed": 0, "total": 0, "stdout": "", "stderr": "", "exit_code": None,
            "duration_s": 0.0, "per_test": [], "error": message}


def sandbox_backends(manager) -> dict[str, tuple[type, str]]:
    """Backends registered through ``register_sandbox_backends``: name -> (class, plugin name).

    Each plugin registers inside its own error boundary; a failure is raised naming the plugin."""
    found: dict[str, tuple[type, str]] = {}
    for plugin, caller in manager.per_plugin("register_sandbox_backends"):
        def register(name: str, cls: type, _plugin=plugin):
            if name in found and found[name][1] != _plugin:
                raise ValueError(f"sandbox backend {name!r} is registered by both {found[name][1]!r} and {_plugin!r}")
            found[name] = (cls, _plugin)

        try:
            caller(register=register)
        except Exception as exc:
            raise SandboxUnavailable(f"plugin {plugin!r}: register_sandbox_backends: {type(exc).__name__}: {exc}") from exc
    return found


def create_backend(name: str, manager, **options: Any) -> SandboxBackend:
    """Instantiate a backend by name ("docker", "local", or a third party's) that ``manager``'s plugins register.

    The manager is the caller's own (a reward's ``reward.manager``, a command's CLI manager): the
    process-wide one may not hold the plugins the caller was configured with."""
    if manager is None:
        raise TypeError(f"create_backend({name!r}): no plugin manager given; pass the one that loaded the "
                        "plugins (a reward's reward.manager, set by PluginManager.create_reward)")
    backends = sandbox_backends(manager)
    if name not in backends:
        raise SettingError("backend", f"unknown sandbox backend {name!r}",
                           f"registered: {', '.join(sorted(backends)) or '(none)'}")
    return backends[name][0](**options)
