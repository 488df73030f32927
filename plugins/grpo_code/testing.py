"""Test helpers: get a working sandbox backend, starting dockerd and building the image when
needed. In CI (env CI=true) a backend that cannot start fails the test; elsewhere it skips with
the reason."""

from __future__ import annotations

import functools
import os

import pytest

from .backends import SandboxUnavailable


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"sandbox backend required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"sandbox backend unavailable: {reason}")


@functools.lru_cache(maxsize=None)
def _docker_reason() -> str | None:
    from grpo_sandbox.engine import start_engine

    reason = start_engine()
    if reason:
        return reason
    try:
        import docker

        from grpo_sandbox.image import build_image

        build_image(docker.from_env(timeout=300))
    except Exception as exc:  # a failed build is a reason, reported once
        return f"sandbox image build failed: {type(exc).__name__}: {exc}"
    return None


@functools.cache
def _code_manager():
    """A manager with only the built-in code plugin: the docker and local backends, nothing else."""
    from grpo_plugins import PluginManager

    return PluginManager(allow=["code"])


def make_backend(name: str, **options):
    """A ready backend ("docker" or "local"), or a skip (fail in CI) naming why it cannot run."""
    if name == "docker":
        reason = _docker_reason()
        if reason:
            _unavailable(reason)
    from .backends import create_backend

    try:
        return create_backend(name, _code_manager(), **options)
    except SandboxUnavailable as exc:
        _unavailable(str(exc))
