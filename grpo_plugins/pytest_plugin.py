"""Pytest fixtures for verifier authors (loaded through the ``pytest11`` entry point).

    def test_my_reward(register_plugin, score_samples):
        register_plugin(MyPlugin())
        results = score_samples("my_reward", [{"prompt": "p", "completion": "c", "answer": "1"}])
        assert results[0].value == 1.0
"""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from .host import RewardConfig, RewardHost
from .manager import PluginManager, get_plugin_manager
from .rewards import RewardResult, Sample, sample_from_record


@pytest.fixture
def grpo_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, with installed plugins loaded."""
    return get_plugin_manager()


@pytest.fixture
def register_plugin(grpo_plugin_manager):
    """Register plugin objects for one test; each is unregistered when the test ends, even on failure."""
    registered: list[object] = []

    def register(plugin: object, name: str | None = None) -> str:
        name = grpo_plugin_manager.register(plugin, name=name)
        registered.append(plugin)
        return name

    try:
        yield register
    finally:
        for plugin in reversed(registered):
            if grpo_plugin_manager.pm.is_registered(plugin):
                grpo_plugin_manager.unregister(plugin)


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
