"""Pytest fixtures for verifier authors (loaded through the ``pytest11`` entry point).

    def test_my_reward(register_plugin, score_samples):
        register_plugin(MyPlugin())
        results = score_samples("my_reward", [{"prompt": "p", "completion": "c", "answer": "1"}])
        assert results[0].value == 1.0
"""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from .host import RewardHost
from .manager import PluginManager, get_plugin_manager
from .rewards import RewardConfig, RewardResult, Sample, sample_from_record


@pytest.fixture
def grpo_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, with installed plugins loaded."""
    return get_plugin_manager()


@pytest.fixture
def register_plugin(grpo_plugin_manager):
    """Register plugin objects for one test, installed or not; the registry is as before when the test ends.

    A plugin object that is already registered (the installed entry point imported the same module)
    is left alone. An installed plugin that registers the same reward names as the one under test is
    taken out for the test (the plugin under test wins) and put back afterwards."""
    manager = grpo_plugin_manager
    registered: list[object] = []
    displaced: list[tuple[str, object]] = []

    def register(plugin: object, name: str | None = None) -> str:
        if manager.pm.is_registered(plugin):
            return manager.pm.get_name(plugin)
        name = manager.register(plugin, name=name)
        registered.append(plugin)
        ours = {k for k, e in manager.rewards().items() if e.plugin == name}
        for key, plugins in manager.registry.clashes.items():
            for other in plugins:
                if other != name and (key in ours or name in plugins):
                    obj = manager.pm.get_plugin(other)
                    if obj is not None:
                        displaced.append((other, obj))
                        manager.unregister(name=other)
        return name

    try:
        yield register
    finally:
        for plugin in reversed(registered):
            if manager.pm.is_registered(plugin):
                manager.unregister(plugin)
        for other, obj in displaced:
            if not manager.pm.is_registered(obj):
                manager.register(obj, name=other, version=manager.versions.get(other, ""),
                                 source=manager.sources.get(other, "inline"))


@pytest.fixture
def score_samples(grpo_plugin_manager):
    """Score samples (dicts or Samples) with one reward through the real RewardHost."""

    def score(reward: str, samples: Iterable[dict[str, Any] | Sample], on_error: str = "raise",
              timeout: float | None = 60.0, **options: Any) -> list[RewardResult]:
        batch = [s if isinstance(s, Sample) else sample_from_record(s) for s in samples]
        cfg = RewardConfig(name=reward, options=options, on_error=on_error, timeout=timeout)
        with RewardHost([cfg], manager=grpo_plugin_manager) as host:
            return host.score(batch).results[cfg.label]

    return score
