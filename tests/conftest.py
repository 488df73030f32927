"""Shared test setup. Fixtures for plugin authors live in grpo_plugins.pytest_plugin (pytest11)."""
